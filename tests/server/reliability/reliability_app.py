"""The app the reliability tests run under real gunicorn: each accepted order is one row.

``POST /orders/<order_id>`` answers 201 and adds a background task that inserts the
order into the SQLite file ``$REL_DB``; the test compares the ids it got 201 for with the
rows. The id is in the path, so a log line about a task (``... of POST /orders/<id>``)
names the order. Settings from the environment: ``REL_TASK_SECONDS`` (a task's work
before its insert), ``REL_SHUTDOWN_TIMEOUT`` and ``REL_QUEUE_SIZE``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time

from marshmallow import fields
from werkzeug.wrappers import Request

from funapi_sync import App, Schema

DB = os.environ["REL_DB"]
TASK_SECONDS = float(os.environ.get("REL_TASK_SECONDS", "0"))

logging.basicConfig(
    level=logging.WARNING, format="%(levelname)s %(name)s pid=%(process)d %(message)s"
)

settings: dict[str, object] = {}
if "REL_SHUTDOWN_TIMEOUT" in os.environ:
    settings["background_shutdown_timeout"] = float(os.environ["REL_SHUTDOWN_TIMEOUT"])
if "REL_QUEUE_SIZE" in os.environ:
    settings["background_queue_size"] = int(os.environ["REL_QUEUE_SIZE"])
app = App(title="reliability", **settings)

Order = Schema.define("Order", qty=fields.Integer(required=True))


def connect() -> sqlite3.Connection:
    # NOTE: WAL and a long busy timeout: 2 workers x 4 pool threads write at once.
    connection = sqlite3.connect(DB, timeout=60)
    connection.execute("PRAGMA journal_mode=WAL")
    return connection


def init_db() -> None:
    # NOTE: the workers import this at once. Switching a new file to WAL needs an exclusive
    # lock, which SQLite refuses at once ("database is locked", no busy wait) to a second
    # connection doing the same, and the worker then fails to boot: one at a time.
    with open(f"{DB}.init-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with connect() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS orders (id TEXT, qty INTEGER, pid INTEGER, kind TEXT)"
            )
        connection.close()


init_db()


def insert(order_id: str, qty: int, kind: str = "order") -> None:
    if TASK_SECONDS:
        time.sleep(TASK_SECONDS)
    connection = connect()
    try:
        with connection:
            connection.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?)", (order_id, qty, os.getpid(), kind)
            )
    finally:
        connection.close()


class Terminate(BaseException):
    """Not an Exception: what a task raising KeyboardInterrupt-like errors looks like."""


def raise_runtime_error() -> None:
    raise RuntimeError("task failed on purpose")


def raise_base_exception() -> None:
    raise Terminate("task raised a BaseException on purpose")


def raise_system_exit() -> None:
    raise SystemExit(3)


FAULTS = {
    "runtime-error": raise_runtime_error,
    "base-exception": raise_base_exception,
    "system-exit": raise_system_exit,
}


@app.post("/orders/<order_id>", body=Order, status_code=201)
def create_order(input, *, background):
    order_id = input.path["order_id"]
    background.add_task(insert, order_id, input.body["qty"])
    return {"id": order_id, "pid": os.getpid()}, 201


@app.post("/faults/<kind>/<order_id>", status_code=201)
def fault(input, *, background):
    # The faulty task first: the request's next task must still run after it.
    background.add_task(FAULTS[input.path["kind"]])
    background.add_task(insert, input.path["order_id"], 0, input.path["kind"])
    return {"id": input.path["order_id"], "pid": os.getpid()}, 201


@app.post("/echo", body=Order)
def echo(input):
    return input.body


@app.post("/echo-raw")
def echo_raw(input):
    return {"body": input.body}


@app.get("/search", query=Order)
def search(input):
    return input.query


@app.get("/items/<int:item_id>")
def item(input):
    return input.path


@app.get("/reports/<name>-<kind>-<year>.json")
def report(input):
    # NOTE: three converters in one segment: werkzeug's regex for it backtracks cubically
    # on a long miss (see the hostile matrix's in-segment cases).
    return input.path


@app.get("/header")
def header(input):
    return {"ok": True}, 200, {"X-Echo": input.query.get("v", "")}


@app.get("/whoami")
def whoami(input, req: Request):
    return {"host": req.host, "url": req.url}


@app.get("/health")
def health():
    return {"pid": os.getpid()}
