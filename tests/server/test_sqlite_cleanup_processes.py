"""The default cleanup with a thread-affine SQLite connection: every 201 is committed.

The app (tests/live_apps/sqlite_signup_app.py) is the docs' pattern: ``yield conn;
conn.commit()`` in a generator dependency, plus a background task per request. Driven
through the test client, werkzeug's own Client and a real gunicorn (sync and gthread).
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _helpers import run_gunicorn

pytestmark = pytest.mark.server


LIVE_APPS = Path(__file__).parent / "live_apps"


SIGNUPS = 12


@pytest.fixture
def db_file(tmp_path, monkeypatch):
    path = tmp_path / "signups.sqlite3"
    monkeypatch.setenv("SIGNUP_DB", str(path))
    return path


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


@pytest.mark.server
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_signups_under_gunicorn_are_committed_before_each_201(tmp_path, db_file, worker):
    def call(method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            server.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    threads = ["--threads", "4"] if worker == "gthread" else []
    with run_gunicorn(
        "sqlite_signup_app:app",
        "--worker-class",
        worker,
        *threads,
        tmp_path=tmp_path,
        cwd=LIVE_APPS,
        env={"SIGNUP_DB": str(db_file)},
    ) as server:
        check_signups(
            lambda path, payload: call("POST", path, payload),
            lambda path: call("GET", path),
            db_file,
        )
        assert server.stop() == 0  # SIGTERM drains the tasks
    check_committed(db_file)
    log = server.log()
    assert "ERROR" not in log, log
    assert "Traceback" not in log, log
