"""Task ids and statuses: TaskHandle, app.background.status()/tasks(), the bounded store."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime

import pytest
from werkzeug.test import Client

from funapi_sync import App, TaskHandle
from funapi_sync.backends import ThreadBackend
from funapi_sync.background import BackgroundTasks
from funapi_sync.batch import Batch, report
from funapi_sync.status import (
    DROPPED,
    FAILED,
    READY,
    RUNNING,
    SUCCESSFUL,
    StatusStore,
    TaskRecord,
    TaskStatus,
)

ID = re.compile(r"^[0-9a-f]{16}-[0-9a-f]+$")


def send_email(address: str = "") -> None:
    pass


def explode() -> None:
    raise ValueError("bad address")


def own_app(**settings) -> App:
    return App(background_workers=1, background_backend=ThreadBackend(own_pool=True), **settings)


def test_add_task_returns_a_handle_whose_id_is_url_safe_and_unique():
    background = BackgroundTasks()
    handles = [background.add_task(send_email, "a") for _ in range(1000)]
    handles.append(background.add_task_always(send_email, "b"))
    assert all(isinstance(handle, TaskHandle) for handle in handles)
    ids = [handle.id for handle in handles]
    assert all(ID.match(task_id) for task_id in ids)
    assert len(set(ids)) == len(ids)
    assert [task.id for task in background.tasks] == ids
    assert repr(handles[0]) == f"<TaskHandle {ids[0]}>"


def test_a_handler_answers_202_with_the_id_and_the_client_polls_its_status():
    app = own_app()
    started, gate = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        assert gate.wait(10)

    @app.post("/jobs")
    def create(*, background):
        background.add_task(hold)
        handle = background.add_task(send_email, "ada@example.com")
        return {"task": handle.id}, 202

    @app.get("/jobs/<task_id>")
    def poll(input):
        status = app.background.status(input.path["task_id"])
        return {"status": None if status is None else status.status}

    client = Client(app)
    try:
        # buffered: closed inside the call, so the tasks are on the pool when it returns
        task_id = client.post("/jobs", buffered=True).json["task"]
        assert started.wait(10)
        assert client.get(f"/jobs/{task_id}").json == {"status": READY}
        (running,) = app.background.tasks(status=RUNNING)
        assert running.name.endswith("<locals>.hold")
    finally:
        gate.set()
    assert app.background.drain(timeout=10)
    status = app.background.status(task_id)
    assert status is not None
    assert (status.status, status.attempts, status.error) == (SUCCESSFUL, 1, None)
    assert status.name == "test_status.send_email"
    assert status.enqueued_at <= status.started_at <= status.finished_at
    assert status.finished_at.tzinfo is UTC
    assert client.get(f"/jobs/{task_id}").json == {"status": SUCCESSFUL}
    assert client.get("/jobs/0000000000000000-1").json == {"status": None}


def test_a_failed_task_has_its_error_without_traceback():
    app = own_app()

    @app.post("/")
    def create(*, background):
        return {"task": background.add_task(explode).id}

    task_id = app.test_client().post("/").json["task"]
    status = app.background.status(task_id)
    assert status is not None
    assert (status.status, status.error, status.result) == (FAILED, "ValueError: bad address", None)


def test_tasks_lists_newest_first_filtered_and_limited():
    app = App(background_backend="inline")
    ids = []

    @app.post("/<int:n>")
    def create(input, *, background):
        fn = explode if input.path["n"] % 2 else send_email
        ids.append(background.add_task(fn).id if fn is explode else background.add_task(fn, "x").id)
        return {}

    client = app.test_client()
    for n in range(6):
        client.post(f"/{n}")
    assert [s.id for s in app.background.tasks()] == ids[::-1]
    assert [s.id for s in app.background.tasks(limit=2)] == ids[::-1][:2]
    assert [s.id for s in app.background.tasks(status=FAILED)] == ids[1::2][::-1]
    with pytest.raises(ValueError, match="tasks\\(status='DONE'\\): use None or one of READY"):
        app.background.tasks(status="DONE")


def test_the_store_keeps_only_the_most_recent_tasks():
    app = App(background_backend="inline", background_status_size=3)
    ids = []

    @app.post("/")
    def create(*, background):
        ids.extend(background.add_task(send_email, "x").id for _ in range(5))
        return {}

    app.test_client().post("/")
    assert [s.id for s in app.background.tasks()] == ids[:1:-1]
    assert app.background.status(ids[0]) is None
    assert app.background.status(ids[-1]).status == SUCCESSFUL


def ran_batch(store: StatusStore, *fns) -> tuple[Batch, BackgroundTasks]:
    background = BackgroundTasks()
    for fn in fns:
        background.add_task(fn)
    batch = Batch(list(background.tasks), "POST /", None)
    batch.track(store)
    batch.run()
    return batch, background


def test_the_store_forgets_the_task_and_keeps_its_name_once_it_ran():
    store = StatusStore(2)
    holder: list[int] = []
    ran_batch(store, lambda: holder)  # a closure: its cells must not be kept
    ((_seq, record),) = store._records.items()
    assert isinstance(record, TaskRecord)  # not the batch: its tasks' arguments are let go
    assert isinstance(record.what, str)
    assert record.what.endswith("<locals>.<lambda>")


def test_a_queued_task_is_ready_then_running_then_ended_and_the_store_lets_its_batch_go():
    app = own_app()
    started, gate = threading.Event(), threading.Event()
    seen: dict[str, TaskStatus | None] = {}
    ids: dict[str, str] = {}

    def hold() -> None:
        seen["running"] = app.background.status(ids["hold"])
        started.set()
        assert gate.wait(10)

    @app.post("/")
    def create(*, background):
        ids["hold"] = background.add_task(hold).id
        ids["next"] = background.add_task(send_email, "x").id
        return {}

    Client(app).post("/", buffered=True)
    try:
        assert started.wait(10)
        ready = app.background.status(ids["next"])
        assert ready is not None
        assert (ready.status, ready.attempts, ready.started_at) == (READY, 0, None)
        assert [s.id for s in app.background.tasks(status=READY)] == [ids["next"]]
    finally:
        gate.set()
    running = seen["running"]
    assert running is not None
    assert (running.status, running.attempts) == (RUNNING, 1)
    assert running.enqueued_at <= running.started_at
    assert app.background.drain(timeout=10)
    assert [s.status for s in app.background.tasks()] == [SUCCESSFUL, SUCCESSFUL]
    store = app.background.store
    assert all(isinstance(entry, TaskRecord) for entry in store._records.values())


def test_tasks_named_at_error_are_dropped_and_can_be_forgotten():
    store = StatusStore(10)
    background = BackgroundTasks()
    ids = [background.add_task(send_email, "x").id for _ in range(2)]
    batch = Batch(list(background.tasks), "POST /", None)
    batch.track(store)
    assert [s.status for s in store.tasks()] == [READY, READY]
    assert report(batch, "was not run: the worker was aborted") == 2
    dropped = store.status(ids[0])
    assert dropped is not None
    assert dropped.status == DROPPED
    assert dropped.enqueued_at <= dropped.finished_at
    assert store.forget(ids[0]) is True
    assert [s.id for s in store.tasks(status=DROPPED)] == [ids[1]]


def test_a_task_added_by_a_running_task_has_its_own_enqueued_time():
    store = StatusStore(10)
    background = BackgroundTasks()
    added: list[str] = []

    def first() -> None:
        added.append(background.add_task(send_email, "x").id)

    background.add_task(first)
    batch = Batch([], "POST /", None)
    batch.take(background, failed=False)
    batch.track(store)
    batch.run()
    (late,) = added
    status, first_status = store.status(late), store.status(background.tasks[0].id)
    assert status is not None
    assert first_status is not None
    assert status.status == SUCCESSFUL
    assert status.enqueued_at >= first_status.started_at


def test_a_failed_requests_add_task_tasks_are_dropped_and_the_always_ones_run():
    app = App(background_backend="inline")
    ids: dict[str, str] = {}

    @app.post("/")
    def create(*, background):
        ids["dropped"] = background.add_task(send_email, "x").id
        ids["always"] = background.add_task_always(send_email, "audit").id
        raise RuntimeError("handler broke")

    import logging

    logging.getLogger("funapi_sync").disabled = True
    try:
        assert app.test_client().post("/").status_code == 500
    finally:
        logging.getLogger("funapi_sync").disabled = False
    assert app.background.status(ids["dropped"]).status == DROPPED
    assert app.background.status(ids["always"]).status == SUCCESSFUL


def test_the_record_backend_reports_recorded_tasks_as_ready():
    app = App(background_backend="record")

    @app.post("/")
    def create(*, background):
        return {"task": background.add_task(send_email, "x").id}

    task_id = app.test_client().post("/").json["task"]
    status = app.background.status(task_id)
    assert isinstance(status, TaskStatus)
    assert (status.status, status.attempts, status.started_at) == (READY, 0, None)
    assert isinstance(status.enqueued_at, datetime)


def test_a_zero_size_store_remembers_nothing():
    app = App(background_backend="inline", background_status_size=0)

    @app.post("/")
    def create(*, background):
        return {"task": background.add_task(send_email, "x").id}

    task_id = app.test_client().post("/").json["task"]
    assert app.background.status(task_id) is None
    assert app.background.tasks() == []


@pytest.mark.parametrize("task_id", ["", "x", "-", "zz-1", "0000000000000000-zz", "a" * 400])
def test_an_id_of_another_process_or_no_id_at_all_is_unknown(task_id):
    assert App(background_backend="inline").background.status(task_id) is None


def test_forget_drops_a_finished_task_and_keeps_one_that_has_not_finished():
    app = App(background_backend="record")

    @app.post("/")
    def create(*, background):
        return {"task": background.add_task(send_email, "x").id}

    ready = app.test_client().post("/").json["task"]
    assert app.background.forget(ready) is False  # READY: a thread may still update it
    assert app.background.status(ready) is not None

    inline = App(background_backend="inline")

    @inline.post("/")
    def run(*, background):
        return {"ok": background.add_task(send_email, "x").id}

    done = inline.test_client().post("/").json["ok"]
    assert inline.background.forget(done) is True
    assert inline.background.status(done) is None
    assert inline.background.tasks() == []
    assert inline.background.forget(done) is False
    assert inline.background.forget("not-an-id") is False


def test_forget_leaves_the_other_tasks_in_their_order():
    store = StatusStore(10)
    batch, tasks = ran_batch(store, send_email, send_email, send_email)
    assert batch.done == 3

    assert store.forget(tasks.tasks[1].id) is True

    assert [status.id for status in store.tasks()] == [tasks.tasks[2].id, tasks.tasks[0].id]
