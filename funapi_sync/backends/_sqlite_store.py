"""The SQLite backend's store: the file, its schema, and every statement run on it.

Internal. What many gunicorn processes sharing one file need, each with its reason:

- every write is ``BEGIN IMMEDIATE`` under a busy timeout: a DEFERRED transaction that
  reads and then writes fails at once with "database is locked" when another process
  wrote meanwhile, whatever the timeout;
- the file is switched to WAL once, under an ``flock`` beside it: two processes opening
  a new file together otherwise race on the switch;
- a connection is opened per thread (threads sharing one can get wrong results, CPython
  issue 118172) and per process: one made before ``fork()`` is never used, nor closed,
  after it (SQLite's "How To Corrupt", §2.6);
- a task's row is keyed by the id made before it is written, so an insert retried after
  an ambiguous "locked" error cannot store it twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from .. import _process

logger = logging.getLogger("funapi_sync.background")

#: Seconds a connection waits for another process's write lock before "locked".
BUSY_TIMEOUT = 10.0
#: Statuses of rows not finished; a row behind one of these in its request waits.
UNFINISHED = ("READY", "RUNNING")
#: Times a row may be taken over after its runner died before it is failed for good.
MAX_LOST = 3
#: File systems whose locks SQLite cannot rely on (from /proc/mounts).
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "afs", "9p")
NETWORK_FUSE = ("sshfs", "s3fs", "gcsfuse", "glusterfs", "cephfs", "rclone", "davfs")

SCHEMA = """
CREATE TABLE IF NOT EXISTS funapi_tasks (
    id TEXT PRIMARY KEY,
    batch TEXT NOT NULL,
    position INTEGER NOT NULL,
    label TEXT NOT NULL,
    name TEXT NOT NULL,
    call TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lost INTEGER NOT NULL DEFAULT 0,
    due REAL NOT NULL,
    lease_until REAL,
    owner TEXT,
    enqueued_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS funapi_tasks_claim ON funapi_tasks (status, due);
CREATE INDEX IF NOT EXISTS funapi_tasks_batch ON funapi_tasks (batch, position);
CREATE INDEX IF NOT EXISTS funapi_tasks_finished ON funapi_tasks (finished_at);
"""

_COLUMNS = (
    "id, batch, position, label, name, call, status, attempts, lost, due, lease_until,"
    " owner, enqueued_at, started_at, finished_at, error, result"
)

# The head of each request: the first row not finished. Claimable when it is due, or
# when the process running it stopped renewing its lease. PERF: one query per case, each
# an equality on status, so the (status, due) index gives the order with no sort.
_HEAD = """
  AND NOT EXISTS (
    SELECT 1 FROM funapi_tasks AS p
    WHERE p.batch = t.batch AND p.position < t.position AND p.status IN ('READY', 'RUNNING'))
"""
_CLAIM_READY = (
    "SELECT {columns} FROM funapi_tasks AS t WHERE t.status = 'READY' AND t.due <= :now"
    + _HEAD
    + "ORDER BY t.due LIMIT :limit"
)
_CLAIM_EXPIRED = (
    "SELECT {columns} FROM funapi_tasks AS t WHERE t.status = 'RUNNING'"
    " AND t.lease_until < :now" + _HEAD + "LIMIT :limit"
)
# The next task of a request this process just ran a task of.
_CLAIM_NEXT = (
    "SELECT {columns} FROM funapi_tasks AS t WHERE t.batch = :batch"
    " AND t.status IN ('READY', 'RUNNING') ORDER BY t.position LIMIT 1"
)


def new_task_id() -> str:
    """A task id: URL-safe, unique across processes and restarts (128 random bits)."""
    return secrets.token_urlsafe(16)


class Row(NamedTuple):
    """One stored task, as read back."""

    id: str
    batch: str
    position: int
    label: str
    name: str
    call: str
    status: str
    attempts: int
    lost: int
    due: float
    lease_until: float | None
    owner: str | None
    enqueued_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    result: str | None

    @property
    def dotted(self) -> str:
        """The task's name as logs and ``status()`` give it: ``module.qualname``."""
        return self.name.replace(":", ".", 1)


class NewRow(NamedTuple):
    """A task to insert: its id, its dotted name and its JSON call."""

    id: str
    name: str
    call: str


def refuse_network_path(path: str, mounts: str | None = None) -> None:
    """Raise ValueError when ``path`` lies on a network file system (read from /proc/mounts)."""
    if mounts is None:
        try:
            with open("/proc/mounts", encoding="utf-8", errors="replace") as file:
                mounts = file.read()
        except OSError:
            return  # not Linux: nothing to read, nothing refused
    directory = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    best, best_type = "", ""
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = directory == point or directory.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, parts[2]
    fuse = best_type.startswith("fuse.") and best_type[5:] in NETWORK_FUSE
    if best_type in NETWORK_FS or fuse:
        raise ValueError(
            f"SQLiteBackend({path!r}): the file is on {best_type} ({best}), a network file"
            " system, where SQLite's locks do not hold across machines and the file can be"
            " corrupted; put it on a local disk of this host (e.g."
            " /var/lib/<app>/funapi_tasks.sqlite3), or use"
            " funapi_sync.backends.rq.RQBackend for work that must leave the host"
        )


class Store:
    """The task table in one SQLite file, used from any thread of any process.

    :param path: the database file (created, with its directory's ``.lock`` beside it).
    :param insert_sync: the ``synchronous`` of the accepted tasks' insert: ``"NORMAL"``
        (in the WAL once committed: survives any crash of a process) or ``"FULL"`` (an fsync
        before the commit returns: survives a power loss or an OS crash too).
    """

    def __init__(self, path: str, insert_sync: str = "NORMAL") -> None:
        self.path = os.path.abspath(path)
        self.insert_sync = insert_sync
        refuse_network_path(self.path)
        self._local = threading.local()
        self._lock = threading.Lock()
        # Every connection open, so a forked child can abandon them; weak, so that a
        # thread's connection closes with the thread (a dev server's thread per request).
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        # NOTE: the file is made on first use, not here: importing an app (its docs
        # build, a --preload master) creates nothing in the working directory.
        self._ready = False
        _stores.add(self)

    # -- connections ------------------------------------------------------------------

    def _setup(self) -> None:
        """Create the file and schema and switch it to WAL, once, under a file lock."""
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        # NOTE: whoever can write the file can make the app call any importable function
        # with JSON arguments: a new file is readable and writable by its owner only
        # (SQLite gives its -wal and -shm files the same mode).
        for made in (self.path, self.path + ".lock"):
            os.close(os.open(made, os.O_CREAT | os.O_RDWR, 0o600))
        with open(self.path + ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
                try:
                    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                    if str(mode).lower() != "wal":
                        raise ValueError(
                            f"SQLiteBackend({self.path!r}): the file cannot use WAL mode"
                            f" (journal_mode is {mode}); use a file on a local disk"
                        )
                    conn.executescript(SCHEMA)
                finally:
                    conn.close()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def connection(self, synchronous: str = "NORMAL") -> sqlite3.Connection:
        """This thread's connection in this process, opened on first use.

        :param synchronous: ``"FULL"`` makes the next commits survive a power loss (the
            insert of accepted tasks with ``durable="power"``); ``"NORMAL"`` survives any
            crash of a process (WAL: a commit is in the file, unsynced), not of the machine.
        """
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            if not self._ready:
                with self._lock:
                    if not self._ready:
                        self._setup()
                        self._ready = True
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=True,
                factory=_Connection,
            )
            local.conn, local.pid, local.synchronous = conn, os.getpid(), ""
            with self._lock:
                self._connections.add(conn)
        if local.synchronous != synchronous:
            conn.execute(f"PRAGMA synchronous={synchronous}")
            local.synchronous = synchronous
        return conn

    @contextlib.contextmanager
    def write(self, synchronous: str = "NORMAL") -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction, committed on success, rolled back on error."""
        conn = self.connection(synchronous)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def forget_in_child(self) -> None:
        # NOTE: never close a connection inherited from the parent: closing it can
        # checkpoint or delete the parent's WAL. Keep it referenced, unused, for ever.
        with contextlib.suppress(Exception):
            _abandoned.extend(self._connections)
        self._connections = weakref.WeakSet()
        self._lock = threading.Lock()
        self._local = threading.local()

    def close(self) -> None:
        """Close this process's connections (tests; a process's exit needs nothing)."""
        with self._lock:
            mine = list(self._connections)
            self._connections = weakref.WeakSet()
        for conn in mine:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # -- the request side -------------------------------------------------------------

    def insert(self, batch: str, label: str, rows: Sequence[NewRow]) -> None:
        """Store one request's tasks, in order; storing the same ids again does nothing."""
        now = time.time()
        values = [
            (row.id, batch, position, label, row.name, row.call, now, now)
            for position, row in enumerate(rows)
        ]
        for attempt in range(3):
            try:
                with self.write(self.insert_sync) as conn:
                    conn.executemany(
                        "INSERT OR IGNORE INTO funapi_tasks (id, batch, position, label, name,"
                        " call, status, due, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, 'READY', ?, ?)",
                        values,
                    )
                return
            except sqlite3.OperationalError as exc:
                # NOTE: "locked" after the busy timeout may hide a commit that happened:
                # the ids make the retry harmless.
                if attempt == 2 or not _is_busy(exc):
                    raise

    # -- the runner side --------------------------------------------------------------

    def claim(self, owner: str, lease: float, limit: int, batch: str | None = None) -> list[Row]:
        """Take up to ``limit`` claimable heads (or ``batch``'s next task) for ``owner``."""
        now = time.time()
        params = {"now": now, "limit": limit, "batch": batch}
        columns = _prefixed("t")
        with self.write() as conn:
            if batch is not None:
                found = conn.execute(_CLAIM_NEXT.format(columns=columns), params).fetchone()
                rows = [] if found is None else [Row(*found)]
                rows = [row for row in rows if _claimable(row, now)]
            else:
                rows = [
                    Row(*f) for f in conn.execute(_CLAIM_EXPIRED.format(columns=columns), params)
                ]
                if len(rows) < limit:
                    params["limit"] = limit - len(rows)
                    query = _CLAIM_READY.format(columns=columns)
                    rows += [Row(*found) for found in conn.execute(query, params)]
            for row in rows:
                conn.execute(
                    "UPDATE funapi_tasks SET status = 'RUNNING', owner = ?, lease_until = ?,"
                    " attempts = attempts + 1, lost = lost + ?, started_at = ?,"
                    " finished_at = NULL WHERE id = ?",
                    (owner, now + lease, int(row.status == "RUNNING"), now, row.id),
                )
        return [
            row._replace(attempts=row.attempts + 1, lost=row.lost + int(row.status == "RUNNING"))
            for row in rows
        ]

    def finish(
        self, row: Row, owner: str, status: str, error: str | None, result: str | None
    ) -> None:
        """Record ``row``'s end: SUCCESSFUL or FAILED, if this owner still holds it."""
        now = time.time()
        with self.write() as conn:
            conn.execute(
                "UPDATE funapi_tasks SET status = ?, finished_at = ?, error = ?, result = ?,"
                " lease_until = NULL WHERE id = ? AND owner = ? AND status = 'RUNNING'",
                (status, now, error, result, row.id, owner),
            )

    def retry_later(self, row: Row, owner: str, due: float, error: str) -> None:
        """Put ``row`` back to READY until ``due`` (a retry), keeping its error."""
        with self.write() as conn:
            conn.execute(
                "UPDATE funapi_tasks SET status = 'READY', due = ?, error = ?,"
                " lease_until = NULL, owner = NULL WHERE id = ? AND owner = ?"
                " AND status = 'RUNNING'",
                (due, error, row.id, owner),
            )

    def retry(self, task_id: str) -> bool:
        """Put the FAILED row ``task_id`` back to READY, due now; whether there was one.

        Its attempts count on and its error stays until it runs; ``lost`` starts again, so
        a row failed for its dead runners can be tried anew. The request's later rows that
        are still READY wait behind it again (the head rule); those that ran are left be.
        """
        with self.write() as conn:
            cursor = conn.execute(
                "UPDATE funapi_tasks SET status = 'READY', due = ?, lost = 0, owner = NULL,"
                " lease_until = NULL, finished_at = NULL WHERE id = ? AND status = 'FAILED'",
                (time.time(), task_id),
            )
            return cursor.rowcount == 1

    def forget(self, task_id: str) -> bool:
        """Delete the finished row ``task_id``; whether there was one (READY/RUNNING stay)."""
        with self.write() as conn:
            cursor = conn.execute(
                "DELETE FROM funapi_tasks WHERE id = ?"
                " AND status IN ('SUCCESSFUL', 'FAILED', 'DROPPED')",
                (task_id,),
            )
            return cursor.rowcount == 1

    def renew(self, ids: Sequence[str], owner: str, lease: float) -> None:
        """Push back the lease of the rows this owner is running (the heartbeat)."""
        if not ids:
            return
        marks = ", ".join("?" * len(ids))
        with self.write() as conn:
            conn.execute(
                f"UPDATE funapi_tasks SET lease_until = ? WHERE owner = ? AND status ="
                f" 'RUNNING' AND id IN ({marks})",
                (time.time() + lease, owner, *ids),
            )

    # -- upkeep -----------------------------------------------------------------------

    def prune(self, keep: float | None) -> int:
        """Delete finished rows older than ``keep`` seconds (a bounded batch); how many."""
        if keep is None:
            return 0
        with self.write() as conn:
            cursor = conn.execute(
                "DELETE FROM funapi_tasks WHERE id IN (SELECT id FROM funapi_tasks WHERE"
                " finished_at < ? AND status IN ('SUCCESSFUL', 'FAILED') LIMIT 1000)",
                (time.time() - keep,),
            )
            return cursor.rowcount

    def checkpoint(self) -> None:
        """Fold the WAL back into the file and truncate it, so it does not grow for ever."""
        self.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    # -- reading ----------------------------------------------------------------------

    def get(self, task_id: str) -> Row | None:
        found = (
            self.connection()
            .execute(f"SELECT {_COLUMNS} FROM funapi_tasks WHERE id = ?", (task_id,))
            .fetchone()
        )
        return None if found is None else Row(*found)

    def list(self, status: str | None, limit: int) -> list[Row]:
        where = "" if status is None else "WHERE status = ?"
        params: tuple[Any, ...] = () if status is None else (status,)
        return [
            Row(*found)
            for found in self.connection().execute(
                f"SELECT {_COLUMNS} FROM funapi_tasks {where}"
                " ORDER BY enqueued_at DESC, position DESC LIMIT ?",
                (*params, limit),
            )
        ]

    def counts(self) -> dict[str, int]:
        return dict(
            self.connection().execute("SELECT status, count(*) FROM funapi_tasks GROUP BY status")
        )

    def pending(self) -> int:
        """Rows that some process will still run: READY, or RUNNING (any lease)."""
        return int(
            self.connection()
            .execute("SELECT count(*) FROM funapi_tasks WHERE status IN ('READY', 'RUNNING')")
            .fetchone()[0]
        )


class _Connection(sqlite3.Connection):
    """A connection a weak set can hold (sqlite3.Connection itself takes no weak reference)."""


def _claimable(row: Row, now: float) -> bool:
    if row.status == "READY":
        return row.due <= now
    return row.lease_until is not None and row.lease_until < now


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name.strip()}" for name in _COLUMNS.split(","))


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


#: Every store made in this process; a forked child abandons their connections.
_stores: weakref.WeakSet[Store] = weakref.WeakSet()
#: Connections inherited through fork(): kept alive, never used, never closed.
_abandoned: list[sqlite3.Connection] = []


def _forget_in_child() -> None:
    for store in list(_stores):
        store.forget_in_child()


_process.at_fork_in_child(_forget_in_child)
