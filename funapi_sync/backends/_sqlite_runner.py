"""The SQLite backend's runner: claim stored tasks, run them on the process's pool, record them.

Internal. One watcher thread per process and backend claims rows (as many as the pool
has threads) and hands each to the process's pool as a one-task batch; that pool thread
runs the row, records its end, and goes on with the next task of the same request while
it can claim it, so a request's tasks run in order. The watcher also renews the leases
of the rows this process runs (the heartbeat), and now and then prunes finished rows and
checkpoints the WAL. A local submit wakes it at once; other processes' rows are found by
polling, 50 ms doubling to 1 s while nothing is found.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import random
import secrets
import socket
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import tracing
from ..background import BackgroundTask, next_seq
from ..batch import Batch
from ..pool import get_pool
from ..task_context import CurrentTask, set_current
from ._sqlite_store import MAX_LOST, Row, Store
from .portable import import_dotted, restore

if TYPE_CHECKING:
    from ..pool import PoolSettings
    from .retry import Retry

logger = logging.getLogger("funapi_sync.background")

POLL_MIN, POLL_MAX = 0.05, 1.0
#: Seconds between two prunes and checkpoints of one process (jittered, so processes differ).
UPKEEP_EVERY = 60.0
#: How much of an error message is stored.
ERROR_CHARS = 2000


class Runner:
    """Claims and runs stored tasks in this process, until :meth:`stop`."""

    def __init__(
        self,
        store: Store,
        settings: PoolSettings,
        *,
        lease: float,
        retry: Retry | None,
        keep: float | None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.lease = lease
        self.retry = retry
        self.keep = keep
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.pid = os.getpid()
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        #: The rows this process runs now, by id (their leases are renewed).
        self._running: dict[str, Row] = {}
        self._in_flight = 0
        self.claiming = True
        self._stopped = False
        self._thread = threading.Thread(
            target=self._watch, name="funapi_sync-sqlite-runner", daemon=True
        )
        self._thread.start()

    # -- the watcher thread -----------------------------------------------------------

    def _watch(self) -> None:
        delay = POLL_MIN
        beat_every = max(0.05, self.lease / 3)
        next_beat = time.monotonic() + beat_every
        next_upkeep = time.monotonic() + random.uniform(1.0, UPKEEP_EVERY)
        while not self._stopped:
            found = self._claim_free() if self.claiming else 0
            now = time.monotonic()
            if now >= next_beat:
                self._beat()
                next_beat = now + beat_every
            if now >= next_upkeep:
                self._upkeep()
                next_upkeep = now + UPKEEP_EVERY * random.uniform(0.75, 1.25)
            if found:
                delay = POLL_MIN
                continue
            woke = self.wake.wait(min(delay, max(0.0, next_beat - time.monotonic())))
            self.wake.clear()
            delay = POLL_MIN if woke else min(delay * 2, POLL_MAX)

    def _claim_free(self) -> int:
        # NOTE: the free slots are counted in flight before the claim, so no one sees this
        # process idle while rows it just claimed are on their way to the pool.
        with self._lock:
            free = self.settings.workers - self._in_flight
            if free <= 0:
                return 0
            self._in_flight += free
        rows: list[Row] = []
        try:
            rows = self.store.claim(self.owner, self.lease, free)
        except sqlite3.Error as exc:
            logger.warning("claiming background tasks from %s failed: %s", self.store.path, exc)
        with self._lock:
            self._in_flight -= free - len(rows)
            for row in rows:
                self._running[row.id] = row
        for row in rows:
            self._hand_to_pool(row)
        return len(rows)

    def _hand_to_pool(self, row: Row) -> None:
        task = BackgroundTask(self.run_chain, (row,), {}, contextvars.Context(), False, next_seq())
        # NOTE: no slow warning for the chain as a whole (it may run a request's every
        # task): each row is timed on its own, by its name, in _run_row.
        batch = Batch([task], row.label, None, slow_warning=float("inf"))
        get_pool(self.settings).submit(batch, self.settings.submit_timeout)
        if batch.reported and not batch.taken:
            # NOTE: the pool refused it (full, or shutting down): the row stays RUNNING
            # without a heartbeat, so its lease expires and any process takes it.
            self._release(row)
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()

    def _beat(self) -> None:
        with self._lock:
            ids = list(self._running)
        try:
            self.store.renew(ids, self.owner, self.lease)
        except sqlite3.Error as exc:
            logger.warning("renewing the leases of %d running task(s) failed: %s", len(ids), exc)

    def _upkeep(self) -> None:
        try:
            pruned = self.store.prune(self.keep)
            if pruned:
                logger.debug("pruned %d finished task(s) from %s", pruned, self.store.path)
            self.store.checkpoint()
        except sqlite3.Error as exc:
            logger.warning("pruning or checkpointing %s failed: %s", self.store.path, exc)

    # -- a pool thread ----------------------------------------------------------------

    def run_chain(self, row: Row) -> None:
        """Run ``row``, then the next tasks of its request while this process can claim them."""
        current: Row | None = row
        try:
            while current is not None:
                go_on = self._run_row(current)
                self._release(current)
                batch = current.batch
                current = None
                if go_on and self.claiming:
                    current = self._claim_next(batch)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()
            self.wake.set()

    def _claim_next(self, batch: str) -> Row | None:
        try:
            rows = self.store.claim(self.owner, self.lease, 1, batch=batch)
        except sqlite3.Error as exc:
            logger.warning("claiming the next task of a request failed: %s", exc)
            return None
        if not rows:
            return None
        with self._lock:
            self._running[rows[0].id] = rows[0]
        return rows[0]

    def _release(self, row: Row) -> None:
        with self._lock:
            self._running.pop(row.id, None)

    def _run_row(self, row: Row) -> bool:
        """Run one claimed row and record its end; whether its request's next task may run."""
        if row.lost > MAX_LOST:
            error = f"LostRunner: the process running it died {row.lost} times"
            logger.error("background task %s of %s failed: %s", row.dotted, row.label, error)
            self._record(row, "FAILED", error, None)
            return True
        started = time.monotonic()
        try:
            call = json.loads(row.call)
            fn = import_dotted(row.name)
            context = restore([(ref, value) for ref, value in call.get("context", ())])
            current = CurrentTask(row.id, row.attempts)
            span = (row.dotted, call.get("trace"), self.settings.task_tracing)
            result = context.run(_call, current, span, fn, call["args"], call["kwargs"])
        except (KeyboardInterrupt, SystemExit) as exc:
            self._failed(row, exc)
            return False
        except BaseException as exc:  # a task's failure is contained: recorded and logged
            return self._failed(row, exc)
        self._record(row, "SUCCESSFUL", None, _json_or_none(result))
        took = time.monotonic() - started
        if took > self.settings.slow_warning:
            logger.warning(
                "background task %s of %s was slow: %.1f s (background_slow_warning=%s)",
                row.dotted,
                row.label,
                took,
                self.settings.slow_warning,
            )
        return True

    def _failed(self, row: Row, exc: BaseException) -> bool:
        error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        retry = self.retry
        retries_done = row.attempts - 1 - row.lost
        if retry is not None and retries_done < retry.max:
            delay = retry.delay(retries_done + 1)
            logger.warning(
                "background task %s of %s failed (attempt %d); retry %d of %d in %g s",
                row.dotted,
                row.label,
                row.attempts,
                retries_done + 1,
                retry.max,
                delay,
                exc_info=exc,
            )
            try:
                self.store.retry_later(row, self.owner, time.time() + delay, error)
            except sqlite3.Error as db_exc:
                logger.warning("recording the retry of %s failed: %s", row.id, db_exc)
            return delay == 0
        logger.warning("background task %s of %s failed", row.dotted, row.label, exc_info=exc)
        self._record(row, "FAILED", error, None)
        return True

    def _record(self, row: Row, status: str, error: str | None, result: str | None) -> None:
        try:
            self.store.finish(row, self.owner, status, error, result)
        except sqlite3.Error as exc:
            # NOTE: the row stays RUNNING and its lease expires: it runs again elsewhere.
            logger.error(
                "recording the end of background task %s (%s) failed (%s); it may run again",
                row.dotted,
                row.id,
                exc,
            )

    # -- the end ----------------------------------------------------------------------

    def in_flight(self) -> int:
        return self._in_flight

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no claimed task runs here; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def stop_claiming(self) -> None:
        """Take no new row; a request's next task is left for any process to claim."""
        self.claiming = False
        self.wake.set()

    def stop(self) -> None:
        """Stop the watcher (and so the heartbeat): rows still running here expire."""
        self.claiming = False
        self._stopped = True
        self.wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)


def _call(
    current: CurrentTask,
    span: tuple[str, dict[str, str] | None, str],
    fn: Any,
    args: list[Any],
    kwargs: dict[str, Any],
) -> Any:
    set_current(current)
    # NOTE: entered inside the task's context, so its span is current for the task's own.
    name, captured, mode = span
    with tracing.task_span(name, current.id, current.attempt, captured, mode):
        return fn(*args, **kwargs)


def _json_or_none(value: Any) -> str | None:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
