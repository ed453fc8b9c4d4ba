"""Inspecting user callables: their names in messages, and whether they are ``async``. Internal.

funapi_sync is synchronous: a coroutine function called on a thread returns a coroutine
object that nobody awaits, so its body never runs. Every place that takes user code
refuses one when it is given (registration, ``add_task``), not when it would run.
"""

from __future__ import annotations

import functools
import inspect
from types import FunctionType, MethodType
from typing import Any

ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def is_async_callable(obj: Any) -> bool:
    """Whether calling ``obj`` returns a coroutine or an async generator.

    Sees through ``functools.partial`` (nested too), bound methods, and objects whose
    ``__call__`` is ``async def`` (Starlette's ``is_async_callable``, plus async
    generator functions).
    """
    while isinstance(obj, functools.partial):
        obj = obj.func
    # NOTE: what inspect unwraps too: a bound method stands for its function.
    function = obj.__func__ if type(obj) is MethodType else obj
    if type(function) is FunctionType and not hasattr(function, "_is_coroutine_marker"):
        # PERF: a plain function or a method of one, the usual task (add_task runs this
        # per task), is answered by the code flags inspect reads, without its layers of
        # unwrapping (1.3 -> 0.5 µs for add_task with a bound method); a function marked
        # with inspect.markcoroutinefunction (3.12+) takes the full path.
        return bool(function.__code__.co_flags & ASYNC_FLAGS)
    if _is_async_function(obj):
        return True
    if inspect.isroutine(obj) or isinstance(obj, type):
        return False
    return callable(obj) and _is_async_function(type(obj).__call__)


def _is_async_function(obj: Any) -> bool:
    return inspect.iscoroutinefunction(obj) or inspect.isasyncgenfunction(obj)


def callable_name(obj: Any, *, short: bool = False, dotted: bool = False) -> str:
    """How every message names a user callable.

    By default its ``__qualname__`` (``Mailer.send``); ``short``: its ``__name__``, as a
    route label says ``signup() at POST /signup``; ``dotted``: prefixed by its module,
    partials unwrapped (``partial(app.tasks.send)``), as task log lines say. A callable
    object without names is named by its type.
    """
    if dotted and isinstance(obj, functools.partial):
        return f"partial({callable_name(obj.func, dotted=True)})"
    name = getattr(obj, "__name__" if short else "__qualname__", None)
    if not isinstance(name, str):
        name = type(obj).__name__ if short else type(obj).__qualname__
    if not dotted:
        return name
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"{module}.{name}" if module and module != "builtins" else name


def refuse_async(fn: Any, where: str, what: str) -> None:
    """Raise a ``TypeError`` naming the fix when calling ``fn`` would make a coroutine."""
    if is_async_callable(fn):
        raise TypeError(
            f"{where}: {callable_name(fn)} is an async {what}, and funapi_sync is synchronous:"
            " it would get a coroutine object that nothing awaits; write it with plain def"
            " (call async code inside it with asyncio.run(...) if you must)"
        )
