"""Background tasks through the test client: what add_task accepts, order, failures, context."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import threading
import time
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from funapi_sync import App, BackgroundTasks, HTTPException
from funapi_sync.backends import ThreadBackend

ROOT = Path(__file__).resolve().parents[1]

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def record_to(calls: list[object]):
    def record(*args: object, **kwargs: object) -> None:
        calls.append((args, kwargs))

    return record


def call_wsgi(app: App, path: str, method: str = "GET") -> bytes:
    """Drive the app's WSGI callable as a server would: read the body, then close()."""
    environ = EnvironBuilder(path=path, method=method).get_environ()
    statuses: list[str] = []
    iterable = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        return b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()


# -- what add_task accepts ------------------------------------------------------------


def test_tasks_run_in_the_order_added(app, client):
    calls: list[int] = []

    @app.post("/signup")
    def signup(*, background):
        for number in range(5):
            background.add_task(calls.append, number)
        return {"ok": True}, 201

    response = client.post("/signup")
    assert response.status_code == 201
    assert calls == [0, 1, 2, 3, 4]


def test_add_task_accepts_every_kind_of_callable(app, client):
    calls: list[object] = []
    record = record_to(calls)

    class Mailer:
        def send(self, to: str, subject: str = "Hi") -> None:
            calls.append(("send", to, subject))

    class Tracker:
        def __call__(self, event: str, *, user_id: int) -> None:
            calls.append(("track", event, user_id))

    mailer = Mailer()

    @app.get("/all")
    def all_kinds(*, background):
        background.add_task(record, "positional", 1)
        background.add_task(lambda email: calls.append(("lambda", email)), "a@example.com")
        background.add_task(mailer.send, "b@example.com", subject="Welcome!")
        background.add_task(functools.partial(record, "partial"), 2, flag=True)
        background.add_task(Tracker(), "signup", user_id=7)
        background.add_task(record, to="c@example.com", subject="kw only")
        background.add_task(record)
        return {}

    assert client.get("/all").status_code == 200
    assert calls == [
        (("positional", 1), {}),
        ("lambda", "a@example.com"),
        ("send", "b@example.com", "Welcome!"),
        (("partial", 2), {"flag": True}),
        ("track", "signup", 7),
        ((), {"to": "c@example.com", "subject": "kw only"}),
        ((), {}),
    ]


def test_add_task_rejects_a_non_callable_with_a_fix():
    tasks = BackgroundTasks()
    with pytest.raises(TypeError) as info:
        tasks.add_task("send_email", "a@example.com")  # type: ignore[arg-type]
    assert str(info.value) == (
        "add_task() needs a callable as its first argument, got str 'send_email';"
        " pass the function itself, e.g. add_task(send_email, address)"
    )
    with pytest.raises(TypeError, match="needs a callable"):
        tasks.add_task_always(None)  # type: ignore[arg-type]
    assert len(tasks) == 0


def test_non_callable_in_a_handler_is_a_logged_500(app, client, caplog_funapi):
    ran: list[str] = []

    def send_email(address: str) -> None:
        ran.append(address)

    @app.post("/signup")
    def signup(*, background):
        background.add_task(send_email, "first@example.com")
        background.add_task(send_email("oops@example.com"), "x")  # called, not passed
        return {}

    response = client.post("/signup")
    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    # The handler raised, so the task added before the mistake is dropped too.
    assert ran == ["oops@example.com"]
    errors = [r for r in caplog_funapi.records if r.name == "funapi_sync" and r.exc_info]
    assert len(errors) == 1
    assert errors[0].levelno == logging.ERROR
    assert isinstance(errors[0].exc_info[1], TypeError)
    assert "got NoneType None" in str(errors[0].exc_info[1])


# -- failures -------------------------------------------------------------------------


def test_add_task_always_runs_when_the_handler_raised_and_add_task_does_not(app, client):
    calls: list[str] = []

    @app.post("/login")
    def login(*, background):
        background.add_task(calls.append, "welcome")
        background.add_task_always(calls.append, "audit")
        raise HTTPException(401, "bad password")

    @app.post("/crash")
    def crash(*, background):
        background.add_task_always(calls.append, "audit crash")
        background.add_task(calls.append, "never")
        raise RuntimeError("boom")

    response = client.post("/login")
    assert response.status_code == 401
    assert response.json == {"detail": "bad password"}
    assert calls == ["audit"]
    assert client.post("/crash").status_code == 500
    assert calls == ["audit", "audit crash"]


def test_add_task_always_runs_in_order_with_the_others_on_success(app, client):
    calls: list[str] = []

    @app.get("/ok")
    def ok(*, background):
        background.add_task(calls.append, "first")
        background.add_task_always(calls.append, "second")
        background.add_task(calls.append, "third")
        return {}

    client.get("/ok")
    assert calls == ["first", "second", "third"]


def test_failing_task_is_logged_at_warning_and_the_next_still_runs(app, client, caplog):
    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    calls: list[str] = []

    def charge_card() -> None:
        raise ConnectionError("payment gateway down")

    @app.post("/orders/<int:order_id>")
    def order(input, *, background):
        background.add_task(calls.append, "before")
        background.add_task(charge_card)
        background.add_task(calls.append, "after")
        return {"id": input.path["order_id"]}

    response = client.post("/orders/7")
    assert response.status_code == 200
    assert calls == ["before", "after"]
    [record] = [r for r in caplog.records if r.name == "funapi_sync.background"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "charge_card" in message
    assert "POST /orders/7" in message
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionError)
    assert "payment gateway down" in caplog.text  # the traceback is in the log
    # The app keeps serving.
    assert client.post("/orders/8").json == {"id": 8}


# -- context --------------------------------------------------------------------------


def test_each_task_runs_in_a_copy_of_the_context_taken_at_add_task(app, client):
    seen: list[str] = []

    @app.get("/ctx")
    def ctx(*, background):
        request_id.set("req-1")
        background.add_task(lambda: seen.append(request_id.get()))
        request_id.set("req-2")
        background.add_task(lambda: seen.append(request_id.get()))
        # A task changing the variable does not leak into the next task's copy.
        background.add_task(request_id.set, "changed by a task")
        background.add_task(lambda: seen.append(request_id.get()))
        return {}

    client.get("/ctx")
    assert seen == ["req-1", "req-2", "req-2"]


# -- every kind of response still runs its tasks --------------------------------------


def test_tasks_run_when_the_handler_returns_a_werkzeug_response(app, client):
    calls: list[str] = []

    @app.get("/file")
    def download(*, background):
        response = Response(b"raw bytes", mimetype="application/octet-stream")
        response.call_on_close(lambda: calls.append("response closed"))
        background.add_task(calls.append, "task")
        return response

    response = client.get("/file")
    assert response.data == b"raw bytes"
    assert calls == ["response closed", "task"]


def test_tasks_run_for_head_requests_and_the_iterable_is_closed(app):
    # NOTE: no LintMiddleware here: it counts a HEAD response's Content-Length (that of the
    # GET body, as HTTP wants) against the bytes sent and warns.
    client = app.test_client()
    calls: list[str] = []

    @app.get("/report")
    def report(*, background):
        response = Response(b"a long report")
        response.call_on_close(lambda: calls.append("closed"))
        background.add_task(calls.append, "task")
        return response

    @app.get("/json")
    def json_payload(*, background):
        background.add_task(calls.append, "json task")
        return {"big": "payload"}

    response = client.head("/report")
    assert response.status_code == 200
    assert response.data == b""
    assert calls == ["closed", "task"]
    response = client.head("/json")
    assert response.data == b""
    assert calls == ["closed", "task", "json task"]


def test_tasks_run_for_204_responses_and_the_iterable_is_closed(app):
    # NOTE: no LintMiddleware here: it wants "Content-Length: 0" on a 204, which werkzeug's
    # own Response(status=204) leaves out.
    client = app.test_client()
    calls: list[str] = []

    @app.delete("/items/<int:item_id>", status_code=204)
    def delete(input, *, background):
        background.add_task(calls.append, f"deleted {input.path['item_id']}")
        return None

    @app.delete("/raw/<int:item_id>")
    def delete_raw(input, *, background):
        response = Response(status=204)
        response.call_on_close(lambda: calls.append("closed"))
        background.add_task(calls.append, f"raw {input.path['item_id']}")
        return response

    response = client.delete("/items/3")
    assert response.status_code == 204
    assert response.data == b""
    assert calls == ["deleted 3"]
    assert client.delete("/raw/4").status_code == 204
    assert calls == ["deleted 3", "closed", "raw 4"]


def submitted_so_far(app: App) -> int:
    """Every task the pool has been handed in this process, whatever its state."""
    stats = app.background.stats()
    return stats["queued"] + stats["running"] + stats["completed"] + stats["failed"]


def test_tasks_start_only_after_the_body_was_fully_produced(app, client):
    events: list[str] = []

    @app.get("/stream")
    def stream(*, background):
        def body():
            for number in range(3):
                # NOTE: drain() waits for anything already handed to the pool, so a task
                # submitted before close() would have run (and be listed) by now, with
                # no timing luck involved.
                assert app.background.drain(timeout=5)
                events.append(f"chunk {number} (submitted {submitted_so_far(app) - before})")
                yield f"{number}\n".encode()
            assert app.background.drain(timeout=5)
            events.append(f"body done (submitted {submitted_so_far(app) - before})")

        background.add_task(events.append, "task started")
        return Response(body(), mimetype="text/plain")

    before = submitted_so_far(app)
    response = client.get("/stream")
    assert response.data == b"0\n1\n2\n"
    assert events == [
        "chunk 0 (submitted 0)",
        "chunk 1 (submitted 0)",
        "chunk 2 (submitted 0)",
        "body done (submitted 0)",
        "task started",
    ]
    assert submitted_so_far(app) - before == 1


def test_nothing_is_queued_or_run_before_close_is_called(app):
    started = threading.Event()

    @app.get("/")
    def index(*, background):
        background.add_task(started.set)
        return {"ok": True}

    before = submitted_so_far(app)
    environ = EnvironBuilder(path="/").get_environ()
    iterable = app(environ, lambda status, headers, exc_info=None: None)
    assert json.loads(b"".join(iterable)) == {"ok": True}
    # Whatever had been handed to the pool has finished once drain() returns: had the
    # task been submitted before close(), it would have run by now.
    assert app.background.drain(timeout=5)
    assert not started.is_set()
    assert submitted_so_far(app) == before
    iterable.close()
    assert started.wait(5)
    assert app.background.drain(timeout=5)
    assert submitted_so_far(app) == before + 1


# -- dependencies ---------------------------------------------------------------------


def test_dependency_cleanup_runs_after_the_tasks_that_use_it(app, client):
    events: list[str] = []

    def connection():
        events.append("open")
        yield "conn"
        events.append("close")

    app.register("db", connection, cleanup="after_tasks")

    @app.post("/save", depends=["db"])
    def save(*, db, background):
        background.add_task(lambda: events.append(f"task uses {db}"))
        return {}

    client.post("/save")
    assert events == ["open", "task uses conn", "close"]


def test_a_dependency_taking_background_shares_the_request_task_list(app, client):
    calls: list[str] = []

    def audit(req, background):
        background.add_task(calls.append, f"audit {req.path}")
        return "audited"

    app.register("audit", audit)

    @app.get("/secret", depends=["audit"])
    def secret(*, audit, background):
        background.add_task(calls.append, "handler task")
        return {"audit": audit}

    assert client.get("/secret").json == {"audit": "audited"}
    assert calls == ["audit /secret", "handler task"]


# -- the test client, stats and drain -------------------------------------------------


def test_test_client_returns_only_after_the_request_tasks_ran(app, client):
    done: list[str] = []

    def slow_email() -> None:
        time.sleep(0.2)  # the task's own duration, not synchronisation
        done.append("sent")

    @app.post("/signup")
    def signup(*, background):
        background.add_task(slow_email)
        return {}, 201

    started = time.monotonic()
    client.post("/signup")
    assert done == ["sent"]
    assert time.monotonic() - started >= 0.2


def test_stats_count_queued_running_completed_and_failed_and_drain_waits(app):
    release = threading.Event()
    running = threading.Event()

    def held() -> None:
        running.set()
        assert release.wait(10)

    @app.get("/work")
    def work(*, background):
        background.add_task(held)
        background.add_task(lambda: None)
        background.add_task(lambda: 1 / 0)
        return {}

    before = app.background.stats()
    call_wsgi(app, "/work")
    assert running.wait(5)
    during = app.background.stats()
    assert during["running"] == before["running"] + 1
    assert during["queued"] == before["queued"] + 2
    assert app.background.drain(timeout=0.05) is False
    release.set()
    assert app.background.drain(timeout=10) is True
    after = app.background.stats()
    assert after["queued"] == 0
    assert after["running"] == 0
    assert after["completed"] == before["completed"] + 2
    assert after["failed"] == before["failed"] + 1


def test_drain_with_nothing_submitted_returns_true(app):
    assert app.background.drain(timeout=1) is True
    assert set(app.background.stats()) >= {"queued", "running", "completed", "failed"}


# -- pool settings (an app's own pool, or the process's pool made afresh) ---------------


def test_a_full_queue_blocks_the_submitting_close_and_loses_nothing():
    app = App(
        background_workers=1,
        background_queue_size=3,  # tasks: /hold holds 3 of the 4, /second the last
        background_backend=ThreadBackend(own_pool=True),
    )
    release = threading.Event()
    first_running = threading.Event()
    done: list[str] = []
    lock = threading.Lock()

    def count(name):
        with lock:
            done.append(name)

    @app.get("/hold")
    def hold(*, background):
        background.add_task(first_running.set)
        background.add_task(release.wait, 10)
        background.add_task(count, "hold")
        return {}

    @app.get("/<name>")
    def other(input, *, background):
        background.add_task(count, input.path["name"])
        return {}

    def request(path, returned):
        call_wsgi(app, path)
        returned.set()

    def in_thread(path):
        returned = threading.Event()
        threading.Thread(target=request, args=(path, returned), daemon=True).start()
        return returned

    try:
        assert in_thread("/hold").wait(5)
        assert first_running.wait(5)  # the one worker is busy with /hold
        assert in_thread("/second").wait(5)  # fits in the queue
        third = in_thread("/third")
        assert not third.wait(0.5), "close() returned although the queue was full"
        assert app.background.stats()["completed"] == 1
    finally:
        release.set()
    assert third.wait(5), "close() still blocked after a slot freed"
    assert app.background.drain(10)
    assert sorted(done) == ["hold", "second", "third"], done


def test_a_slow_task_is_logged_with_its_name_and_request(caplog):
    app = App(background_slow_warning=0.05, background_backend=ThreadBackend(own_pool=True))
    stop = threading.Event()

    def crunch_numbers():
        stop.wait(0.2)

    def quick():
        pass

    @app.post("/reports")
    def reports(*, background):
        background.add_task(crunch_numbers)
        background.add_task(quick)
        return {}

    app.test_client().post("/reports")
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "funapi_sync.background" and "slow" in r.getMessage()
    ]
    assert len(lines) == 1, lines
    assert all(r.levelno == logging.WARNING for r in caplog.records if "slow" in r.getMessage())
    assert "crunch_numbers" in lines[0]
    assert "POST /reports" in lines[0]


@pytest.fixture
def fresh_process_pool(monkeypatch):
    """The process's shared pool as a fresh process has it: none yet (shut down after)."""
    from funapi_sync import pool as pool_module

    monkeypatch.setattr(pool_module, "_pool", None)
    yield
    made = pool_module._pool
    if made is not None:
        assert made.shutdown(timeout=10)


def pool_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "funapi_sync.background" and r.levelno == logging.WARNING
    ]


def test_apps_in_a_process_share_one_pool_and_other_settings_get_a_warning(
    fresh_process_pool, caplog
):
    shop, admin = App(title="shop"), App(title="admin")
    for app in (shop, admin):

        @app.get("/")
        def index(*, background):
            background.add_task(lambda: None)
            return {}

        app.test_client().get("/")
    assert shop.background.stats() == admin.background.stats()
    assert shop.background.stats()["completed"] == 2, shop.background.stats()
    assert pool_warnings(caplog) == []
    other = App(title="other", background_workers=2)
    assert other.background.stats()["completed"] == 2
    warnings = pool_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "one pool per process" in warnings[0]
    assert "workers=2" in warnings[0]


def test_tasks_are_dropped_when_a_dependency_raised_but_always_tasks_run(app, client):
    calls: list[str] = []

    def audit(background):
        background.add_task(calls.append, "dropped")
        background.add_task_always(calls.append, "audited")
        return "audit"

    def current_user():
        raise HTTPException(403, "Forbidden")

    app.register("audit", audit)
    app.register("user", current_user)

    @app.get("/admin", depends=["audit", "user"])
    def admin(*, audit, user, background):
        background.add_task(calls.append, "handler task")
        return {}

    response = client.get("/admin")
    assert response.status_code == 403
    assert calls == ["audited"]


def test_tasks_are_dropped_even_when_an_exception_handler_answered(app, client):
    calls: list[str] = []

    class Conflict(Exception):
        pass

    @app.exception_handler(Conflict)
    def conflict(req, exc):
        return {"detail": "already exists"}, 409

    @app.post("/users")
    def create(*, background):
        background.add_task(calls.append, "welcome")
        background.add_task_always(calls.append, "attempt recorded")
        raise Conflict()

    response = client.post("/users")
    assert (response.status_code, response.json) == (409, {"detail": "already exists"})
    assert calls == ["attempt recorded"]


def test_context_var_set_by_a_handler_does_not_leak_into_the_next_request(app):
    request_id = contextvars.ContextVar("request_id_leak", default=None)
    seen_by_tasks = []

    @app.get("/set")
    def set_id(*, background):
        before = request_id.get()
        request_id.set("abc")
        background.add_task(lambda: seen_by_tasks.append(request_id.get()))
        return {"before": before}

    client = app.test_client()
    assert client.get("/set").json == {"before": None}
    assert client.get("/set").json == {"before": None}
    assert seen_by_tasks == ["abc", "abc"]


# -- async tasks are refused at add_task ----------------------------------------------


async def send_async_email(address: str) -> None:  # pragma: no cover - never run
    pass


async def stream_async_events():  # pragma: no cover - never run
    yield "event"


class AsyncNotifier:
    async def __call__(self, event: str) -> None:  # pragma: no cover - never run
        pass

    async def notify(self, event: str) -> None:  # pragma: no cover - never run
        pass


@pytest.mark.parametrize(
    ("task", "name"),
    [
        (send_async_email, "test_background.send_async_email"),
        (functools.partial(send_async_email, "a@example.com"), "partial("),
        (
            functools.partial(functools.partial(send_async_email), "a"),
            "partial(test_background.send_async_email)",
        ),
        (AsyncNotifier(), "test_background.AsyncNotifier"),
        (AsyncNotifier().notify, "test_background.AsyncNotifier.notify"),
        (stream_async_events, "test_background.stream_async_events"),
    ],
    ids=["coroutine function", "partial", "nested partial", "async __call__", "bound", "asyncgen"],
)
def test_add_task_refuses_every_async_callable_with_the_fix(task, name):
    tasks = BackgroundTasks()
    for add in (tasks.add_task, tasks.add_task_always):
        with pytest.raises(TypeError) as info:
            add(task)
        message = str(info.value)
        assert message.startswith(f"add_task() got {name}")
        assert "an async callable; background tasks run on the pool's threads" in message
        assert "would never be awaited" in message
        assert message.endswith(
            "Make the task a plain def (with a sync client, e.g. httpx.Client rather than"
            " AsyncClient), or add a plain def that calls asyncio.run(...) on it"
        )
    assert len(tasks) == 0


def test_async_task_in_a_handler_is_a_500_and_no_task_runs(app, client, caplog_funapi):
    ran: list[str] = []

    @app.post("/signup")
    def signup(*, background):
        background.add_task(ran.append, "sync task")
        background.add_task(send_async_email, "a@example.com")
        return {}, 201

    assert client.post("/signup").status_code == 500
    assert ran == []
    [error] = [r for r in caplog_funapi.records if r.name == "funapi_sync" and r.exc_info]
    assert isinstance(error.exc_info[1], TypeError)


def test_is_async_callable_sees_through_partials_methods_and_call():
    from funapi_sync._callables import is_async_callable

    class SyncCallable:
        def __call__(self) -> None:
            pass

    assert is_async_callable(send_async_email)
    assert is_async_callable(functools.partial(send_async_email, "x"))
    assert is_async_callable(AsyncNotifier())
    assert is_async_callable(AsyncNotifier().notify)
    assert is_async_callable(stream_async_events)
    assert not is_async_callable(SyncCallable())
    assert not is_async_callable(functools.partial(print, "x"))
    assert not is_async_callable(lambda: None)
    assert not is_async_callable(AsyncNotifier)  # calling the class makes an instance
    assert not is_async_callable(len)
    assert not is_async_callable("not callable")


# -- a response never closed is reported ------------------------------------------------

NEVER_CLOSED = (
    "never ran: the response was garbage-collected without close() (a middleware that"
    " does not forward close(), or a client that never closed the response) (never started)"
)


def background_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "funapi_sync.background" and record.levelno == logging.ERROR
    ]


def test_werkzeug_client_response_never_closed_names_each_task_at_error(app, caplog):
    import gc

    from werkzeug.test import Client

    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    ran: list[str] = []

    def send_welcome_email(address: str) -> None:
        ran.append(address)

    @app.post("/signup")
    def signup(*, background):
        background.add_task(send_welcome_email, "ada@example.com")
        background.add_task(ran.append, "audit")
        return {}, 201

    response = Client(app).post("/signup")
    assert response.status_code == 201
    assert background_errors(caplog) == []
    del response
    gc.collect()
    assert ran == []
    assert background_errors(caplog) == [
        f"background task test_background.{send_welcome_email.__qualname__} of POST /signup"
        f" {NEVER_CLOSED}",
        f"background task list.append of POST /signup {NEVER_CLOSED}",
    ]
    # A response that is closed is not reported, and its tasks run.
    with Client(app).post("/signup") as closed:
        assert closed.status_code == 201
    assert app.background.drain(timeout=5)
    del closed
    gc.collect()
    assert ran == ["ada@example.com", "audit"]
    assert len(background_errors(caplog)) == 2


def test_a_middleware_that_drops_close_gets_each_task_named_at_error(app, caplog):
    import gc

    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    ran: list[str] = []

    class DropsClose:
        """Copies the body into a list: the app's iterable is never closed."""

        def __init__(self, app):
            self.app = app

        def __call__(self, environ, start_response):
            return list(self.app(environ, start_response))

    @app.get("/report/<int:number>")
    def report(input, *, background):
        background.add_task(ran.append, input.path["number"])
        return {}

    app.use(DropsClose)
    client = app.test_client()
    for number in range(3):
        assert client.get(f"/report/{number}").status_code == 200
    gc.collect()
    assert ran == []
    assert background_errors(caplog) == [
        f"background task list.append of GET /report/{number} {NEVER_CLOSED}" for number in range(3)
    ]


# -- per-app settings -------------------------------------------------------------------


def test_slow_warning_is_the_apps_own_even_when_another_app_made_the_pool(caplog):
    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    first, patient, impatient = App(), App(background_slow_warning=3600), App()
    impatient = App(background_slow_warning=0.05)
    crunched = threading.Event()

    def crunch_numbers() -> None:
        # The task's own duration, longer than the impatient app's threshold.
        time.sleep(0.1)
        crunched.set()

    for app in (first, patient, impatient):

        @app.post("/reports")
        def reports(*, background):
            background.add_task(crunch_numbers)
            return {}

        app.test_client().post("/reports")
    slow = [r.getMessage() for r in caplog.records if "was slow" in r.getMessage()]
    assert len(slow) == 1, slow
    assert "(background_slow_warning=0.05)" in slow[0]
    assert "POST /reports" in slow[0]
    # A per-app value is no pool setting: no conflict warning for it.
    assert not [r for r in caplog.records if "one pool per process" in r.getMessage()]


def test_other_pool_settings_are_warned_about_on_every_path_once_per_app(
    fresh_process_pool, caplog
):
    def with_a_task(app: App) -> App:
        @app.get("/")
        def index(*, background):
            background.add_task(lambda: None)
            return {}

        return app

    first = with_a_task(App(title="first"))
    # Created before the pool exists: no warning yet, but one at its first use.
    early = with_a_task(App(title="early", background_workers=2))
    first.test_client().get("/")
    assert pool_warnings(caplog) == []
    early.test_client().get("/")
    early.test_client().get("/")
    assert len(pool_warnings(caplog)) == 1
    # Created after: warned at creation, not again at its first use.
    late = with_a_task(App(title="late", background_queue_size=8))
    assert len(pool_warnings(caplog)) == 2
    late.test_client().get("/")
    same = with_a_task(App(title="same", background_slow_warning=1.0))
    same.test_client().get("/")
    assert pool_warnings(caplog) == [
        "the background pool of this process already exists"
        " with background_workers=4; an app's background_workers=2 is ignored (one pool per"
        " process, sized by the first app that uses it; give every app the same value)",
        "the background pool of this process already exists"
        " with background_queue_size=1024; an app's background_queue_size=8 is ignored (one"
        " pool per process, sized by the first app that uses it; give every app the same"
        " value)",
    ]


def test_is_async_callable_answers_plain_functions_as_inspect_does():
    # The fast path for plain functions must agree with inspect's answer for each kind.
    import functools
    import inspect

    from funapi_sync._callables import is_async_callable

    def plain():
        pass

    def generator():
        yield

    async def coroutine():
        pass

    async def async_generator():
        yield

    @functools.wraps(coroutine)
    def sync_wrapper():
        pass

    for fn in (plain, generator, coroutine, async_generator, sync_wrapper, lambda: None):
        expected = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        assert is_async_callable(fn) is expected, fn
    if hasattr(inspect, "markcoroutinefunction"):  # Python 3.12+
        assert is_async_callable(inspect.markcoroutinefunction(lambda: None))


def test_a_response_never_closed_names_and_runs_its_after_response_and_after_tasks_cleanups(
    app, caplog
):
    # Without close() the after_* cleanups would never run: a connection or a lock leaked
    # with no line saying so, tasks or not.
    import gc

    from werkzeug.test import Client

    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    closed: list[str] = []

    def connection():
        yield "conn"
        closed.append("connection")

    def upload_dir():
        yield "dir"
        closed.append("upload_dir")

    app.register("connection", connection, cleanup="after_response")
    app.register("upload_dir", upload_dir, cleanup="after_tasks")

    @app.get("/plain", depends=["connection"])
    def plain(*, connection):
        return {}

    @app.post("/with-task", depends=["connection", "upload_dir"])
    def with_task(*, background, connection, upload_dir):
        background.add_task(closed.append, upload_dir)
        return {}, 201

    late = (
        "ran late: the response was garbage-collected without close() (a middleware that does"
        " not forward close(), or a client that never closed the response); running it now"
    )
    response = Client(app).get("/plain")
    assert response.status_code == 200
    del response
    gc.collect()
    assert background_errors(caplog) == [
        f"the after_response cleanup of dependency 'connection' of GET /plain {late}"
    ]
    assert closed == ["connection"]

    caplog.clear()
    closed.clear()
    response = Client(app).post("/with-task")
    assert response.status_code == 201
    del response
    gc.collect()
    assert background_errors(caplog) == [
        f"background task list.append of POST /with-task {NEVER_CLOSED}",
        f"the after_response cleanup of dependency 'connection' of POST /with-task {late}",
        f"the after_tasks cleanup of dependency 'upload_dir' of POST /with-task {late}",
    ]
    assert closed == ["connection", "upload_dir"]  # the task never ran, the cleanups did

    # A response that is closed is not reported.
    caplog.clear()
    closed.clear()
    with Client(app).post("/with-task") as response:
        assert response.status_code == 201
    assert app.background.drain(timeout=5)
    del response
    gc.collect()
    assert background_errors(caplog) == []
    assert closed == ["connection", "dir", "upload_dir"]


def test_a_streamed_body_whose_close_is_interrupted_still_hands_its_tasks_over(app):
    # gunicorn's worker timeout raises SystemExit wherever the worker is, here in a
    # streamed body's cleanup: the exception goes on, and the task is not lost silently
    # (it reaches the pool, which runs it, or names it at its shutdown or abort).
    ran = threading.Event()

    def stream():
        try:
            yield b"chunk"
            yield b"more"
        except GeneratorExit:  # closed while the client was still reading
            raise SystemExit(1) from None

    @app.get("/stream")
    def streamed(*, background):
        background.add_task(ran.set)
        return Response(stream(), mimetype="text/plain")

    environ = EnvironBuilder(path="/stream").get_environ()
    body = app(environ, lambda status, headers, exc_info=None: None)
    assert next(iter(body)) == b"chunk"
    with pytest.raises(SystemExit):
        body.close()
    assert ran.wait(5)
    assert app.background.drain(timeout=5)
