"""Signups on a SQLite file ($SIGNUP_DB) with the docs' own pattern: a thread-affine
connection in a generator dependency, ``yield conn; conn.commit()``, closed in ``finally``,
and a background task per signup that writes a welcome email on its own connection.

``referrer`` is a deferred foreign key: a signup naming a missing referrer passes the
INSERT and fails at COMMIT, in the dependency's cleanup, which the default
``cleanup="before_response"`` turns into the client's 409.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator

from marshmallow import fields

from funapi_sync import App, HTTPException, Schema

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    referrer INTEGER REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE IF NOT EXISTS emails (user_id INTEGER NOT NULL, sent_to TEXT NOT NULL);
"""


def connect() -> sqlite3.Connection:
    conn = sqlite3.connect(os.environ["SIGNUP_DB"], timeout=30)  # check_same_thread=True
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def create_tables() -> None:
    conn = connect()
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
    finally:
        conn.close()


def get_db() -> Iterator[sqlite3.Connection]:
    conn = connect()
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def send_welcome(user_id: int, email: str) -> None:
    conn = connect()
    try:
        with conn:
            conn.execute("INSERT INTO emails (user_id, sent_to) VALUES (?, ?)", (user_id, email))
    finally:
        conn.close()


SignupSchema = Schema.define(
    "Signup",
    email=fields.String(required=True, validate=Schema.filled),
    referrer=fields.Integer(load_default=None),
)

create_tables()
app = App(title="sqlite signups")
app.register("db", get_db)


@app.exception_handler(sqlite3.IntegrityError)
def integrity_error(req, exc):
    return {"detail": "signup refused: unknown referrer"}, 409


@app.post("/signup", body=SignupSchema, depends=["db"], status_code=201)
def signup(input, *, db, background):
    cursor = db.execute(
        "INSERT INTO users (email, referrer) VALUES (?, ?)",
        (input.body["email"], input.body["referrer"]),
    )
    user_id = cursor.lastrowid
    background.add_task(send_welcome, user_id, input.body["email"])
    return {"id": user_id}


@app.get("/users/<int:user_id>", depends=["db"])
def get_user(input, *, db):
    row = db.execute("SELECT id, email FROM users WHERE id = ?", (input.path["user_id"],))
    found = row.fetchone()
    if found is None:
        raise HTTPException(404)
    return {"id": found[0], "email": found[1]}
