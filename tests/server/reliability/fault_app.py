"""The fault table's app: one accepted order is one task, on the backend ``$FAULT_BACKEND``.

``POST /orders/<order_id>`` answers 201 (with the worker's pid) and adds ``record(order_id)``,
which waits while the file ``$FAULT_GATE`` exists (so the test decides when tasks may run
and can inject a fault while every task is held), works ``$FAULT_TASK_SECONDS``, then
appends ``<order_id> <pid>`` to ``$FAULT_LOG`` (O_APPEND: whole lines). The order id is in
the path, so a log line about a task names the order.

``$FAULT_BACKEND``: ``thread``, ``sqlite`` (the file ``$FAULT_DB``) or ``rq`` (``$FAULT_REDIS``,
socket timeout 1 s); ``$FAULT_LEASE`` is the durable backends' lease and
``$FAULT_SHUTDOWN_TIMEOUT`` the app's ``background_shutdown_timeout``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from funapi_sync import App

GATE = os.environ["FAULT_GATE"]
LOG = os.environ["FAULT_LOG"]
TASK_SECONDS = float(os.environ.get("FAULT_TASK_SECONDS", "0"))
LEASE = float(os.environ.get("FAULT_LEASE", "2"))
#: When a durable backend's tasks count as accepted (a cell that counts 2xx as accepted
#: across a SIGKILL of the server asks for "before_response").
PERSIST: Any = os.environ.get("FAULT_PERSIST", "after_response")
#: The longest a task waits at the gate: a test that never opens it still ends.
GATE_LIMIT = 60.0

logging.basicConfig(
    level=logging.WARNING, format="%(levelname)s %(name)s pid=%(process)d %(message)s"
)


def make_backend() -> Any:
    kind = os.environ.get("FAULT_BACKEND", "thread")
    if kind == "sqlite":
        from funapi_sync.backends.sqlite import SQLiteBackend

        return SQLiteBackend(os.environ["FAULT_DB"], lease=LEASE, persist=PERSIST)
    if kind == "rq":
        from funapi_sync.backends.rq import RQBackend

        return RQBackend(os.environ["FAULT_REDIS"], timeout=1.0, lease=LEASE, persist=PERSIST)
    return "thread"


app = App(
    title="fault table",
    background_backend=make_backend(),
    background_shutdown_timeout=float(os.environ.get("FAULT_SHUTDOWN_TIMEOUT", "20")),
)


def record(order_id: str) -> None:
    deadline = time.monotonic() + GATE_LIMIT
    while os.path.exists(GATE) and time.monotonic() < deadline:
        time.sleep(0.01)
    if TASK_SECONDS:
        time.sleep(TASK_SECONDS)
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{order_id} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


@app.post("/orders/<order_id>", status_code=201)
def create_order(input: Any, *, background: Any) -> tuple[dict[str, Any], int]:
    background.add_task(record, input.path["order_id"])
    return {"id": input.path["order_id"], "pid": os.getpid()}, 201
