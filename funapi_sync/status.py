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
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from time import time as _now
from types import FunctionType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

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


class Pending(Protocol):
    """What answers for tasks that have not ended yet: the batch that will run them."""

    def state_of(self, seq: int) -> str | None:
        """The task's status now; None once it has ended (its record replaced this)."""
        ...

    def snapshot_of(self, seq: int) -> TaskStatus | None:
        """The task's status, or None once it has ended (its record replaced this)."""
        ...


class TaskRecord(NamedTuple):
    """One ended task's state in a :class:`StatusStore` (or a recorded or dropped one's).

    A task queued or running has no record: its batch answers for it (:class:`Pending`)
    until the thread that ran it puts the record in its place. A record never changes.
    """

    seq: int
    #: The callable of a task that may still run (named on read), else its name.
    what: Any
    status: str
    attempts: int
    enqueued_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None

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


#: PERF: tuple.__new__ skips the NamedTuple's Python-level __new__.
_new_record = tuple.__new__


def _light(what: Any) -> Any:
    # NOTE: a closure or a bound method keeps what it holds (a request, a session)
    # alive; a finished task's record keeps its name only. A plain function without
    # a closure holds nothing of a request, and is named when someone asks.
    if type(what) is FunctionType and what.__closure__ is None:
        return what
    return callable_name(what, dotted=True)


def pending_status(
    task: BackgroundTask,
    status: str,
    enqueued_at: float,
    started_at: float | None = None,
    finished_at: float | None = None,
) -> TaskStatus:
    """The :class:`TaskStatus` of a task that has not ended, which its batch answers for."""
    return TaskStatus(
        task_id(task.seq),
        callable_name(task.fn, dotted=True),
        status,
        0 if started_at is None else 1,
        _datetime(enqueued_at),
        _datetime(started_at),
        _datetime(finished_at),
    )


def _datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


class StatusStore:
    """The most recent ``size`` tasks of this process, by id; the oldest is forgotten first.

    Thread-safe. A task is kept from the moment its batch is queued (:meth:`expect`): its
    batch answers for it while it waits and runs, and the thread that ran it puts its
    :class:`TaskRecord` in the batch's place when it ends (:meth:`ended`). Each of those
    is an O(1) ``OrderedDict`` write under the lock, and one eviction once full. Memory
    is bounded by ``size`` entries; an ended task's record holds a name, not the task's
    arguments.

    PERF: no object is made for a task until it has ended; a queued task's ``READY``
    is its batch's state, read when someone asks.
    """

    def __init__(self, size: int = 10000) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._records: OrderedDict[int, TaskRecord | Pending] = OrderedDict()
        _stores.add(self)

    def add(self, tasks: Iterable[BackgroundTask], status: str = READY) -> list[TaskRecord]:
        """Keep a record of each of ``tasks`` (in ``status``); return the records, in order."""
        now = _now()
        # NOTE: a READY task may still run: its callable is named on read.
        keep = status == READY
        finished = now if status == DROPPED else None
        records = [
            TaskRecord(
                task.seq, task.fn if keep else _light(task.fn), status, 0, now, None, finished, None
            )
            for task in tasks
        ]
        if self.size:
            with self._lock:
                kept = self._records
                for record in records:
                    kept[record.seq] = record
                self._evict()
        return records

    def expect(self, batch: Pending, tasks: Sequence[BackgroundTask]) -> None:
        """Have ``batch`` answer for each of ``tasks`` (queued now) until each has ended."""
        if self.size:
            with self._lock:
                kept = self._records
                for task in tasks:
                    kept[task.seq] = batch
                if len(kept) > self.size:
                    self._evict()

    def ended(
        self,
        batch: Pending,
        task: BackgroundTask,
        enqueued_at: float,
        seconds: float,
        error: BaseException | None,
    ) -> None:
        """Put ``task``'s record in ``batch``'s place: it ran ``seconds`` and ended now.

        Unless the task was forgotten (or evicted) meanwhile.
        """
        if not self.size:
            return
        now = _now()
        fn = _light(task.fn)
        text = None if error is None else describe_error(error)
        state = SUCCESSFUL if error is None else FAILED
        record = _new_record(
            TaskRecord, (task.seq, fn, state, 1, enqueued_at, now - seconds, now, text)
        )
        with self._lock:
            kept = self._records
            if kept.get(task.seq) is batch:
                kept[task.seq] = record

    def _evict(self) -> None:
        # Called with the lock held.
        kept = self._records
        while len(kept) > self.size:
            kept.popitem(last=False)

    def status(self, task_id: str) -> TaskStatus | None:
        """The status of task ``task_id``, or None if this store does not hold it."""
        seq = task_seq(task_id)
        if seq is None:
            return None
        entry = self._records.get(seq)
        if entry is None or isinstance(entry, TaskRecord):
            return None if entry is None else entry.snapshot()
        status = entry.snapshot_of(seq)
        if status is None:  # it ended meanwhile: its record is in the batch's place now
            entry = self._records.get(seq)
            return entry.snapshot() if isinstance(entry, TaskRecord) else None
        return status

    def tasks(self, status: str | None = None, limit: int = 100) -> list[TaskStatus]:
        """Up to ``limit`` statuses, newest first; only those in ``status`` if given."""
        check_query(status, limit)
        found: list[tuple[int, TaskRecord | Pending]] = []
        with self._lock:
            for seq, entry in reversed(self._records.items()):
                if len(found) >= limit:
                    break
                if status is None or _state(seq, entry) == status:
                    found.append((seq, entry))
        statuses = []
        for seq, entry in found:
            snapshot = entry.snapshot() if isinstance(entry, TaskRecord) else entry.snapshot_of(seq)
            if snapshot is None:  # ended since: read its record
                snapshot = self.status(task_id(seq))
            if snapshot is not None:
                statuses.append(snapshot)
        return statuses

    def forget(self, task_id: str) -> bool:
        """Forget the finished task ``task_id``; False if no finished task has that id.

        A task still ``READY`` or ``RUNNING`` is kept: its thread updates its state.
        """
        seq = task_seq(task_id)
        if seq is None:
            return False
        with self._lock:
            entry = self._records.get(seq)
            if entry is None or _state(seq, entry) not in FINISHED:
                return False
            del self._records[seq]
        return True

    def clear(self) -> None:
        """Forget every task (a forked child starts with none of its parent's)."""
        with self._lock:
            self._records.clear()

    def _reset_in_child(self) -> None:
        # NOTE: the parent's lock may have been held by a thread that does not exist here.
        self._lock = threading.Lock()
        self._records.clear()


def _state(seq: int, entry: TaskRecord | Pending) -> str | None:
    return entry.status if isinstance(entry, TaskRecord) else entry.state_of(seq)


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
