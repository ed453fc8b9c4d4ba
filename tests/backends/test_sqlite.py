"""The SQLite backend's store: leases, WAL, connections, pruning, network paths (no process)."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from funapi_sync import App
from funapi_sync.backends._sqlite_store import NewRow, Store, refuse_network_path
from funapi_sync.backends.sqlite import SQLiteBackend


def rows(*ids: str) -> list[NewRow]:
    return [NewRow(i, "test_conformance:record", '{"args": [], "kwargs": {}}') for i in ids]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    made = Store(str(tmp_path / "sub" / "tasks.sqlite3"))
    yield made
    made.close()


def test_nothing_is_created_until_first_use(tmp_path: Path) -> None:
    # Importing an app (a docs build, a --preload master) must not make its files.
    Store(str(tmp_path / "later.sqlite3"))
    assert list(tmp_path.iterdir()) == []


def test_the_file_is_in_wal_mode_with_its_lock_beside_it(store: Store) -> None:
    store.connection()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert os.path.exists(store.path + ".lock")


def test_a_new_file_is_its_owners_alone(store: Store) -> None:
    # Whoever can write it can make the app call any importable function.
    for path in (store.path, store.path + ".lock", store.path + "-wal"):
        store.connection().execute("SELECT 1")
        assert os.stat(path).st_mode & 0o077 == 0, path


def test_each_thread_has_its_own_connection(store: Store) -> None:
    theirs: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: theirs.append(store.connection()))
    thread.start()
    thread.join(10)
    assert theirs
    assert theirs[0] is not store.connection()
    assert store.connection() is store.connection()


def test_a_threads_connection_goes_with_the_thread(store: Store) -> None:
    # A dev server runs each request on a new thread: its connection must not pile up.
    import gc

    for _ in range(5):
        thread = threading.Thread(target=store.connection)
        thread.start()
        thread.join(10)
    gc.collect()
    assert len(store._connections) <= 1


def test_a_forked_child_never_uses_nor_closes_the_parents_connection(store: Store) -> None:
    parents = store.connection()
    store.forget_in_child()  # what the at-fork hook runs in the child
    assert store.connection() is not parents
    parents.execute("SELECT 1")  # still open: the child left it alone


def test_a_request_is_claimed_head_first_and_its_next_task_waits(store: Store) -> None:
    store.insert("b1", "POST /", rows("a", "b"))
    first = store.claim("me", lease=30, limit=10)
    assert [row.id for row in first] == ["a"]  # "b" waits behind "a"
    assert store.claim("other", lease=30, limit=10) == []
    store.finish(first[0], "me", "SUCCESSFUL", None, None)
    assert [row.id for row in store.claim("other", lease=30, limit=10)] == ["b"]


def test_an_expired_lease_is_taken_over_and_counts_an_attempt(store: Store) -> None:
    store.insert("b1", "POST /", rows("a"))
    (mine,) = store.claim("dead", lease=0.05, limit=1)
    assert store.claim("alive", lease=30, limit=1) == []  # leased
    time.sleep(0.1)  # NOTE: a lease is wall-clock time; nothing to wait on but the clock
    (taken,) = store.claim("alive", lease=30, limit=1)
    assert (taken.id, taken.attempts, taken.lost) == ("a", 2, 1)
    store.finish(mine, "dead", "SUCCESSFUL", None, None)  # the dead owner's late write
    assert store.get("a").status == "RUNNING"  # is ignored: the row is no longer its


def test_a_renewed_lease_is_not_taken_over(store: Store) -> None:
    store.insert("b1", "POST /", rows("a"))
    store.claim("me", lease=0.05, limit=1)
    store.renew(["a"], "me", lease=30)
    time.sleep(0.1)
    assert store.claim("other", lease=30, limit=1) == []


def test_finished_rows_are_pruned_after_keep_and_the_wal_is_truncated(store: Store) -> None:
    store.insert("b1", "POST /", rows("a", "b"))
    (row,) = store.claim("me", lease=30, limit=1)
    store.finish(row, "me", "SUCCESSFUL", None, None)
    assert store.prune(None) == 0
    assert store.prune(3600) == 0
    assert store.prune(0) == 1  # "b" is READY: never pruned
    assert store.get("b") is not None
    store.checkpoint()
    assert os.path.getsize(store.path + "-wal") == 0


@pytest.mark.parametrize("fstype", ["nfs4", "cifs", "fuse.sshfs", "smb3"])
def test_a_path_on_a_network_file_system_is_refused(fstype: str) -> None:
    mounts = f"/dev/sda1 / ext4 rw 0 0\nserver:/share /mnt/share {fstype} rw 0 0\n"
    with pytest.raises(ValueError, match=f"is on {fstype} .*put it on a local disk"):
        refuse_network_path("/mnt/share/app/tasks.sqlite3", mounts)
    refuse_network_path("/srv/app/tasks.sqlite3", mounts)  # local: allowed
    refuse_network_path("/mnt/shared/tasks.sqlite3", mounts)  # a sibling, not inside


def test_the_named_backend_is_sqlite_with_its_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = App(background_backend="sqlite")
    assert isinstance(app.background, SQLiteBackend)
    assert app.background.store.path == str(tmp_path / "funapi_tasks.sqlite3")
    assert (app.background.lease, app.background.persist) == (30.0, "after_response")
    app.background.close()


def test_stats_count_the_stored_tasks(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "t.sqlite3"))
    backend.store.insert("b1", "POST /", rows("a", "b"))
    assert backend.stats()["queued"] == 2
    backend.close()


# -- retry() and forget() (the tasks page's buttons) --------------------------------------

#: Keys for which flaky() raises; a test empties it to let the retry succeed.
BROKEN: set[str] = set()


def flaky(key: str) -> str:
    if key in BROKEN:
        raise ValueError(f"{key} is broken")
    return key


def test_retry_puts_a_failed_row_back_and_its_requests_waiting_rows_follow_it(
    store: Store,
) -> None:
    store.insert("b1", "POST /", rows("a", "b"))
    (a,) = store.claim("me", lease=30, limit=10)
    store.finish(a, "me", "FAILED", "ValueError: no", None)
    assert not store.retry("b")  # READY: nothing to retry
    assert not store.retry("nope")

    assert store.retry("a")

    again = store.get("a")
    assert (again.status, again.attempts, again.error) == ("READY", 1, "ValueError: no")
    assert again.finished_at is None
    assert again.due <= time.time()
    (claimed,) = store.claim("me", lease=30, limit=10)  # "b" waits behind "a" again
    assert (claimed.id, claimed.attempts) == ("a", 2)
    assert not store.retry("a")  # RUNNING now


def test_forget_deletes_a_finished_row_and_refuses_a_ready_or_running_one(store: Store) -> None:
    store.insert("b1", "POST /", rows("a", "b"))
    (a,) = store.claim("me", lease=30, limit=10)
    assert not store.forget("a")  # RUNNING
    assert not store.forget("b")  # READY
    store.finish(a, "me", "SUCCESSFUL", None, None)
    assert store.forget("a")
    assert store.get("a") is None
    assert not store.forget("a")
    assert store.get("b") is not None


def test_a_retried_task_runs_again_as_attempt_two_and_can_then_be_forgotten(
    tmp_path: Path,
) -> None:
    from werkzeug.test import Client

    app = App(background_backend=SQLiteBackend(str(tmp_path / "t.sqlite3")))

    @app.post("/go")
    def go(*, background):
        return {"id": background.add_task(flaky, "retried").id}, 202

    BROKEN.add("retried")
    logging.getLogger("funapi_sync.background").disabled = True  # the failure's WARNING
    try:
        task_id = Client(app).post("/go", buffered=True).json["id"]
        assert app.background.drain(timeout=10)
        assert app.background.status(task_id).status == "FAILED"
        BROKEN.discard("retried")

        assert app.background.retry(task_id)
        assert app.background.drain(timeout=10)
    finally:
        logging.getLogger("funapi_sync.background").disabled = False
    done = app.background.status(task_id)
    assert (done.status, done.attempts, done.error, done.result) == (
        "SUCCESSFUL",
        2,
        None,
        "retried",
    )
    assert not app.background.retry(task_id)  # SUCCESSFUL: nothing to retry
    assert app.background.forget(task_id)
    assert app.background.status(task_id) is None
    assert not app.background.forget(task_id)
    app.background.close()


@pytest.mark.parametrize(("durable", "level"), [("process", 1), ("power", 2)])
def test_durable_sets_whether_the_accepted_tasks_insert_waits_for_an_fsync(
    tmp_path: Path, durable: str, level: int
) -> None:
    # NOTE: PRAGMA synchronous: 1 is NORMAL (survives a process's crash), 2 FULL (an fsync).
    backend = SQLiteBackend(str(tmp_path / "t.sqlite3"), durable=durable)
    backend.store.insert("b1", "POST /", rows("a"))
    assert backend.store._local.conn.execute("PRAGMA synchronous").fetchone() == (level,)
    assert f"durable={durable!r}" in repr(backend)
    backend.close()


def test_an_unknown_durable_is_refused_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"durable='disk'.*'process'.*'power'"):
        SQLiteBackend(str(tmp_path / "t.sqlite3"), durable="disk")
