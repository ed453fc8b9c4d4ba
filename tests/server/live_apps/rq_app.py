"""An app whose tasks go to RQ: each task run is one row of the SQLite file $RQ_APP_DB.

``RQ_APP_REDIS`` is the Redis URL; ``RQ_APP_RETRY`` (optional) the ``Retry(max=...)``.
The same module is imported by the web tier (gunicorn or a test) and by the rq worker,
which finds the task functions here by module and name.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sqlite3
import threading
from contextlib import closing

from rq import Retry

from funapi_sync import App
from funapi_sync.backends.rq import RQBackend

DB = os.environ["RQ_APP_DB"]
retry = (
    Retry(max=int(os.environ["RQ_APP_RETRY"]), interval=int(os.environ.get("RQ_APP_INTERVAL", 0)))
    if os.environ.get("RQ_APP_RETRY")
    else None
)
#: The backend's lease (seconds): short in the tests that kill a worker.
LEASE = float(os.environ.get("RQ_APP_LEASE", "30"))

logging.basicConfig(
    level=logging.WARNING, format="%(levelname)s %(name)s pid=%(process)d %(message)s"
)

#: A request id, set by the handler: the worker must see it (carried as job data).
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
#: A value that cannot be pickled: not carried, so the worker sees the default.
request_lock: contextvars.ContextVar[object] = contextvars.ContextVar("request_lock", default=None)


def execute(sql: str, *params: object) -> None:
    with closing(sqlite3.connect(DB, timeout=30, isolation_level=None)) as conn:
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute(sql, params)


def create_tables() -> None:
    execute(
        "CREATE TABLE IF NOT EXISTS runs (request INTEGER, task INTEGER, pid INTEGER,"
        " request_id TEXT, lock TEXT)"
    )
    execute("CREATE TABLE IF NOT EXISTS hooks (hook TEXT, pid INTEGER)")


create_tables()

app = App(
    title="rq tasks",
    background_backend=RQBackend(os.environ["RQ_APP_REDIS"], retry=retry, lease=LEASE),
)


@app.on_startup
def started() -> None:
    execute("INSERT INTO hooks VALUES ('startup', ?)", os.getpid())


@app.on_shutdown
def stopped() -> None:
    execute("INSERT INTO hooks VALUES ('shutdown', ?)", os.getpid())


def record(request: int, task: int) -> None:
    """One row per run: (request number, task number, pid, the request id it saw)."""
    lock = "unset" if request_lock.get() is None else "set"
    pid = os.getpid()
    execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)", request, task, pid, request_id.get(), lock)


def flaky(request: int, task: int, failures: int) -> None:
    """Record the attempt, then fail on the first ``failures`` attempts."""
    record(request, task)
    with closing(sqlite3.connect(DB, timeout=30)) as conn:
        (attempts,) = conn.execute(
            "SELECT count(*) FROM runs WHERE request = ? AND task = ?", (request, task)
        ).fetchone()
    if attempts <= failures:
        raise RuntimeError(f"attempt {attempts} of task {task} fails on purpose")


def stalls_once(request: int, task: int) -> None:
    """Record the attempt; the first one then hangs (until its worker is killed)."""
    record(request, task)
    with closing(sqlite3.connect(DB, timeout=30)) as conn:
        (attempts,) = conn.execute(
            "SELECT count(*) FROM runs WHERE request = ? AND task = ?", (request, task)
        ).fetchone()
    if attempts == 1:
        threading.Event().wait(600)


@app.get("/stall/<int:request>")
def stall_work(input, *, background):
    """A task before, one whose first attempt hangs, and one after."""
    number = input.path["request"]
    background.add_task(record, number, 0)
    background.add_task(stalls_once, number, 1)
    background.add_task(record, number, 2)
    return {"request": number}


@app.get("/work/<int:request>")
def work(input, *, background):
    """Add three tasks, numbered 0, 1, 2: the worker must run them in this order."""
    number = input.path["request"]
    request_id.set(f"req-{number}")
    request_lock.set(threading.Lock())
    for task in range(3):
        background.add_task(record, number, task)
    return {"request": number}


@app.get("/flaky/<int:request>")
def flaky_work(input, *, background):
    """A task before, one that fails twice, and one after."""
    number = input.path["request"]
    background.add_task(record, number, 0)
    background.add_task(flaky, number, 1, 2)
    background.add_task(record, number, 2)
    return {"request": number}
