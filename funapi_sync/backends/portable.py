"""Portability: what a background task needs to run in another process, and what it takes.

A durable backend's worker imports each task by module and name and unpickles its
arguments (RQ) or reads them as JSON (SQLite); :func:`check_portable` and
:func:`json_call` refuse at ``add_task`` what it could not. :func:`carry` and
:func:`restore` move the task's context variables across.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import json
import logging
import pickle
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..background import task_name

if TYPE_CHECKING:
    from ..background import BackgroundTask

logger = logging.getLogger("funapi_sync.background")

#: One carried ContextVar: ``"module:attribute"`` of the variable, and its value.
CarriedVar = tuple[str, Any]
#: One task as the job carries it: the callable, its arguments, the carried context.
CarriedTask = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], list[CarriedVar]]

# -- what can run elsewhere ---------------------------------------------------------


def check_portable(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Raise TypeError unless ``fn(*args, **kwargs)`` can be pickled and run by a worker.

    The worker imports the callable by ``module`` and ``qualname``, so a lambda, a nested
    function or closure, a function of ``__main__``, or a method of an object that cannot
    be pickled is refused; so are arguments that ``pickle`` cannot serialise.

    PERF: the arguments are checked with one ``pickle.dumps`` (about 1.5 µs for a few
    strings and ints); RQ pickles them again in ``close()``.
    """
    target = fn
    while hasattr(target, "func") and hasattr(target, "keywords"):  # functools.partial
        target = target.func
    name = task_name(fn)
    problem = _callable_problem(target)
    if problem is not None:
        raise TypeError(
            f"add_task({name}): {problem}, and the durable background backend runs"
            " tasks in another process, which imports each task by module and name;"
            " define it as a module-level function (or a method of a module-level class)"
            " in an importable module and pass it the values it needs (ids, not connections)"
        )
    try:
        pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        what = "a method of an object" if inspect.ismethod(target) else "its arguments"
        raise TypeError(
            f"add_task({name}): {what} cannot be serialised for the durable background"
            f" backend ({type(exc).__name__}: {exc}); pass plain values such as ids and"
            " strings, not connections, sessions, locks or open files, and make each task"
            " a module-level function"
        ) from exc


def json_call(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, list[Any], dict[str, Any]]:
    """``("module:qualname", args, kwargs)`` of a call a worker can make from JSON alone.

    A ``functools.partial`` is unwrapped into its function and merged arguments. Raises
    TypeError for what :func:`check_portable` refuses, for a method of an instance (JSON
    holds no object), and for arguments ``json.dumps`` cannot write (the worker would see
    other values than the handler passed: a tuple comes back a list, so it is allowed).
    """
    name = task_name(fn)
    args_list, merged = list(args), dict(kwargs)
    while isinstance(fn, functools.partial):
        args_list = [*fn.args, *args_list]
        merged = {**fn.keywords, **merged}
        fn = fn.func
    problem = _callable_problem(fn)
    if problem is None and inspect.ismethod(fn) and not isinstance(fn.__self__, type):
        problem = "a method of an object cannot be stored as JSON"
    if problem is not None:
        raise TypeError(
            f"add_task({name}): {problem}, and the durable background backend runs"
            " tasks in another process, which imports each task by module and name;"
            " define it as a module-level function (or a classmethod of a module-level"
            " class) in an importable module and pass it the values it needs (ids, not"
            " objects)"
        )
    try:
        json.dumps([args_list, merged], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"add_task({name}): its arguments cannot be stored as JSON ({exc}); the"
            " SQLite background backend stores tasks as JSON, so pass plain values"
            " (str, int, float, bool, None, lists and dicts of them), e.g. an id rather"
            " than a model object"
        ) from None
    return f"{fn.__module__}:{fn.__qualname__}", args_list, merged


def import_dotted(ref: str) -> Callable[..., Any]:
    """The callable that ``"module:qualname"`` names (what :func:`json_call` wrote)."""
    module_name, _, qualname = ref.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{ref} is not callable")
    return target  # type: ignore[no-any-return]


def _callable_problem(target: Any) -> str | None:
    # pickle stores a function, a class, and a bound method's or callable object's class
    # by reference, and succeeds here for a class of __main__ or of a function's locals
    # (it finds them in this process); the worker's import then fails, so check each.
    if inspect.isfunction(target):
        return _function_problem(target)
    if inspect.ismethod(target):
        owner = target.__self__
        cls = owner if isinstance(owner, type) else type(owner)
        return _class_problem(cls, "a method of class")
    if isinstance(target, type):
        return _class_problem(target, "class")
    cls = type(target)
    if inspect.isbuiltin(target) or cls.__module__ == "builtins":
        return None
    return _class_problem(cls, "a callable instance of class")


def _class_problem(cls: type, what: str) -> str | None:
    problem = _function_problem(cls, "class")
    return None if problem is None else f"{what} {cls.__qualname__}: {problem}"


def _function_problem(fn: Any, kind: str = "function") -> str | None:
    qualname = getattr(fn, "__qualname__", "")
    module = getattr(fn, "__module__", None)
    if qualname == "<lambda>" or qualname.endswith(".<lambda>"):
        return "a lambda has no importable name"
    if "<locals>" in qualname:
        closure = " (a closure)" if kind == "function" else ""
        return f"a {kind} defined inside another function{closure} has no importable name"
    if module in (None, "__main__"):
        return f"{qualname} is defined in __main__, which a worker cannot import"
    owner: Any = sys.modules.get(module)
    if owner is None:
        return f"its module {module!r} is not importable"
    for part in qualname.split("."):
        owner = getattr(owner, part, None)
    if owner is not fn and not (inspect.ismethod(fn) and owner == fn):
        return (
            f"{module}.{qualname} does not name this {kind} (a decorator without functools.wraps?)"
        )
    return None


# -- context carried to the worker ---------------------------------------------------

#: Every module-level ContextVar found by the last scan of ``sys.modules``: rebuilt by
#: each scan, so it holds only what loaded modules define (a reloaded module's old
#: variable drops out).
_var_refs: dict[contextvars.ContextVar[Any], str] = {}
#: Variables no scan found (a ContextVar made in a function), each with the number of
#: loaded modules at its scan: rescanned only once a module was imported since. Bounded,
#: oldest out first, since such variables may be made per request.
_var_misses: dict[contextvars.ContextVar[Any], int] = {}
_MAX_MISSES = 256
_var_refs_lock = threading.Lock()


def _var_ref(var: contextvars.ContextVar[Any]) -> str | None:
    """``"module:attribute"`` of a module-level ContextVar, or None when it has none."""
    global _var_refs
    ref = _var_refs.get(var)
    if ref is not None or _var_misses.get(var) == len(sys.modules):
        return ref
    with _var_refs_lock:
        ref = _var_refs.get(var)
        if ref is not None or _var_misses.get(var) == len(sys.modules):
            return ref
        # PERF: one scan of the loaded modules indexes every module-level ContextVar;
        # it runs again only for a variable it did not find, once per module count.
        loaded = len(sys.modules)
        found: dict[contextvars.ContextVar[Any], str] = {}
        for module_name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if not namespace:
                continue
            for attr, value in list(namespace.items()):
                if isinstance(value, contextvars.ContextVar) and value not in found:
                    found[value] = f"{module_name}:{attr}"
        _var_refs = found
        ref = found.get(var)
        _var_misses.pop(var, None)
        if ref is None:
            while len(_var_misses) >= _MAX_MISSES:
                del _var_misses[next(iter(_var_misses))]
            _var_misses[var] = loaded
        return ref


def carry(task: BackgroundTask) -> CarriedTask:
    carried: list[CarriedVar] = []
    for var, value in task.context.items():
        ref = _var_ref(var)
        if ref is None:
            logger.debug("ContextVar %s is not module-level; not carried to the worker", var.name)
            continue
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            logger.debug("ContextVar %s holds a value that cannot be pickled; not carried", ref)
            continue
        carried.append((ref, value))
    return task.fn, task.args, task.kwargs, carried


def carry_json(context: contextvars.Context) -> list[list[Any]]:
    """``[["module:attribute", value], ...]`` of the context's module-level variables whose
    values JSON can hold; the others are left behind (logged at DEBUG), as :func:`carry` does.
    """
    carried: list[list[Any]] = []
    for var, value in context.items():
        ref = _var_ref(var)
        if ref is None:
            continue
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            logger.debug("ContextVar %s holds a value JSON cannot hold; not carried", ref)
            continue
        carried.append([ref, value])
    return carried


def restore(carried: list[CarriedVar]) -> contextvars.Context:
    context = contextvars.Context()
    for ref, value in carried:
        module_name, _, attr = ref.partition(":")
        try:
            var = getattr(importlib.import_module(module_name), attr)
        except Exception:
            logger.warning("ContextVar %s cannot be imported on the worker; not restored", ref)
            continue
        context.run(var.set, value)
    return context
