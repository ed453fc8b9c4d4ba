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
from collections.abc import Callable
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .background import BackgroundTask

logger = logging.getLogger("funapi_sync.background")

#: The states a task not yet finished can be in, as named in ERROR lines.
RUNNING, NOT_STARTED = "still running", "never started"


class Batch:
    """One request's tasks, run in order on one pool thread, then its ``after`` callback.

    :param slow_warning: seconds after which a task of this batch is logged as slow
        (its app's ``background_slow_warning``).
    """

    #: Raise the first failure once the batch ran, instead of logging it (the testing
    #: twin, :class:`~funapi_sync.after_close.TestingAfterClose`, sets it).
    raise_failures = False

    __slots__ = (
        "after",
        "cancelled",
        "current",
        "done",
        "failed",
        "finished",
        "label",
        "reported",
        "since",
        "slow_warning",
        "taken",
        "tasks",
    )

    def __init__(
        self,
        tasks: list[BackgroundTask],
        label: str,
        after: Callable[[], Any] | None,
        *,
        slow_warning: float = 30.0,
    ) -> None:
        self.tasks = tasks
        self.label = label
        self.after = after
        self.slow_warning = slow_warning
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

    def unfinished(self) -> list[tuple[str, str]]:
        """``(task name, state)`` of each task that has not finished."""
        current = self.current
        return [
            (self.tasks[index].name, RUNNING if index == current else NOT_STARTED)
            for index in range(self.done, len(self.tasks))
        ]

    def run(self) -> None:
        """Run the tasks in order, each failure isolated; then ``after`` (the cleanups).

        With :attr:`raise_failures`, the first failure (a task's, else ``after``'s) is
        raised once every task and ``after`` ran; later ones are logged as usual.
        """
        first: BaseException | None = None
        slow = self.slow_warning
        # PERF: one clock read per task: a task's end is the next one's start.
        started = _monotonic()
        for index, task in enumerate(self.tasks):
            if self.cancelled:
                break
            self.since = started
            self.current = index
            try:
                # PERF: BackgroundTask.run written out (one Python call fewer per task).
                task.context.run(task.fn, *task.args, **task.kwargs)
            except (KeyboardInterrupt, SystemExit) as exc:
                self._stop(index, task, exc)
                first = first or (exc if self.raise_failures else None)
                break
            except BaseException as exc:  # any other failure is contained: the next task runs
                self.failed += 1
                if self.raise_failures and first is None:
                    first = exc
                else:
                    logger.warning(
                        "background task %s of %s failed", task.name, self.label, exc_info=True
                    )
            self.done = index + 1
            self.current = -1
            finished = _monotonic()
            if finished - started > slow:
                logger.warning(
                    "background task %s of %s was slow: %.1f s (background_slow_warning=%s)",
                    task.name,
                    self.label,
                    finished - started,
                    slow,
                )
                finished = _monotonic()
            started = finished
        first = self._run_after(first)
        if first is not None:
            raise first

    def _stop(self, index: int, task: BackgroundTask, exc: BaseException) -> None:
        # NOTE: a task that tries to end the process only ends its request's batch: a
        # pool thread is shared, and these never come from a signal here (Python
        # delivers signals to the main thread only).
        self.failed += 1
        self.current = -1
        self.done = index + 1
        logger.error(
            "background task %s of %s raised %s; the request's remaining tasks are skipped",
            task.name,
            self.label,
            type(exc).__name__,
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


def report(batch: Batch, what: str) -> int:
    """Name each unfinished task of ``batch`` at ERROR (once); return how many."""
    if batch.reported:
        return 0
    batch.reported = True
    batch.cancelled = True
    lines = batch.unfinished()
    for name, state in lines:
        logger.error("background task %s of %s %s (%s)", name, batch.label, what, state)
    return len(lines)


def report_never_closed(tasks: list[BackgroundTask], label: str) -> None:
    """Name each of ``tasks`` of request ``label`` at ERROR: its response was never closed."""
    for task in tasks:
        logger.error(
            "background task %s of %s never ran: the response was garbage-collected without"
            " close() (a middleware that does not forward close(), or a client that never"
            " closed the response) (%s)",
            task.name,
            label,
            NOT_STARTED,
        )
