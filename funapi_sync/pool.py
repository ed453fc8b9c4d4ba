"""The pool: one per-process ThreadPoolExecutor that runs background tasks after responses."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .background import BackgroundTask

logger = logging.getLogger("funapi_sync.background")


class PoolSettings(NamedTuple):
    workers: int = 4
    queue_size: int = 1024
    slow_warning: float = 30.0
    shutdown_timeout: float = 25.0


class Batch:
    """One request's tasks, run in order on one pool thread, then its ``after`` callback."""

    __slots__ = ("after", "cancelled", "current", "finished", "label", "tasks")

    def __init__(
        self, tasks: list[BackgroundTask], label: str, after: Callable[[], Any] | None
    ) -> None:
        self.tasks = tasks
        self.label = label
        self.after = after
        self.current = -1
        self.cancelled = False
        self.finished = False


class _Tally:
    """One runner's task counts; only its runner writes them, so no lock is taken."""

    __slots__ = ("completed", "failed", "skipped", "started")

    def __init__(self) -> None:
        self.started = self.completed = self.failed = self.skipped = 0


class TaskPool:
    """The process's background executor: a ThreadPoolExecutor fed through a cheap queue.

    PERF: ``ThreadPoolExecutor.submit`` costs several microseconds (a Future, a work item,
    a semaphore probe, a thread wake-up), paid in ``close()`` on every request. Instead,
    ``submit`` appends the batch to a deque under one lock and, only when no runner is
    free, submits a *runner* to the executor: a job that takes batches from the deque until
    it has been idle for ``RUNNER_IDLE`` seconds. A runner that ran out of work polls for
    ``POLL_WINDOW`` before it asks to be notified, so under load handing over a batch is
    an append, and a task starts at most ``POLL_INTERVAL`` after its response was sent
    (20 ms; polling every 2 ms forced a GIL hand-over so often that a gunicorn worker
    lost ~10 % of its signup throughput). Anyone waiting in :meth:`wait` or
    :meth:`drain` wakes the runners at once, so tests and shutdown never pay that delay.
    Runners count their tasks in a private tally, so running a task takes no lock that a
    request thread could be made to wait for.

    NOTE: the deque is bounded by ``queue_size`` batches; a full queue blocks the
    submitting ``close()`` (back-pressure on that server thread; the client already has
    its response) instead of dropping work or growing without limit.
    """

    #: How long an idle runner stays in its executor thread before giving it back.
    RUNNER_IDLE = 1.0
    #: How long a runner that ran out of work polls before it must be woken.
    POLL_WINDOW = 0.1
    POLL_INTERVAL = 0.02

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self._executor = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="funapi_sync-background"
        )
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._batches: deque[Batch] = deque()
        self._active: list[Batch] = []
        self._runners = 0
        self._idle_runners = 0
        # Threads blocked in submit(), wait() or drain(): only then is a notify needed.
        self._waiters = 0
        self._submitted = 0
        self._finished = 0
        self._tasks_submitted = 0
        self._tallies: set[_Tally] = set()
        self._retired = _Tally()
        self._closed = False

    # -- the request side -------------------------------------------------------------

    def submit(self, batch: Batch) -> None:
        """Queue ``batch``; block while the queue is full. Never drops it."""
        with self._lock:
            closed = self._closed
            if not closed:
                while len(self._batches) >= self.settings.queue_size:
                    self._waiters += 1
                    try:
                        self._changed.wait()
                    finally:
                        self._waiters -= 1
                self._batches.append(batch)
                self._submitted += 1
                self._tasks_submitted += len(batch.tasks)
                if self._idle_runners:
                    self._changed.notify_all()
                # Each runner not busy with a batch takes one; start another only when
                # the queue holds more batches than that and a worker is free.
                free = self._runners - len(self._active)
                if free >= len(self._batches) or self._runners >= self.settings.workers:
                    return
                self._runners += 1
        if closed:
            logger.warning(
                "the background pool is shut down; running %s's tasks inline", batch.label
            )
            self._run_batch(batch, _Tally())
            batch.finished = True
            return
        try:
            self._executor.submit(self._runner)
        except RuntimeError:
            # NOTE: the interpreter is exiting and refuses new threads; run the queue here
            # rather than lose it.
            self._runner()

    # -- the runner side --------------------------------------------------------------

    def _runner(self) -> None:
        tally = _Tally()
        batch: Batch | None = None
        with self._lock:
            self._tallies.add(tally)
        while True:
            with self._lock:
                if batch is not None:
                    self._active.remove(batch)
                    self._finished += 1
                    batch.finished = True
                    if self._waiters:
                        self._changed.notify_all()
                batch = self._next_batch()
                if batch is None:
                    self._runners -= 1
                    self._tallies.discard(tally)
                    for name in _Tally.__slots__:
                        setattr(
                            self._retired, name, getattr(self._retired, name) + getattr(tally, name)
                        )
                    return
                self._active.append(batch)
                if self._waiters:
                    self._changed.notify_all()  # a slot freed: wake a blocked submit()
            self._run_batch(batch, tally)

    def _next_batch(self) -> Batch | None:
        # Called with the lock held.
        if not self._batches:
            # PERF: poll for a short window before asking to be woken. Under load the
            # next batch arrives within it, and submit() then only appends: no thread
            # wake-up, no GIL hand-over on the request's thread.
            deadline = time.monotonic() + self.POLL_WINDOW
            while not self._batches and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(min(self.POLL_INTERVAL, remaining))
        if not self._batches and not self._closed:
            self._idle_runners += 1
            self._changed.wait_for(lambda: self._batches or self._closed, self.RUNNER_IDLE)
            self._idle_runners -= 1
        return self._batches.popleft() if self._batches else None

    def _run_batch(self, batch: Batch, tally: _Tally) -> None:
        slow = self.settings.slow_warning
        for index, task in enumerate(batch.tasks):
            if batch.cancelled:
                tally.skipped += len(batch.tasks) - index
                break
            batch.current = index
            tally.started += 1
            started = time.monotonic()
            try:
                task.run()
            except BaseException:
                tally.failed += 1
                logger.warning(
                    "background task %s of %s failed", task.name, batch.label, exc_info=True
                )
            else:
                tally.completed += 1
            elapsed = time.monotonic() - started
            if elapsed > slow:
                logger.warning(
                    "background task %s of %s was slow: %.1f s (background_slow_warning=%s)",
                    task.name,
                    batch.label,
                    elapsed,
                    slow,
                )
        batch.current = len(batch.tasks)
        if batch.after is not None:
            try:
                batch.after()
            except BaseException:
                logger.exception("cleanup after the tasks of %s failed", batch.label)

    # -- introspection and shutdown ---------------------------------------------------

    def wait(self, batch: Batch, timeout: float | None = None) -> bool:
        """Wait until ``batch`` has finished; False on timeout."""
        with self._changed:
            self._waiters += 1
            self._changed.notify_all()  # polling runners: start now, someone is waiting
            try:
                return self._changed.wait_for(lambda: batch.finished, timeout)
            finally:
                self._waiters -= 1

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every batch submitted so far has finished; False on timeout."""
        with self._changed:
            target = self._submitted
            self._waiters += 1
            self._changed.notify_all()  # polling runners: start now, someone is waiting
            try:
                return self._changed.wait_for(lambda: self._finished >= target, timeout)
            finally:
                self._waiters -= 1

    def stats(self) -> dict[str, int]:
        """Task counts: ``queued``, ``running``, ``completed``, ``failed`` (and settings)."""
        with self._lock:
            total = _Tally()
            for tally in (*self._tallies, self._retired):
                for name in _Tally.__slots__:
                    setattr(total, name, getattr(total, name) + getattr(tally, name))
            submitted = self._tasks_submitted
        done = total.completed + total.failed
        return {
            "queued": max(0, submitted - total.started - total.skipped),
            "running": max(0, total.started - done),
            "completed": total.completed,
            "failed": total.failed,
            "workers": self.settings.workers,
            "queue_size": self.settings.queue_size,
        }

    def shutdown(self, timeout: float | None = None) -> bool:
        """Drain for up to ``timeout`` seconds, then name every task that did not finish.

        Tasks not yet started are skipped (each logged at ERROR); a task still running is
        logged too, since a thread cannot be stopped from outside.
        """
        if timeout is None:
            timeout = self.settings.shutdown_timeout
        drained = self.drain(timeout)
        with self._lock:
            self._closed = True
            self._changed.notify_all()
            if not drained:
                for batch in [*self._active, *self._batches]:
                    batch.cancelled = True
                    for index in range(max(batch.current, 0), len(batch.tasks)):
                        state = "still running" if index == batch.current else "never started"
                        logger.error(
                            "background task %s of %s did not finish within the %.1f s"
                            " shutdown timeout (%s)",
                            batch.tasks[index].name,
                            batch.label,
                            timeout,
                            state,
                        )
        self._executor.shutdown(wait=False)
        return drained


_pool: TaskPool | None = None
_pool_lock = threading.Lock()


def get_pool(settings: PoolSettings) -> TaskPool:
    """The process's pool, created on first use with ``settings``."""
    pool = _pool
    if pool is not None:
        return pool
    return _create(settings)


def _create(settings: PoolSettings) -> TaskPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = TaskPool(settings)
        elif _pool.settings != settings:
            logger.warning(
                "the background pool already exists with %s; %s is ignored (one pool per process)",
                _pool.settings,
                settings,
            )
        return _pool


def current_pool() -> TaskPool | None:
    """The process's pool if one was created in this process, else None."""
    return _pool


def check_settings(settings: PoolSettings) -> None:
    """Warn when an app asks for settings other than those of the existing pool."""
    pool = _pool
    if pool is not None and pool.settings != settings:
        logger.warning(
            "the background pool already exists with %s; %s is ignored (one pool per process)",
            pool.settings,
            settings,
        )


def _forget_in_child() -> None:
    # NOTE: a ThreadPoolExecutor that ran anything before fork() is dead in the child:
    # its threads did not survive, but its idle semaphore says one is free, so it never
    # starts a new one and the future never completes (CPython 3.8+). Drop it; the child
    # makes its own on first use.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


class PoolView:
    """``app.background``: the process pool as seen by one app (stats and drain)."""

    __slots__ = ("settings",)

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings

    def stats(self) -> dict[str, int]:
        """Counts of tasks ``queued``, ``running``, ``completed`` and ``failed``."""
        pool = _pool
        if pool is None:
            return {
                "queued": 0,
                "running": 0,
                "completed": 0,
                "failed": 0,
                "workers": self.settings.workers,
                "queue_size": self.settings.queue_size,
            }
        return pool.stats()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every task submitted so far has finished; False on timeout."""
        pool = _pool
        return True if pool is None else pool.drain(timeout)
