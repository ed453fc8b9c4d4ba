"""RQBackend against a real redis-server and real ``rq worker --burst`` processes.

The app is ``live_apps/rq_app.py``: each task run is one row of a SQLite file, so the
tests count every run (no sampling). No fakeredis, no mock of RQ.
"""

from __future__ import annotations

import contextvars
import functools
import http.client
import importlib
import logging
import os
import pickle
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from types import ModuleType

import pytest
import redis
from _helpers import ROOT, run_gunicorn
from redis_server import RedisServer, free_port, redis_server, rq_worker
from rq import Queue, Retry

from funapi_sync import App, BackgroundTasks
from funapi_sync import pool as pool_module
from funapi_sync.backends.rq import RQBackend

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

LIVE_APPS = Path(__file__).resolve().parents[1] / "live_apps"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with redis_server(tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def redis_url(server: RedisServer) -> str:
    redis.Redis.from_url(server.url).flushall()
    return server.url


@pytest.fixture
def rq_app(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """live_apps/rq_app.py, re-imported with a fresh SQLite file and this test's Redis."""
    monkeypatch.syspath_prepend(str(LIVE_APPS))
    monkeypatch.setenv("RQ_APP_DB", str(tmp_path / "runs.sqlite3"))
    monkeypatch.setenv("RQ_APP_REDIS", redis_url)
    for name in ("RQ_APP_RETRY", "RQ_APP_INTERVAL", "RQ_APP_LEASE"):
        monkeypatch.delenv(name, raising=False)
    import rq_app

    return importlib.reload(rq_app)


def rows(module: ModuleType, query: str = "SELECT request, task, pid FROM runs ORDER BY rowid"):
    with closing(sqlite3.connect(module.DB)) as conn:
        return conn.execute(query).fetchall()


def work(module: ModuleType, *, extra_env: dict[str, str] | None = None) -> str:
    """Run ``rq worker --burst`` over the default queue; return its output."""
    env = {"RQ_APP_DB": module.DB, "RQ_APP_REDIS": os.environ["RQ_APP_REDIS"], **(extra_env or {})}
    done = rq_worker(os.environ["RQ_APP_REDIS"], cwd=LIVE_APPS, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def unreachable_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


# -- the acceptance run under gunicorn --------------------------------------------------


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")  # a zombie has exited, whoever reaps it


@pytest.mark.server
@pytest.mark.timeout(180)
def test_200_requests_under_gunicorn_run_each_task_once_in_order_on_a_later_worker(
    rq_app: ModuleType, tmp_path: Path
) -> None:
    env = {"RQ_APP_DB": rq_app.DB, "RQ_APP_REDIS": os.environ["RQ_APP_REDIS"]}
    # --timeout 4: an orphaned sync worker notices its dead master within timeout/2.
    with run_gunicorn(
        "rq_app:app", "--timeout", "4", tmp_path=tmp_path, env=env, workers=2, cwd=LIVE_APPS
    ) as gunicorn:
        web_pids = {gunicorn.process.pid, *gunicorn.worker_pids}
        assert len(web_pids) == 3, gunicorn.log()

        def get(number: int) -> int:
            connection = http.client.HTTPConnection("127.0.0.1", gunicorn.port, timeout=10)
            try:
                connection.request("GET", f"/work/{number}")
                response = connection.getresponse()
                response.read()
                return response.status
            finally:
                connection.close()

        with ThreadPoolExecutor(4) as executor:
            statuses = list(executor.map(get, range(200)))
        gunicorn.process.send_signal(signal.SIGKILL)
        gunicorn.process.wait(10)
        deadline = time.monotonic() + 30
        while not all(_gone(pid) for pid in gunicorn.worker_pids):
            assert time.monotonic() < deadline, "gunicorn workers outlived their master"
            time.sleep(0.05)
        log = gunicorn.log()
    assert statuses == [200] * 200
    assert "ERROR" not in log, log
    assert rows(rq_app) == []  # nothing ran in the web tier
    connection = redis.Redis.from_url(os.environ["RQ_APP_REDIS"])
    assert Queue("default", connection=connection).count == 200

    work(rq_app)
    runs = rows(rq_app)
    assert Counter((request, task) for request, task, _ in runs) == Counter(
        {(request, task): 1 for request in range(200) for task in range(3)}
    )
    for request in range(200):
        assert [task for r, task, _ in runs if r == request] == [0, 1, 2]
    assert not web_pids & {pid for _, _, pid in runs}


# -- retries and failures ---------------------------------------------------------------


def test_a_task_failing_twice_runs_three_times_and_the_job_succeeds_with_retry_max_3(
    rq_app: ModuleType, redis_url: str
) -> None:
    app = App(background_backend=RQBackend(redis_url, retry=Retry(max=3)))

    @app.get("/")
    def handler(*, background):
        background.add_task(rq_app.record, 7, 0)
        background.add_task(rq_app.flaky, 7, 1, 2)
        background.add_task(rq_app.record, 7, 2)
        return {}

    assert app.test_client().get("/").status_code == 200
    [job_id] = Queue("default", connection=redis.Redis.from_url(redis_url)).job_ids
    output = work(rq_app)
    # A retry resumes at the failed task: the one before it ran once, the one after once.
    assert [(request, task) for request, task, _ in rows(rq_app)] == [
        (7, 0), (7, 1), (7, 1), (7, 1), (7, 2)
    ]  # fmt: skip
    assert output.count("attempt 1 of task 1 fails on purpose") >= 1
    assert output.count("attempt 2 of task 1 fails on purpose") >= 1
    queue = Queue("default", connection=redis.Redis.from_url(redis_url))
    job = queue.fetch_job(job_id)
    assert job is not None
    assert job.get_status() == "finished"
    stats = app.background.stats()
    assert stats["failed"] == 0
    assert stats["queued"] == 0
    assert stats["completed"] == 1


def test_without_retry_a_failing_task_is_logged_the_next_still_runs_and_the_job_fails(
    rq_app: ModuleType, redis_url: str
) -> None:
    app = App(background_backend=RQBackend(redis_url))

    @app.get("/")
    def handler(*, background):
        background.add_task(rq_app.flaky, 3, 0, 5)
        background.add_task(rq_app.record, 3, 1)
        return {}

    assert app.test_client().get("/").status_code == 200
    output = work(rq_app)
    assert [(request, task) for request, task, _ in rows(rq_app)] == [(3, 0), (3, 1)]
    assert "WARNING funapi_sync.background" in output
    assert "background task rq_app.flaky of GET / failed" in output
    assert app.background.stats()["failed"] == 1


# -- context ----------------------------------------------------------------------------


def test_the_request_id_reaches_the_worker_and_an_unpicklable_value_is_not_carried(
    rq_app: ModuleType,
) -> None:
    client = rq_app.app.test_client()
    assert client.get("/work/5").status_code == 200
    work(rq_app)
    assert rows(rq_app, "SELECT request, task, request_id, lock FROM runs ORDER BY rowid") == [
        (5, 0, "req-5", "unset"), (5, 1, "req-5", "unset"), (5, 2, "req-5", "unset")
    ]  # fmt: skip


# -- Redis down, or too slow ------------------------------------------------------------


_ran: list[str] = []


def remember(value: str) -> None:
    _ran.append(value)


def test_redis_down_with_fallback_thread_runs_the_task_in_process_with_an_error_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    app = App(background_backend=RQBackend(unreachable_url()))
    _ran.clear()

    @app.get("/")
    def handler(*, background):
        background.add_task(remember, "in process")
        return {}

    assert app.test_client().get("/").status_code == 200
    assert _ran == ["in process"]
    [record] = [r for r in caplog.records if r.name == "funapi_sync.background"]
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert "could not enqueue the tasks of GET /" in message
    assert "in this process instead (fallback='thread'): test_rq.remember" in message
    assert app.background.counts == {"enqueued": 0, "fallback": 1, "not_enqueued": 0, "unknown": 0}


def test_redis_down_with_fallback_error_logs_each_task_as_not_enqueued(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    app = App(background_backend=RQBackend(unreachable_url(), fallback="error"))

    @app.get("/")
    def handler(*, background):
        background.add_task(module_level, 1)
        background.add_task(remember, "never")
        return {}

    _ran.clear()
    assert app.test_client().get("/").status_code == 200
    assert _ran == []
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(messages) == 2
    assert messages[0].startswith("background task test_rq.module_level of GET / was not enqueued")
    assert messages[1].startswith("background task test_rq.remember of GET / was not enqueued")
    assert all("and will not run (fallback='error')" in message for message in messages)


def test_a_redis_that_never_answers_holds_close_no_longer_than_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    # A listening socket that never accepts: connects succeed, replies never come.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        app = App(background_backend=RQBackend(url, timeout=0.2, fallback="error"))

        @app.get("/")
        def handler(*, background):
            background.add_task(module_level, 1)
            return {}

        started = time.monotonic()
        assert app.test_client().get("/").status_code == 200
        elapsed = time.monotonic() - started
    assert elapsed < 5, f"close() was held {elapsed:.1f} s by a silent Redis"
    assert any("was not enqueued" in r.getMessage() for r in caplog.records)


# -- what add_task refuses --------------------------------------------------------------


class Mailer:
    """Module-level, so its instances pickle and its methods can run on a worker."""

    def send(self, address: str) -> None:
        pass


def module_level(value: object) -> None:
    pass


def _refused():
    def nested() -> None:
        pass

    count = 0

    def closure() -> None:
        nonlocal count

    class Local:
        def method(self) -> None:
            pass

    class Callable_:
        def __call__(self) -> None:
            pass

    main_function = types_function_in_main()
    return [
        ("lambda", (lambda: None,), "a lambda has no importable name"),
        ("nested", (nested,), "defined inside another function"),
        ("closure", (closure,), "defined inside another function"),
        ("bound method of a local class", (Local().method,), "a method of class"),
        ("callable instance of a local class", (Callable_(),), "a callable instance of class"),
        ("local class", (Local,), "defined inside another function has no importable name"),
        ("__main__", (main_function,), "is defined in __main__, which a worker cannot import"),
        ("lock argument", (module_level, threading.Lock()), "its arguments cannot be serialised"),
        (
            "connection argument",
            (module_level, sqlite3.connect(":memory:")),
            "pass plain values such as ids and strings, not connections",
        ),
    ]


def types_function_in_main():
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec("def task():\n    pass\n", namespace)
    return namespace["task"]


@pytest.mark.parametrize(("what", "call", "message"), _refused(), ids=lambda v: str(v)[:30])
def test_a_durable_backend_refuses_at_add_task_what_a_worker_cannot_run(
    what: str, call: tuple[object, ...], message: str
) -> None:
    backend = RQBackend(unreachable_url())
    background = BackgroundTasks(check=backend.check)
    with pytest.raises(TypeError, match=r"add_task\(") as info:
        background.add_task(*call)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert len(background) == 0


def test_a_method_or_callable_of_a_main_class_is_refused_though_pickle_accepts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The class really is an attribute of __main__ here, so pickle succeeds by reference;
    # an rq worker's __main__ is rq's, and the job would fail there.
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(
        "class Job:\n    def run(self):\n        pass\n    def __call__(self):\n        pass\n",
        namespace,
    )
    job_class = namespace["Job"]
    monkeypatch.setattr(sys.modules["__main__"], "Job", job_class, raising=False)
    job = job_class()  # type: ignore[operator]
    background = BackgroundTasks(check=RQBackend(unreachable_url()).check)
    for fn, what in [
        (job.run, "a method of class Job"),
        (job, "a callable instance of class Job"),
        (functools.partial(job.run), "a method of class Job"),
    ]:
        pickle.dumps(fn)  # the check cannot lean on pickle failing
        with pytest.raises(TypeError, match=r"add_task\(") as info:
            background.add_task(fn)
        assert f"{what}: Job is defined in __main__, which a worker cannot import" in str(
            info.value
        )
    assert len(background) == 0


@pytest.mark.parametrize(
    "call",
    [
        (module_level, 1),
        (functools.partial(module_level, "x"),),
        (print, "builtin"),
        (Mailer().send, "a@example.com"),
        (module_level, {"id": 1, "tags": ["a"]}),
    ],
    ids=["function", "partial", "builtin", "bound method", "plain data"],
)
def test_a_durable_backend_accepts_importable_callables_and_plain_data(
    call: tuple[object, ...],
) -> None:
    background = BackgroundTasks(check=RQBackend(unreachable_url()).check)
    background.add_task(*call)  # type: ignore[arg-type]
    assert len(background) == 1


def test_a_handler_adding_a_lambda_answers_500_and_enqueues_nothing(redis_url: str) -> None:
    app = App(background_backend=RQBackend(redis_url))
    errors: list[str] = []

    @app.get("/")
    def handler(*, background):
        try:
            background.add_task(lambda: None)
        except TypeError as exc:
            errors.append(str(exc))
            raise
        return {}

    assert app.test_client().get("/").status_code == 500
    assert errors
    assert "a lambda has no importable name" in errors[0]
    assert Queue("default", connection=redis.Redis.from_url(redis_url)).count == 0


# -- the worker, settings, stats and drain --------------------------------------------------


def test_run_worker_runs_startup_hooks_then_the_tasks_then_shutdown_hooks(
    rq_app: ModuleType,
) -> None:
    assert rq_app.app.test_client().get("/work/1").status_code == 200
    source = (
        "import sys, rq_app\n"
        "backend = rq_app.app.settings['background_backend']\n"
        "sys.exit(backend.run_worker(rq_app.app, burst=True))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(LIVE_APPS)]),
    }
    done = subprocess.run(
        [sys.executable, "-c", source], cwd=LIVE_APPS, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # The test process served the request (and ran its own startup hook); the rest is
    # the worker's process.
    hooks = rows(rq_app, "SELECT hook, pid FROM hooks ORDER BY rowid")
    hooks = [(hook, pid) for hook, pid in hooks if pid != os.getpid()]
    assert [hook for hook, _ in hooks] == ["startup", "shutdown"]
    assert hooks[0][1] == hooks[1][1]
    assert [(request, task) for request, task, _ in rows(rq_app)] == [(1, 0), (1, 1), (1, 2)]


def test_stats_count_jobs_in_redis_and_drain_waits_for_a_worker(
    rq_app: ModuleType, redis_url: str
) -> None:
    backend = rq_app.app.settings["background_backend"]
    assert backend is rq_app.app.background
    assert isinstance(backend, RQBackend)
    client = rq_app.app.test_client()
    assert client.get("/work/1").status_code == 200
    assert client.get("/work/2").status_code == 200
    stats = backend.stats()
    assert (stats["queued"], stats["enqueued"], stats["completed"]) == (2, 6, 0)
    assert backend.drain(timeout=0.2) is False  # no worker: the jobs wait in Redis
    work(rq_app)
    assert backend.drain(timeout=10) is True
    stats = backend.stats()
    assert (stats["queued"], stats["running"], stats["completed"]) == (0, 0, 2)


def test_a_redis_client_is_accepted_and_one_without_socket_timeout_is_warned_about(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    client = redis.Redis.from_url(redis_url, socket_timeout=1)
    backend = RQBackend(client, queue="emails")
    assert backend.connection is client
    assert caplog.records == []
    RQBackend(redis.Redis.from_url(redis_url))
    assert "without socket_timeout" in caplog.records[0].getMessage()
    app = App(background_backend=backend)

    @app.get("/")
    def handler(*, background):
        background.add_task(module_level, 1)
        return {}

    assert app.test_client().get("/").status_code == 200
    assert Queue("emails", connection=client).count == 1


def test_bad_rq_backend_arguments_fail_when_built() -> None:
    with pytest.raises(ValueError, match=r"fallback='drop'.*'thread' or 'error'"):
        RQBackend(unreachable_url(), fallback="drop")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"takes an rq.Retry, e.g. Retry\(max=3\)"):
        RQBackend(unreachable_url(), retry=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"takes a Redis URL or a redis.Redis, got int"):
        RQBackend(6379)  # type: ignore[arg-type]


def test_before_response_cleanups_precede_the_enqueue_and_after_tasks_ones_follow_it(
    redis_url: str,
) -> None:
    app = App(background_backend=RQBackend(redis_url))
    events: list[str] = []
    queue = Queue("default", connection=redis.Redis.from_url(redis_url))

    def resource(name: str):
        def factory():
            yield name
            events.append(f"{name} closed with {queue.count} job(s) queued")

        return factory

    app.register("transaction", resource("transaction"))  # cleanup="before_response"
    app.register("session", resource("session"), cleanup="after_tasks")

    @app.get("/", depends=["transaction", "session"])
    def handler(*, background, transaction, session):
        background.add_task(module_level, 1)
        return {}

    assert app.test_client().get("/").status_code == 200
    # The commit happens before the job exists (a worker never sees an uncommitted row);
    # an after_tasks value is not carried to the worker, so it is closed after the enqueue.
    assert events == [
        "transaction closed with 0 job(s) queued",
        "session closed with 1 job(s) queued",
    ]
    assert queue.count == 1


def test_an_in_process_simple_worker_resumes_a_retried_job_at_the_failed_task(
    rq_app: ModuleType, redis_url: str
) -> None:
    """The same job run by rq's SimpleWorker in this process (no fork): retry and progress."""
    from rq import SimpleWorker

    connection = redis.Redis.from_url(redis_url)
    app = App(background_backend=RQBackend(redis_url, retry=Retry(max=2)))

    @app.get("/")
    def handler(*, background):
        background.add_task(rq_app.record, 9, 0)
        background.add_task(rq_app.flaky, 9, 1, 1)
        return {}

    assert app.test_client().get("/").status_code == 200
    [job_id] = Queue("default", connection=connection).job_ids
    # NOTE: rq's worker installs its own SIGINT/SIGTERM handlers; give pytest its own back.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert SimpleWorker(["default"], connection=connection).work(burst=True)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert [(request, task) for request, task, _ in rows(rq_app)] == [(9, 0), (9, 1), (9, 1)]
    job = Queue("default", connection=connection).fetch_job(job_id)
    assert job is not None
    assert job.get_status() == "finished"
    assert job.return_value() == 1  # the second attempt ran only the task that had failed
    assert connection.exists(f"funapi_sync:done:{job_id}") == 0


def test_run_request_outside_a_worker_runs_every_task_and_raises_the_first_failure(
    rq_app: ModuleType,
) -> None:
    from funapi_sync.backends.rq import run_request

    tasks = [
        (rq_app.flaky, (4, 0, 5), {}, []),
        (rq_app.record, (4, 1), {}, [("rq_app:request_id", "req-4"), ("nowhere:var", 1)]),
    ]
    with pytest.raises(RuntimeError, match="attempt 1 of task 0 fails on purpose"):
        run_request("GET /x", tasks)  # type: ignore[arg-type]
    assert rows(rq_app, "SELECT request, task, request_id FROM runs ORDER BY rowid") == [
        (4, 0, "-"), (4, 1, "req-4")
    ]  # fmt: skip


def test_testing_mode_runs_the_tasks_inline_and_still_refuses_what_a_worker_cannot_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from werkzeug.test import Client

    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    app = App(background_backend=RQBackend(unreachable_url()))
    app.testing = True
    _ran.clear()

    @app.get("/")
    def handler(*, background):
        background.add_task(remember, "inline")
        return {}

    @app.get("/lambda")
    def with_lambda(*, background):
        background.add_task(lambda: None)
        return {}

    assert Client(app).get("/").json == {}  # the body read to its end: the tasks ran
    assert _ran == ["inline"]  # run here: Redis was never asked (it is not even there)
    assert app.background.counts == {"enqueued": 0, "fallback": 0, "not_enqueued": 0, "unknown": 0}
    assert caplog.records == []
    response = Client(app).get("/lambda")
    assert response.status_code == 500
    response.close()


# -- which context variables are carried -------------------------------------------------


def test_context_variables_made_per_request_do_not_grow_the_reference_cache() -> None:
    from funapi_sync.backends import portable

    made = [contextvars.ContextVar(f"per_request_{i}") for i in range(300)]
    assert [portable._var_ref(var) for var in made] == [None] * 300
    assert not any(var in portable._var_refs for var in made)
    assert len(getattr(portable, "_var_misses", made)) <= 256


def test_a_context_variable_is_found_once_its_module_is_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from funapi_sync.backends import portable

    var: contextvars.ContextVar[str] = contextvars.ContextVar("tenant")
    assert portable._var_ref(var) is None  # not module-level yet
    module = ModuleType("late_tenant_module")
    module.tenant = var  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "late_tenant_module", module)
    assert portable._var_ref(var) == "late_tenant_module:tenant"


# -- issue #22: retries under funapi-sync worker, a slow Redis, a killed worker -----------


def funapi_worker(
    module: ModuleType, *args: str, extra_env: dict[str, str] | None = None, **popen: object
) -> subprocess.Popen[str]:
    """Start ``funapi-sync worker rq_app:app ARGS`` (the documented command) in LIVE_APPS."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(LIVE_APPS)]),
        "RQ_APP_DB": module.DB,
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "funapi_sync", "worker", "rq_app:app", *args]
    return subprocess.Popen(command, cwd=LIVE_APPS, env=env, text=True, **popen)  # type: ignore[call-overload]


def test_a_retry_with_an_interval_runs_under_funapi_sync_worker_burst(
    rq_app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RQ_APP_RETRY", "3")
    monkeypatch.setenv("RQ_APP_INTERVAL", "1")
    module = importlib.reload(rq_app)
    assert module.app.test_client().get("/flaky/1").status_code == 200
    worker = funapi_worker(
        module, "--burst", extra_env=dict(os.environ), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    # Before: the first retry sat in RQ's scheduled registry and --burst exited 0.
    assert [(request, task) for request, task, _ in rows(module)] == [
        (1, 0), (1, 1), (1, 1), (1, 1), (1, 2)
    ]  # fmt: skip
    backend = module.app.background
    assert backend.drain(timeout=1) is True
    assert backend.stats()["scheduled"] == 0
    assert backend.stats()["completed"] == 1


def test_drain_waits_for_a_scheduled_retry_that_a_running_worker_runs_when_due(
    rq_app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RQ_APP_RETRY", "2")
    monkeypatch.setenv("RQ_APP_INTERVAL", "1")
    module = importlib.reload(rq_app)
    worker = funapi_worker(module, extra_env=dict(os.environ), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert module.app.test_client().get("/flaky/2").status_code == 200
        assert module.app.background.drain(timeout=60) is True
    finally:
        worker.terminate()
        worker.wait(30)
    assert [(request, task) for request, task, _ in rows(module)] == [
        (2, 0), (2, 1), (2, 1), (2, 1), (2, 2)
    ]  # fmt: skip


def _runs(module: ModuleType, request: int) -> list[tuple[int, int]]:
    return [(r, task) for r, task, _ in rows(module) if r == request]


@pytest.mark.parametrize("sleep", [1.5, 2.5])
def test_a_redis_slower_than_the_socket_timeout_makes_one_job_and_runs_each_task_once(
    rq_app: ModuleType, redis_url: str, sleep: float, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    app = App(background_backend=RQBackend(redis_url, timeout=1.0))

    @app.get("/<int:number>")
    def handler(input, *, background):
        for task in range(3):
            background.add_task(rq_app.record, input.path["number"], task)
        return {}

    client = app.test_client()
    assert client.get("/1").status_code == 200  # connected, rq's server-version read done
    slow = redis.Redis.from_url(redis_url)
    sleeper = threading.Thread(target=slow.execute_command, args=("DEBUG", "SLEEP", sleep))
    sleeper.start()
    time.sleep(0.1)  # NOTE: no event exists for "Redis is asleep"; DEBUG SLEEP blocks it all
    assert client.get("/2").status_code == 200
    sleeper.join(10)
    fallback_pool = pool_module.current_pool()  # the in-process fallback, if it was used
    assert fallback_pool is None or fallback_pool.drain(10)
    work(rq_app)
    # Before: redis-py resent the timed-out MULTI/EXEC: two jobs, each task run twice.
    assert _runs(rq_app, 2) == [(2, 0), (2, 1), (2, 2)]
    counts = app.background.counts
    assert counts["enqueued"] + counts["fallback"] == 6
    assert counts["unknown"] == counts["not_enqueued"] == 0
    assert Queue("default", connection=slow).count == 0


def test_with_fallback_error_a_task_logged_as_not_enqueued_never_runs_on_a_late_redis(
    rq_app: ModuleType, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="funapi_sync.background")
    app = App(background_backend=RQBackend(redis_url, timeout=1.0, fallback="error"))

    @app.get("/<int:number>")
    def handler(input, *, background):
        background.add_task(rq_app.record, input.path["number"], 0)
        return {}

    client = app.test_client()
    assert client.get("/1").status_code == 200
    slow = redis.Redis.from_url(redis_url)
    # Longer than the attempt and its reconnect (2 x 1.0 s): before, both timed out, the
    # task was logged "will not run", and the first attempt then landed and ran.
    sleeper = threading.Thread(target=slow.execute_command, args=("DEBUG", "SLEEP", 2.5))
    sleeper.start()
    time.sleep(0.1)
    assert client.get("/2").status_code == 200
    sleeper.join(10)
    work(rq_app)
    dropped = [r.getMessage() for r in caplog.records if "was not enqueued" in r.getMessage()]
    ran = _runs(rq_app, 2)
    # Before: logged "will not run", then run by the worker all the same.
    assert ran == ([] if dropped else [(2, 0)]), (dropped, ran)
    counts = app.background.counts
    assert counts["enqueued"] == 1 + len(ran)
    assert counts["not_enqueued"] == len(dropped)


def test_a_sigkilled_worker_s_job_is_run_by_the_next_worker_within_the_lease_bound(
    rq_app: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lease = 3.0
    monkeypatch.setenv("RQ_APP_LEASE", str(lease))
    module = importlib.reload(rq_app)
    assert module.app.test_client().get("/stall/4").status_code == 200
    logs = [open(tmp_path / f"worker{i}.log", "w") for i in (1, 2)]  # noqa: SIM115
    first = funapi_worker(module, extra_env=dict(os.environ), stdout=logs[0], stderr=logs[0])
    second = None
    try:
        deadline = time.monotonic() + 30
        while len(_runs(module, 4)) < 2:  # task 0 done, task 1's first attempt hanging
            assert time.monotonic() < deadline, (tmp_path / "worker1.log").read_text()
            time.sleep(0.05)
        horse = rows(module)[-1][2]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        deadline = time.monotonic() + 10
        while not _gone(horse):  # the work-horse dies with its worker: no orphan run
            assert time.monotonic() < deadline, "the work-horse outlived its worker"
            time.sleep(0.05)
        second = funapi_worker(module, extra_env=dict(os.environ), stdout=logs[1], stderr=logs[1])
        deadline = killed + 30
        while len(_runs(module, 4)) < 4:
            assert time.monotonic() < deadline, (tmp_path / "worker2.log").read_text()
            time.sleep(0.05)
        recovered = time.monotonic() - killed
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)
        for log in logs:
            log.close()
    # The bound documented for RQBackend(lease=...): lease * 5/3, plus the worker's start.
    print(f"lease {lease:.0f} s: job recovered {recovered:.1f} s after SIGKILL")
    assert recovered < lease * 5 / 3 + 5
    assert _runs(module, 4) == [(4, 0), (4, 1), (4, 1), (4, 2)]  # resumes at the task cut off
    assert "lost its worker mid-run" in (tmp_path / "worker2.log").read_text()


def test_funapi_sync_worker_with_redis_down_prints_one_line_and_exits_2(
    rq_app: ModuleType,
) -> None:
    url = unreachable_url()
    worker = funapi_worker(
        rq_app, extra_env={"RQ_APP_REDIS": url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 2
    assert err == f"funapi-sync: error: cannot reach Redis at {url}: Connection refused\n", err
    assert out == ""


def test_drain_and_stats_with_redis_down_raise_a_connection_error_naming_the_url() -> None:
    url = unreachable_url()
    backend = RQBackend(url.replace("redis://", "redis://user:secret@"))
    for call in (backend.stats, lambda: backend.drain(timeout=1)):
        with pytest.raises(ConnectionError) as info:
            call()
        assert str(info.value) == f"cannot reach Redis at {url}: Connection refused"
        assert isinstance(info.value, redis.exceptions.ConnectionError)


# -- persist="before_response" ------------------------------------------------------------


def test_before_response_the_job_is_in_redis_when_the_status_line_is_sent(redis_url: str) -> None:
    backend = RQBackend(redis_url, persist="before_response")
    app = App(background_backend=backend)
    queued_at_status: list[int] = []

    @app.post("/", status_code=202)
    def handler(*, background):
        background.add_task(module_level, 1)
        background.add_task(module_level, 2)
        return {"accepted": True}

    inner = app.wsgi_app

    def counting(environ, start_response):
        def start(status, headers, exc_info=None):
            queued_at_status.append(backend.queue.count)
            return start_response(status, headers, exc_info)

        return inner(environ, start)

    app.wsgi_app = counting
    assert app.test_client().post("/").status_code == 202
    assert queued_at_status == [1]  # one job for the request, before the 202 left
    assert backend.queue.count == 1  # and close() enqueued nothing more
    assert backend.counts["enqueued"] == 2


def test_before_response_with_redis_down_answers_503_and_names_each_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    app = App(background_backend=RQBackend(unreachable_url(), persist="before_response"))
    _ran.clear()

    @app.post("/", status_code=202)
    def handler(*, background):
        background.add_task(remember, "never")
        return {"accepted": True}

    response = app.test_client().post("/")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert _ran == []  # no fallback: a 202 must mean "stored", a 503 "not run here"
    [line] = [r.getMessage() for r in caplog.records if "was not stored" in r.getMessage()]
    assert line.startswith("background task test_rq.remember of POST / was not stored")


def test_the_route_option_asks_one_route_to_enqueue_before_its_response(redis_url: str) -> None:
    backend = RQBackend(redis_url)  # after_response by default
    app = App(background_backend=backend)

    @app.post("/early", persist="before_response")
    def early(*, background):
        background.add_task(module_level, 1)
        return {}

    assert backend.persist == "after_response"
    assert app.test_client().post("/early").status_code == 200
    assert backend.queue.count == 1


def test_a_persist_value_that_is_not_one_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match="RQBackend\\(persist='later'\\): use 'after_response'"):
        RQBackend(unreachable_url(), persist="later")  # type: ignore[arg-type]
