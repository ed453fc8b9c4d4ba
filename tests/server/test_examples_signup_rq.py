"""examples/signup_rq.py: the seed's signup with its tasks on RQ, a real Redis and worker."""

from __future__ import annotations

import importlib
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import redis
from _helpers import ROOT
from redis_server import redis_server
from rq import Queue

pytestmark = [pytest.mark.server, pytest.mark.timeout(90)]


def rows(db: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(query).fetchall()


@pytest.fixture
def signup_rq(tmp_path, monkeypatch):
    with redis_server(tmp_path) as server:
        monkeypatch.syspath_prepend(str(ROOT))
        monkeypatch.setenv("SIGNUP_DB", str(tmp_path / "signup.sqlite3"))
        monkeypatch.setenv("REDIS_URL", server.url)
        import examples.signup
        import examples.signup_rq

        importlib.reload(examples.signup)
        yield importlib.reload(examples.signup_rq)


def test_signup_answers_201_and_a_worker_later_sends_the_emails(signup_rq) -> None:
    client = signup_rq.app.test_client()
    response = client.post("/signup", json={"name": "Ada", "email": "ada@example.com"})
    assert response.status_code == 201
    assert response.json["user"] == {"id": 1, "name": "Ada", "email": "ada@example.com"}
    db = Path(os.environ["SIGNUP_DB"])
    # Handed to RQ, not run here: one job for the request, nothing in the outbox yet.
    assert client.get("/outbox").json == []
    assert Queue("signup", connection=redis.Redis.from_url(signup_rq.REDIS_URL)).count == 1

    # The documented command: funapi-sync worker APP (startup hooks, then an rq worker).
    done = subprocess.run(
        [sys.executable, "-m", "funapi_sync", "worker", "examples.signup_rq:app", "--burst"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(db, "SELECT recipient, subject FROM outbox ORDER BY id") == [
        ("ada@example.com", "Welcome!"),
        ("admin@example.com", "New user: Ada"),
    ]
    assert rows(db, "SELECT user_id FROM signup_log") == [(1,)]


def test_an_invalid_signup_enqueues_nothing(signup_rq) -> None:
    client = signup_rq.app.test_client()
    assert client.post("/signup", json={"name": ""}).status_code == 422
    assert Queue("signup", connection=redis.Redis.from_url(signup_rq.REDIS_URL)).count == 0
