"""The default cleanup with a thread-affine SQLite connection: every 201 is committed.

The app (tests/live_apps/sqlite_signup_app.py) is the docs' pattern: ``yield conn;
conn.commit()`` in a generator dependency, plus a background task per request. Driven
through the test client, werkzeug's own Client and a real gunicorn (sync and gthread).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _helpers import run_gunicorn

# NOTE: the same signups and checks as the in-process test (tests/ is on sys.path: its
# conftest.py), here over real gunicorn workers.
from test_sqlite_cleanup import check_committed, check_signups

pytestmark = pytest.mark.server


LIVE_APPS = Path(__file__).parent / "live_apps"


@pytest.fixture
def db_file(tmp_path, monkeypatch):
    path = tmp_path / "signups.sqlite3"
    monkeypatch.setenv("SIGNUP_DB", str(path))
    return path


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
