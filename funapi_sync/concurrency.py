"""Task: a request's fan-out handle (``task.spawn``/``gather``) on its own thread pool."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from . import _process
from ._scheduling import as_main_thread

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

P = ParamSpec("P")
T = TypeVar("T")

#: Threads of the per-process fan-out executor.
FANOUT_WORKERS = 32

# NOTE: fan-out gets its own executor, never the background pool: a background task that
# spawns and waits would otherwise wait on threads that are all busy waiting the same way.
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    executor = _executor
    if executor is None:
        with _lock:
            if _executor is None:
                # PERF: imported by the first spawn, not by every app.
                from concurrent.futures import ThreadPoolExecutor

                # NOTE: a fan-out thread first started by a background task would
                # inherit the pool thread's SCHED_BATCH, and then run requests' spawns.
                _executor = ThreadPoolExecutor(
                    max_workers=FANOUT_WORKERS,
                    thread_name_prefix="funapi_sync-task",
                    initializer=as_main_thread,
                )
            executor = _executor
    return executor


def _forget_in_child() -> None:
    # NOTE: an executor's threads do not survive fork(); the child makes its own.
    global _executor, _lock
    _executor = None
    _lock = threading.Lock()


_process.at_fork_in_child(_forget_in_child)


class Spawned(Generic[T]):
    """The result of ``task.spawn``: ``wait()`` returns the value or re-raises.

    The call runs once, on whichever thread claims it first: a fan-out thread, or the
    thread that calls :meth:`wait` before any fan-out thread got to it.
    """

    __slots__ = ("_args", "_claim", "_context", "_fn", "_kwargs", "future")

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        from concurrent.futures import Future

        #: The :class:`concurrent.futures.Future` of the call.
        self.future: Future[T] = Future()
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        # NOTE: copied at spawn time, so request ids and the like reach the call
        # wherever it runs.
        self._context = contextvars.copy_context()
        self._claim = threading.Lock()

    def run(self) -> None:
        """Run the call unless another thread already claimed it."""
        if not self._claim.acquire(blocking=False):
            return
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self._context.run(self._fn, *self._args, **self._kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)
        finally:
            # Drop references to the arguments once the call is over.
            self._args = ()
            self._kwargs = {}

    def wait(self, timeout: float | None = None) -> T:
        """Return the call's result, or raise its exception.

        A call no fan-out thread has started yet runs right here, in the waiting thread:
        a waiter never waits for a free thread. That is what keeps nested fan-out (a
        spawned call that spawns and waits) from deadlocking when every fan-out thread is
        busy waiting on children still queued behind them.

        :param timeout: seconds to wait for a call already running on another thread;
            :class:`TimeoutError` when it has not finished by then.
        """
        self.run()
        return self.future.result(timeout)

    def done(self) -> bool:
        """Whether the call has finished (returned or raised)."""
        return self.future.done()


class Task:
    """The handler's third positional argument, the sync twin of FunApi's ``task.async``.

    ``f = task.spawn(fn, *args, **kwargs)`` starts ``fn`` on the per-process fan-out
    executor, which is separate from the background pool, so neither can starve the
    other; ``f.wait()`` or ``task.gather(f1, f2)`` collects the results.
    """

    __slots__ = ()

    def spawn(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Spawned[T]:
        """Start ``fn(*args, **kwargs)`` on the fan-out pool; return its handle.

        :raises TypeError: ``fn`` is not callable (raised here, in the caller).
        """
        if not callable(fn):
            raise TypeError(
                f"task.spawn() needs a callable as its first argument, got"
                f" {type(fn).__name__} {fn!r}; pass the function itself, e.g."
                " task.spawn(fetch, url)"
            )
        spawned = Spawned(fn, args, kwargs)
        # NOTE: when the interpreter is exiting the executor refuses new work; the call
        # then runs in wait(), which is where its result is needed anyway.
        with contextlib.suppress(RuntimeError):
            _get_executor().submit(spawned.run)
        return spawned

    def gather(self, *spawned: Spawned[Any], timeout: float | None = None) -> list[Any]:
        """Wait for each handle in turn; return their results in the order given.

        The first exception met (in that order) is raised.
        """
        return [handle.wait(timeout) for handle in spawned]


#: The handle every handler gets; stateless, so one serves all requests and threads.
TASK = Task()
