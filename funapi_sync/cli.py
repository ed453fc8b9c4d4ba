"""The ``funapi-sync`` command line (``python -m funapi_sync``): dev, run, routes, worker, tasks.

NOTE: argparse, not click. It is in the standard library, so the command line adds no
dependency; and ``run`` hands every option it does not know to gunicorn's own parser,
which is argparse too, so gunicorn's options, help and validation are gunicorn's exactly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__, logconfig
from ._callables import callable_name
from ._logtext import one_line
from .discovery import AppImportError, NoAppError, load_app
from .status import STATUSES, store_of

if TYPE_CHECKING:
    from .app import App
    from .route import Route

PROG = "funapi-sync"
#: The exit status of a usage error (argparse's) and of a target that names no App.
USAGE_ERROR = 2

_APP_HELP = (
    "the app: module:app, module:create_app(), or path/to/file.py; with only a module,"
    " its 'app', 'application', only App instance, or create_app() factory"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if args.command != "run" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    handler: Callable[[argparse.Namespace, list[str]], int] = args.handler
    return handler(args, rest)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve, inspect and run the background worker of a funapi_sync app.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev",
        help="serve on werkzeug's development server",
        description="Serve APP on werkzeug's development server (threaded), for development"
        " only: use 'run' in production.",
    )
    dev.add_argument("app", metavar="APP", help=_APP_HELP)
    dev.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    dev.add_argument("--port", type=port_number, default=8000, help="port (default 8000)")
    dev.add_argument(
        "--reload",
        action="store_true",
        help="restart when a source file changes; the app's startup and shutdown hooks run"
        " in the serving process only",
    )
    dev.set_defaults(handler=_dev)

    # NOTE: no options of its own and no help of its own: everything after 'run' goes
    # to gunicorn's parser, which owns -h and knows how many values each option takes.
    run = commands.add_parser(
        "run",
        add_help=False,
        help="serve with gunicorn (any gunicorn option; run -h lists them), or with"
        " --server granian",
    )
    run.set_defaults(handler=_run)

    routes = commands.add_parser(
        "routes",
        help="list the routes",
        description="List APP's routes: method, path, handler, schemas and dependencies.",
    )
    routes.add_argument("app", metavar="APP", help=_APP_HELP)
    routes.set_defaults(handler=_routes)

    _add_backend_commands(commands)
    return parser


def _add_backend_commands(commands: Any) -> None:
    """``worker`` and ``tasks``: the commands of a durable background backend."""
    worker = commands.add_parser(
        "worker",
        help="run the durable background backend's worker",
        description="Run the worker of APP's durable background backend"
        " (App(background_backend=...)).",
    )
    worker.add_argument("app", metavar="APP", help=_APP_HELP)
    worker.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    worker.add_argument(
        "--queue",
        dest="queues",
        action="append",
        metavar="NAME",
        help="a queue to work on (repeat for several; default: the backend's queue)",
    )
    worker.set_defaults(handler=_worker)

    tasks = commands.add_parser(
        "tasks",
        help="list the background tasks of a durable backend",
        description="List the background tasks APP's durable backend knows, newest first:"
        " id, status, name, attempts, finished, error (as the tasks page does).",
    )
    tasks.add_argument("app", metavar="APP", help=_APP_HELP)
    tasks.add_argument(
        "--status",
        type=str.upper,
        choices=STATUSES,
        help="only the tasks in this status",
    )
    tasks.add_argument(
        "--limit", type=_positive, default=100, help="at most this many tasks (default 100)"
    )
    tasks.set_defaults(handler=_tasks)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: not a number") from None
    if not 0 <= port <= 65535:
        # NOTE: werkzeug would announce :70000 and serve on 70000 % 65536.
        raise argparse.ArgumentTypeError(f"invalid port {port}: a port is from 0 to 65535")
    return port


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"invalid number {number}: must be at least 1")
    return number


def _fail(message: str, details: str | None = None) -> NoReturn:
    if details:
        print(details, file=sys.stderr)
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def _load(target: str) -> App:
    try:
        return load_app(target)
    except NoAppError as exc:
        _fail(str(exc))
    except AppImportError as exc:
        _fail(str(exc), exc.details)


# -- dev ------------------------------------------------------------------------------


def _dev(args: argparse.Namespace, rest: list[str]) -> int:
    from werkzeug.serving import is_running_from_reloader

    logconfig.install()
    app = _load(args.app)
    if not is_running_from_reloader():
        # Once, in the process the user started, not again at each reload.
        base = f"http://{_url_host(args.host)}:{args.port}"
        docs = app.settings.get("docs_url") if app.settings.get("openapi_url") else None
        print(f" * funapi_sync app {app.title!r} ({args.app}) on {base}/", flush=True)
        if docs:
            print(f" * interactive API docs on {base}{docs}", flush=True)
    app.run(host=args.host, port=args.port, use_reloader=args.reload)
    return 0


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


# -- run ------------------------------------------------------------------------------


def _run(args: argparse.Namespace, rest: list[str]) -> int:
    server, rest = _server_choice(rest)
    if server == "granian":
        from .server import granian

        granian_options, targets = granian.parse_options(rest, _cpu_count())
        if len(targets) != 1:
            _fail(f"run --server granian takes one APP, got {len(targets)}: {targets}")
        granian.start(_load(targets[0]), **granian_options)
        return 0
    from .server import gunicorn

    options, targets = gunicorn_options(rest)
    if len(targets) != 1:
        _fail(
            f"run takes one APP and gunicorn options, got {len(targets)} positional"
            f" arguments {targets}; e.g. {PROG} run module:app --workers 4"
        )
    _check_binds(options.get("bind"))
    app = _load(targets[0])
    gunicorn.start(app, **options)
    return 0


def _check_binds(binds: Any) -> None:
    for bind in [binds] if isinstance(binds, str) else binds or ():
        if bind.startswith(("unix:", "fd://")):
            continue
        _host, colon, port = bind.rpartition(":")
        if colon and port.isdigit() and not 0 <= int(port) <= 65535:
            _fail(f"argument -b/--bind: invalid port {int(port)}: a port is from 0 to 65535")


def _server_choice(argv: list[str]) -> tuple[str, list[str]]:
    """``--server gunicorn|granian`` (gunicorn by default) and the other arguments."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--server", choices=("gunicorn", "granian"), default="gunicorn")
    known, rest = parser.parse_known_args(argv)
    return known.server, rest


def gunicorn_options(argv: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Parse ``argv`` as gunicorn would; return the settings given and the positionals.

    Precedence is gunicorn's: its config file (``-c``, else ``./gunicorn.conf.py``), then
    ``$GUNICORN_CMD_ARGS``, then the command line. ``workers`` defaults to the number of
    CPUs this process may use (``$WEB_CONCURRENCY`` if set, as with gunicorn), and
    ``bind`` to gunicorn's default (``127.0.0.1:8000``, or ``0.0.0.0:$PORT``).
    """
    from gunicorn.config import Config, get_default_config_file

    config = Config(usage=f"{PROG} run [gunicorn options] APP", prog=f"{PROG} run")
    parser = config.parser()
    _say_workers_default(parser)
    args = parser.parse_args(list(argv))
    env_args = parser.parse_args(config.get_cmd_args_from_env())
    options: dict[str, Any] = {}
    location = args.config or env_args.config or get_default_config_file()
    if location:
        found = _config_file(location)
        options.update({key: found[key] for key in found if key in config.settings})
    for parsed in (env_args, args):
        for key, value in vars(parsed).items():
            if value is not None and key not in ("args", "config"):
                options[key] = value
    options.pop("wsgi_app", None)  # the app is APP
    if "workers" not in options and "WEB_CONCURRENCY" not in os.environ:
        options["workers"] = _cpu_count()
    options.setdefault("bind", config.settings["bind"].default)
    return options, list(args.args)


def _say_workers_default(parser: argparse.ArgumentParser) -> None:
    """``run --help`` shows the workers default ``run`` applies, not gunicorn's ``[1]``."""
    for action in parser._actions:
        if action.dest == "workers" and action.help:
            action.help = action.help.replace(
                "[1]",
                f"[{PROG} run: one per CPU this process may use, here {_cpu_count()};"
                " $WEB_CONCURRENCY if set]",
            )


def _cpu_count() -> int:
    # NOTE: the CPUs this process may run on (a container's cpuset), not the machine's.
    # One worker per CPU rather than gunicorn's 2n+1: each worker also runs its own pool
    # of background threads, which want CPU too.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _config_file(location: str) -> dict[str, Any]:
    """The names a gunicorn config file defines, read by gunicorn's own loader."""
    from gunicorn.app.base import Application
    from gunicorn.config import Config

    class Loader(Application):  # type: ignore[misc]
        def __init__(self) -> None:
            # NOTE: not Application.__init__, which would parse sys.argv and load an app.
            self.cfg = Config()

    result: dict[str, Any] = Loader().load_config_from_module_name_or_filename(location)
    return result


# -- routes ---------------------------------------------------------------------------

_COLUMNS = ("METHOD", "PATH", "HANDLER", "BODY", "QUERY", "RESPONSE", "DEPENDS")


def _routes(args: argparse.Namespace, rest: list[str]) -> int:
    app = _load(args.app)
    rows = [_route_row(endpoint) for endpoint in app.routes.endpoints]
    rows.sort(key=lambda row: (row[1], row[0]))
    if not rows:
        print(f"{app.title!r} has no routes")
    else:
        print(format_table(_COLUMNS, rows))
    builtin = _builtin_routes(app)
    if builtin:
        print(f"\nplus the built-in {' and '.join(builtin)}")
    return 0


def _builtin_routes(app: App) -> list[str]:
    """The docs routes the app serves unless a route of its own took their path."""
    paths = {getattr(endpoint, "path", None) for endpoint in app.routes.defaults}
    names = []
    for key, what in (("openapi_url", "OpenAPI"), ("docs_url", "Swagger UI")):
        url = app.settings.get(key)
        if url and url in paths:
            names.append(f"GET {url} ({what})")
    return names


def _route_row(endpoint: Route) -> tuple[str, ...]:
    shown = [m for m in endpoint.methods if m not in ("HEAD", "OPTIONS")] or endpoint.methods
    return (
        ",".join(sorted(shown)),
        endpoint.path,
        callable_name(endpoint.handler, dotted=True),
        _schema_name(endpoint.body_schema),
        _schema_name(endpoint.query_schema),
        _schema_name(endpoint.response_schema),
        _depends(endpoint),
    )


def _schema_name(schema: Any) -> str:
    if schema is None:
        return "-"
    name = type(schema).__name__
    return f"[{name}]" if getattr(schema, "many", False) else name


def _depends(endpoint: Route) -> str:
    from .dependencies import Depends

    parts = []
    for keyword, spec in endpoint.depends.items():
        if isinstance(spec, str):
            parts.append(keyword if spec == keyword else f"{keyword}={spec}")
        else:
            target = spec.dependency if isinstance(spec, Depends) else spec
            called = f"{getattr(target, '__qualname__', repr(target))}()"
            # A guard given in a depends= list has no keyword: its value is unused.
            parts.append(called if keyword.startswith("<guard ") else f"{keyword}={called}")
    return ", ".join(parts) or "-"


def format_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a dashed rule under the header (as flask routes)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(columns, *rows, strict=True)]
    lines = [columns, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


# -- worker ---------------------------------------------------------------------------


def _worker(args: argparse.Namespace, rest: list[str]) -> int:
    logconfig.install()
    app = _load(args.app)
    backend = app.settings.get("background_backend", "thread")
    run_worker = getattr(backend, "run_worker", None)
    if not callable(run_worker):
        kind = backend if isinstance(backend, str) else type(backend).__name__
        _fail(
            f"worker needs a durable background backend, but {args.app} uses {kind!r};"
            " create the app with App(background_backend='sqlite') or"
            " App(background_backend=RQBackend(...)) (see docs/durable-tasks.md)"
        )
    try:
        status = run_worker(app, burst=args.burst, queues=args.queues)
    except ConnectionError as exc:  # the backend's store is unreachable: its message names it
        _fail(str(exc))
    return int(status or 0)


# -- tasks ----------------------------------------------------------------------------

_TASK_COLUMNS = ("ID", "STATUS", "NAME", "ATTEMPTS", "FINISHED", "ERROR")


def _tasks(args: argparse.Namespace, rest: list[str]) -> int:
    app = _load(args.app)
    backend = app.background
    if store_of(backend) is not None:
        # NOTE: this process served no request: an in-process store here is always empty,
        # and an empty table would read as "no task ever failed".
        name = type(backend).__name__.removesuffix("Backend").lower()  # ThreadBackend: thread
        _fail(
            f"the {name} backend keeps status per process, so this command cannot see the"
            " tasks of the processes that serve the app; use a durable backend"
            " (App(background_backend='sqlite')) or the tasks page (docs/task-status.md)"
        )
    found = backend.tasks(args.status, args.limit)
    if not found:
        print(f"no {args.status} tasks" if args.status else "no tasks")
        return 0
    rows = [
        (
            one_line(task.id),
            task.status,
            one_line(task.name),
            str(task.attempts),
            task.finished_at.strftime("%Y-%m-%d %H:%M:%S") if task.finished_at else "-",
            one_line(task.error) if task.error else "-",
        )
        for task in found
    ]
    print(format_table(_TASK_COLUMNS, rows))
    return 0
