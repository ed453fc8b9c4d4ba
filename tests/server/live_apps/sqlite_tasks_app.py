"""Durable tasks on one SQLite file ($TASKS_DB, lease $TASKS_LEASE s, $TASKS_PERSIST).

``POST /work?req=R&n=N&sleep=S`` adds N tasks ``record(R, i, S)``; each sleeps S seconds
and then appends one line ``R i pid attempt id`` to $TASKS_LOG (O_APPEND: whole lines).
"""

from __future__ import annotations

import os
import time
from typing import Any

from funapi_sync import App, current_task
from funapi_sync.backends.sqlite import SQLiteBackend

backend = SQLiteBackend(
    os.environ["TASKS_DB"],
    lease=float(os.environ.get("TASKS_LEASE", "30")),
    persist=os.environ.get("TASKS_PERSIST", "after_response"),  # type: ignore[arg-type]
)
app = App(
    background_backend=backend,
    background_shutdown_timeout=float(os.environ.get("TASKS_SHUTDOWN_TIMEOUT", "25")),
)


def record(req: str, index: int, sleep: float) -> None:
    if sleep:
        time.sleep(sleep)
    task = current_task()
    assert task is not None
    line = f"{req} {index} {os.getpid()} {task.attempt} {task.id}\n"
    fd = os.open(os.environ["TASKS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.post("/work")
def work(input: Any, *, background: Any) -> tuple[dict[str, str], int]:
    query = input.query
    for index in range(int(query.get("n", "1"))):
        background.add_task(record, query["req"], index, float(query.get("sleep", "0")))
    return {"accepted": query["req"]}, 202


def wait_for_gate(gate: str) -> str:
    """Run until the file ``gate`` exists (bounded: 60 s), so a poll sees it READY/RUNNING."""
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} never appeared")
        time.sleep(0.02)
    return "opened"


@app.post("/gated")
def gated(input: Any, *, background: Any) -> tuple[dict[str, str], int]:
    """202 with the id of a task that waits for the file ``?gate=``."""
    handle = background.add_task(wait_for_gate, input.query["gate"])
    return {"task": handle.id}, 202


@app.get("/tasks/<task_id>")
def task_status(input: Any) -> dict[str, Any]:
    """The task's status as this worker reads it, and which worker answered."""
    status = app.background.status(input.path["task_id"])
    return {"status": None if status is None else status.status, "pid": os.getpid()}
