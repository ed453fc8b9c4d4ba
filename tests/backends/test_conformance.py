"""One contract, every backend it applies to (SPEC §11): acceptance, order, retries,
refusals, status, persist and idempotency.

Each backend is a :class:`Kind` in ``KINDS``. RQ needs a redis-server, a process, so its
Kind lives in tests/server/backends/test_conformance_rq.py, which imports these tests and
runs them with it. A test that needs what a backend does not offer (``Kind.lacks``:
status, persist, the SQLite store, JSON refusals) is skipped for it, by name, with the reason.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from funapi_sync import App, current_task
from funapi_sync.backends import InlineBackend, Retry, ThreadBackend
from funapi_sync.backends._sqlite_store import NewRow
from funapi_sync.backends.sqlite import SQLiteBackend

# -- module-level tasks (what a durable backend can import by name) ------------------

_lock = threading.Lock()
calls: list[Any] = []
seen: list[Any] = []
failures_left: dict[str, int] = {}


def record(*args: Any, **kwargs: Any) -> str:
    with _lock:
        calls.append([*args, *sorted(kwargs.items())] if kwargs else list(args))
    return "ok"


def flaky(key: str) -> None:
    """Fail while ``failures_left[key]`` is positive, then succeed."""
    with _lock:
        calls.append(["flaky", key])
        left = failures_left.get(key, 0)
        failures_left[key] = left - 1
    if left > 0:
        raise RuntimeError(f"flaky {key} failed")


def note_current() -> None:
    task = current_task()
    with _lock:
        seen.append(None if task is None else (task.id, task.attempt))


class Tasks:
    @classmethod
    def class_task(cls, value: int) -> None:
        record("class", value)

    def method(self) -> None:  # a method of an instance: JSON holds no object
        pass


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    seen.clear()
    failures_left.clear()


# -- the backends --------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    make: Callable[[Path], Any]
    durable: bool = False
    #: What this backend does not offer, each with the reason a test needing it is skipped.
    lacks: Mapping[str, str] = field(default_factory=dict)
    #: How many tasks the backend holds (stored, queued), whatever their state.
    count: Callable[[Any], int] = lambda backend: len(backend.tasks())

    def __str__(self) -> str:
        return self.name


KINDS = [
    Kind("thread", lambda tmp: ThreadBackend(own_pool=True)),
    Kind("inline", lambda tmp: InlineBackend()),
    Kind("sqlite", lambda tmp: SQLiteBackend(str(tmp / "tasks.sqlite3"), lease=5), durable=True),
]


@pytest.fixture(params=KINDS, ids=str)
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def backend(kind: Kind, tmp_path: Path) -> Iterator[Any]:
    made = kind.make(tmp_path)
    yield made
    if isinstance(made, SQLiteBackend):
        made.close()


def durable_only(kind: Kind) -> None:
    if not kind.durable:
        pytest.skip(f"the {kind} backend keeps nothing across processes")


def needs(kind: Kind, what: str) -> None:
    """Skip, saying why, a test that needs ``what`` where ``kind`` does not offer it."""
    if what in kind.lacks:
        pytest.skip(f"the {kind} backend: {kind.lacks[what]}")


def app_with(backend: Any, tasks: Callable[[Any], None], **route: Any) -> App:
    app = App(background_backend=backend)

    @app.post("/", **route)
    def handler(*, background: Any) -> dict[str, bool]:
        tasks(background)
        return {"ok": True}

    return app


def post(app: App) -> Any:
    return app.test_client().post("/")


# -- acceptance and order ------------------------------------------------------------


def test_every_accepted_task_runs_and_a_request_keeps_its_order(backend: Any) -> None:
    def tasks(background: Any) -> None:
        for index in range(4):
            background.add_task(record, "req", index)

    app = app_with(backend, tasks)
    for _ in range(5):
        assert post(app).status_code == 200
    assert backend.drain(timeout=20) is True
    assert len(calls) == 20
    # Requests may interleave; each request's own four run in order: 0,1,2,3 repeated
    # as a subsequence holds only if every index i is preceded by as many i-1.
    counts = [0, 0, 0, 0]
    for _req, index in calls:
        counts[index] += 1
        assert index == 0 or counts[index] <= counts[index - 1], calls


def test_keyword_arguments_and_a_classmethod_arrive(backend: Any) -> None:
    app = app_with(
        backend,
        lambda bg: (bg.add_task(record, "k", subject="hi"), bg.add_task(Tasks.class_task, 7)),
    )
    assert post(app).status_code == 200
    assert backend.drain(timeout=20) is True
    assert calls == [["k", ("subject", "hi")], ["class", 7]]


# -- refusals ------------------------------------------------------------------------


def nested_factory() -> Callable[[], None]:
    def nested() -> None:
        pass

    return nested


@pytest.mark.parametrize(
    ("make_task", "words"),
    [
        (lambda: ((lambda: None), ()), "a lambda has no importable name"),
        (lambda: (nested_factory(), ()), "defined inside another function (a closure)"),
        (lambda: (Tasks().method, ()), "a method of an object cannot be stored as JSON"),
        (lambda: (record, (object(),)), "its arguments cannot be stored as JSON"),
        (lambda: (record, (float("nan"),)), "its arguments cannot be stored as JSON"),
    ],
    ids=["lambda", "closure", "bound-method", "object-argument", "nan"],
)
def test_what_cannot_be_stored_is_refused_at_add_task(
    kind: Kind, backend: Any, make_task: Callable[[], Any], words: str
) -> None:
    durable_only(kind)
    if words.startswith(("a method of an object", "its arguments")):
        needs(kind, "json")
    fn, args = make_task()
    refused: list[str] = []

    def tasks(background: Any) -> None:
        with pytest.raises(TypeError) as info:
            background.add_task(fn, *args)
        refused.append(str(info.value))

    assert post(app_with(backend, tasks)).status_code == 200
    assert len(refused) == 1
    assert words in refused[0]
    assert "add_task(" in refused[0]


def test_a_main_function_is_refused(kind: Kind, backend: Any) -> None:
    durable_only(kind)

    def fake() -> None:
        pass

    fake.__module__, fake.__qualname__ = "__main__", "fake"
    with pytest.raises(TypeError, match="defined in __main__, which a worker cannot import"):
        backend.check(fake, (), {})


def test_the_in_process_backends_refuse_nothing(kind: Kind, backend: Any) -> None:
    if kind.durable:
        pytest.skip("a durable backend refuses what it cannot store")
    assert backend.check is None


# -- retries -------------------------------------------------------------------------


def test_a_retry_resumes_at_the_task_that_failed(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "t.sqlite3"), retry=Retry(max=2, interval=0))
    failures_left["x"] = 2
    app = app_with(
        backend,
        lambda bg: (
            bg.add_task(record, "first"),
            bg.add_task(flaky, "x"),
            bg.add_task(record, "last"),
        ),
    )
    try:
        assert post(app).status_code == 200
        assert backend.drain(timeout=20) is True
        # "first" ran once; the failing task three times (two retries); then "last".
        assert calls == [["first"], ["flaky", "x"], ["flaky", "x"], ["flaky", "x"], ["last"]]
        statuses = {t.name.rsplit(".", 1)[-1]: t for t in backend.tasks()}
        assert statuses["flaky"].status == "SUCCESSFUL"
        assert statuses["flaky"].attempts == 3
    finally:
        backend.close()


def test_a_task_failing_every_retry_ends_failed_and_the_next_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = SQLiteBackend(str(tmp_path / "t.sqlite3"), retry=1)
    failures_left["y"] = 99
    app = app_with(backend, lambda bg: (bg.add_task(flaky, "y"), bg.add_task(record, "after")))
    try:
        with caplog.at_level(logging.WARNING, logger="funapi_sync.background"):
            assert post(app).status_code == 200
            assert backend.drain(timeout=20) is True
        assert calls == [["flaky", "y"], ["flaky", "y"], ["after"]]
        failed = backend.tasks(status="FAILED")
        assert [(t.attempts, t.error) for t in failed] == [(2, "RuntimeError: flaky y failed")]
        assert "retry 1 of 1" in caplog.text
    finally:
        backend.close()


def test_a_retry_with_an_interval_waits_until_it_is_due(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "t.sqlite3"), retry=Retry(max=1, interval=[3600]))
    failures_left["z"] = 1
    app = app_with(backend, lambda bg: (bg.add_task(flaky, "z"), bg.add_task(record, "later")))
    try:
        assert post(app).status_code == 200
        assert backend.drain(timeout=1) is False  # the retry is READY, due in an hour
        assert calls == [["flaky", "z"]]  # and the request's next task waits behind it
        ready = backend.tasks(status="READY")
        assert len(ready) == 2
        assert ready[-1].error == "RuntimeError: flaky z failed"
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("retry", "words"),
    [(Retry, "pass funapi_sync.backends.Retry"), ("3", "pass funapi_sync.backends.Retry")],
)
def test_a_bad_retry_is_refused(tmp_path: Path, retry: Any, words: str) -> None:
    with pytest.raises(TypeError, match=words):
        SQLiteBackend(str(tmp_path / "t.sqlite3"), retry=retry)


def test_retry_intervals_use_rq_names() -> None:
    retry = Retry(max=3, interval=[10, 30])
    assert [retry.delay(n) for n in (1, 2, 3)] == [10, 30, 30]
    assert Retry(max=2, interval=5).delay(2) == 5
    with pytest.raises(ValueError, match="max is the number of retries"):
        Retry(max=0)


# -- status and current_task ---------------------------------------------------------


def test_status_answers_for_a_stored_task_with_its_result(kind: Kind, backend: Any) -> None:
    durable_only(kind)
    needs(kind, "status")
    app = app_with(backend, lambda bg: bg.add_task(record, "s"))
    assert post(app).status_code == 200
    assert backend.drain(timeout=20) is True
    (task,) = backend.tasks()
    assert task.status == "SUCCESSFUL"
    assert task.name == "test_conformance.record" or task.name.endswith(".record")
    assert task.result == "ok"
    assert task.error is None
    assert task.attempts == 1
    assert task.enqueued_at <= task.started_at <= task.finished_at
    assert backend.status(task.id) == task
    assert backend.status("no-such-task") is None
    assert backend.tasks(status="FAILED") == []


def test_the_id_add_task_returned_is_the_one_status_answers_for(kind: Kind, backend: Any) -> None:
    # 202-then-poll: the id the handler can send the client before the response is the
    # key every backend keeps its status under.
    needs(kind, "status")
    ids: list[str] = []
    app = app_with(backend, lambda bg: ids.append(bg.add_task(record, "h").id))
    assert post(app).status_code == 200
    assert backend.drain(timeout=20) is True
    status = backend.status(ids[0])
    assert status is not None
    assert (status.id, status.status, status.attempts) == (ids[0], "SUCCESSFUL", 1)
    assert status.result == ("ok" if kind.durable else None)


def test_current_task_is_the_running_task_and_none_outside(kind: Kind, backend: Any) -> None:
    durable_only(kind)
    needs(kind, "status")
    assert current_task() is None
    app = app_with(backend, lambda bg: bg.add_task(note_current))
    assert post(app).status_code == 200
    assert backend.drain(timeout=20) is True
    (task,) = backend.tasks()
    assert seen == [(task.id, 1)]


# -- persist -------------------------------------------------------------------------


def stored_at_status_line(app: App, path: str, count: Callable[[], int]) -> int:
    """POST ``path``; how much the backend held (``count()``) when the status line was sent."""
    counted: list[int] = []
    inner = app.wsgi_app

    def counting(environ: Any, start_response: Any) -> Any:
        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            counted.append(count())
            return start_response(status, headers, exc_info)

        return inner(environ, start)

    app.wsgi_app = counting
    try:
        assert app.test_client().post(path).status_code == 200
    finally:
        app.wsgi_app = inner
    return counted[0]


def test_before_response_stores_the_tasks_before_the_status_line(kind: Kind, backend: Any) -> None:
    durable_only(kind)
    needs(kind, "persist")
    app = app_with(backend, lambda bg: bg.add_task(record, "p"), persist="before_response")
    assert stored_at_status_line(app, "/", lambda: kind.count(backend)) == 1
    assert backend.drain(timeout=20) is True
    assert calls == [["p"]]


def test_after_response_stores_nothing_before_close(kind: Kind, backend: Any) -> None:
    durable_only(kind)
    app = app_with(backend, lambda bg: bg.add_task(record, "a"))
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": __import__("io").BytesIO(),
    }
    body = app(environ, lambda status, headers, exc_info=None: None)
    assert kind.count(backend) == 0
    body.close()  # type: ignore[attr-defined]
    assert kind.count(backend) == 1
    assert backend.drain(timeout=20) is True


def test_a_store_that_fails_before_response_answers_503_and_names_each_task(
    kind: Kind, backend: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    durable_only(kind)
    needs(kind, "store")  # RQ's: test_rq.py::test_before_response_with_redis_down_answers_503...

    def broken(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(backend.store, "insert", broken)
    app = app_with(
        backend,
        lambda bg: (bg.add_task(record, 1), bg.add_task(record, 2)),
        persist="before_response",
    )
    with caplog.at_level(logging.ERROR, logger="funapi_sync.background"):
        response = post(app)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "locked" not in response.get_data(as_text=True)  # never str(exc) to a client
    lines = [r.getMessage() for r in caplog.records if "was not stored" in r.getMessage()]
    assert len(lines) == 2
    assert all("record" in line and "POST /" in line for line in lines)
    assert calls == []


def test_the_route_option_overrides_the_backends_persist(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "t.sqlite3"), persist="before_response")
    try:
        app = App(background_backend=backend)

        @app.post("/late", persist="after_response")
        def late(*, background: Any) -> dict[str, bool]:
            background.add_task(record, 1)
            return {}

        @app.post("/early")
        def early(*, background: Any) -> dict[str, bool]:
            background.add_task(record, 2)
            return {}

        backend.store.connection()  # the file exists before the first request here
        assert stored_at_status_line(app, "/late", lambda: len(backend.tasks())) == 0
        assert stored_at_status_line(app, "/early", lambda: len(backend.tasks())) == 2
        assert backend.drain(timeout=20) is True
    finally:
        backend.close()


def test_before_response_on_an_in_process_backend_is_refused_at_registration(
    kind: Kind, backend: Any
) -> None:
    if kind.durable:
        pytest.skip("a durable backend stores before the response")
    app = App(background_backend=backend)
    with pytest.raises(ValueError, match="persist='before_response' needs a durable background"):

        @app.post("/", persist="before_response")
        def handler() -> dict[str, bool]:
            return {}


def test_a_persist_value_that_is_not_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use 'after_response' or 'before_response'"):
        SQLiteBackend(str(tmp_path / "t.sqlite3"), persist="never")  # type: ignore[arg-type]
    app = App()
    with pytest.raises(ValueError, match=r"persist='later'; use 'after_response'"):

        @app.post("/", persist="later")
        def handler() -> dict[str, bool]:
            return {}


# -- idempotency ---------------------------------------------------------------------


def test_storing_the_same_ids_twice_stores_them_once(kind: Kind, backend: Any) -> None:
    durable_only(kind)
    needs(kind, "store")
    rows = [NewRow("id-1", "test_conformance:record", '{"args": [1], "kwargs": {}}')]
    backend.store.insert("batch-1", "POST /", rows)
    backend.store.insert("batch-1", "POST /", rows)  # a retry after an ambiguous "locked"
    count = backend.store.connection().execute("SELECT count(*) FROM funapi_tasks").fetchone()
    assert count == (1,)
