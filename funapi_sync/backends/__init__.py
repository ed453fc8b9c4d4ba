"""Backends: where a request's background tasks go once its response is closed.

``App(background_backend=...)`` takes ``"thread"`` (the default: the process's pool;
``ThreadBackend(own_pool=True)`` for a pool of the app's own),
``"inline"`` (run in the closing thread, for tests), ``"record"`` (kept, not run),
``"sqlite"`` (:class:`funapi_sync.backends.sqlite.SQLiteBackend` with its defaults) or a
backend object such as :class:`funapi_sync.backends.rq.RQBackend`. The app hands each
request's :class:`~funapi_sync.pool.Batch` to ``backend.submit(batch)`` from the response
iterable's ``close()``; ``app.background`` is the backend (``stats()``, ``drain()``,
``status(task_id)``, ``tasks(status, limit)``: see docs/task-status.md).

Two methods are optional, and the tasks page (``funapi_sync.tasks_page``) offers them
only on a backend that has them: ``retry(task_id) -> bool`` runs a ``FAILED`` task again
(False when no ``FAILED`` task has that id), ``forget(task_id) -> bool`` drops a finished
task's status (False when no finished task has that id). The in-process backends forget;
none of them retries (a task's arguments are not kept once it ran). The SQLite backend does
both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..pool import Batch, PoolSettings, PoolView
from ..status import READY, StatusStore, TaskStatus
from ._common import TaskCheck as TaskCheck
from ._common import finish as finish
from .retry import Retry as Retry

logger = logging.getLogger("funapi_sync.background")

#: ``check(fn, args, kwargs)``: raise TypeError for a task this backend cannot run.


@runtime_checkable
class Backend(Protocol):
    """What an app needs from a backend; ``check`` is None when any callable will do."""

    check: TaskCheck | None

    def bind(self, settings: PoolSettings) -> None: ...

    def submit(self, batch: Batch) -> None: ...

    def stats(self) -> dict[str, int]: ...

    def drain(self, timeout: float | None = None) -> bool: ...

    def status(self, task_id: str) -> TaskStatus | None:
        """The task ``task_id``'s status, or None when this backend does not know it."""
        ...

    def tasks(self, status: str | None = None, limit: int = 100) -> list[TaskStatus]:
        """Up to ``limit`` tasks this backend knows, newest first; only ``status`` ones if given."""
        ...


class _Statuses:
    """``status()`` and ``tasks()`` answered from the backend's :class:`StatusStore`."""

    __slots__ = ()

    store: StatusStore

    def status(self, task_id: str) -> TaskStatus | None:
        """The status of this process's task ``task_id``, while among the most recent
        ``background_status_size``; else None (another process's task, or forgotten)."""
        return self.store.status(task_id)

    def tasks(self, status: str | None = None, limit: int = 100) -> list[TaskStatus]:
        """Up to ``limit`` of this process's recent tasks, newest first (``status`` ones only)."""
        return self.store.tasks(status, limit)

    def forget(self, task_id: str) -> bool:
        """Forget this process's finished task ``task_id``; False if there is none such."""
        return self.store.forget(task_id)


class ThreadBackend(_Statuses, PoolView):
    """The default: the process's pool (SPEC §6), shared by every app in the process.

    ``ThreadBackend(own_pool=True)`` gives one app a pool of its own instead, sized by that
    app's ``background_*`` settings alone (the shared pool is sized by the first app that
    uses it). A test that needs a fresh pool, or a pool of one thread, uses one::

        app = App(background_workers=1, background_backend=ThreadBackend(own_pool=True))

    An own pool is drained at the process's end with the shared one, its tasks are named by
    gunicorn's abort, and a forked worker makes its own; ``app.background.pool()`` is it.

    :param settings: set by the app (``bind``); only a backend used without an app needs it.
    :param own_pool: use a pool of this backend's own rather than the process's shared one.
    """

    __slots__ = ("store",)

    check: TaskCheck | None = None

    def __init__(self, settings: PoolSettings | None = None, *, own_pool: bool = False) -> None:
        settings = PoolSettings() if settings is None else settings
        super().__init__(settings, own_pool=own_pool)
        #: The states of this backend's most recent tasks (``status()``, ``tasks()``).
        self.store = StatusStore(settings.status_size)

    def bind(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.store.size = settings.status_size

    def submit(self, batch: Batch) -> None:
        # NOTE: tracked before it is queued: a pool thread may run it at once.
        batch.track(self.store)
        self.pool().submit(batch, self.settings.submit_timeout)


class InlineBackend(_Statuses):
    """Run a request's tasks in the thread that closes its response (tests, scripts).

    The failure policy is the pool's (:meth:`~funapi_sync.batch.Batch.run`): a failing
    task is logged at WARNING and the next one still runs; the cleanup runs after the tasks.
    """

    check: TaskCheck | None = None

    def __init__(self) -> None:
        self._completed = 0
        self._failed = 0
        self.store = StatusStore()

    def bind(self, settings: PoolSettings) -> None:
        self.store.size = settings.status_size

    def submit(self, batch: Batch) -> None:
        batch.track(self.store)
        batch.run()
        batch.finished = True
        self._failed += batch.failed
        self._completed += batch.done - batch.failed

    def stats(self) -> dict[str, int]:
        """``completed`` and ``failed`` count this backend's tasks; nothing is ever queued."""
        return {"queued": 0, "running": 0, "completed": self._completed, "failed": self._failed}

    def drain(self, timeout: float | None = None) -> bool:
        """Always True: every task ran before its response's ``close()`` returned."""
        return True


class RecordBackend(_Statuses):
    """Keep each task, run none: ``recorded`` lists ``(fn, args, kwargs)`` in order.

    For asserting what a request would enqueue (Django's ``DummyBackend``). The batch's
    cleanup runs at once, as with a durable backend. Clear it with ``recorded.clear()``.
    ``status()`` says ``READY`` for a recorded task: it was accepted and will never start.
    A task added once its request's batch was recorded raises ``RuntimeError``.
    """

    check: TaskCheck | None = None

    def __init__(self) -> None:
        self.recorded: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self.store = StatusStore()

    def bind(self, settings: PoolSettings) -> None:
        self.store.size = settings.status_size

    def submit(self, batch: Batch) -> None:
        batch.refuse_new()
        self.store.add(batch.tasks, READY)
        self.recorded.extend((task.fn, task.args, task.kwargs) for task in batch.tasks)
        finish(batch)

    def stats(self) -> dict[str, int]:
        """Nothing runs: ``recorded`` is the number of tasks kept so far."""
        return {
            "queued": 0,
            "running": 0,
            "completed": 0,
            "failed": 0,
            "recorded": len(self.recorded),
        }

    def drain(self, timeout: float | None = None) -> bool:
        """Always True: recorded tasks never run, so there is nothing to wait for."""
        return True


def resolve(backend: Any, settings: PoolSettings) -> Backend:
    """The backend for ``App(background_backend=backend)``, bound to the app's settings."""
    if isinstance(backend, str):
        factory = _NAMED.get(backend)
        if factory is None:
            raise ValueError(
                f"background_backend={backend!r} is not a backend; use 'thread' (the default),"
                " 'inline', 'record', 'sqlite' or a backend object such as"
                " funapi_sync.backends.sqlite.SQLiteBackend('tasks.sqlite3')"
            )
        resolved: Backend = factory(settings)
    elif isinstance(backend, type):
        raise TypeError(
            f"background_backend={backend.__name__} is a class; pass an instance, e.g."
            f" background_backend={backend.__name__}(...)"
        )
    elif isinstance(backend, Backend):
        resolved = backend
    else:
        raise TypeError(
            f"background_backend={backend!r} is neither a backend name nor a backend object"
            " (with check, bind(), submit(), stats(), drain(), status() and tasks()); use"
            " 'thread', 'inline', 'record', 'sqlite' or a backend object such as"
            " funapi_sync.backends.sqlite.SQLiteBackend(...)"
        )
    resolved.bind(settings)
    return resolved


_NAMED: dict[str, Callable[[PoolSettings], Backend]] = {
    "thread": ThreadBackend,
    "inline": lambda settings: InlineBackend(),
    "record": lambda settings: RecordBackend(),
    "sqlite": lambda settings: _sqlite_backend(),
}


def _sqlite_backend() -> Backend:
    # NOTE: imported on use: the SQLite backend's modules import this package.
    from .sqlite import SQLiteBackend

    return SQLiteBackend()
