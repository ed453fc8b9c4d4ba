"""TaskStatus, and the bounded store in which an in-process backend keeps its tasks' states.

``app.background.status(task_id)`` and ``app.background.tasks(status=None, limit=100)``
answer with :class:`TaskStatus` (SPEC §13). The thread, inline and record backends answer
from a :class:`StatusStore`: the most recent ``App(background_status_size=...)`` tasks of
this process, one :class:`TaskRecord` each, updated in place by the thread that runs the
task. A durable backend answers from its own storage.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from time import time as _now
from types import FunctionType
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _process
from ._callables import callable_name
from .background import task_id, task_seq

if TYPE_CHECKING:
    from .background import BackgroundTask

#: The task has not started yet (Django 6's names).
READY = "READY"
#: The task is running now.
RUNNING = "RUNNING"
#: The task returned.
SUCCESSFUL = "SUCCESSFUL"
#: The task raised.
FAILED = "FAILED"
#: The task was named at ERROR on ``funapi_sync.background`` and will never run.
DROPPED = "DROPPED"
#: Every status, in the order a task goes through them.
STATUSES = (READY, RUNNING, SUCCESSFUL, FAILED, DROPPED)
#: The statuses a task never leaves (on a backend without ``retry``): it may be forgotten.
FINISHED = frozenset({SUCCESSFUL, FAILED, DROPPED})

#: How much of an exception's message a status keeps (a message can hold a whole payload).
ERROR_LIMIT = 1000


class TaskStatus(NamedTuple):
    """What a backend knows about one task, at the moment it was asked.

    :param id: the task's id, as ``TaskHandle.id`` gave it.
    :param name: the callable's dotted name (``app.tasks.send_welcome_email``).
    :param status: :data:`READY`, :data:`RUNNING`, :data:`SUCCESSFUL`, :data:`FAILED` or
        :data:`DROPPED`.
    :param attempts: how many times the task started (0 while ``READY``).
    :param error: ``"ValueError: bad address"``, the exception's type and message (no
        traceback), for a ``FAILED`` task; None otherwise.
    :param result: the task's return value where the backend stores it (the durable
        backends, as JSON); always None on the thread, inline and record backends.
    """

    id: str
    name: str
    status: str
    attempts: int
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = None
    result: Any = None


def describe_error(exc: BaseException) -> str:
    """``"ValueError: bad address"``: an exception's type and message, without traceback."""
    try:
        message = str(exc)
    except Exception:  # a __str__ that raises must not hide the failure
        message = "<unprintable>"
    text = f"{type(exc).__qualname__}: {message}" if message else type(exc).__qualname__
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"


class TaskRecord:
    """One task's state in a :class:`StatusStore`, updated in place by the thread running it.

    NOTE: each field is one attribute store, atomic under the GIL; a reader may see a
    task between two of them (``RUNNING`` with ``started_at`` just set), never a torn value.
    """

    __slots__ = (
        "attempts",
        "enqueued_at",
        "error",
        "finished_at",
        "seq",
        "started_at",
        "status",
        "what",
    )

    def __init__(self, task: BackgroundTask, status: str, now: float) -> None:
        self.seq = task.seq
        #: The callable while it may still run (named on read), its name once it ran.
        self.what: Any = task.fn
        self.status = status
        self.attempts = 0
        self.enqueued_at = now
        self.started_at: float | None = None
        self.finished_at: float | None = now if status == DROPPED else None
        self.error: str | None = None

    def start(self) -> None:
        self.started_at = _now()
        self.attempts += 1
        self.status = RUNNING

    def end(self, exc: BaseException | None) -> None:
        self.finished_at = _now()
        if exc is not None:
            self.error = describe_error(exc)
        self.status = SUCCESSFUL if exc is None else FAILED
        self._let_go()

    def drop(self) -> None:
        self.finished_at = _now()
        self.status = DROPPED
        self._let_go()

    def _let_go(self) -> None:
        # NOTE: a closure or a bound method keeps what it holds (a request, a session)
        # alive; a finished task's record keeps its name only. A plain function without
        # a closure holds nothing of a request, and is named when someone asks.
        what = self.what
        if not (type(what) is FunctionType and what.__closure__ is None):
            self.what = callable_name(what, dotted=True)

    def snapshot(self) -> TaskStatus:
        what = self.what
        return TaskStatus(
            task_id(self.seq),
            what if type(what) is str else callable_name(what, dotted=True),
            self.status,
            self.attempts,
            _datetime(self.enqueued_at),
            _datetime(self.started_at),
            _datetime(self.finished_at),
            self.error,
        )


def _datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


class StatusStore:
    """The most recent ``size`` tasks of this process, by id; the oldest is forgotten first.

    Thread-safe; adding a task is O(1) (an ``OrderedDict`` insert, and one eviction once
    full), and a state change is a write to its :class:`TaskRecord`, without the lock.
    Memory is bounded by ``size`` records, each holding a name, not the task's arguments.
    """

    def __init__(self, size: int = 10000) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._records: OrderedDict[int, TaskRecord] = OrderedDict()
        _stores.add(self)

    def add(self, tasks: Iterable[BackgroundTask], status: str = READY) -> list[TaskRecord]:
        """Keep a record of each of ``tasks`` (in ``status``); return the records, in order."""
        now = _now()
        records = [TaskRecord(task, status, now) for task in tasks]
        if self.size:
            with self._lock:
                kept = self._records
                for record in records:
                    kept[record.seq] = record
                while len(kept) > self.size:
                    kept.popitem(last=False)
        return records

    def status(self, task_id: str) -> TaskStatus | None:
        """The status of task ``task_id``, or None if this store does not hold it."""
        seq = task_seq(task_id)
        if seq is None:
            return None
        record = self._records.get(seq)
        return None if record is None else record.snapshot()

    def tasks(self, status: str | None = None, limit: int = 100) -> list[TaskStatus]:
        """Up to ``limit`` statuses, newest first; only those in ``status`` if given."""
        check_query(status, limit)
        found: list[TaskRecord] = []
        with self._lock:
            for record in reversed(self._records.values()):
                if len(found) >= limit:
                    break
                if status is None or record.status == status:
                    found.append(record)
        return [record.snapshot() for record in found]

    def forget(self, task_id: str) -> bool:
        """Forget the finished task ``task_id``; False if no finished task has that id.

        A task still ``READY`` or ``RUNNING`` is kept: its thread updates its record.
        """
        seq = task_seq(task_id)
        with self._lock:
            record = None if seq is None else self._records.get(seq)
            if record is None or record.status not in FINISHED:
                return False
            del self._records[record.seq]
        return True

    def clear(self) -> None:
        """Forget every task (a forked child starts with none of its parent's)."""
        with self._lock:
            self._records.clear()

    def _reset_in_child(self) -> None:
        # NOTE: the parent's lock may have been held by a thread that does not exist here.
        self._lock = threading.Lock()
        self._records.clear()


def check_query(status: str | None, limit: int) -> None:
    """Refuse a ``tasks()`` query that can only be a mistake, naming the fix."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"tasks(status={status!r}): use None or one of {', '.join(STATUSES)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"tasks(limit={limit!r}): limit must be a non-negative int")


def store_of(backend: Any) -> StatusStore | None:
    """The status store of ``backend``, if it keeps one (the in-process backends do)."""
    store = getattr(backend, "store", None)
    return store if isinstance(store, StatusStore) else None


def record_dropped(backend: Any, tasks: list[BackgroundTask]) -> None:
    """Keep ``tasks``, which will never run and were named at ERROR, as ``DROPPED``."""
    store = store_of(backend)
    if store is not None and tasks:
        store.add(tasks, DROPPED)


_stores: weakref.WeakSet[StatusStore] = weakref.WeakSet()


def _reset_stores_in_child() -> None:
    for store in list(_stores):
        store._reset_in_child()


_process.at_fork_in_child(_reset_stores_in_child)
