"""The server matrix's app: ``POST /tasks/<id>`` adds a task that sleeps, then records.

Every task event is one line appended to ``$MATRIX_LOG`` (``ran <id>``). ``MATRIX_TASK``
is the task's duration in seconds (0.4 by default); ``MATRIX_SHUTDOWN_TIMEOUT`` sets
``background_shutdown_timeout`` and ``MATRIX_BG_WORKERS``
``background_workers``. Log records go to stderr, which the test reads.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from funapi_sync import App

LOG = os.environ["MATRIX_LOG"]
TASK_SECONDS = float(os.environ.get("MATRIX_TASK", "0.4"))

logging.basicConfig(
    stream=sys.stderr,
    level=logging.WARNING,
    format="%(levelname)s %(name)s pid=%(process)d %(message)s",
)
settings = {}
if "MATRIX_SHUTDOWN_TIMEOUT" in os.environ:
    settings["background_shutdown_timeout"] = float(os.environ["MATRIX_SHUTDOWN_TIMEOUT"])
if "MATRIX_BG_WORKERS" in os.environ:
    settings["background_workers"] = int(os.environ["MATRIX_BG_WORKERS"])
app = App(title="server matrix", openapi_url=None, **settings)


def record(event: str) -> None:
    """Append one line in one O_APPEND write, so lines from many processes never mix."""
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event} pid={os.getpid()} t={time.time():.6f}\n".encode())
    finally:
        os.close(fd)


def slow_task(task_id: int) -> None:
    record(f"started {task_id}")
    time.sleep(TASK_SECONDS)
    record(f"ran {task_id}")


@app.get("/ping")
def ping():
    return {"pid": os.getpid()}


@app.post("/tasks/<int:task_id>")
def add(input, *, background):
    background.add_task(slow_task, input.path["task_id"])
    return {"accepted": input.path["task_id"], "t": time.time()}, 202


@app.get("/slow")
def slow():
    time.sleep(float(os.environ.get("MATRIX_SLOW", "1.0")))
    return {"slow": True}
