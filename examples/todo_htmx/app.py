"""A small HTMX todo list: templates, partial responses, an audit row written after each response.

Run it:  python -m examples.todo_htmx.app        (gunicorn on http://127.0.0.1:3000)
    or:  gunicorn examples.todo_htmx.app:app     (from the project root)

Todos and the audit log live in a SQLite file: $TODO_DB, default ./todo.sqlite3.

A request made by htmx carries ``HX-Request: true`` and gets only the HTML fragment it
swaps in (``layout=False``); the same URL opened by the browser gets the whole page.
htmx itself (``static/htmx.min.js``, see ``static/LICENSE-htmx.txt``) is served by the
app, through werkzeug's ``SharedDataMiddleware``, so the page works with no internet.
Each change writes an audit row in a background task, after the response was sent.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from marshmallow import fields
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from funapi_sync import App, HTTPException, Schema, Templates

HERE = Path(__file__).resolve().parent
DB_PATH = Path(os.environ.get("TODO_DB", "todo.sqlite3"))

app = App(title="HTMX todos")
templates = Templates(HERE / "templates", layout="base.html")


def connect() -> sqlite3.Connection:
    # NOTE: one short-lived connection per use: sqlite3 connections must not cross
    # threads, and the audit task runs on a pool thread.
    conn = sqlite3.connect(DB_PATH, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.row_factory = sqlite3.Row
    return conn


@contextmanager
def boot_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on a file beside the database while a process sets it up.

    NOTE: switching to WAL needs an exclusive lock that SQLite's busy handler does not
    wait for, so gunicorn workers booting together failed with "database is locked".
    The lock file serialises their setup, and WAL (kept in the database file) is
    switched on once, by the first; the others find it on.
    """
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


def use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL (readers and the writer overlap) unless it is on already."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode=WAL")


@app.on_startup
def create_tables() -> None:
    with boot_lock(DB_PATH), connect() as conn:
        use_wal(conn)
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS todos (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                title TEXT NOT NULL,
                done INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE IF NOT EXISTS audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                action TEXT NOT NULL,
                todo_id INTEGER NOT NULL,
                title TEXT NOT NULL,
                at REAL NOT NULL
            );
            """
        )


def audit(action: str, todo_id: int, title: str) -> None:
    """Record a change; runs as a background task, after the client has its response."""
    with connect() as conn:
        conn.execute(
            "INSERT INTO audit (action, todo_id, title, at) VALUES (?, ?, ?, ?)",
            (action, todo_id, title, time.time()),
        )


def find(todo_id: int) -> sqlite3.Row:
    with connect() as conn:
        row = conn.execute("SELECT * FROM todos WHERE id = ?", (todo_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"todo {todo_id} not found")
    return row


def is_htmx(req) -> bool:
    return req.headers.get("HX-Request") == "true"


TodoSchema = Schema.define("Todo", title=fields.String(required=True, validate=Schema.filled))


@app.get("/", media_type="text/html")
def index(input, req):
    """The whole page; to htmx, just the list."""
    with connect() as conn:
        todos = conn.execute("SELECT * FROM todos ORDER BY id").fetchall()
    if is_htmx(req):
        return templates.response("_todos.html", layout=False, todos=todos)
    return templates.response("index.html", title="Todos", todos=todos)


@app.post(
    "/todos",
    body=TodoSchema,
    body_media_type="application/x-www-form-urlencoded",
    media_type="text/html",
)
def create(input, req, *, background):
    """Add a todo; htmx gets the new <li>, a plain form post is sent back to the page."""
    title = input.body["title"].strip()
    with connect() as conn:
        todo_id = conn.execute("INSERT INTO todos (title) VALUES (?)", (title,)).lastrowid
    background.add_task(audit, "create", todo_id, title)
    if is_htmx(req):
        return templates.response("_todo.html", layout=False, status=201, todo=find(todo_id))
    return redirect("/", code=303)


@app.post("/todos/<int:todo_id>/toggle", media_type="text/html")
def toggle(input, *, background):
    todo = find(input.path["todo_id"])
    with connect() as conn:
        conn.execute("UPDATE todos SET done = 1 - done WHERE id = ?", (todo["id"],))
    background.add_task(audit, "toggle", todo["id"], todo["title"])
    return templates.response("_todo.html", layout=False, todo=find(todo["id"]))


@app.delete("/todos/<int:todo_id>", media_type="text/html")
def delete(input, *, background):
    """Delete a todo; the empty 200 body replaces its <li> (hx-swap="outerHTML")."""
    todo = find(input.path["todo_id"])
    with connect() as conn:
        conn.execute("DELETE FROM todos WHERE id = ?", (todo["id"],))
    background.add_task(audit, "delete", todo["id"], todo["title"])
    return Response(b"", mimetype="text/html")


@app.get("/audit")
def audit_log():
    """The audit rows the background tasks wrote, oldest first."""
    with connect() as conn:
        rows = conn.execute("SELECT action, todo_id, title FROM audit ORDER BY id").fetchall()
    return [dict(row) for row in rows]


app.use(SharedDataMiddleware, {"/static": str(HERE / "static")})
app.add_gzip()
app.add_request_logger()


if __name__ == "__main__":
    from funapi_sync.server import gunicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    gunicorn.start(app, host="127.0.0.1", port=int(os.environ.get("PORT", "3000")))
