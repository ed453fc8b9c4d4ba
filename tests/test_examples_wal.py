"""The SQLite examples set their database up once per boot, under a lock beside it."""

from __future__ import annotations

import importlib
import sqlite3
import threading
from contextlib import closing

import pytest

EXAMPLES = {
    "examples.signup": ("SIGNUP_DB", "create_tables"),
    "examples.store": ("STORE_DB", "create_storage"),
    "examples.dependencies": ("BANK_DB", "create_tables"),
    "examples.todo_htmx.app": ("TODO_DB", "create_tables"),
}


@pytest.mark.parametrize("module_name", sorted(EXAMPLES))
def test_eight_setups_racing_on_a_fresh_database_all_succeed(module_name, tmp_path, monkeypatch):
    env, setup_name = EXAMPLES[module_name]
    module = importlib.import_module(module_name)
    db = tmp_path / "race.sqlite3"
    monkeypatch.setenv(env, str(db))
    if hasattr(module, "DB_PATH"):
        monkeypatch.setattr(module, "DB_PATH", db)
    monkeypatch.setenv("STORE_UPLOADS", str(tmp_path / "uploads"))
    setup = getattr(module, setup_name)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def boot() -> None:
        barrier.wait(timeout=10)
        try:
            setup()
        except BaseException as exc:  # the failure the test names
            errors.append(exc)

    threads = [threading.Thread(target=boot) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert (tmp_path / "race.sqlite3.lock").exists()
