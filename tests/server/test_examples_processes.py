"""The examples are programs users copy: run them, through the test client and gunicorn."""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from _helpers import ROOT, run_gunicorn

pytestmark = pytest.mark.server


def rows(db: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(query).fetchall()


@pytest.mark.server
@pytest.mark.timeout(60)
def test_signup_under_gunicorn_from_the_project_root(tmp_path):
    db = tmp_path / "signup.sqlite3"
    with run_gunicorn(
        "examples.signup:app", tmp_path=tmp_path, cwd=ROOT, env={"SIGNUP_DB": str(db)}
    ) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request(
                "POST",
                "/signup",
                body=json.dumps({"name": "Grace", "email": "grace@example.com"}),
                headers={"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            body = json.loads(response.read())
        finally:
            connection.close()
        assert response.status == 201
        assert body["user"]["email"] == "grace@example.com"
        # The tasks run after the response: poll (bounded) until both emails are out.
        deadline = time.monotonic() + 10
        query = "SELECT recipient, subject FROM outbox ORDER BY id"
        while len(rows(db, query)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rows(db, query) == [
            ("grace@example.com", "Welcome!"),
            ("admin@example.com", "New user: Grace"),
        ]
        assert server.stop() == 0
    assert rows(db, "SELECT count(*) FROM signup_log") == [(1,)]
