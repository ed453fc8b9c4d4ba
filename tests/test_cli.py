"""The command line, run for real: ``python -m funapi_sync`` (and ``funapi-sync`` if installed).

Each test writes its app module into ``tmp_path`` and runs the command there, in a
subprocess, against 127.0.0.1: the dev server on a free port, gunicorn on an ephemeral one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from funapi_sync import cli
from funapi_sync.discovery import AppImportError, NoAppError, load_app

ROOT = Path(__file__).resolve().parents[1]


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return path


# -- discovery errors -----------------------------------------------------------------

BAD_TARGETS = {
    "module missing": ("no_such_module", "could not import 'no_such_module'"),
    "package missing": ("no_such_pkg.app:app", "could not import 'no_such_pkg.app'"),
    "attribute missing": ("targets:missing", "module 'targets' has no attribute 'missing'"),
    "not a WSGI app": ("targets:settings", "'targets:settings' is dict"),
    "a WSGI callable that is no App": ("targets:plain_wsgi", "not a funapi_sync App (a WSGI"),
    "factory raising": ("targets:broken_factory()", "broken_factory() raised RuntimeError: no db"),
    "factory arguments": ("targets:create_app(1, 2)", "cannot call targets:create_app(name="),
    "non-literal arguments": ("targets:create_app(os.sep)", "must be Python literals"),
    "file missing": ("nowhere/app.py", "no such file: 'nowhere/app.py'"),
    "no app in module": ("empty_module", "module 'empty_module' has no App"),
    "several apps": ("two_apps", "several App instances (admin, api)"),
    "attribute missing beside apps": ("two_apps:web", "its App instances: admin, api"),
    "no module named": (":app", "':app' names no module"),
    "a path that is not .py": ("./notes.txt", "'./notes.txt' is not a .py file"),
    "an unparsable expression": ("targets:create_app(", "cannot parse 'create_app('"),
    "an expression that is no call": ("targets:a.b", "cannot use 'a.b'"),
    "**kwargs": ("targets:create_app(**{})", "may not use **kwargs"),
    "calling what is not callable": ("targets:settings()", "which is not callable"),
    "a module, not an App": ("targets:os", "is the module 'os', not a funapi_sync App"),
    "a default name that is no App": ("app_int", "'app_int:app' is int 42, not a funapi_sync"),
}

TARGETS_MODULE = """
    import os

    from funapi_sync import App

    settings = {"debug": True}


    def plain_wsgi(environ, start_response):
        start_response("200 OK", [])
        return [b""]


    def broken_factory():
        raise RuntimeError("no db")


    def create_app(name="default"):
        return App(title=f"made {name}")
"""


@pytest.fixture
def targets(tmp_path: Path) -> Path:
    write(tmp_path, "targets.py", TARGETS_MODULE)
    write(tmp_path, "empty_module.py", "VALUE = 1\n")
    write(tmp_path, "two_apps.py", "from funapi_sync import App\napi = App()\nadmin = App()\n")
    write(tmp_path, "app_int.py", "app = 42\n")
    write(tmp_path, "notes.txt", "not python\n")
    return tmp_path


@pytest.mark.parametrize("command", ["dev", "run", "worker"])
def test_every_command_refuses_a_bad_target_the_same_way(targets, command, run_main):
    result = run_main(command, "targets:missing", cwd=targets)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "funapi-sync: error: module 'targets' has no attribute 'missing'; it has no App"
        " instance at module level"
    ]


def test_an_import_error_inside_the_module_is_shown_as_such_with_its_traceback(tmp_path, run_main):
    write(tmp_path, "needs_dep.py", "import os\n\nimport not_installed_dependency\n")

    result = run_main("routes", "needs_dep:app", cwd=tmp_path)

    assert result.returncode == 2
    assert "could not import 'needs_dep'" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "funapi-sync: error: importing 'needs_dep' raised ModuleNotFoundError: No module named"
        " 'not_installed_dependency'"
    )
    # The user's line is shown; the frames of the import machinery and the CLI are not.
    assert 'needs_dep.py", line 3, in <module>' in result.stderr
    assert "import not_installed_dependency" in result.stderr
    assert "importlib" not in result.stderr
    assert "discovery.py" not in result.stderr


def test_an_exception_at_import_names_the_module_and_the_line(tmp_path, run_main):
    write(tmp_path, "crashes.py", "VALUE = 1\nraise ValueError('bad config')\n")

    result = run_main("routes", "crashes", cwd=tmp_path)

    assert result.returncode == 2
    assert 'crashes.py", line 2, in <module>' in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "funapi-sync: error: importing 'crashes' raised ValueError: bad config"
    )


def test_a_syntax_error_shows_the_file_and_line_not_the_import_machinery(tmp_path, run_main):
    write(tmp_path, "broken_syntax.py", "VALUE = (\n")

    result = run_main("routes", "broken_syntax", cwd=tmp_path)

    assert result.returncode == 2
    assert 'broken_syntax.py", line 1' in result.stderr
    assert "importlib" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "funapi-sync: error: importing 'broken_syntax' raised SyntaxError:"
    )


# -- discovery that works -------------------------------------------------------------

GOOD_TARGETS = {
    "module:attr": ("named:api", "named api"),
    "default attr app": ("named", "default app"),
    "default attr application": ("application_only", "the application"),
    "the only App instance": ("only_one", "the only one"),
    "factory call": ("factory:create_app()", "made default"),
    "factory call with literal args": ("factory:create_app('dev', debug=True)", "made dev True"),
    "factory without parentheses": ("factory:create_app", "made default"),
    "default factory": ("factory", "made default"),
    "file path": ("named.py", "default app"),
    "file path with attr": ("named.py:api", "named api"),
    "file in a package": ("pkg/sub/web.py", "pkg.sub.web"),
    "module in a package": ("pkg.sub.web:app", "pkg.sub.web"),
}


@pytest.fixture
def good_targets(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "named.py",
        "from funapi_sync import App\n"
        "app = App(title='default app')\n"
        "api = App(title='named api')\n",
    )
    write(
        tmp_path,
        "application_only.py",
        "from funapi_sync import App\napplication = App(title='the application')\n",
    )
    write(tmp_path, "only_one.py", "from funapi_sync import App\nweb = App(title='the only one')\n")
    write(
        tmp_path,
        "factory.py",
        """
        from funapi_sync import App


        def create_app(name="default", debug=None):
            return App(title=" ".join(str(part) for part in ("made", name, debug) if part))
        """,
    )
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    write(
        tmp_path / "pkg" / "sub",
        "web.py",
        "from funapi_sync import App\napp = App(title=__name__)\n",
    )
    return tmp_path


def test_a_file_path_works_from_another_directory(good_targets, tmp_path_factory, run_main):
    elsewhere = tmp_path_factory.mktemp("elsewhere")

    result = run_main("routes", str(good_targets / "pkg" / "sub" / "web.py"), cwd=elsewhere)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("'pkg.sub.web' has no routes")


@pytest.fixture
def in_process(monkeypatch):
    """Import targets in this process; forget the modules and sys.path entries after."""
    before = set(sys.modules)
    monkeypatch.setattr(sys, "path", list(sys.path))

    def load(directory: Path, target: str):
        monkeypatch.chdir(directory)
        return load_app(target)

    yield load
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.fixture
def run_main(in_process, monkeypatch, capsys):
    """``funapi-sync ARGS`` in this process: ``cli.main`` with its exit status and output."""

    def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.chdir(cwd)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse's usage errors and --help
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["funapi-sync", *args], code, out, err)

    return run


@pytest.mark.parametrize(("target", "title"), GOOD_TARGETS.values(), ids=GOOD_TARGETS.keys())
def test_load_app_finds_each_target_in_process(good_targets, in_process, target, title):
    assert in_process(good_targets, target).title == title


@pytest.mark.parametrize(("target", "message"), BAD_TARGETS.values(), ids=BAD_TARGETS.keys())
def test_load_app_raises_no_app_error_in_process(targets, in_process, target, message):
    with pytest.raises(NoAppError) as info:
        in_process(targets, target)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_app_reports_an_import_error_inside_the_module_in_process(tmp_path, in_process):
    write(tmp_path, "inner_dep.py", "import not_installed_either\n")

    with pytest.raises(AppImportError) as info:
        in_process(tmp_path, "inner_dep")

    assert str(info.value) == (
        "importing 'inner_dep' raised ModuleNotFoundError: No module named 'not_installed_either'"
    )
    assert 'inner_dep.py", line 1, in <module>' in info.value.details


def test_load_app_reports_an_exception_at_import_in_process(tmp_path, in_process):
    write(tmp_path, "crashes_in.py", "raise KeyError('DATABASE_URL')\n")

    with pytest.raises(AppImportError, match="importing 'crashes_in' raised KeyError"):
        in_process(tmp_path, "crashes_in")


def test_python_m_funapi_sync_runs_main(targets, in_process, monkeypatch, capsys):
    import runpy

    in_process(targets, "targets:create_app")
    monkeypatch.setattr(sys, "argv", ["funapi_sync", "routes", "targets:create_app('m')"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("funapi_sync", run_name="__main__")
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("'made m' has no routes\n")


@pytest.mark.parametrize(
    ("host", "shown"),
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1"), ("::1", "[::1]")],
)
def test_the_dev_banner_shows_a_url_a_browser_can_open(host, shown):
    assert cli._url_host(host) == shown


def test_main_exits_2_with_one_line_for_a_bad_target(targets, in_process, capsys):
    in_process(targets, "targets:create_app")  # puts targets/ on the path, as main would
    with pytest.raises(SystemExit) as info:
        cli.main(["routes", "targets:missing"])
    assert info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


# -- routes ---------------------------------------------------------------------------

ROUTES_APP = """
    from marshmallow import fields

    from funapi_sync import App, Depends, Router, Schema

    User = Schema.define("User", name=fields.String(required=True))
    Page = Schema.define("Page", limit=fields.Integer(load_default=10))
    app = App(title="Routes API")
    app.register("db", lambda: "a database")


    def current_user(req):
        return "ada"


    @app.get("/users", query=Page, response_schema=[User], depends=["db"])
    def list_users(input, *, db):
        return []


    @app.post("/users", body=User, response_schema=User, depends={"user": Depends(current_user)})
    def create_user(input, *, user, background):
        return input.body


    admin = Router(prefix="/admin")


    @admin.route("/stats", methods=["GET", "DELETE"], depends={"store": "db"})
    def stats(*, store):
        return {}


    app.include_router(admin)
"""


def test_routes_prints_a_table_of_methods_paths_handlers_schemas_and_dependencies(
    tmp_path, run_main
):
    write(tmp_path, "routes_app.py", ROUTES_APP)

    result = run_main("routes", "routes_app", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    # fmt: off
    assert result.stdout.splitlines() == [
        "METHOD      PATH          HANDLER                 BODY  QUERY  RESPONSE  DEPENDS",
        "----------  ------------  ----------------------  ----  -----  --------  -------------------",  # noqa: E501
        "DELETE,GET  /admin/stats  routes_app.stats        -     -      -         store=db",
        "GET         /users        routes_app.list_users   -     Page   [User]    db",
        "POST        /users        routes_app.create_user  User  -      User      user=current_user()",  # noqa: E501
        "",
        "plus the built-in GET /openapi.json (OpenAPI) and GET /docs (Swagger UI)",
    ]
    # fmt: on


def test_routes_of_an_app_without_openapi_say_nothing_about_it(tmp_path, run_main):
    write(tmp_path, "bare.py", "from funapi_sync import App\napp = App(openapi_url=None)\n")

    result = run_main("routes", "bare", cwd=tmp_path)

    assert result.stdout == "'FunApi Application' has no routes\n"


def test_routes_list_a_route_of_the_app_that_replaced_the_docs_page(tmp_path, run_main):
    write(
        tmp_path,
        "own_docs.py",
        """
        from funapi_sync import App

        app = App()


        @app.get("/docs")
        def docs():
            return {"docs": "ours"}
        """,
    )

    result = run_main("routes", "own_docs", cwd=tmp_path)

    lines = result.stdout.splitlines()
    assert lines[2].split() == ["GET", "/docs", "own_docs.docs", "-", "-", "-", "-"]
    assert lines[-1] == "plus the built-in GET /openapi.json (OpenAPI)"


def test_unknown_options_of_routes_are_a_usage_error(tmp_path, run_main):
    write(tmp_path, "bare.py", "from funapi_sync import App\napp = App()\n")

    result = run_main("routes", "bare", "--workers", "2", cwd=tmp_path)

    assert result.returncode == 2
    assert "unrecognized arguments: --workers 2" in result.stderr


# -- dev ------------------------------------------------------------------------------


# -- run ------------------------------------------------------------------------------


def test_gunicorn_options_follow_gunicorns_precedence(tmp_path, monkeypatch):
    config = write(
        tmp_path, "gunicorn_settings.py", "workers = 5\ntimeout = 11\nnot_a_setting = 1\n"
    )
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--timeout 12 --graceful-timeout 13")
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)

    options, targets = cli.gunicorn_options(
        ["-c", str(config), "--graceful-timeout", "14", "m:app"]
    )

    assert targets == ["m:app"]
    assert options["workers"] == 5  # from the file
    assert options["timeout"] == 12  # the environment beats the file
    assert options["graceful_timeout"] == 14  # the command line beats both
    assert "not_a_setting" not in options
    assert options["bind"] == ["127.0.0.1:8000"]


def test_gunicorn_options_default_workers_to_the_cpus_unless_web_concurrency(monkeypatch):
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert cli.gunicorn_options(["m:app"])[0]["workers"] == cli._cpu_count()
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert "workers" not in cli.gunicorn_options(["m:app"])[0]  # gunicorn reads it itself


def test_run_without_an_app_is_a_usage_error(tmp_path, run_main):
    result = run_main("run", "--workers", "2", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "funapi-sync: error: run takes one APP and gunicorn options, got 0 positional"
        " arguments []; e.g. funapi-sync run module:app --workers 4"
    ]


def test_run_help_is_gunicorns(tmp_path, run_main):
    result = run_main("run", "--help", cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout.startswith("usage: funapi-sync run [gunicorn options] APP")
    assert "--graceful-timeout" in result.stdout
    assert "--max-requests" in result.stdout


# -- worker ---------------------------------------------------------------------------

WORKER_APP = """
    import json
    import os

    from funapi_sync import App
    from funapi_sync.backends import RecordBackend


    class Backend(RecordBackend):
        # A backend with the worker seam: run_worker(app, *, burst, queues) -> status.

        def run_worker(self, app, *, burst, queues):
            print(json.dumps({"title": app.title, "burst": burst, "queues": queues}))
            return int(os.environ.get("WORKER_STATUS", "0"))


    app = App(title="Durable", background_backend=Backend())
"""


def test_worker_calls_the_backends_run_worker_and_exits_with_its_status(tmp_path, run_main):
    write(tmp_path, "durable.py", WORKER_APP)

    result = run_main(
        "worker",
        "durable",
        "--burst",
        "--queue",
        "a",
        "--queue",
        "b",
        cwd=tmp_path,
        WORKER_STATUS="3",
    )

    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout) == {"title": "Durable", "burst": True, "queues": ["a", "b"]}


def test_worker_defaults_to_no_burst_and_the_backends_queues(tmp_path, run_main):
    write(tmp_path, "durable.py", WORKER_APP)

    result = run_main("worker", "durable", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"title": "Durable", "burst": False, "queues": None}


def test_worker_in_process_returns_the_backends_status(tmp_path, in_process, capsys, monkeypatch):
    write(tmp_path, "durable_in.py", WORKER_APP)
    monkeypatch.setenv("WORKER_STATUS", "5")
    in_process(tmp_path, "durable_in")

    assert cli.main(["worker", "durable_in", "--queue", "q"]) == 5
    out = json.loads(capsys.readouterr().out)
    assert out == {"title": "Durable", "burst": False, "queues": ["q"]}


def test_worker_without_a_durable_backend_is_one_line_and_exit_status_2(tmp_path, run_main):
    write(tmp_path, "plain.py", "from funapi_sync import App\napp = App()\n")

    result = run_main("worker", "plain", cwd=tmp_path)

    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "funapi-sync: error: worker needs a durable background backend, but plain uses"
    )
    assert lines[0].endswith(
        "; create the app with App(background_backend='sqlite') or"
        " App(background_backend=RQBackend(...)) (see docs/durable-tasks.md)"
    )


# -- packaging ------------------------------------------------------------------------


def test_the_console_script_entry_point_is_cli_main(tmp_path, monkeypatch, capsys):
    import configparser

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"].strip().splitlines()
    assert scripts == ["funapi-sync = funapi_sync.cli:main"]
    # main returns the exit status, which the generated script passes to sys.exit().
    write(tmp_path, "entry_app.py", "from funapi_sync import App\napp = App(title='entry')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert cli.main(["routes", "entry_app"]) == 0
    assert capsys.readouterr().out.startswith("'entry' has no routes")


def test_run_help_shows_the_workers_default_run_applies_not_gunicorns(capsys):
    from funapi_sync import cli

    with pytest.raises(SystemExit):
        cli.gunicorn_options(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"[funapi-sync run: one per CPU this process may use, here {cli._cpu_count()};" in out
    assert "worker processes for handling requests. [1]" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("dev", "targets:app", "--port", "70000"),
            "argument --port: invalid port 70000: a port is from 0 to 65535",
        ),
        (("dev", "targets:app", "--port", "-1"), "invalid port -1: a port is from 0 to 65535"),
        (("dev", "targets:app", "--port", "http"), "invalid port 'http': not a number"),
        (
            ("run", "--bind", "127.0.0.1:70000", "targets:app"),
            "argument -b/--bind: invalid port 70000: a port is from 0 to 65535",
        ),
    ],
    ids=["dev-too-high", "dev-negative", "dev-not-a-number", "run-bind"],
)
def test_a_port_out_of_range_is_a_usage_error(targets, run_main, args, message):
    result = run_main(*args, cwd=targets)

    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


# -- tasks ----------------------------------------------------------------------------

DURABLE_APP = """
    from datetime import UTC, datetime

    from funapi_sync import App
    from funapi_sync.status import TaskStatus

    WHEN = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
    TASKS = [
        TaskStatus("t-3", "shop.charge", "FAILED", 3, WHEN, WHEN, WHEN, "ValueError: bad\\ncard"),
        TaskStatus("t-2", "shop.ship", "RUNNING", 1, WHEN, WHEN, None),
        TaskStatus("t-1", "shop.ship", "SUCCESSFUL", 1, WHEN, WHEN, WHEN),
    ]


    class Durable:
        check = None

        def bind(self, settings):
            pass

        def submit(self, batch):
            pass

        def stats(self):
            return {"queued": 0, "running": 0, "completed": 0, "failed": 0}

        def drain(self, timeout=None):
            return True

        def status(self, task_id):
            return next((task for task in TASKS if task.id == task_id), None)

        def tasks(self, status=None, limit=100):
            return [task for task in TASKS if status in (None, task.status)][:limit]


    app = App(background_backend=Durable())
"""


def test_tasks_prints_the_durable_backends_tasks_as_a_table(tmp_path, run_main):
    write(tmp_path, "durable_app.py", DURABLE_APP)

    result = run_main("tasks", "durable_app", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ID   STATUS      NAME         ATTEMPTS  FINISHED             ERROR",
        "---  ----------  -----------  --------  -------------------  ---------------------",
        "t-3  FAILED      shop.charge  3         2026-12-07 10:30:00  ValueError: bad\\ncard",
        "t-2  RUNNING     shop.ship    1         -                    -",
        "t-1  SUCCESSFUL  shop.ship    1         2026-12-07 10:30:00  -",
    ]


def test_tasks_filters_by_status_in_any_case_and_limits(tmp_path, run_main):
    write(tmp_path, "durable_app.py", DURABLE_APP)

    failed = run_main("tasks", "durable_app", "--status", "failed", cwd=tmp_path)
    limited = run_main("tasks", "durable_app", "--limit", "1", cwd=tmp_path)
    none = run_main("tasks", "durable_app", "--status", "DROPPED", cwd=tmp_path)

    assert [line.split()[0] for line in failed.stdout.splitlines()[2:]] == ["t-3"]
    assert [line.split()[0] for line in limited.stdout.splitlines()[2:]] == ["t-3"]
    assert (none.returncode, none.stdout) == (0, "no DROPPED tasks\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "DONE"], "argument --status: invalid choice: 'DONE'"),
        (["--limit", "0"], "argument --limit: invalid number 0: must be at least 1"),
    ],
)
def test_tasks_refuses_an_unknown_status_or_a_bad_limit_as_a_usage_error(
    tmp_path, run_main, args, message
):
    write(tmp_path, "durable_app.py", DURABLE_APP)

    result = run_main("tasks", "durable_app", *args, cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr


def test_tasks_on_the_thread_backend_says_in_one_line_that_it_cannot_see_them(tmp_path, run_main):
    write(tmp_path, "bare.py", "from funapi_sync import App\napp = App()\n")

    result = run_main("tasks", "bare", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "funapi-sync: error: the thread backend keeps status per process, so this command"
        " cannot see the tasks of the processes that serve the app; use a durable backend"
        " (App(background_backend='sqlite')) or the tasks page (docs/task-status.md)"
    ]
