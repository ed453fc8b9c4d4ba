"""BackgroundTasks: the ordered list of work a request asks to run after its response."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from types import FunctionType
from typing import Any, NamedTuple, ParamSpec

from ._callables import ASYNC_FLAGS, callable_name, is_async_callable

P = ParamSpec("P")


class BackgroundTask(NamedTuple):
    """One call to make after the response, in the context it was added from."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    context: contextvars.Context
    always: bool

    @property
    def name(self) -> str:
        return task_name(self.fn)

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

    __slots__ = ("_check", "tasks")

    def __init__(
        self, check: Callable[[Any, tuple[Any, ...], dict[str, Any]], None] | None = None
    ) -> None:
        #: The tasks added so far, in order (Starlette's name); add with :meth:`add_task`.
        self.tasks: list[BackgroundTask] = []
        self._check = check

    def add_task(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> None:
        """Run ``fn(*args, **kwargs)`` after the response, unless the handler raised.

        :raises TypeError: ``fn`` is not callable, or is ``async`` (raised here, in the
            handler: tasks run on threads, where a coroutine would never be awaited).
        """
        if (
            type(fn) is not FunctionType
            or fn.__code__.co_flags & ASYNC_FLAGS
            or self._check is not None
            or hasattr(fn, "_is_coroutine_marker")
        ):
            self._add(fn, args, kwargs, always=False)
            return
        # PERF: the usual task, a plain sync function on the thread backend, is appended
        # here (what _add ends with) without its calls: the check that is_async_callable
        # makes first for a plain function is the flag test above.
        self.tasks.append(
            _new_task(BackgroundTask, (fn, args, kwargs, contextvars.copy_context(), False))
        )

    def add_task_always(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> None:
        """Like :meth:`add_task`, but run even when the handler or a dependency raised."""
        self._add(fn, args, kwargs, always=True)

    def _add(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], always: bool) -> None:
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
        # PERF: tuple.__new__ skips the NamedTuple's Python-level __new__.
        task = _new_task(BackgroundTask, (fn, args, kwargs, contextvars.copy_context(), always))
        self.tasks.append(task)

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"<BackgroundTasks {[task.name for task in self.tasks]}>"

    def to_run(self, failed: bool) -> list[BackgroundTask]:
        """The tasks to run: all of them, or only the ``always`` ones when the request failed."""
        if failed:
            return [task for task in self.tasks if task.always]
        return self.tasks
