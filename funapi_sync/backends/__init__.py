"""Backends: where a request's background tasks go once its response is closed.

``App(background_backend=...)`` takes ``"thread"`` (the default: the process's pool;
``ThreadBackend(own_pool=True)`` for a pool of the app's own),
``"inline"`` (run in the closing thread, for tests), ``"record"`` (kept, not run),
``"sqlite"`` (:class:`funapi_sync.backends.sqlite.SQLiteBackend` with its defaults) or a
backend object such as :class:`funapi_sync.backends.rq.RQBackend`. The app hands each
request's :class:`~funapi_sync.pool.Batch` to ``backend.submit(batch)`` from the response
iterable's ``close()``; ``app.background`` is the backend (``stats()``, ``drain()``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..pool import Batch, PoolSettings, PoolView
from .retry import Retry as Retry

logger = logging.getLogger("funapi_sync.background")

#: ``check(fn, args, kwargs)``: raise TypeError for a task this backend cannot run.
TaskCheck = Callable[[Any, tuple[Any, ...], dict[str, Any]], None]


@runtime_checkable
class Backend(Protocol):
    """What an app needs from a backend; ``check`` is None when any callable will do."""

    check: TaskCheck | None

    def bind(self, settings: PoolSettings) -> None: ...

    def submit(self, batch: Batch) -> None: ...

    def stats(self) -> dict[str, int]: ...

    def drain(self, timeout: float | None = None) -> bool: ...


class ThreadBackend(PoolView):
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

    __slots__ = ()

    check: TaskCheck | None = None

    def __init__(self, settings: PoolSettings | None = None, *, own_pool: bool = False) -> None:
        super().__init__(PoolSettings() if settings is None else settings, own_pool=own_pool)

    def bind(self, settings: PoolSettings) -> None:
        self.settings = settings

    def submit(self, batch: Batch) -> None:
        self.pool().submit(batch, self.settings.submit_timeout)


class InlineBackend:
    """Run a request's tasks in the thread that closes its response (tests, scripts).

    The failure policy is the pool's (:meth:`~funapi_sync.batch.Batch.run`): a failing
    task is logged at WARNING and the next one still runs; the cleanup runs after the tasks.
    """

    check: TaskCheck | None = None

    def __init__(self) -> None:
        self._completed = 0
        self._failed = 0

    def bind(self, settings: PoolSettings) -> None:
        pass

    def submit(self, batch: Batch) -> None:
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


class RecordBackend:
    """Keep each task, run none: ``recorded`` lists ``(fn, args, kwargs)`` in order.

    For asserting what a request would enqueue (Django's ``DummyBackend``). The batch's
    cleanup runs at once, as with a durable backend. Clear it with ``recorded.clear()``.
    """

    check: TaskCheck | None = None

    def __init__(self) -> None:
        self.recorded: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def bind(self, settings: PoolSettings) -> None:
        pass

    def submit(self, batch: Batch) -> None:
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
            " (with check, bind(), submit(), stats() and drain()); use 'thread', 'inline',"
            " 'record', 'sqlite' or funapi_sync.backends.sqlite.SQLiteBackend(...)"
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


def finish(batch: Batch) -> None:
    """Run the batch's cleanup here (logged, never raised) and mark it finished."""
    if batch.after is not None:
        try:
            batch.after()
        except Exception:
            logger.exception("cleanup after the tasks of %s failed", batch.label)
    batch.finished = True
