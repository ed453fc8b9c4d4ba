"""Testing: app.test_client(), werkzeug's own Client in its three forms, app.testing."""

from __future__ import annotations

import logging
import threading

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from funapi_sync import App


class TaskFailed(Exception):
    pass


def make_app(events: list[object]) -> App:
    app = App()

    def session():
        yield "session"
        events.append("cleanup")

    app.register("session", session, cleanup="after_tasks")

    @app.post("/", depends=["session"])
    def create(*, session, background):
        background.add_task(lambda: events.append(("task", threading.get_ident())))
        return {"ok": True}, 201

    @app.post("/stream", depends=["session"])
    def stream(*, session, background):
        background.add_task(lambda: events.append(("task", threading.get_ident())))
        return Response(iter([b"a", b"b"]), 201)

    @app.post("/fail")
    def fail(*, background):
        def broken():
            raise TaskFailed("task broke")

        background.add_task(broken)
        background.add_task(events.append, "next task")
        return {"ok": True}, 201

    return app


def names(events):
    return [event[0] if isinstance(event, tuple) else event for event in events]


# -- app.test_client() ------------------------------------------------------------------


def test_the_test_client_returns_after_the_tasks_ran_on_the_pool():
    events: list[object] = []
    response = make_app(events).test_client().post("/")
    assert response.status_code == 201
    assert names(events) == ["task", "cleanup"]
    assert events[0][1] != threading.get_ident()


def test_the_test_client_logs_a_failing_task_and_the_response_is_unchanged(caplog):
    events: list[object] = []
    response = make_app(events).test_client().post("/fail")
    assert (response.status_code, response.json) == (201, {"ok": True})
    assert events == ["next task"]
    failed = [r for r in caplog.records if r.name == "funapi_sync.background"]
    assert [r.levelno for r in failed] == [logging.WARNING]
    assert "task broke" in caplog.text


def test_raise_task_errors_makes_the_call_raise_the_tasks_exception():
    events: list[object] = []
    client = make_app(events).test_client(raise_task_errors=True)
    with pytest.raises(TaskFailed, match="task broke"):
        client.post("/fail")
    assert events == ["next task"]  # the later task still ran, as in production
    assert client.post("/").status_code == 201
    assert names(events) == ["next task", "task", "cleanup"]


# -- werkzeug's Client without app.testing ----------------------------------------------


def test_werkzeug_client_runs_the_tasks_only_once_the_response_is_closed():
    events: list[object] = []
    app = make_app(events)
    response = Client(app).post("/")
    assert response.json == {"ok": True}
    assert app.background.drain(timeout=10)
    assert events == []  # werkzeug keeps the app iterable open until the response closes
    response.close()
    assert app.background.drain(timeout=10)
    assert names(events) == ["task", "cleanup"]


def test_werkzeug_client_buffered_submits_the_tasks_inside_the_call():
    events: list[object] = []
    app = make_app(events)
    assert Client(app).post("/", buffered=True).status_code == 201
    assert app.background.drain(timeout=10)
    assert names(events) == ["task", "cleanup"]


def test_werkzeug_client_with_block_submits_the_tasks_at_its_end():
    events: list[object] = []
    app = make_app(events)
    with Client(app).post("/") as response:
        assert response.status_code == 201
    assert app.background.drain(timeout=10)
    assert names(events) == ["task", "cleanup"]


# -- werkzeug's Client with app.testing -------------------------------------------------


def test_testing_runs_the_tasks_in_the_calling_thread_once_the_body_is_read():
    events: list[object] = []
    app = make_app(events)
    app.testing = True
    response = Client(app).post("/")
    assert response.json == {"ok": True}
    assert events == [("task", threading.get_ident()), "cleanup"]
    response.close()
    assert len(events) == 2  # once only


@pytest.mark.parametrize("form", ["plain", "buffered", "with"])
def test_testing_runs_the_tasks_in_each_client_form(form):
    events: list[object] = []
    app = make_app(events)
    app.testing = True
    client = Client(app)
    if form == "plain":
        client.post("/").get_data()
    elif form == "buffered":
        client.post("/", buffered=True)
    else:
        with client.post("/"):
            pass
    assert events == [("task", threading.get_ident()), "cleanup"]


def test_testing_lets_a_failing_task_raise_from_the_call():
    events: list[object] = []
    app = make_app(events)
    app.testing = True
    with pytest.raises(TaskFailed, match="task broke"):
        Client(app).post("/fail")
    assert events == ["next task"]
    with pytest.raises(TaskFailed):
        Client(app).post("/fail", buffered=True)


def test_testing_runs_the_tasks_inside_the_call_when_only_the_status_is_asserted():
    events: list[object] = []
    app = make_app(events)
    app.testing = True
    assert Client(app).post("/").status_code == 201  # body never read, response never closed
    assert events == [("task", threading.get_ident()), "cleanup"]


def test_testing_runs_a_streamed_bodys_tasks_once_it_is_read_to_its_end():
    events: list[object] = []
    app = make_app(events)
    app.testing = True
    response = Client(app).post("/stream")
    assert events == []  # a stream may never end: not read ahead
    assert response.get_data() == b"ab"
    assert events == [("task", threading.get_ident()), "cleanup"]


def test_testing_is_off_by_default_and_can_be_set_after_construction():
    app = App()
    assert app.testing is False
    app.testing = True
    assert app.testing is True


def test_testing_runs_the_tasks_even_when_a_middleware_drops_the_body(caplog):
    events: list[object] = []
    app = make_app(events)
    app.testing = True
    app.use(_DropBody)  # reads nothing, closes nothing
    Client(app).post("/")
    assert events == [("task", threading.get_ident()), "cleanup"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_testing_reports_a_streamed_response_neither_read_nor_closed(caplog):
    import gc

    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    events: list[object] = []
    app = make_app(events)
    app.testing = True
    app.use(_DropBody)  # reads nothing, closes nothing: the tasks can never run
    Client(app).post("/stream")
    gc.collect()
    # The task can never run now; the after_tasks cleanup is named and run, not leaked.
    assert events == ["cleanup"]
    errors = [r.getMessage() for r in caplog.records if r.name == "funapi_sync.background"]
    assert len(errors) == 2
    assert "of POST /stream never ran: the response was garbage-collected without" in errors[0]
    assert errors[1].startswith("the after_tasks cleanup of dependency 'session' of POST /")


class _DropBody:
    """A broken middleware: answers with its own body and drops the app's iterable."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        self.app(environ, start_response)
        return [b"{}"]


def test_testing_runs_after_response_cleanups_before_the_tasks():
    app = App()
    events: list[str] = []

    def late():
        yield "late"
        events.append("after_response cleanup")

    app.register("late", late, cleanup="after_response")

    @app.post("/", depends=["late"])
    def create(*, late, background):
        background.add_task(events.append, "task")
        return {}, 201

    app.testing = True
    Client(app).post("/").get_data()
    assert events == ["after_response cleanup", "task"]


def test_testing_raises_the_first_failure_and_logs_the_later_ones(caplog):
    app = App()

    def broken(number):
        raise TaskFailed(f"task {number} broke")

    @app.post("/")
    def create(*, background):
        background.add_task(broken, 1)
        background.add_task(broken, 2)
        return {}, 201

    app.testing = True
    with pytest.raises(TaskFailed, match="task 1 broke"):
        Client(app).post("/", buffered=True)
    warnings = [r for r in caplog.records if r.name == "funapi_sync.background"]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert "task 2 broke" in caplog.text


def test_testing_closes_a_streamed_body_before_running_the_tasks():
    from werkzeug.wrappers import Response

    app = App()
    events: list[str] = []

    def body():
        try:
            yield b"chunk"
        finally:
            events.append("body closed")

    @app.get("/stream")
    def stream(*, background):
        background.add_task(events.append, "task")
        return Response(body())

    app.testing = True
    with Client(app).get("/stream") as response:
        assert response.status_code == 200
    assert events == ["body closed", "task"]
