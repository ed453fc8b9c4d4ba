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


# -- examples/webhooks.py ---------------------------------------------------------------


@pytest.fixture
def webhooks(tmp_path, monkeypatch):
    """examples.webhooks on fresh SQLite files; its backend's runner stopped afterwards."""
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("WEBHOOKS_TASKS_DB", str(tmp_path / "tasks.sqlite3"))
    monkeypatch.setenv("WEBHOOKS_EVENTS_DB", str(tmp_path / "events.sqlite3"))
    import examples.webhooks

    module = importlib.reload(examples.webhooks)
    yield module
    module.app.background.close()


def signed(body: bytes, secret: bytes = b"s3cret") -> dict[str, str]:
    import hashlib
    import hmac

    return {"X-Signature": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()}


def test_webhooks_stores_a_signed_event_before_its_202_and_processes_it_once(webhooks):
    body = b'{"id": "evt_1", "type": "payment.succeeded", "amount": 1200}'
    client = webhooks.app.test_client()
    task_ids = []
    for _ in range(2):  # the sender retries its delivery: processed once
        response = client.post("/webhooks", data=body, headers=signed(body))
        assert response.status_code == 202
        assert response.json["accepted"] == "evt_1"
        task_ids.append(response.json["task"])
    assert webhooks.app.background.drain(timeout=20)
    for task_id in task_ids:  # 202 then poll: the id answered is the stored task's
        polled = client.get(f"/webhooks/tasks/{task_id}").json
        assert polled == {"id": task_id, "status": "SUCCESSFUL", "attempts": 1}
    assert client.get("/webhooks/tasks/nope").status_code == 404
    events = rows(Path(webhooks.EVENTS_DB), "SELECT id, kind, task FROM events")
    assert [(e[0], e[1]) for e in events] == [("evt_1", "payment.succeeded")]
    stored = webhooks.app.background.tasks()
    assert [t.status for t in stored] == ["SUCCESSFUL", "SUCCESSFUL"]
    assert events[0][2] in {t.id for t in stored}


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, b'{"id": "evt_2"}', 401),
        (signed(b'{"id": "evt_2"}', b"wrong"), b'{"id": "evt_2"}', 401),
        (signed(b'{"id": "evt_2"}'), b'{"id": "evt_3"}', 401),  # signed another body
        (signed(b"not json"), b"not json", 422),  # the framework refuses it first
        (signed(b'{"id": 7}'), b'{"id": 7}', 400),
    ],
    ids=["unsigned", "wrong-secret", "other-body", "not-json", "no-string-id"],
)
def test_webhooks_refuses_what_is_not_signed_or_not_an_event(webhooks, headers, body, status):
    response = webhooks.app.test_client().post("/webhooks", data=body, headers=headers)
    assert response.status_code == status
    assert webhooks.app.background.tasks() == []
