"""SQLiteBackend: durable background tasks with no server, in an SQLite file on this host.

``App(background_backend="sqlite")`` or ``SQLiteBackend(path, ...)``: each request's
tasks are written to the file as JSON, one row per task, and run by the pool threads of
every process that serves the app (each gunicorn worker) and of any
``funapi-sync worker APP``. See docs/durable-tasks.md.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .. import _process, tracing
from ..pool import Batch, PoolSettings
from ..status import TaskStatus
from ._common import TaskCheck, finish
from ._sqlite_runner import Runner
from ._sqlite_store import NewRow, Row, Store, new_task_id
from .portable import carry_json, json_call
from .retry import Retry

if TYPE_CHECKING:
    from ..background import BackgroundTask
    from ..lifecycle import Lifecycle

logger = logging.getLogger("funapi_sync.background")

Persist = Literal["after_response", "before_response"]
PERSIST_CHOICES = ("after_response", "before_response")
Durable = Literal["process", "power"]
#: ``durable=``: the ``synchronous`` of the accepted tasks' insert.
DURABLE_SYNC = {"process": "NORMAL", "power": "FULL"}
#: Finished rows are kept this many seconds by default (one week), then pruned.
DEFAULT_KEEP = 7 * 24 * 3600.0


class _Served(Protocol):
    """What the worker needs of an app (``App`` is one; this module never imports it)."""

    @property
    def lifecycle(self) -> Lifecycle: ...


class SQLiteBackend:
    """Store each request's tasks in an SQLite file; run them in every process that serves.

    :param path: the database file, on a local disk of this host (a network file system
        is refused); its directory is created. Beside it: ``-wal``, ``-shm`` and ``.lock``.
    :param retry: ``Retry(max=3, interval=[10, 30, 60])`` or an int (that many retries at
        once); a retry resumes the request at the task that failed.
    :param lease: seconds a process holds a task it runs without renewing it (renewed
        every ``lease / 3`` s while it runs); a task whose process died is taken over by
        any other once its lease expired.
    :param persist: ``"after_response"`` (accepted once the response's ``close()``
        returned) or ``"before_response"`` (stored before the status line is sent; 503
        with ``Retry-After`` when it cannot be); the route option ``persist=`` overrides it.
    :param keep: seconds a finished (SUCCESSFUL or FAILED) task stays readable through
        ``status()`` before it is pruned (default one week); ``None`` keeps them all.
    :param durable: what an accepted task survives. ``"process"`` (the default): any crash
        or kill of any process (SIGKILL, OOM), not a power loss or an OS crash, which may
        lose the last accepted tasks. ``"power"``: those too, for an fsync per request.
    """

    def __init__(
        self,
        path: str = "funapi_tasks.sqlite3",
        *,
        retry: Retry | int | None = None,
        lease: float = 30.0,
        persist: Persist = "after_response",
        keep: float | None = DEFAULT_KEEP,
        durable: Durable = "process",
    ) -> None:
        if persist not in PERSIST_CHOICES:
            raise ValueError(
                f"SQLiteBackend(persist={persist!r}): use 'after_response' or 'before_response'"
            )
        if durable not in DURABLE_SYNC:
            raise ValueError(
                f"SQLiteBackend(durable={durable!r}): use 'process' (accepted tasks survive"
                " any process's crash, the default) or 'power' (a power loss too, at an"
                " fsync per request)"
            )
        if not lease > 0:
            raise ValueError(f"SQLiteBackend(lease={lease!r}): give seconds > 0, e.g. 30")
        if keep is not None and keep < 0:
            raise ValueError(f"SQLiteBackend(keep={keep!r}): give seconds >= 0, or None")
        #: Refuses at ``add_task`` what cannot be stored as JSON and run elsewhere.
        self.check: TaskCheck | None = _check
        #: The automatic retries (``retry=``); ``retry()`` is the method that runs a task again.
        self.retry_policy = Retry.of(retry, "SQLiteBackend")
        self.lease = float(lease)
        self.persist = persist
        self.keep = keep
        self.durable = durable
        self.store = Store(path, DURABLE_SYNC[durable])
        self.settings = PoolSettings()
        self._runner: Runner | None = None
        self._runner_lock = threading.Lock()
        _process.at_exit(self._exit_drain, self._exit_shutdown, first=True)
        _process.at_fork_in_child(self._forget_in_child)

    def __repr__(self) -> str:
        return (
            f"SQLiteBackend({self.store.path!r}, persist={self.persist!r},"
            f" durable={self.durable!r})"
        )

    # -- the app side -----------------------------------------------------------------

    def bind(self, settings: PoolSettings) -> None:
        self.settings = settings

    def start(self) -> None:
        """Start claiming stored tasks in this process (the app's startup runs it)."""
        self._ensure_runner()

    def submit(self, batch: Batch) -> None:
        """Store the batch's tasks (``persist="after_response"``), then run its cleanup."""
        # NOTE: the stored rows are the batch from now on: a task added later raises in the
        # code that adds it (naming the request) rather than being silently left out.
        batch.refuse_new()
        try:
            self.persist_tasks(batch.tasks, batch.label)
        except Exception as exc:
            for task in batch.tasks:
                logger.error(
                    "background task %s of %s was not stored in %s (%s) and will not run",
                    task.name,
                    batch.label,
                    self.store.path,
                    type(exc).__name__,
                    exc_info=exc,
                )
        finish(batch)

    def persist_tasks(self, tasks: Sequence[BackgroundTask], label: str) -> list[str]:
        """Write ``tasks`` as one request's rows, in order; their ids. Raises on failure."""
        trace = self.settings.task_tracing != tracing.OFF
        rows = [_encode(task, trace) for task in tasks]
        self.store.insert(new_task_id(), label, rows)
        runner = self._runner
        if runner is None or runner.pid != os.getpid():
            runner = self._ensure_runner()
        runner.wake.set()
        return [row.id for row in rows]

    def _ensure_runner(self) -> Runner:
        runner = self._runner
        if runner is not None and runner.pid == os.getpid():
            return runner
        with self._runner_lock:
            runner = self._runner
            if runner is None or runner.pid != os.getpid():
                runner = self._runner = Runner(
                    self.store,
                    self.settings,
                    lease=self.lease,
                    retry=self.retry_policy,
                    keep=self.keep,
                )
        return runner

    # -- introspection ----------------------------------------------------------------

    def status(self, task_id: str) -> TaskStatus | None:
        """The stored task ``task_id`` (from any process), or None (unknown or pruned)."""
        row = self.store.get(task_id)
        return None if row is None else _record(row)

    def tasks(self, status: str | None = None, limit: int = 100) -> list[TaskStatus]:
        """The newest stored tasks first, of one ``status`` if given."""
        return [_record(row) for row in self.store.list(status, limit)]

    def stats(self) -> dict[str, int]:
        """Stored tasks by status (all processes): ``queued`` (READY), ``running``,
        ``completed`` (SUCCESSFUL), ``failed``; ``in_process`` runs here now."""
        counts = self.store.counts()
        runner = self._runner
        return {
            "queued": counts.get("READY", 0),
            "running": counts.get("RUNNING", 0),
            "completed": counts.get("SUCCESSFUL", 0),
            "failed": counts.get("FAILED", 0),
            "in_process": 0 if runner is None else runner.in_flight(),
        }

    def retry(self, task_id: str) -> bool:
        """Run the FAILED task ``task_id`` again (any process may); False if none is FAILED.

        It becomes READY, due now, its ``attempts`` counting on (its next run is attempt
        n + 1) and its error kept until then; ``retry=``'s automatic retries, already
        spent, are not given again. The request's later tasks not yet started wait behind
        it again, in order; those that already ran are not run again.
        """
        if not self.store.retry(task_id):
            return False
        self._ensure_runner().wake.set()
        return True

    def forget(self, task_id: str) -> bool:
        """Delete the finished (SUCCESSFUL, FAILED) task ``task_id``; False if there is
        none such (a READY or RUNNING task is refused: some process will still run it)."""
        return self.store.forget(task_id)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no stored task is READY or RUNNING, in any process; False on timeout.

        A retry waiting for its interval counts as READY. Polls the file every 50 ms.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.store.pending():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    # -- the worker side --------------------------------------------------------------

    def run_worker(
        self, app: _Served, *, burst: bool = False, queues: list[str] | None = None
    ) -> int:
        """``funapi-sync worker APP``: run stored tasks without serving HTTP.

        Runs the app's startup hooks, claims tasks until SIGTERM or SIGINT (with
        ``burst``, until none is left to claim), then drains and shuts down as a server
        process does. :returns: the exit status, 0.
        """
        if queues:
            raise ValueError(
                "the SQLite background backend has one table, not named queues; drop --queue"
            )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop.set())
        app.lifecycle.ensure_started()
        runner = self._ensure_runner()
        try:
            while not stop.wait(0.1 if burst else 1.0):
                if burst and runner.in_flight() == 0 and not self._claimable_now():
                    break
        finally:
            _process.shutdown_process()
        return 0

    def _claimable_now(self) -> bool:
        now = time.time()
        row = (
            self.store.connection()
            .execute(
                "SELECT 1 FROM funapi_tasks WHERE (status = 'READY' AND due <= ?)"
                " OR (status = 'RUNNING' AND lease_until < ?) LIMIT 1",
                (now, now),
            )
            .fetchone()
        )
        return row is not None

    # -- the process's end ------------------------------------------------------------

    def _exit_drain(self, timeout: float | None) -> int:
        # NOTE: first of the exit steps: take no new row, so the pool's drain that
        # follows waits only for the tasks running here; a request's next task stays
        # READY for any process, and a task still running at the end expires its lease.
        runner = self._runner
        if runner is not None and runner.pid == os.getpid():
            runner.stop_claiming()
        return 0

    def _exit_shutdown(self) -> None:
        runner = self._runner
        if runner is not None and runner.pid == os.getpid():
            runner.stop()

    def _forget_in_child(self) -> None:
        # NOTE: the watcher thread did not survive fork(); the child starts its own.
        self._runner = None
        self._runner_lock = threading.Lock()

    def close(self) -> None:
        """Stop this process's runner and close its connections (for tests)."""
        self._exit_shutdown()
        self._runner = None
        self.store.close()


def _check(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    json_call(fn, args, kwargs)


def _encode(task: BackgroundTask, trace: bool) -> NewRow:
    name, args, kwargs = json_call(task.fn, task.args, task.kwargs)
    call: dict[str, Any] = {"args": args, "kwargs": kwargs}
    carried = carry_json(task.context)
    if carried:
        call["context"] = carried
    # NOTE: the request's span as W3C headers, for the task's span in whichever process
    # runs it. PERF: a dict lookup when OpenTelemetry is not in use.
    captured = tracing.capture(task.context) if trace else None
    if captured:
        call["trace"] = captured
    # NOTE: the row is keyed by the id add_task already gave the handler (TaskHandle.id).
    return NewRow(task.id, name, json.dumps(call, allow_nan=False))


def _record(row: Row) -> TaskStatus:
    result = None if row.result is None else json.loads(row.result)
    return TaskStatus(
        row.id,
        row.dotted,
        row.status,
        row.attempts,
        _time(row.enqueued_at),
        None if row.started_at is None else _time(row.started_at),
        None if row.finished_at is None else _time(row.finished_at),
        row.error,
        result,
    )


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


__all__ = ["Retry", "SQLiteBackend"]
