"""An app for the real-gunicorn tests: every task event is one line appended to $BG_LOG.

Settings come from the environment: ``BG_SHUTDOWN_TIMEOUT``, ``BG_WORKERS``,
``BG_QUEUE_SIZE`` and ``BG_SUBMIT_TIMEOUT`` (App's ``background_*`` settings) and
``BG_TOUCH_AT_IMPORT`` (make one request through the test client at import, so a
``--preload`` master has used the pool before it forks).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from werkzeug.wrappers import Response

from funapi_sync import App

LOG = os.environ["BG_LOG"]

logging.basicConfig(
    level=logging.WARNING, format="%(levelname)s %(name)s pid=%(process)d %(message)s"
)

settings = {}
for variable, setting, kind in [
    ("BG_SHUTDOWN_TIMEOUT", "background_shutdown_timeout", float),
    ("BG_SUBMIT_TIMEOUT", "background_submit_timeout", float),
    ("BG_WORKERS", "background_workers", int),
    ("BG_QUEUE_SIZE", "background_queue_size", int),
]:
    if variable in os.environ:
        settings[setting] = kind(os.environ[variable])
app = App(title="background tasks under gunicorn", **settings)


def record(event: str) -> None:
    """Append one line; a single O_APPEND write, so lines from many processes never mix."""
    line = f"{event} pid={os.getpid()} t={time.time():.6f}\n".encode()
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def sleep_then_record(seconds: float, name: str) -> None:
    time.sleep(seconds)
    record(f"slept {name}")


def explode() -> None:
    raise RuntimeError("task exploded")


@app.get("/pid")
def pid():
    return {"pid": os.getpid()}


@app.get("/sleep/<name>")
def sleep(input, *, background):
    seconds = float(input.query.get("seconds", "1"))
    background.add_task(sleep_then_record, seconds, input.path["name"])
    return {"queued": input.path["name"], "pid": os.getpid()}


#: Never set: a task waiting on it hangs for ever (a stuck network call).
_never = threading.Event()


def hang(name: str) -> None:
    record(f"hanging {name}")
    _never.wait()


@app.get("/hang/<name>")
def hang_route(input, *, background):
    background.add_task(hang, input.path["name"])
    return {"queued": input.path["name"], "pid": os.getpid()}


@app.post("/count")
def count(input, *, background):
    for number in range(int(input.query.get("n", "2"))):
        background.add_task(record, f"count {number}")
    return {"pid": os.getpid()}


@app.get("/fail")
def fail(*, background):
    background.add_task(record, "before failure")
    background.add_task(explode)
    background.add_task(record, "after failure")
    return {"pid": os.getpid()}


def handed_over() -> int:
    """How many tasks this worker's pool has been given so far."""
    stats = app.background.stats()
    return stats["queued"] + stats["running"] + stats["completed"] + stats["failed"]


@app.get("/paused-stream")
def paused_stream(input, *, background):
    """Stream a body that pauses before its last chunk until the ``gate`` file exists.

    While it pauses, the request's task must be neither started nor handed to the pool:
    the body records how many tasks the pool was given since the handler ran, and the test
    checks that the task has logged nothing before it opens the gate.
    """
    gate = Path(input.query["gate"])
    before = handed_over()

    def body():
        for number in range(4):
            yield f"chunk {number}\n".encode()
        record(f"body paused handed_over={handed_over() - before}")
        # NOTE: a file, polled (bounded): the test is another process, so no Event reaches it.
        deadline = time.monotonic() + 10
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield b"last chunk\n"
        # Runs when the server asks for more, i.e. once the last chunk was written.
        record("body done")

    background.add_task(record, "task started")
    return Response(body(), mimetype="text/plain")


@app.get("/big")
def big(input, *, background):
    """Wait (bounded) until the client has gone, then answer with a body it will not read."""
    record("big handler started")
    marker = Path(input.query["marker"])
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    background.add_task(record, "disconnect task")
    return Response(b"x" * (8 * 1024 * 1024), mimetype="application/octet-stream")


if os.environ.get("BG_TOUCH_AT_IMPORT"):
    # NOTE: this runs in the gunicorn master under --preload: the pool is created and
    # runs a task before fork(), the situation the pool must survive.
    assert app.test_client().post("/count?n=1").status_code == 200
