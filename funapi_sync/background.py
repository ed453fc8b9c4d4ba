"""BackgroundTasks: the ordered list of work a request asks to run after its response.

Each task gets an id when it is added (:class:`TaskHandle`), unique across processes and
restarts: this process's random prefix and a counter, formatted only when read.
"""

from __future__ import annotations

import contextvars
import itertools
import os
from collections.abc import Callable
from types import FunctionType
from typing import Any, NamedTuple, ParamSpec, Protocol

from . import _process
from ._callables import ASYNC_FLAGS, callable_name, is_async_callable

P = ParamSpec("P")

# -- task ids -----------------------------------------------------------------------------

#: This process's part of every task id: 64 random bits, made again in a forked child.
_prefix = os.urandom(8).hex()
#: The next task number of this process (a backend that makes tasks of its own uses it).
#: PERF: itertools.count's __next__ is one C call, atomic under the GIL.
next_seq = itertools.count(1).__next__


def task_id(seq: int) -> str:
    """The id of this process's task number ``seq``: ``"9f3a1c0e5b7d2a44-1a"``."""
    return f"{_prefix}-{seq:x}"


def task_seq(task_id: str) -> int | None:
    """The number of this process's task ``task_id``, or None if it is not one of ours."""
    prefix, _, seq = task_id.partition("-")
    if prefix != _prefix or not seq or len(seq) > 16:
        return None
    try:
        return int(seq, 16)
    except ValueError:
        return None


def _new_prefix_in_child() -> None:
    # NOTE: a forked worker shares its parent's counter value; a prefix of its own keeps
    # every id it issues apart from its parent's and its siblings'.
    global _prefix
    _prefix = os.urandom(8).hex()


_process.at_fork_in_child(_new_prefix_in_child)


class TaskHandle(tuple[int]):
    """What ``add_task`` returns: the task's :attr:`id`, known before the response is sent.

    A handler can answer ``202 {"task": handle.id}`` and the client poll
    ``app.background.status(id)`` (see docs/task-status.md).

    PERF: a one-item tuple, made by one C call; the id string is formatted when read.
    """

    __slots__ = ()

    @property
    def id(self) -> str:
        """The task's id: unique across processes and restarts, safe in a URL."""
        return task_id(self[0])

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id}>"


_new_handle = tuple.__new__


class Handed(Protocol):
    """Where the request's tasks went: a task added now goes there too, or is refused."""

    def adopt(self, background: BackgroundTasks) -> None: ...


class Finished:
    """A request whose work is over: ``add_task`` raises, naming the request."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def adopt(self, background: BackgroundTasks) -> None:
        raise too_late(self.label)


def too_late(label: str) -> RuntimeError:
    """The error of an ``add_task`` once nothing of request ``label`` is left to run."""
    return RuntimeError(
        f"add_task() was called for {label} after that request's background work"
        " finished: nothing of the request is left to run the task. Add a follow-up task"
        " while one of the request's tasks is still running (from the task itself), or"
        " run the work where you are"
    )


class BackgroundTask(NamedTuple):
    """One call to make after the response, in the context it was added from."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    context: contextvars.Context
    always: bool
    #: The task's number in this process; :attr:`id` is its id.
    seq: int

    @property
    def name(self) -> str:
        return task_name(self.fn)

    @property
    def id(self) -> str:
        return task_id(self.seq)

    def run(self) -> Any:
        return self.context.run(self.fn, *self.args, **self.kwargs)


_new_task = tuple.__new__


def task_name(fn: Any) -> str:
    """A task's name in logs: ``module.qualname``, partials unwrapped."""
    return callable_name(fn, dotted=True)


class BackgroundTasks:
    """Collect a request's background tasks; they run in order after the response is sent.

    A handler gets one by declaring the keyword-only parameter ``background``; a dependency
    taking ``background`` shares the same list.

    :param check: ``check(fn, args, kwargs)`` raises TypeError for a task the app's
        background backend cannot run (a durable backend refuses lambdas, for one).
    """

    __slots__ = ("_check", "_handed", "tasks")

    def __init__(
        self, check: Callable[[Any, tuple[Any, ...], dict[str, Any]], None] | None = None
    ) -> None:
        #: The tasks added so far, in order (Starlette's name); add with :meth:`add_task`.
        self.tasks: list[BackgroundTask] = []
        self._check = check
        #: None while the handler adds; then where the tasks went (see :meth:`hand_over`).
        self._handed: Handed | None = None

    def add_task(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Run ``fn(*args, **kwargs)`` after the response, unless the handler raised.

        Valid as long as the request's work is not finished: from one of its running
        tasks (or a thread the handler started), the task runs after the running ones.

        :returns: the task's :class:`TaskHandle`; ``handle.id`` is known at once.
        :raises TypeError: ``fn`` is not callable, or is ``async`` (raised here, in the
            handler: tasks run on threads, where a coroutine would never be awaited).
        :raises RuntimeError: nothing of the request is left to run the task.
        """
        if (
            type(fn) is not FunctionType
            or fn.__code__.co_flags & ASYNC_FLAGS
            or self._check is not None
            or hasattr(fn, "_is_coroutine_marker")
        ):
            return self._add(fn, args, kwargs, always=False)
        # PERF: the usual task, a plain sync function on the thread backend, is appended
        # here (what _add ends with) without its calls: the check that is_async_callable
        # makes first for a plain function is the flag test above.
        seq = next_seq()
        self.tasks.append(
            _new_task(BackgroundTask, (fn, args, kwargs, contextvars.copy_context(), False, seq))
        )
        # NOTE: appended first, then checked: see hand_over() for why no task is lost.
        if self._handed is not None:
            self._handed.adopt(self)
        return _new_handle(TaskHandle, (seq,))

    def add_task_always(
        self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle:
        """Like :meth:`add_task`, but run even when the handler or a dependency raised."""
        return self._add(fn, args, kwargs, always=True)

    def _add(
        self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], always: bool
    ) -> TaskHandle:
        if not callable(fn):
            raise TypeError(
                f"add_task() needs a callable as its first argument, got {type(fn).__name__}"
                f" {fn!r}; pass the function itself, e.g. add_task(send_email, address)"
            )
        if is_async_callable(fn):
            raise TypeError(
                f"add_task() got {task_name(fn)}, an async callable; background tasks run"
                " on the pool's threads, where its coroutine would never be awaited and"
                " its body would never run. Make the task a plain def (with a sync"
                " client, e.g. httpx.Client rather than AsyncClient), or add a plain def"
                " that calls asyncio.run(...) on it"
            )
        if self._check is not None:
            self._check(fn, args, kwargs)
        seq = next_seq()
        # PERF: tuple.__new__ skips the NamedTuple's Python-level __new__.
        task = _new_task(
            BackgroundTask, (fn, args, kwargs, contextvars.copy_context(), always, seq)
        )
        self.tasks.append(task)
        if self._handed is not None:
            self._handed.adopt(self)
        return _new_handle(TaskHandle, (seq,))

    def hand_over(self, to: Handed) -> list[BackgroundTask]:
        """From now on, send each task added to ``to``; return a copy of the tasks so far.

        NOTE: the caller holds the lock ``to.adopt`` takes. A task added meanwhile by
        another thread is appended before its adder reads ``_handed``: either the copy
        has it, or the adder sees ``to``, whose ``adopt`` takes every task past the
        copy's length. Never both, never neither.
        """
        self._handed = to
        return list(self.tasks)

    def close(self, to: Handed) -> None:
        """Send every task added from now on to ``to`` (which refuses it), without a lock.

        For a request that added no task: a thread the handler started may still hold
        ``background``. A task that raced in before this is still in :attr:`tasks`; the
        caller hands those over as usual.
        """
        self._handed = to

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"<BackgroundTasks {[task.name for task in self.tasks]}>"

    def to_run(self, failed: bool) -> list[BackgroundTask]:
        """The tasks to run: all of them, or only the ``always`` ones when the request failed."""
        if failed:
            return [task for task in self.tasks if task.always]
        return self.tasks
