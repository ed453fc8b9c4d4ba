"""Dependencies on SQLite: one connection per request, committed or rolled back at cleanup.

Run it:  python examples/dependencies.py          (gunicorn on http://127.0.0.1:3000)
    or:  gunicorn -c python:funapi_sync.server.gunicorn_conf examples.dependencies:app

The accounts live in a SQLite file: $BANK_DB, default ./bank.sqlite3.

    curl -X POST localhost:3000/accounts -H 'Content-Type: application/json' \\
         -d '{"name": "alice", "balance": 100}'
    curl -X POST localhost:3000/transfers -H 'Content-Type: application/json' \\
         -d '{"source": "alice", "target": "bob", "amount": 30}'

``db`` is a generator dependency: the handler, and the background task that writes the
audit line, share one connection and one transaction. After the request's background
tasks, the code after ``yield`` commits; if the handler raised (a refused transfer, say),
the exception arrives at the ``yield`` and everything the request wrote is rolled back.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator

from marshmallow import fields, validate

from funapi_sync import App, HTTPException, Schema

log = logging.getLogger("bank")


def db_path() -> str:
    # NOTE: read per use, not at import, so tests can point a fresh file at the app.
    return os.environ.get("BANK_DB", "bank.sqlite3")


def connect() -> sqlite3.Connection:
    # NOTE: check_same_thread=False because the connection is handed over, never shared:
    # the handler uses it, then the background task and the cleanup on a pool thread.
    conn = sqlite3.connect(db_path(), timeout=30, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def create_tables() -> None:
    conn = connect()
    try:
        # WAL lets readers go on while one request holds its write transaction.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS accounts (
                name TEXT PRIMARY KEY,
                balance INTEGER NOT NULL CHECK (balance >= 0)
            );
            CREATE TABLE IF NOT EXISTS audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                event TEXT NOT NULL
            );
            """
        )
    finally:
        conn.close()


def transaction() -> Iterator[sqlite3.Connection]:
    """One connection and transaction per request: commit on success, else roll back."""
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
app.register("db", transaction)


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
    depends=["db"],
    status_code=201,
    responses={404: "No such account", 409: "Insufficient funds"},
)
def transfer(input, *, db, background):
    """Move money; the audit line is written after the response, in the same transaction."""
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

    def audit() -> None:
        # NOTE: `db` is captured in this closure; it stays open until the request's
        # background tasks are done, and the cleanup then commits this line too.
        db.execute("INSERT INTO audit (event) VALUES (?)", (f"{source} -> {target}: {amount}",))
        log.info("audited transfer %s -> %s", source, target)

    background.add_task(audit)
    return {"source": source, "target": target, "amount": amount, "balance": balance}


@app.get("/audit", depends=["db"])
def audit_log(*, db):
    """The audit lines written by the transfers' background tasks."""
    return [event for (event,) in db.execute("SELECT event FROM audit ORDER BY id")]


if __name__ == "__main__":
    from funapi_sync.server import gunicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    gunicorn.start(app, host="127.0.0.1", port=int(os.environ.get("PORT", "3000")))
