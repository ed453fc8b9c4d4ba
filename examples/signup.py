"""The seed's signup app: a user signs up, and three background tasks run after the response.

Run it:  python examples/signup.py          (gunicorn on http://127.0.0.1:3000)
    or:  gunicorn examples.signup:app       (from the project root)

Users and the "sent" emails live in a SQLite file: $SIGNUP_DB, default ./signup.sqlite3.
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

from funapi_sync import App, Schema

DB_PATH = Path(os.environ.get("SIGNUP_DB", "signup.sqlite3"))
log = logging.getLogger("signup")


@contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    """Open a connection in autocommit mode and close it on the way out.

    NOTE: one short-lived connection per use: sqlite3 connections must not cross threads,
    and tasks run on the pool's threads. ``with sqlite3.connect(...)`` alone would only
    commit, never close. WAL (see create_tables) lets readers and the writer overlap.
    """
    conn = sqlite3.connect(DB_PATH, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        yield conn
    finally:
        conn.close()


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


def create_tables() -> None:
    with boot_lock(DB_PATH), connect() as conn:
        use_wal(conn)
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS users (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL,
                email TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                recipient TEXT NOT NULL,
                subject TEXT NOT NULL,
                sent_at REAL NOT NULL
            );
            CREATE TABLE IF NOT EXISTS signup_log (
                user_id INTEGER NOT NULL,
                logged_at REAL NOT NULL
            );
            """
        )


def send_welcome_email(email: str) -> None:
    log.info("Sending welcome email to %s", email)
    with connect() as conn:
        conn.execute(
            "INSERT INTO outbox (recipient, subject, sent_at) VALUES (?, ?, ?)",
            (email, "Welcome!", time.time()),
        )


def log_signup(user_id: int) -> None:
    log.info("Logging signup for user %s", user_id)
    with connect() as conn:
        conn.execute(
            "INSERT INTO signup_log (user_id, logged_at) VALUES (?, ?)", (user_id, time.time())
        )


def notify_admin(user: dict[str, object]) -> None:
    log.info("Notifying admin about new user: %s", user["name"])
    with connect() as conn:
        conn.execute(
            "INSERT INTO outbox (recipient, subject, sent_at) VALUES (?, ?, ?)",
            ("admin@example.com", f"New user: {user['name']}", time.time()),
        )


UserSchema = Schema.define(
    "User",
    name=fields.String(required=True, validate=Schema.filled),
    email=fields.String(required=True, validate=Schema.filled),
)

app = App(title="Signup API", version="1.0.0")
app.on_startup(create_tables)


@app.post("/signup", body=UserSchema, status_code=201)
def signup(input, req, task, *, background):
    """Create a user; the welcome email, the log line and the admin note follow the response."""
    with connect() as conn:
        cursor = conn.execute(
            "INSERT INTO users (name, email) VALUES (?, ?)",
            (input.body["name"], input.body["email"]),
        )
        user = {"id": cursor.lastrowid, **input.body}
    background.add_task(send_welcome_email, user["email"])
    background.add_task(log_signup, user["id"])
    background.add_task(notify_admin, user)
    return {"user": user, "message": "Check your email!"}, 201


@app.get("/outbox")
def outbox():
    """The emails the background tasks have "sent" so far."""
    with connect() as conn:
        rows = conn.execute("SELECT recipient, subject FROM outbox ORDER BY id").fetchall()
    return [{"recipient": recipient, "subject": subject} for recipient, subject in rows]


if __name__ == "__main__":
    from funapi_sync.server import gunicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    gunicorn.start(app, host="127.0.0.1", port=int(os.environ.get("PORT", "3000")))
