"""examples/dependencies.py on a real SQLite file: commit, rollback, and the audit task."""

from __future__ import annotations

import importlib
import logging
import sqlite3
from pathlib import Path

import pytest
from werkzeug.test import Client

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def db_file(tmp_path, monkeypatch):
    path = tmp_path / "bank.sqlite3"
    monkeypatch.setenv("BANK_DB", str(path))
    return path


@pytest.fixture
def bank(db_file, monkeypatch):
    """examples.dependencies, re-imported: a fresh app whose startup makes the tables."""
    monkeypatch.syspath_prepend(str(ROOT))
    import examples.dependencies

    return importlib.reload(examples.dependencies)


@pytest.fixture
def client(bank):
    return bank.app.test_client()


def balances(db_file) -> dict[str, int]:
    conn = sqlite3.connect(db_file)
    try:
        return dict(conn.execute("SELECT name, balance FROM accounts"))
    finally:
        conn.close()


def open_accounts(client, **accounts: int) -> None:
    for name, balance in accounts.items():
        response = client.post("/accounts", json={"name": name, "balance": balance})
        assert response.status_code == 201, response.json


def test_the_database_file_comes_from_the_environment(bank, db_file):
    assert bank.db_path() == str(db_file)


def test_transfer_commits_before_the_response_and_the_tasks_write_after_it(client, db_file):
    open_accounts(client, alice=100, bob=5)
    response = client.post("/transfers", json={"source": "alice", "target": "bob", "amount": 30})
    assert response.status_code == 201
    assert response.json == {
        "id": 1,
        "source": "alice",
        "target": "bob",
        "amount": 30,
        "balance": 70,
    }
    # Read through another connection: committed before the response was sent.
    assert balances(db_file) == {"alice": 70, "bob": 35}
    assert client.get("/transfers/1").json == {
        "id": 1,
        "source": "alice",
        "target": "bob",
        "amount": 30,
    }
    # The test client returns once the tasks and the after_tasks cleanup have run.
    assert client.get("/audit").json == ["alice -> bob: 30"]
    assert client.get("/messages").json == [{"to": "bob", "text": "you received 30"}]
    assert client.get("/accounts/bob").json == {"name": "bob", "balance": 35}


def test_many_transfers_each_committed_and_audited_once(client, db_file, caplog):
    open_accounts(client, alice=1000, bob=0)
    for number in range(1, 21):
        response = client.post("/transfers", json={"source": "alice", "target": "bob", "amount": 1})
        assert response.status_code == 201
        assert client.get(f"/transfers/{number}").status_code == 200
    assert balances(db_file) == {"alice": 980, "bob": 20}
    assert client.get("/audit").json == ["alice -> bob: 1"] * 20
    assert len(client.get("/messages").json) == 20
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_werkzeug_client_in_testing_mode_sees_the_tasks_after_reading_the_body(bank, db_file):
    bank.app.testing = True
    client = Client(bank.app)
    open_accounts(client, alice=100, bob=0)
    response = client.post("/transfers", json={"source": "alice", "target": "bob", "amount": 7})
    assert response.json["balance"] == 93  # reading the body ran the tasks, here
    assert Client(bank.app).get("/audit").json == ["alice -> bob: 7"]
    assert Client(bank.app).get("/messages").json == [{"to": "bob", "text": "you received 7"}]


def test_transfer_to_a_missing_account_rolls_back_the_debit(client, db_file):
    open_accounts(client, alice=100)
    response = client.post("/transfers", json={"source": "alice", "target": "zed", "amount": 30})
    assert response.status_code == 404
    assert response.json == {"detail": "no account 'zed'"}
    assert balances(db_file) == {"alice": 100}
    assert client.get("/audit").json == []  # the audit task was dropped with the error


def test_overdraft_is_refused_and_nothing_is_written(client, db_file):
    open_accounts(client, alice=10, bob=0)
    response = client.post("/transfers", json={"source": "alice", "target": "bob", "amount": 11})
    assert response.status_code == 409
    assert response.json == {"detail": "'alice' cannot send 11"}
    assert balances(db_file) == {"alice": 10, "bob": 0}
    assert client.get("/audit").json == []


def test_duplicate_account_is_a_409_and_keeps_the_first(client, db_file):
    open_accounts(client, alice=10)
    response = client.post("/accounts", json={"name": "alice", "balance": 99})
    assert response.status_code == 409
    assert response.json == {"detail": "account 'alice' already exists"}
    assert balances(db_file) == {"alice": 10}


def test_invalid_transfer_is_a_422(client):
    response = client.post("/transfers", json={"source": "alice", "target": "bob", "amount": 0})
    assert response.status_code == 422
    assert response.json["detail"][0]["loc"] == ["body", "amount"]


def test_unknown_account_is_a_404(client):
    assert client.get("/accounts/nobody").status_code == 404
