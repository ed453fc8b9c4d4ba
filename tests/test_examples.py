"""The examples are programs users copy: run them, through the test client and gunicorn."""

from __future__ import annotations

import importlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def rows(db: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(query).fetchall()


@pytest.fixture
def signup(tmp_path, monkeypatch):
    """examples.signup, re-imported so that its app and DB_PATH use a fresh SQLite file."""
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setenv("SIGNUP_DB", str(tmp_path / "signup.sqlite3"))
    import examples.signup

    return importlib.reload(examples.signup)


def test_signup_answers_201_and_its_tasks_fill_the_outbox(signup):
    client = signup.app.test_client()
    response = client.post("/signup", json={"name": "Ada", "email": "ada@example.com"})
    assert response.status_code == 201
    body = response.json
    assert body["message"] == "Check your email!"
    assert body["user"] == {"id": 1, "name": "Ada", "email": "ada@example.com"}
    # The test client returns after the request's tasks ran.
    outbox = rows(signup.DB_PATH, "SELECT recipient, subject FROM outbox ORDER BY id")
    assert outbox == [("ada@example.com", "Welcome!"), ("admin@example.com", "New user: Ada")]
    assert rows(signup.DB_PATH, "SELECT user_id FROM signup_log") == [(1,)]
    assert client.get("/outbox").json == [
        {"recipient": "ada@example.com", "subject": "Welcome!"},
        {"recipient": "admin@example.com", "subject": "New user: Ada"},
    ]


def test_an_invalid_signup_is_a_422_and_sends_nothing(signup):
    client = signup.app.test_client()
    response = client.post("/signup", json={"name": "", "unknown": 1})
    assert response.status_code == 422
    locations = [error["loc"] for error in response.json["detail"]]
    assert sorted(locations) == [["body", "email"], ["body", "name"]]
    assert client.get("/outbox").json == []
    assert rows(signup.DB_PATH, "SELECT count(*) FROM users") == [(0,)]
