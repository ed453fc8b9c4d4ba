"""The pool: one per-process ThreadPoolExecutor whose threads run request batches.

How a batch runs, and how an unfinished task is named, is :mod:`funapi_sync.batch`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _process
from ._scheduling import yield_on_wakeup
from ._stuck import StuckThreads
from .batch import Batch as Batch
from .batch import report
from .batch import report_never_closed as report_never_closed

if TYPE_CHECKING:
    import queue

logger = logging.getLogger("funapi_sync.background")


class PoolSettings(NamedTuple):
    """An app's background settings; the pool is sized by the first app that uses it.

    ``workers``, ``queue_size`` and ``shutdown_timeout`` are the pool's (process-wide);
    ``slow_warning`` and ``submit_timeout`` stay the app's own: each batch carries them.
    ``status_size`` sizes the app's backend's status store (funapi_sync.status);
    ``task_tracing`` is the app's, for a backend that runs tasks itself (funapi_sync.tracing).
    """

    workers: int = 4
    queue_size: int = 1024
    slow_warning: float = 30.0
    shutdown_timeout: float = 25.0
    submit_timeout: float = 10.0
    status_size: int = 10000
    task_tracing: str = "child"


#: The pool-wide fields of :class:`PoolSettings`, with the App setting that sets each.
POOL_WIDE = {
    "workers": "background_workers",
    "queue_size": "background_queue_size",
    "shutdown_timeout": "background_shutdown_timeout",
}


#: What _wait_for_room returns when the heartbeat is due (sent without the lock).
_BEAT = "heartbeat due"
#: How often a close() waiting for room checks whether every pool thread is stuck.
_RECHECK = 0.5


class Heartbeat(NamedTuple):
    """How a blocked ``close()`` tells its server it is alive (gunicorn's ``worker.notify``)."""

    notify: Callable[[], Any]
    interval: float


class TaskPool:
    """The process's background executor: long-lived consumers on a ``SimpleQueue``.

    PERF: the executor's threads each run one :meth:`_consume` loop for the pool's
    lifetime, blocked in ``SimpleQueue.get()`` (C code, no timeout, so an idle pool takes
    no GIL turns). ``submit`` notes the batch and puts it on the queue under one lock, and a
    consumer takes the lock once more when the batch has finished: no ``Future``, no work
    item, no semaphore, no thread start per request, and an idle consumer wakes at once.

    NOTE: the bound is on the *tasks* queued or running, ``queue_size + workers``,
    counted per batch when it is queued (one request with 100 000 tasks is 100 000, not
    one): with every thread busy, at most ``queue_size`` tasks wait. A batch larger than
    the whole bound is accepted alone, once the pool holds nothing, so it is neither
    refused nor left to wait forever. A full pool blocks the
    submitting ``close()`` (back-pressure on that server thread; the client already has its
    response), heart-beating to the server while it waits, and gives up after the app's
    ``submit_timeout`` with the batch's tasks named at ERROR. Nothing accepted is dropped
    without a line: see :meth:`abort` and :meth:`shutdown`.
    """

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        #: Settings already compared with the pool's, by id (kept alive so ids stay unique).
        self.checked: dict[int, PoolSettings] = {id(settings): settings}
        # PERF: imported by the first pool, not by every app that never adds a task.
        from concurrent.futures import ThreadPoolExecutor
        from queue import SimpleQueue

        _process.exit_before_executors()

        self._queue: queue.SimpleQueue[Batch | None] = SimpleQueue()
        self._capacity = settings.queue_size + settings.workers
        # NOTE: abort() runs in a signal handler, on a thread that may hold this lock:
        # it takes no lock; everything else does.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # The batches accepted and not finished, in order (a batch a thread has taken is
        # ``taken``), each with its task count when accepted; ``_held`` counts the tasks
        # of those on the queue or running.
        self._unfinished: dict[Batch, int] = {}
        self._held = 0
        self._waiters = 0
        # NOTE: what was accepted is ``_finished + len(_unfinished)``: no second count.
        self._finished = self._completed = self._failed = 0
        self._closed = False
        self._aborted = False
        self._stuck = StuckThreads()
        self._executor = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="funapi_sync-background"
        )
        try:
            for _ in range(settings.workers):
                self._executor.submit(self._consume)
        except RuntimeError:
            # NOTE: the interpreter is exiting and refuses new threads: run batches inline.
            self._closed = True

    # -- the request side -------------------------------------------------------------

    def submit(self, batch: Batch, timeout: float | None = None) -> None:
        """Queue ``batch``; while the pool is full, wait up to ``timeout`` seconds.

        A batch that cannot be queued is never dropped silently: after ``timeout`` (or
        when the wait is interrupted, e.g. by gunicorn's ``SystemExit`` on a worker
        timeout) each of its tasks is named at ERROR.
        """
        if self._aborted:
            self._run_unqueued(batch)
            return
        with self._lock:
            # NOTE: put under the lock that shutdown() holds while it closes and queues
            # its sentinels, so no batch can land behind them.
            if self._closed:
                waits = False
            else:
                # Noted first: drain() waits for it, and abort() names it while it waits.
                weight = self._unfinished[batch] = len(batch.tasks) or 1
                if self._fits(weight):
                    self._held += weight
                    self._queue.put(batch)
                    return
                waits = True
        if not waits:
            self._run_unqueued(batch)
            return
        if self._all_stuck(batch):
            return
        self._submit_when_free(batch, self.settings.submit_timeout if timeout is None else timeout)

    def _all_stuck(self, batch: Batch) -> bool:
        """Name ``batch``'s tasks and finish it if every pool thread is stuck in a task.

        NOTE: no thread will free up then: waiting ``submit_timeout`` would only hold this
        server thread (a sync worker's every request) for nothing.
        """
        if self._stuck.count() < self.settings.workers:
            return False
        report(
            batch,
            "was not queued: the queue is full and every pool thread is stuck in a task"
            " (running longer than its background_slow_warning; named above)",
        )
        self._finish_unqueued(batch)
        return True

    def _fits(self, weight: int) -> bool:
        # Called with the lock held. NOTE: an empty pool takes any batch, so one larger
        # than the bound waits only for the pool to empty, never for ever.
        return self._held == 0 or self._held + weight <= self._capacity

    def _submit_when_free(self, batch: Batch, timeout: float) -> None:
        heartbeat = _heartbeat
        deadline = time.monotonic() + timeout
        queued = False
        try:
            while True:
                with self._changed:
                    what = self._wait_for_room(batch, deadline, timeout, heartbeat)
                    if what is None:
                        self._held += self._unfinished[batch]
                        queued = True
                        # NOTE: Python runs a signal handler (gunicorn's SystemExit) only
                        # after a call returns: never between the flag and the put.
                        self._queue.put(batch)
                        return
                if what is not _BEAT:
                    break
                # NOTE: the server's callback runs without the pool's lock, so the
                # consumers go on finishing batches (and a heartbeat may read stats()).
                if heartbeat is not None:
                    heartbeat.notify()
                if self._all_stuck(batch):
                    return
        except BaseException as exc:
            if not queued:
                report(batch, f"was not queued: close() was interrupted by {type(exc).__name__}")
                self._finish_unqueued(batch)
            raise
        report(batch, what)
        self._finish_unqueued(batch)

    def _wait_for_room(
        self, batch: Batch, deadline: float, timeout: float, heartbeat: Heartbeat | None
    ) -> str | None:
        """With the lock held, wait for room until the deadline or the next heartbeat.

        Returns None when there is room, :data:`_BEAT` when the heartbeat is due, or why
        the batch cannot be queued.
        """
        now = time.monotonic()
        # NOTE: woken at least every _RECHECK s, to see whether every thread got stuck.
        beat = now + min(heartbeat.interval if heartbeat is not None else _RECHECK, _RECHECK)
        weight = self._unfinished[batch]
        self._waiters += 1
        try:
            while not self._closed and not self._fits(weight):
                if now >= deadline:
                    return (
                        f"was not queued: the queue stayed full for {timeout:g} s"
                        f" (background_queue_size={self.settings.queue_size},"
                        f" background_submit_timeout={timeout})"
                    )
                if now >= beat:
                    return _BEAT
                # NOTE: timed waits only while close() is blocked on a full pool, so a
                # sync worker keeps heart-beating to the gunicorn arbiter.
                self._changed.wait(min(deadline, beat) - now)
                now = time.monotonic()
        finally:
            self._waiters -= 1
        return "was not queued: the pool shut down while close() waited" if self._closed else None

    def _finish_unqueued(self, batch: Batch) -> None:
        with self._lock:
            self._unfinished.pop(batch, None)
            self._end(batch)

    def _run_unqueued(self, batch: Batch) -> None:
        # NOTE: a response closed after shutdown (interpreter exit) or after an abort.
        if self._aborted:
            report(batch, "was not run: the worker was aborted")
            try:
                if batch.after is not None:
                    batch.after()
            finally:
                batch.finished = True
            return
        logger.warning("the background pool is shut down; running %s's tasks inline", batch.label)
        batch.run()
        batch.finished = True

    # -- the pool threads -------------------------------------------------------------

    def _consume(self) -> None:
        yield_on_wakeup()
        get = self._queue.get
        on_thread = self._stuck.on_thread
        ident = threading.get_ident()
        while True:
            batch = get()
            if batch is None:
                return
            batch.taken = True
            on_thread[ident] = batch
            try:
                batch.run()
            finally:
                del on_thread[ident]
                with self._lock:
                    self._held -= self._unfinished.pop(batch, 1)
                    self._completed += batch.done - batch.failed
                    self._failed += batch.failed
                    self._end(batch)
            # NOTE: dropped before the thread waits for the next one, so an idle pool does
            # not keep its last batch (the tasks' arguments, the request) alive.
            del batch

    def _end(self, batch: Batch) -> None:
        # Called with the lock held. The waiters are drain(), wait() and a close()
        # waiting for room.
        self._finished += 1
        batch.finished = True
        if self._waiters:
            self._changed.notify_all()

    # -- introspection ----------------------------------------------------------------

    def wait(self, batch: Batch, timeout: float | None = None) -> bool:
        """Wait until ``batch`` has finished; False on timeout."""
        with self._changed:
            self._waiters += 1
            try:
                return self._changed.wait_for(lambda: batch.finished, timeout)
            finally:
                self._waiters -= 1

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every batch submitted so far has finished; False on timeout."""
        with self._changed:
            target = self._finished + len(self._unfinished)
            self._waiters += 1
            try:
                return self._changed.wait_for(lambda: self._finished >= target, timeout)
            finally:
                self._waiters -= 1

    def stats(self) -> dict[str, int]:
        """Task counts: ``queued``, ``running``, ``completed``, ``failed`` (and settings)."""
        with self._lock:
            completed, failed, busy, left = self._completed, self._failed, 0, 0
            for b in self._unfinished:  # one pass, under the lock
                left += len(b.tasks) - b.done
                if b.taken:
                    completed += b.done - b.failed
                    failed += b.failed
                    # NOTE: a task counts as running until its batch counts it done: the
                    # pool thread sets ``done`` before it clears ``current``.
                    busy += b.current >= b.done
            queued = left - busy
        return {
            "queued": queued,
            "running": busy,
            "completed": completed,
            "failed": failed,
            "workers": self.settings.workers,
            "queue_size": self.settings.queue_size,
        }

    def unfinished(self) -> list[Batch]:
        """The batches accepted and not finished: running first, then waiting."""
        # PERF: tuple(dict) copies the keys without releasing the GIL: safe without the
        # lock, which abort() must not take.
        running: list[Batch] = []
        waiting: list[Batch] = []
        for batch in tuple(self._unfinished):
            # NOTE: one read of ``taken`` per batch: a thread taking it meanwhile cannot
            # make it fall between the two lists.
            (running if batch.taken else waiting).append(batch)
        return running + waiting

    def holds(self, batch: Batch) -> bool:
        """Whether ``batch`` was accepted here and has not finished."""
        return batch in self._unfinished

    def still_running(self) -> int:
        """How many tasks are running now (a hung task keeps its thread)."""
        return sum(1 for batch in tuple(self._unfinished) if batch.taken and batch.current >= 0)

    # -- the end ----------------------------------------------------------------------

    def abort(self, reason: str) -> int:
        """Name every queued and running task at ERROR at once; run no queued task after.

        For a process about to be killed (gunicorn's ``worker_abort``: the arbiter sends
        SIGKILL a second later). Safe in a signal handler: it takes no lock.
        """
        self._aborted = True
        return sum(report(batch, f"did not finish: {reason}") for batch in self.unfinished())

    def shutdown(self, timeout: float | None = None) -> bool:
        """Drain for up to ``timeout`` seconds, then name every task that did not finish.

        Tasks not yet started are skipped (each named at ERROR); a task still running is
        named too, since a thread cannot be stopped from outside. After an :meth:`abort`
        there is no drain: everything left was named already.
        """
        if timeout is None:
            timeout = self.settings.shutdown_timeout
        deadline = time.monotonic() + timeout
        drained = not self._aborted and self.drain(timeout)
        with self._lock:
            self._closed = True
            for _ in range(self.settings.workers):
                self._queue.put(None)  # one sentinel per thread: the idle ones leave
            self._changed.notify_all()  # a close() waiting for room gives up now
        # NOTE: the first drain's target was fixed when it began; a batch accepted while
        # it waited (a task's own submit, a last request) is waited for in what is left of
        # the timeout, or named below: never left running past the shutdown hooks unnamed.
        # Once closed, a new batch runs inline in its close() (see _run_unqueued).
        drained = drained and self.drain(max(0.0, deadline - time.monotonic()))
        if not drained:
            what = f"did not finish within the {timeout:.1f} s shutdown timeout"
            for batch in self.unfinished():
                report(batch, what)
        self._executor.shutdown(wait=False)
        return drained


# -- the process's pool ---------------------------------------------------------------

_pool: TaskPool | None = None
_pool_lock = threading.Lock()
#: The apps' own pools made in this process, by the view (the app's backend) that uses each.
_own_pools: dict[PoolView, TaskPool] = {}
_heartbeat: Heartbeat | None = None


def get_pool(settings: PoolSettings) -> TaskPool:
    """The process's pool, created on first use with ``settings``.

    An app whose settings differ from the pool's gets a WARNING the first time it
    uses the pool (or when it is created, if the pool exists then).
    """
    pool = _pool
    if pool is not None and id(settings) in pool.checked:
        return pool
    return _create(settings)


def _create(settings: PoolSettings) -> TaskPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = TaskPool(settings)
        else:
            _compare(_pool, settings)
        return _pool


def _compare(pool: TaskPool, settings: PoolSettings) -> None:
    if id(settings) in pool.checked:
        return
    pool.checked[id(settings)] = settings
    for field, name in POOL_WIDE.items():
        ours, theirs = getattr(pool.settings, field), getattr(settings, field)
        if ours != theirs:
            logger.warning(
                "the background pool of this process already exists with %s=%s; an app's"
                " %s=%s is ignored (one pool per process, sized by the first app that uses"
                " it; give every app the same value)",
                name,
                ours,
                name,
                theirs,
            )


def current_pool() -> ProcessPools | None:
    """Every pool made in this process (the shared one, the apps' own), else None.

    What the process's end (drain, then name what is left), the test client's wait and a
    test's drain act on: an app's own pool is as much the process's as the shared one.
    """
    if _pool is None and not _own_pools:
        return None
    return _PROCESS_POOLS


class ProcessPools:
    """The process's pools seen as one: the shared pool, then each app's own, in order made."""

    __slots__ = ()

    def pools(self) -> list[TaskPool]:
        """The pools made in this process."""
        shared = _pool
        own = list(_own_pools.values())
        return own if shared is None else [shared, *own]

    def wait(self, batch: Batch, timeout: float | None = None) -> bool:
        """Wait until ``batch`` has finished on whichever pool holds it; False on timeout."""
        for pool in self.pools():
            if pool.holds(batch):
                return pool.wait(batch, timeout)
        return True  # not held: finished, or never given to a pool

    def drain(self, timeout: float | None = None) -> bool:
        """Drain every pool, all within one ``timeout``; False if one did not drain."""
        deadline = None if timeout is None else time.monotonic() + timeout
        drained = True
        for pool in self.pools():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            drained = pool.drain(left) and drained
        return drained

    def shutdown(self, timeout: float | None = None) -> bool:
        """Shut every pool down, each within what is left of one ``timeout``.

        With ``timeout=None`` each pool uses its own ``shutdown_timeout``; the longest
        of them bounds the whole. The pools' threads keep running while another pool
        drains, so a later pool is given what is left, not a fresh timeout.
        """
        pools = self.pools()
        if timeout is None:
            timeout = self.shutdown_timeout()
        deadline = time.monotonic() + timeout
        drained = True
        for pool in pools:
            drained = pool.shutdown(max(0.0, deadline - time.monotonic())) and drained
        return drained

    def shutdown_timeout(self) -> float:
        """The longest ``shutdown_timeout`` of the pools: what a drain at exit would take."""
        return max((pool.settings.shutdown_timeout for pool in self.pools()), default=0.0)

    def still_running(self) -> int:
        """How many tasks are running now, in every pool."""
        return sum(pool.still_running() for pool in self.pools())

    def abort(self, reason: str) -> int:
        """Name every unfinished task of every pool at ERROR (see :meth:`TaskPool.abort`)."""
        return sum(pool.abort(reason) for pool in self.pools())


_PROCESS_POOLS = ProcessPools()


def check_settings(settings: PoolSettings) -> None:
    """Warn when an app asks for pool-wide settings other than the existing pool's."""
    pool = _pool
    if pool is not None:
        with _pool_lock:
            _compare(pool, settings)


def set_heartbeat(notify: Callable[[], Any] | None, interval: float = 1.0) -> None:
    """Have a ``close()`` blocked on a full queue call ``notify()`` every ``interval`` s."""
    global _heartbeat
    _heartbeat = None if notify is None else Heartbeat(notify, interval)


def abort(reason: str) -> int:
    """Name every unfinished task of this process's pools at ERROR (see :meth:`TaskPool.abort`)."""
    pools = current_pool()
    return 0 if pools is None else pools.abort(reason)


def _forget_in_child() -> None:
    # NOTE: a ThreadPoolExecutor that ran anything before fork() is dead in the child:
    # its threads did not survive, but its idle semaphore says one is free, so it never
    # starts a new one and the future never completes (CPython 3.8+). Drop it; the child
    # makes its own on first use. The parent's server (heartbeat) is not the child's.
    # An app's own pool is dead in the child for the same reason: its view makes a new one.
    global _pool, _pool_lock, _heartbeat, _own_pools
    _pool = None
    _pool_lock = threading.Lock()
    _heartbeat = None
    _own_pools = {}


_process.at_fork_in_child(_forget_in_child)


#: The longest ``background_shutdown_timeout`` an app of this process asked for.
_longest_shutdown = 0.0


def longest_shutdown_timeout() -> float:
    """The longest drain at exit that an app of this process asked for (0 if none)."""
    return _longest_shutdown


class PoolView:
    """``app.background``: the pool as seen by one app (stats and drain).

    The process's shared pool, or with ``own_pool=True`` a pool of this view's own, made on
    first use and sized by this view's settings alone. An own pool is the process's as much
    as the shared one: the process's end drains it, gunicorn's abort names its tasks, and a
    forked child makes a new one (see :func:`current_pool`).
    """

    __slots__ = ("own_pool", "settings")

    def __init__(self, settings: PoolSettings, *, own_pool: bool = False) -> None:
        global _longest_shutdown
        self.settings = settings
        self.own_pool = own_pool
        _longest_shutdown = max(_longest_shutdown, settings.shutdown_timeout)

    def pool(self) -> TaskPool:
        """The pool this view's batches go to, made now if this process has none yet."""
        if not self.own_pool:
            return get_pool(self.settings)
        pool = _own_pools.get(self)
        if pool is None:
            with _pool_lock:
                pool = _own_pools.get(self)
                if pool is None:
                    pool = _own_pools[self] = TaskPool(self.settings)
        return pool

    def _existing(self) -> TaskPool | None:
        return _own_pools.get(self) if self.own_pool else _pool

    def stats(self) -> dict[str, int]:
        """Counts of tasks ``queued``, ``running``, ``completed`` and ``failed``."""
        pool = self._existing()
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
        pool = self._existing()
        return True if pool is None else pool.drain(timeout)
