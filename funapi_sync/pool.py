"""The pool: one per-process ThreadPoolExecutor that runs background tasks after responses."""

from __future__ import annotations

import logging
import os
import threading
import time
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


class TaskPool:
    """A ThreadPoolExecutor with a bounded queue, counters, drain and a logged shutdown.

    The executor's own queue is unbounded; a semaphore with ``queue_size + workers``
    permits bounds it, so a full pool blocks the submitting ``close()`` (back-pressure on
    that server thread) instead of dropping work or growing memory without limit.
    """

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self._executor = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="funapi_sync-background"
        )
        self._slots = threading.Semaphore(settings.queue_size + settings.workers)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: dict[int, Batch] = {}
        self._submitted = 0
        self._finished = 0
        self._queued = 0
        self._running = 0
        self._completed = 0
        self._failed = 0
        self._closed = False

    def submit(self, batch: Batch) -> None:
        """Queue ``batch``; block while the queue is full. Never drops it."""
        if self._closed:
            logger.warning("pool is shut down; running %s's tasks inline", batch.label)
            self._run(batch, counted=False)
            return
        self._slots.acquire()
        with self._lock:
            self._submitted += 1
            self._queued += len(batch.tasks)
            self._pending[id(batch)] = batch
        try:
            self._executor.submit(self._run, batch)
        except RuntimeError:
            # NOTE: the interpreter is exiting and refuses new work; run it here rather
            # than lose it.
            self._run(batch)

    def _run(self, batch: Batch, counted: bool = True) -> None:
        slow = self.settings.slow_warning
        try:
            for index, task in enumerate(batch.tasks):
                if batch.cancelled:
                    break
                batch.current = index
                with self._lock:
                    if counted:
                        self._queued -= 1
                    self._running += 1
                started = time.monotonic()
                ok = True
                try:
                    task.run()
                except BaseException:
                    ok = False
                    logger.warning(
                        "background task %s of %s failed", task.name, batch.label, exc_info=True
                    )
                elapsed = time.monotonic() - started
                with self._lock:
                    self._running -= 1
                    if ok:
                        self._completed += 1
                    else:
                        self._failed += 1
                if elapsed > slow:
                    logger.warning(
                        "background task %s of %s was slow: %.1f s (background_slow_warning=%s)",
                        task.name,
                        batch.label,
                        elapsed,
                        slow,
                    )
            if batch.after is not None:
                try:
                    batch.after()
                except Exception:
                    logger.exception("cleanup after the tasks of %s failed", batch.label)
        finally:
            with self._lock:
                if counted:
                    self._finished += 1
                    self._pending.pop(id(batch), None)
                    if batch.cancelled:
                        self._queued -= max(0, len(batch.tasks) - batch.current - 1)
                batch.finished = True
                self._changed.notify_all()
            if counted:
                self._slots.release()

    def wait(self, batch: Batch, timeout: float | None = None) -> bool:
        """Wait until ``batch`` has finished; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: batch.finished, timeout)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every batch submitted so far has finished; False on timeout."""
        with self._changed:
            target = self._submitted
            return self._changed.wait_for(lambda: self._finished >= target, timeout)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "queued": self._queued,
                "running": self._running,
                "completed": self._completed,
                "failed": self._failed,
                "workers": self.settings.workers,
                "queue_size": self.settings.queue_size,
            }

    def shutdown(self, timeout: float | None = None) -> bool:
        """Drain for up to ``timeout`` seconds, then name every task that did not finish.

        Tasks not yet started are skipped (and logged at ERROR); a task still running is
        logged too, since a thread cannot be stopped from outside.
        """
        self._closed = True
        if timeout is None:
            timeout = self.settings.shutdown_timeout
        drained = self.drain(timeout)
        if not drained:
            with self._lock:
                for batch in self._pending.values():
                    batch.cancelled = True
                    start = max(batch.current, 0)
                    for index in range(start, len(batch.tasks)):
                        running = index == batch.current
                        logger.error(
                            "background task %s of %s did not finish within the %.1f s"
                            " shutdown timeout (%s)",
                            batch.tasks[index].name,
                            batch.label,
                            timeout,
                            "still running" if running else "never started",
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
