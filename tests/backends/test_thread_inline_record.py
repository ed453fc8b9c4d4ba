"""The backend seam: "thread" (default), "inline" and "record", as SPEC §11 describes them."""

from __future__ import annotations

import logging
import threading

import pytest
from werkzeug.test import Client, EnvironBuilder

from funapi_sync import App
from funapi_sync.backends import Backend, InlineBackend, RecordBackend, ThreadBackend


def send_email(address: str, *, subject: str = "hi") -> None:
    """A module-level task (the record backend keeps it, the others run it)."""


class Cleanup:
    def __init__(self) -> None:
        self.closed = 0

    def factory(self):
        yield "value"
        self.closed += 1


def test_the_default_backend_is_the_process_pool() -> None:
    app = App()
    assert isinstance(app.background, ThreadBackend)
    assert app.settings["background_backend"] is app.background
    calls: list[str] = []

    @app.get("/")
    def handler(*, background):
        background.add_task(lambda: calls.append(threading.current_thread().name))
        return {}

    assert app.test_client().get("/").status_code == 200
    assert calls == [calls[0]]
    assert calls[0].startswith("funapi_sync-background")
    assert app.background.stats()["completed"] >= 1
    assert app.background.drain(timeout=10) is True


def test_inline_runs_tasks_in_order_in_the_closing_thread_then_the_cleanup() -> None:
    app = App(background_backend="inline")
    assert isinstance(app.background, InlineBackend)
    assert app.settings["background_backend"] is app.background
    cleanup = Cleanup()
    app.register("resource", cleanup.factory)
    calls: list[str] = []

    def task(name: str) -> None:
        calls.append(name)

    @app.get("/", depends=["resource"])
    def handler(*, background, resource):
        background.add_task(task, "first")
        background.add_task(task, "second")
        return {}

    response = app.test_client().get("/")
    assert response.status_code == 200
    assert calls == ["first", "second"]
    assert cleanup.closed == 1


def test_inline_tasks_run_on_the_thread_that_closes_the_response() -> None:
    app = App(background_backend="inline")
    threads: list[int] = []

    @app.get("/")
    def handler(*, background):
        background.add_task(lambda: threads.append(threading.get_ident()))
        return {}

    environ = EnvironBuilder(path="/").get_environ()
    iterable = app(environ, lambda status, headers, exc_info=None: None)
    b"".join(iterable)
    assert threads == []  # nothing runs before close()
    iterable.close()  # type: ignore[attr-defined]
    assert threads == [threading.get_ident()]


def test_inline_logs_a_failing_task_and_runs_the_next(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    app = App(background_backend="inline")
    calls: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/")
    def handler(*, background):
        background.add_task(boom)
        background.add_task(calls.append, "after")
        return {}

    assert app.test_client().get("/").status_code == 200
    assert calls == ["after"]
    [record] = [r for r in caplog.records if r.name == "funapi_sync.background"]
    assert record.levelno == logging.WARNING
    assert "boom of GET /" in record.getMessage()
    assert app.background.stats() == {"queued": 0, "running": 0, "completed": 1, "failed": 1}
    assert app.background.drain() is True


def test_record_keeps_tasks_in_order_and_runs_none() -> None:
    app = App(background_backend="record")
    assert isinstance(app.background, RecordBackend)
    cleanup = Cleanup()
    app.register("resource", cleanup.factory)
    ran: list[str] = []

    @app.post("/signup", depends=["resource"])
    def signup(input, *, background, resource):
        background.add_task(send_email, "ada@example.com", subject="Welcome")
        background.add_task(ran.append, "never")
        return {}, 201

    client = app.test_client()
    assert client.post("/signup", json={}).status_code == 201
    assert app.background.recorded == [
        (send_email, ("ada@example.com",), {"subject": "Welcome"}),
        (ran.append, ("never",), {}),
    ]
    assert ran == []
    assert cleanup.closed == 1  # the cleanup does not wait for tasks that never run
    assert app.background.stats()["recorded"] == 2
    assert app.background.drain(timeout=1) is True
    app.background.recorded.clear()
    assert client.post("/signup", json={}).status_code == 201
    assert len(app.background.recorded) == 2


@pytest.mark.parametrize("mode", ["app.testing", "raise_task_errors"])
def test_record_still_records_in_testing_mode(mode: str) -> None:
    app = App(background_backend="record")
    ran: list[str] = []

    @app.post("/signup")
    def signup(input, *, background):
        background.add_task(ran.append, "never")
        return {}, 201

    if mode == "app.testing":
        app.testing = True
        response = Client(app).post("/signup", json={})
        assert response.json == {}  # the body read to its end: testing mode's trigger
    else:
        response = app.test_client(raise_task_errors=True).post("/signup", json={})
    assert response.status_code == 201
    assert app.background.recorded == [(ran.append, ("never",), {})]
    assert ran == []


def test_record_keeps_only_add_task_always_tasks_of_a_failed_request() -> None:
    app = App(background_backend="record")

    @app.get("/")
    def handler(*, background):
        background.add_task(send_email, "dropped")
        background.add_task_always(send_email, "audit")
        raise RuntimeError("handler failed")

    assert app.test_client().get("/").status_code == 500
    assert app.background.recorded == [(send_email, ("audit",), {})]


def test_an_unknown_backend_name_fails_when_the_app_is_built() -> None:
    with pytest.raises(ValueError, match=r"'celery' is not a backend; use 'thread'"):
        App(background_backend="celery")


def test_an_object_that_is_not_a_backend_fails_when_the_app_is_built() -> None:
    with pytest.raises(TypeError, match=r"neither a backend name nor a backend object"):
        App(background_backend=object())


def test_a_backend_class_instead_of_an_instance_names_the_fix() -> None:
    with pytest.raises(TypeError, match=r"RecordBackend is a class; pass an instance, e\.g\."):
        App(background_backend=RecordBackend)


def test_a_custom_backend_object_gets_the_batches() -> None:
    class Collect:
        check = None

        def __init__(self) -> None:
            self.batches: list[object] = []

        def bind(self, settings) -> None:
            self.settings = settings

        def submit(self, batch) -> None:
            self.batches.append([task.name for task in batch.tasks])
            batch.finished = True

        def stats(self) -> dict[str, int]:
            return {"queued": 0, "running": 0, "completed": 0, "failed": 0}

        def drain(self, timeout=None) -> bool:
            return True

        def status(self, task_id):
            return None

        def tasks(self, status=None, limit=100):
            return []

    backend = Collect()
    assert isinstance(backend, Backend)
    app = App(background_backend=backend, background_workers=2)
    assert backend.settings.workers == 2

    @app.get("/")
    def handler(*, background):
        background.add_task(send_email, "x")
        return {}

    assert app.test_client().get("/").status_code == 200
    assert backend.batches == [["test_thread_inline_record.send_email"]]
