"""Batch: one request's tasks as the pool runs them, and the ERROR lines that name them.

Internal. The policy at this boundary with user code (STYLE rule 8): a task that raises
an ``Exception`` (or any ``BaseException`` other than the two below) is logged at WARNING
and the next task runs. A task that raises ``SystemExit`` or ``KeyboardInterrupt`` is
trying to stop: it stops its request's batch (logged at ERROR, the skipped tasks named),
never the pool thread, which other requests share. A task that cannot finish is named at
ERROR with its state, ``still running`` or ``never started``: nothing is dropped silently.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from time import monotonic as _monotonic
from time import time as _now
from typing import TYPE_CHECKING, Any

from . import _process, status, tracing
from .background import Finished, Handed, too_late
from .status import pending_status

if TYPE_CHECKING:
    from .background import BackgroundTask, BackgroundTasks
    from .status import StatusStore, TaskStatus

logger = logging.getLogger("funapi_sync.background")

#: Taken to hand a request's tasks over, to add one to a batch, and to seal a batch.
#: PERF: one lock for the process, not one per batch: each is held for a few bytecodes.
_late = threading.Lock()


def _new_lock_in_child() -> None:
    global _late
    _late = threading.Lock()


_process.at_fork_in_child(_new_lock_in_child)

#: The states a task not yet finished can be in, as named in ERROR lines.
RUNNING, NOT_STARTED = "still running", "never started"


class Batch:
    """One request's tasks, run in order on one pool thread, then its ``after`` callback.

    :param slow_warning: seconds after which a task of this batch is logged as slow
        (its app's ``background_slow_warning``).
    :param task_tracing: its app's ``task_tracing``: each task's span (funapi_sync.tracing).
    """

    #: Raise the first failure once the batch ran, instead of logging it (the testing
    #: twin, :class:`~funapi_sync.after_close.TestingAfterClose`, sets it).
    raise_failures = False

    __slots__ = (
        "_label",
        "added_at",
        "adopted",
        "after",
        "cancelled",
        "current",
        "done",
        "enqueued_at",
        "failed",
        "finished",
        "reported",
        "sealed",
        "since",
        "slow_warning",
        "store",
        "taken",
        "task_tracing",
        "tasks",
    )

    def __init__(
        self,
        tasks: list[BackgroundTask],
        label: str,
        after: Callable[[], Any] | None,
        *,
        slow_warning: float = 30.0,
        task_tracing: str = tracing.CHILD,
    ) -> None:
        self.tasks = tasks
        self._label: str | None = label
        self.after = after
        self.slow_warning = slow_warning
        self.task_tracing = task_tracing
        #: Index of the task running now, or -1 between tasks.
        self.current = -1
        #: When the running task started (``time.monotonic()``): how the pool tells a
        #: thread stuck in one task from one working through many.
        self.since = 0.0
        #: How many tasks have finished (returned or raised).
        self.done = 0
        self.failed = 0
        #: Set once its unfinished tasks were named at ERROR: run none of them any more.
        self.cancelled = False
        #: When its unfinished tasks were named at ERROR (``time.time()``), else 0.
        self.reported = 0.0
        #: Set by the pool thread that runs it.
        self.taken = False
        self.finished = False
        #: Set once no task can be added any more (see :meth:`adopt`).
        self.sealed = False
        #: How many of the request's ``background.tasks`` this batch has taken.
        self.adopted = len(tasks)
        #: Where the tasks' states are kept (:meth:`track`), and when they were queued
        #: (``time.time()``; a task adopted later: ``added_at``).
        self.store: StatusStore | None = None
        self.enqueued_at = 0.0
        self.added_at: dict[int, float] | None = None

    @property
    def label(self) -> str:
        """How log lines name the batch's request: ``POST /signup request_id=…``."""
        label = self._label
        if label is None:
            label = self._label = self.make_label()
        return label

    def make_label(self) -> str:
        """The label of a batch made without one (formatted on first use)."""
        return ""

    def take(self, background: BackgroundTasks, failed: bool) -> list[BackgroundTask]:
        """Become where ``background``'s tasks go; return all it had (those to run are ``tasks``).

        Only the ``always`` tasks run when the request ``failed``. A batch given no task is
        sealed at once: nothing would run one added later.
        """
        with _late:
            added = background.hand_over(self)
            self.adopted = len(added)
            self.tasks = [task for task in added if task.always] if failed else added
            self.sealed = not self.tasks
        return added

    def track(self, store: StatusStore) -> None:
        """Keep each task's state in ``store`` (``READY`` now), and of each task added later.

        NOTE: without the lock: :meth:`adopt` extends ``tasks`` before it reads ``store``,
        and this sets ``store`` before it reads ``tasks``, so a task added meanwhile is
        expected by one or both (the same entry twice), never by neither.
        """
        self.enqueued_at = _now()
        self.store = store
        store.expect(self, self.tasks)

    def adopt(self, background: BackgroundTasks) -> None:
        """Take the tasks added to ``background`` since, to run after the others.

        :raises RuntimeError: the batch is sealed (its last task ran) or its tasks were
            named at ERROR: nothing of the request is left to run a new one.
        """
        with _late:
            if self.sealed or self.cancelled:
                raise too_late(self.label)
            new = background.tasks[self.adopted :]
            self.adopted += len(new)
            self.tasks.extend(new)
            store = self.store
            if store is not None and new:
                added_at = self.added_at = self.added_at or {}
                now = _now()
                for task in new:
                    added_at[task.seq] = now
                store.expect(self, new)

    def refuse_new(self) -> None:
        """Seal the batch now, for a backend that carries its tasks away or runs none."""
        with _late:
            self.sealed = True

    def seal(self) -> bool:
        """Refuse new tasks from now on, unless some were added; True once sealed."""
        with _late:
            if self.done < len(self.tasks) and not self.cancelled:
                return False
            self.sealed = True
            return True

    def unfinished(self) -> list[tuple[str, str]]:
        """``(task name, state)`` of each task that has not finished."""
        current = self.current
        return [
            (self.tasks[index].name, RUNNING if index == current else NOT_STARTED)
            for index in range(self.done, len(self.tasks))
        ]

    def state_of(self, seq: int) -> str | None:
        """Task ``seq``'s status while it has not ended (``READY``, ``RUNNING``, ``DROPPED``)."""
        index, running = self._where(seq)
        if index < 0:
            return None
        return status.RUNNING if running else status.DROPPED if self.reported else status.READY

    def snapshot_of(self, seq: int) -> TaskStatus | None:
        """Task ``seq``'s :class:`~funapi_sync.status.TaskStatus` while it has not ended."""
        index, running = self._where(seq)
        if index < 0:
            return None
        task = self.tasks[index]
        enqueued = self._enqueued(seq)
        if running:
            started = _now() - (_monotonic() - self.since)
            return pending_status(task, status.RUNNING, enqueued, started)
        if self.reported:
            return pending_status(task, status.DROPPED, enqueued, None, self.reported)
        return pending_status(task, status.READY, enqueued)

    def _enqueued(self, seq: int) -> float:
        added_at = self.added_at
        return self.enqueued_at if added_at is None else added_at.get(seq, self.enqueued_at)

    def _where(self, seq: int) -> tuple[int, bool]:
        # (index, running now) of task ``seq``; index -1 once it has ended (or is not here).
        # NOTE: ``current`` read before ``done``: the pool thread ends a task by storing its
        # record, then ``done``, then ``current``, so a task that ended between the two
        # reads is seen as ended, never as not started.
        current, done = self.current, self.done
        tasks = self.tasks
        for index in range(done, len(tasks)):
            if tasks[index].seq == seq:
                return index, index == current
        return -1, False

    def run(self) -> None:
        """Run the tasks in order, each failure isolated; then ``after`` (the cleanups).

        A task added meanwhile (:meth:`adopt`) runs after the others; once none is left,
        the batch is sealed and ``after`` runs. With :attr:`raise_failures`, the first
        failure (a task's, else ``after``'s) is raised once every task and ``after`` ran;
        later ones are logged as usual.
        """
        first: BaseException | None = None
        while True:
            first = self._run_tasks(first)
            if self.seal():
                break
        if self.after is not None:
            first = self._run_after(first)
        if first is not None:
            raise first

    def _run_tasks(self, first: BaseException | None) -> BaseException | None:
        slow = self.slow_warning
        tasks, store = self.tasks, self.store
        mode = self.task_tracing
        # PERF: decided once per batch: without OpenTelemetry in use, a task runs as before.
        traced = tracing.active(mode)
        # PERF: one clock read per task: a task's end is the next one's start.
        started = _monotonic()
        index = self.done
        # NOTE: len() each time: a running task may add one (adopt() appends).
        while index < len(tasks) and not self.cancelled:
            task = tasks[index]
            self.since = started
            self.current = index
            error: BaseException | None = None
            try:
                if traced:
                    tracing.run(task, 1, mode)
                else:
                    # PERF: BackgroundTask.run written out (one Python call fewer per task).
                    task.context.run(task.fn, *task.args, **task.kwargs)
            except (KeyboardInterrupt, SystemExit) as exc:
                self._stop(index, task, exc, started)
                return first or (exc if self.raise_failures else None)
            except BaseException as exc:  # any other failure is contained: the next task runs
                error = exc
                self.failed += 1
                if self.raise_failures and first is None:
                    first = exc
                else:
                    logger.warning(
                        "background task %s of %s failed [task %s]",
                        task.name,
                        self.label,
                        task.id,
                        exc_info=True,
                    )
            finished = _monotonic()
            if store is not None:
                # NOTE: before ``done`` moves on, so a reader never sees the task ended
                # without its record (see _where).
                store.ended(self, task, self._enqueued(task.seq), finished - started, error)
            del error
            index = self.done = index + 1
            self.current = -1
            if finished - started > slow:
                self._slow(task, finished - started)
                finished = _monotonic()
            started = finished
        return first

    def _slow(self, task: BackgroundTask, seconds: float) -> None:
        logger.warning(
            "background task %s of %s was slow: %.1f s (background_slow_warning=%s) [task %s]",
            task.name,
            self.label,
            seconds,
            self.slow_warning,
            task.id,
        )

    def _stop(self, index: int, task: BackgroundTask, exc: BaseException, started: float) -> None:
        # NOTE: a task that tries to end the process only ends its request's batch: a
        # pool thread is shared, and these never come from a signal here (Python
        # delivers signals to the main thread only).
        if self.store is not None:
            seconds = _monotonic() - started
            self.store.ended(self, task, self._enqueued(task.seq), seconds, exc)
        self.failed += 1
        self.current = -1
        self.done = index + 1
        logger.error(
            "background task %s of %s raised %s; the request's remaining tasks are skipped"
            " [task %s]",
            task.name,
            self.label,
            type(exc).__name__,
            task.id,
            exc_info=True,
        )
        report(self, f"was skipped: an earlier task raised {type(exc).__name__}")

    def _run_after(self, first: BaseException | None) -> BaseException | None:
        if self.after is not None:
            try:
                self.after()
            except BaseException as exc:
                if self.raise_failures and first is None:
                    return exc
                logger.exception("cleanup after the tasks of %s failed", self.label)
        return first


def close_request(background: BackgroundTasks, label: str | Handed) -> list[BackgroundTask]:
    """Nothing of request ``label`` will run: ``add_task`` raises from now on.

    Returns the tasks it had (none of them will run either).
    """
    finished = Finished(label) if isinstance(label, str) else label
    with _late:
        return background.hand_over(finished)


def report(batch: Batch, what: str) -> int:
    """Name each unfinished task of ``batch`` at ERROR (once); return how many.

    A task that never started is ``DROPPED`` in its status from now on: it never will.
    NOTE: takes no lock (the pool's abort runs it in a signal handler).
    """
    if batch.reported:
        return 0
    # NOTE: from now on its tasks not started are DROPPED (Batch.state_of).
    batch.reported = _now()
    batch.cancelled = True
    current, tasks, done = batch.current, batch.tasks, batch.done
    for index in range(done, len(tasks)):
        task = tasks[index]
        state = RUNNING if index == current else NOT_STARTED
        logger.error(
            "background task %s of %s %s (%s) [task %s]",
            task.name,
            batch.label,
            what,
            state,
            task.id,
        )
    return max(0, len(tasks) - done)


def report_never_closed(tasks: list[BackgroundTask], label: str) -> None:
    """Name each of ``tasks`` of request ``label`` at ERROR: its response was never closed."""
    for task in tasks:
        logger.error(
            "background task %s of %s never ran: the response was garbage-collected without"
            " close() (a middleware that does not forward close(), or a client that never"
            " closed the response) (%s) [task %s]",
            task.name,
            label,
            NOT_STARTED,
            task.id,
        )
