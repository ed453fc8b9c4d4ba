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
from typing import TYPE_CHECKING, Any

from . import _process, tracing
from .background import Finished, Handed, too_late

if TYPE_CHECKING:
    from .background import BackgroundTask, BackgroundTasks
    from .status import StatusStore, TaskRecord

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
        "adopted",
        "after",
        "cancelled",
        "current",
        "done",
        "failed",
        "finished",
        "label",
        "records",
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
        self.label = label
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
        self.reported = False
        #: Set by the pool thread that runs it.
        self.taken = False
        self.finished = False
        #: Set once no task can be added any more (see :meth:`adopt`).
        self.sealed = False
        #: How many of the request's ``background.tasks`` this batch has taken.
        self.adopted = len(tasks)
        #: Where the tasks' states are kept (:meth:`track`), and each task's record.
        self.store: StatusStore | None = None
        self.records: list[TaskRecord] | None = None

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
        """Keep each task's state in ``store`` (``READY`` now), and of each task added later."""
        with _late:
            self.store = store
            self.records = store.add(self.tasks)

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
            if self.records is not None:
                assert self.store is not None
                # NOTE: records first: the running thread reads a task's record by index.
                self.records.extend(self.store.add(new))
            self.tasks.extend(new)

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
        first = self._run_after(first)
        if first is not None:
            raise first

    def _run_tasks(self, first: BaseException | None) -> BaseException | None:
        slow = self.slow_warning
        tasks, records = self.tasks, self.records
        mode = self.task_tracing
        # PERF: decided once per batch: without OpenTelemetry in use, a task runs as before.
        traced = tracing.active(mode)
        # PERF: one clock read per task: a task's end is the next one's start.
        started = _monotonic()
        index = self.done
        # NOTE: len() each time: a running task may add one (adopt() appends).
        while index < len(tasks) and not self.cancelled:
            task = tasks[index]
            record = None if records is None else records[index]
            self.since = started
            self.current = index
            if record is not None:
                record.start()
            error: BaseException | None = None
            try:
                if traced:
                    tracing.run(task, 1 if record is None else record.attempts, mode)
                else:
                    # PERF: BackgroundTask.run written out (one Python call fewer per task).
                    task.context.run(task.fn, *task.args, **task.kwargs)
            except (KeyboardInterrupt, SystemExit) as exc:
                if record is not None:
                    record.end(exc)
                self._stop(index, task, exc)
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
            if record is not None:
                record.end(error)
            del error
            index = self.done = index + 1
            self.current = -1
            finished = _monotonic()
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

    def _stop(self, index: int, task: BackgroundTask, exc: BaseException) -> None:
        # NOTE: a task that tries to end the process only ends its request's batch: a
        # pool thread is shared, and these never come from a signal here (Python
        # delivers signals to the main thread only).
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
    batch.reported = True
    batch.cancelled = True
    current, tasks, records = batch.current, batch.tasks, batch.records
    done = batch.done
    for index in range(done, len(tasks)):
        task = tasks[index]
        state = RUNNING if index == current else NOT_STARTED
        if state is NOT_STARTED and records is not None and index < len(records):
            records[index].drop()
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
