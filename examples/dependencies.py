"""Dependencies on SQLite: one connection per request, committed or rolled back at cleanup.

Run it:  python examples/dependencies.py          (gunicorn on http://127.0.0.1:3000)
    or:  gunicorn -c python:funapi_sync.server.gunicorn_conf examples.dependencies:app

The accounts live in a SQLite file: $BANK_DB, default ./bank.sqlite3.

    curl -X POST localhost:3000/accounts -H 'Content-Type: application/json' \\
         -d '{"name": "alice", "balance": 100}'
    curl -X POST localhost:3000/transfers -H 'Content-Type: application/json' \\
         -d '{"source": "alice", "target": "bob", "amount": 30}'

``db`` is a generator dependency with the default ``cleanup="before_response"``: the
code after its ``yield`` commits once the handler returned and *before* the response is
sent, on the server thread that opened the connection. So the client's 201 means the
transfer is committed (a request sent right after it sees it), a commit that fails is the
client's error response, and no write lock is held while background tasks run. If the
handler raised (a refused transfer, say), the exception arrives at the ``yield`` and
everything the request wrote is rolled back.

The audit task runs after the response, on a pool thread: it is given the transfer's id,
not the connection (a SQLite connection is usable only on the thread that created it),
and opens its own. ``outbox`` is the one value kept open for the tasks
(``cleanup="after_tasks"``): the tasks add messages to it, and its cleanup writes them in
one transaction after the last task.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from marshmallow import fields, validate

from funapi_sync import App, HTTPException, Schema

log = logging.getLogger("bank")


def db_path() -> str:
    # NOTE: read per use, not at import, so tests can point a fresh file at the app.
    return os.environ.get("BANK_DB", "bank.sqlite3")


def connect() -> sqlite3.Connection:
    # NOTE: thread-affine (sqlite3's default check_same_thread=True): every connection
    # is opened, used and closed on one thread, the request's or a task's.
    conn = sqlite3.connect(db_path(), timeout=30)
    conn.execute("PRAGMA busy_timeout=30000")
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


def create_tables() -> None:
    with boot_lock(db_path()):
        _create_tables()


def _create_tables() -> None:
    conn = connect()
    try:
        # WAL lets readers go on while one request holds its write transaction.
        use_wal(conn)
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS accounts (
                name TEXT PRIMARY KEY,
                balance INTEGER NOT NULL CHECK (balance >= 0)
            );
            CREATE TABLE IF NOT EXISTS transfers (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                source TEXT NOT NULL,
                target TEXT NOT NULL,
                amount INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                event TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS messages (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                recipient TEXT NOT NULL,
                text TEXT NOT NULL
            );
            """
        )
    finally:
        conn.close()


def transaction() -> Iterator[sqlite3.Connection]:
    """One connection and transaction per request: commit on success, else roll back.

    Cleaned up before the response (the default), so a failing commit is a 500 the
    client sees, not a line in a log after a 201.
    """
    conn = connect()
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    else:
        conn.commit()
    finally:
        conn.close()


def write_audit(transfer_id: int) -> None:
    """Background task: the audit line of a committed transfer, on the task's own connection."""
    conn = connect()
    try:
        with conn:  # commits, or rolls back if the INSERT fails
            source, target, amount = conn.execute(
                "SELECT source, target, amount FROM transfers WHERE id = ?", (transfer_id,)
            ).fetchone()
            conn.execute(
                "INSERT INTO audit (event) VALUES (?)", (f"{source} -> {target}: {amount}",)
            )
    finally:
        conn.close()
    log.info("audited transfer %s -> %s", source, target)


class Outbox:
    """Messages a request's tasks want delivered; written together after the last task."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def send(self, recipient: str, text: str) -> None:
        self.messages.append((recipient, text))


def outbox() -> Iterator[Outbox]:
    """Kept open for the tasks (cleanup="after_tasks"): a task fills it, then it is flushed.

    The cleanup runs on the pool thread after the request's tasks, so it opens its own
    connection there, like the tasks do.
    """
    box = Outbox()
    yield box
    if box.messages:
        conn = connect()
        try:
            with conn:
                conn.executemany(
                    "INSERT INTO messages (recipient, text) VALUES (?, ?)", box.messages
                )
        finally:
            conn.close()


def notify_target(box: Outbox, target: str, amount: int) -> None:
    """Background task: tell the receiver (the message is written by the outbox cleanup)."""
    box.send(target, f"you received {amount}")


# NOTE: SQLite integers are 64-bit; a bound keeps every balance (and any sum of a balance
# and an amount) inside that range, so a huge number is a 422, not an OverflowError.
MAX_AMOUNT = 10**12

AccountSchema = Schema.define(
    "Account",
    name=fields.String(required=True, validate=Schema.filled),
    balance=fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_AMOUNT)),
)
TransferSchema = Schema.define(
    "Transfer",
    source=fields.String(required=True, validate=Schema.filled),
    target=fields.String(required=True, validate=Schema.filled),
    amount=fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_AMOUNT)),
)

app = App(title="Bank API", version="1.0.0")
app.on_startup(create_tables)
app.register("db", transaction)  # cleanup="before_response", the default
app.register("outbox", outbox, cleanup="after_tasks")


@app.post(
    "/accounts",
    body=AccountSchema,
    depends=["db"],
    status_code=201,
    responses={409: "An account with that name exists"},
)
def open_account(input, *, db):
    """Open an account; a taken name is a 409 and nothing is written."""
    try:
        db.execute(
            "INSERT INTO accounts (name, balance) VALUES (?, ?)",
            (input.body["name"], input.body["balance"]),
        )
    except sqlite3.IntegrityError:
        raise HTTPException(409, f"account {input.body['name']!r} already exists")
    return input.body


@app.get("/accounts/<name>", depends=["db"], responses={404: "No such account"})
def get_account(input, *, db):
    row = db.execute(
        "SELECT name, balance FROM accounts WHERE name = ?", (input.path["name"],)
    ).fetchone()
    if row is None:
        raise HTTPException(404, f"no account {input.path['name']!r}")
    return {"name": row[0], "balance": row[1]}


@app.post(
    "/transfers",
    body=TransferSchema,
    depends=["db", "outbox"],
    status_code=201,
    responses={404: "No such account", 409: "Insufficient funds"},
)
def transfer(input, *, db, outbox, background):
    """Move money, committed before the 201; audit line and message after the response."""
    source, target, amount = (input.body[k] for k in ("source", "target", "amount"))
    try:
        debited = db.execute(
            "UPDATE accounts SET balance = balance - ? WHERE name = ?", (amount, source)
        )
    except sqlite3.IntegrityError:  # CHECK (balance >= 0)
        raise HTTPException(409, f"{source!r} cannot send {amount}")
    if debited.rowcount != 1:
        raise HTTPException(404, f"no account {source!r}")
    credited = db.execute(
        "UPDATE accounts SET balance = balance + ? WHERE name = ?", (amount, target)
    )
    if credited.rowcount != 1:
        # The debit above is undone: this exception reaches the yield in transaction().
        raise HTTPException(404, f"no account {target!r}")
    (balance,) = db.execute("SELECT balance FROM accounts WHERE name = ?", (source,)).fetchone()
    transfer_id = db.execute(
        "INSERT INTO transfers (source, target, amount) VALUES (?, ?, ?)",
        (source, target, amount),
    ).lastrowid
    # NOTE: the task gets the id, not `db`: it runs on a pool thread after the response,
    # when this request's connection is already committed and closed.
    background.add_task(write_audit, transfer_id)
    background.add_task(notify_target, outbox, target, amount)
    return {
        "id": transfer_id,
        "source": source,
        "target": target,
        "amount": amount,
        "balance": balance,
    }


@app.get("/transfers/<int:transfer_id>", depends=["db"], responses={404: "No such transfer"})
def get_transfer(input, *, db):
    row = db.execute(
        "SELECT id, source, target, amount FROM transfers WHERE id = ?",
        (input.path["transfer_id"],),
    ).fetchone()
    if row is None:
        raise HTTPException(404, f"no transfer {input.path['transfer_id']}")
    return dict(zip(("id", "source", "target", "amount"), row, strict=True))


@app.get("/audit", depends=["db"])
def audit_log(*, db):
    """The audit lines written by the transfers' background tasks."""
    return [event for (event,) in db.execute("SELECT event FROM audit ORDER BY id")]


@app.get("/messages", depends=["db"])
def messages(*, db):
    """The messages the outbox cleanup wrote after the transfers' tasks."""
    return [
        {"to": recipient, "text": text}
        for recipient, text in db.execute("SELECT recipient, text FROM messages ORDER BY id")
    ]


if __name__ == "__main__":
    from funapi_sync.server import gunicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    gunicorn.start(app, host="127.0.0.1", port=int(os.environ.get("PORT", "3000")))
