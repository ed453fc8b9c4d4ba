"""The default cleanup with a thread-affine SQLite connection: every 201 is committed.

The app (tests/server/live_apps/sqlite_signup_app.py) is the docs' pattern: ``yield conn;
conn.commit()`` in a generator dependency, plus a background task per request. Driven
through the test client, werkzeug's own Client and a real gunicorn (sync and gthread).
"""

from __future__ import annotations

import importlib.util
import logging
import sqlite3
from pathlib import Path

import pytest
from werkzeug.test import Client

LIVE_APPS = Path(__file__).parent / "server" / "live_apps"
SIGNUPS = 12


@pytest.fixture
def db_file(tmp_path, monkeypatch):
    path = tmp_path / "signups.sqlite3"
    monkeypatch.setenv("SIGNUP_DB", str(path))
    return path


@pytest.fixture
def live(db_file):
    """A fresh import of the live app (its tables made in the fresh file)."""
    spec = importlib.util.spec_from_file_location(
        f"sqlite_signup_app_{db_file.parent.name}", LIVE_APPS / "sqlite_signup_app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(db_file, sql):
    conn = sqlite3.connect(db_file)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def check_signups(post, get, db_file):
    """N signups: each a 201 whose row a request sent right after it sees."""
    for number in range(1, SIGNUPS + 1):
        status, body = post("/signup", {"email": f"u{number}@example.com"})
        assert (status, body) == (201, {"id": number})
        assert get(f"/users/{number}") == (200, {"id": number, "email": f"u{number}@example.com"})
    # A missing referrer fails at COMMIT (deferred foreign key): the client's 409.
    status, body = post("/signup", {"email": "bad@example.com", "referrer": 999})
    assert (status, body) == (409, {"detail": "signup refused: unknown referrer"})
    assert get(f"/users/{SIGNUPS + 1}")[0] == 404
    # The next signup is not blocked by a lock left behind.
    assert post("/signup", {"email": "after@example.com"}) == (201, {"id": SIGNUPS + 1})


def check_committed(db_file):
    assert rows(db_file, "SELECT count(*) FROM users") == [(SIGNUPS + 1,)]
    emails = rows(db_file, "SELECT user_id, sent_to FROM emails ORDER BY user_id")
    # One welcome email per committed signup; none for the refused one.
    assert [user_id for user_id, _ in emails] == list(range(1, SIGNUPS + 2))
    assert "bad@example.com" not in [sent_to for _, sent_to in emails]


def in_process(client):
    def post(path, payload):
        response = client.post(path, json=payload)
        return response.status_code, response.json

    def get(path):
        response = client.get(path)
        return response.status_code, response.json

    return post, get


def test_signups_through_the_test_client_are_committed_before_each_201(live, db_file, caplog):
    post, get = in_process(live.app.test_client())
    check_signups(post, get, db_file)
    check_committed(db_file)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_signups_through_werkzeugs_client_in_testing_mode(live, db_file, caplog):
    live.app.testing = True
    post, get = in_process(Client(live.app))
    check_signups(post, get, db_file)
    check_committed(db_file)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_werkzeugs_client_without_testing_mode_still_commits_before_the_201(live, db_file):
    # The commit does not depend on the response being closed; only the tasks do.
    client = Client(live.app)
    with client.post("/signup", json={"email": "a@example.com"}) as response:
        assert response.status_code == 201
        assert client.get("/users/1").status_code == 200
    assert live.app.background.drain(timeout=30)
    assert rows(db_file, "SELECT user_id FROM emails") == [(1,)]
