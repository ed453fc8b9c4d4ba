"""Task: a request's fan-out handle (``task.spawn``/``gather``) on its own thread pool."""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# NOTE: fan-out gets its own executor, never the background pool: a background task that
# spawns and waits would otherwise wait on threads that are all busy waiting the same way.
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()
FANOUT_WORKERS = 32


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    executor = _executor
    if executor is None:
        with _lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    max_workers=FANOUT_WORKERS, thread_name_prefix="funapi_sync-task"
                )
            executor = _executor
    return executor


def _forget_in_child() -> None:
    global _executor, _lock
    _executor = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


class Spawned(Generic[T]):
    """The result of ``task.spawn``: ``wait()`` returns the value or re-raises."""

    __slots__ = ("future",)

    def __init__(self, future: Future[T]) -> None:
        self.future = future

    def wait(self, timeout: float | None = None) -> T:
        """Block until the call finished; return its result or raise its exception."""
        return self.future.result(timeout)

    def done(self) -> bool:
        return self.future.done()


class Task:
    """The handler's third positional argument, the sync twin of FunApi's ``task.async``."""

    __slots__ = ()

    def spawn(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Spawned[T]:
        """Start ``fn(*args, **kwargs)`` on the fan-out pool; return its handle."""
        if not callable(fn):
            raise TypeError(f"task.spawn() needs a callable, got {fn!r}")
        future = _get_executor().submit(contextvars.copy_context().run, fn, *args, **kwargs)
        return Spawned(future)

    def gather(self, *spawned: Spawned[Any], timeout: float | None = None) -> list[Any]:
        """Wait for each handle in turn and return their results in the order given."""
        return [handle.wait(timeout) for handle in spawned]


TASK = Task()
