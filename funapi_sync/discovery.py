"""Discovery: find the App that a command-line target such as ``module:app`` names.

The rules are Flask's ``--app`` rules (``flask.cli.locate_app``), so they read the same:

- ``module:name`` is the attribute ``name`` of ``module``; ``pkg.module:name`` too.
- ``module:factory()`` or ``module:factory("dev", debug=True)`` calls a factory, with
  arguments written as Python literals (parsed with :mod:`ast`, never evaluated).
  ``module:factory`` without parentheses calls it too when it is a plain function that
  needs no argument.
- ``path/to/file.py`` (optionally ``:name``) imports the file as a module: each parent
  directory holding an ``__init__.py`` is part of the module's name, and the first one
  without goes on ``sys.path`` (``examples/signup.py`` is ``examples.signup``).
- with no ``:name``, the module's ``app``, then ``application``, then its only ``App``
  instance, then a ``create_app()`` or ``make_app()`` factory.

Every way a target can be wrong raises :class:`NoAppError` with a one-line message; the
command line prints it and exits with status 2. An exception raised by the user's module
while it is imported (an ``ImportError`` of a missing dependency included) is not a bad
target: it raises :class:`AppImportError`, which carries the traceback of the user's code.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys
import traceback
from types import ModuleType
from typing import Any

from .app import App

_DEFAULT_NAMES = ("app", "application")
_DEFAULT_FACTORIES = ("create_app", "make_app")


class NoAppError(Exception):
    """The target names no App: a missing module, attribute or factory, or a wrong object."""


class AppImportError(Exception):
    """Importing the user's module raised; ``details`` is the traceback of its code."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


def load_app(target: str) -> App:
    """Import the module ``target`` names and return its App (see the module's rules).

    The current directory is put first on ``sys.path``, as ``python -m`` does, so that the
    console script finds the same modules as ``python -m funapi_sync``.
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    module_part, _, expression = _split(target)
    if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
        module_name = _prepare_file(module_part)
    else:
        module_name = module_part
    if not module_name:
        raise NoAppError(f"{target!r} names no module; write it as module:app or path/to/app.py")
    module = _import(module_name)
    if expression:
        return _from_expression(module, module_name, expression)
    return _find_default(module, module_name)


def _split(target: str) -> tuple[str, str, str]:
    # NOTE: split at the last ':' that is not part of a Windows drive ("C:\\app.py").
    head, sep, tail = target.rpartition(":")
    if not sep or (len(head) == 1 and tail.startswith(("\\", "/"))):
        return target, "", ""
    return head, sep, tail.strip()


def _prepare_file(path: str) -> str:
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        raise NoAppError(f"no such file: {path!r} (from the current directory {os.getcwd()})")
    stem, ext = os.path.splitext(real)
    if ext != ".py":
        raise NoAppError(f"{path!r} is not a .py file; write it as path/to/app.py")
    directory, name = os.path.split(stem)
    parts = [] if name == "__init__" else [name]
    while os.path.exists(os.path.join(directory, "__init__.py")):
        directory, package = os.path.split(directory)
        parts.append(package)
    if not parts:
        directory, package = os.path.split(directory)
        parts.append(package)
    if sys.path[0] != directory:
        sys.path.insert(0, directory)
    return ".".join(reversed(parts))


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # NOTE: Flask's rule: only a failure to find the target itself (or one of its
        # parent packages) is "no such module"; a module the target imports that is
        # missing is the user's ImportError, shown with its traceback.
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise NoAppError(
                f"could not import {module_name!r}: no module named {missing!r} (looked in"
                f" the current directory {os.getcwd()} and on sys.path); check the name, or"
                " run from the project's root"
            ) from None
        raise _import_error(module_name, exc) from None
    except Exception as exc:
        raise _import_error(module_name, exc) from None


def _import_error(module_name: str, exc: BaseException) -> AppImportError:
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop importlib's own frames: the user needs the lines of their code.
    user = [f for f in frames if "importlib" not in f.filename and f.filename != __file__]
    # A SyntaxError has no frame of the user's: its own text shows the file and line.
    header = ["Traceback (most recent call last):\n", *traceback.format_list(user)] if user else []
    details = "".join([*header, *traceback.format_exception_only(exc)])
    return AppImportError(
        f"importing {module_name!r} raised {type(exc).__name__}: {exc}", details.rstrip()
    )


def _from_expression(module: ModuleType, module_name: str, expression: str) -> App:
    where = f"{module_name}:{expression}"
    try:
        node = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise NoAppError(
            f"cannot parse {expression!r} in {where!r} as an attribute name or a function"
            " call; write module:app or module:create_app()"
        ) from None
    if isinstance(node, ast.Name):
        name, args, kwargs, called = node.id, [], {}, False
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name, called = node.func.id, True
        try:
            args = [ast.literal_eval(arg) for arg in node.args]
            kwargs = {
                kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None
            }
        except ValueError:
            raise NoAppError(
                f"the arguments in {where!r} must be Python literals (strings, numbers,"
                " lists, dicts, True/False/None)"
            ) from None
        if len(kwargs) != len(node.keywords):
            raise NoAppError(f"{where!r} may not use **kwargs; write each argument out")
    else:
        raise NoAppError(
            f"cannot use {expression!r} in {where!r}; write an attribute name (module:app)"
            " or a call of one with literal arguments (module:create_app('dev'))"
        )
    try:
        attr = getattr(module, name)
    except AttributeError:
        raise NoAppError(
            f"module {module_name!r} has no attribute {name!r}; {_available(module)}"
        ) from None
    if called or _takes_no_arguments(attr):
        if not callable(attr):
            raise NoAppError(f"{module_name}:{name} is {_describe(attr)}, which is not callable")
        return _check(_call_factory(attr, f"{module_name}:{name}", args, kwargs), where)
    return _check(attr, where)


def _takes_no_arguments(value: Any) -> bool:
    # A plain function that needs no argument is a factory (Flask's rule); one that needs
    # some, such as a WSGI function, is an object to check, not to call.
    if not inspect.isfunction(value):
        return False
    try:
        inspect.signature(value).bind()
    except TypeError:
        return False
    return True


def _call_factory(factory: Any, where: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    try:
        return factory(*args, **kwargs)
    except Exception as exc:
        location = ""
        frames = traceback.extract_tb(exc.__traceback__)
        if len(frames) > 1:
            last = frames[-1]
            location = f" (at {last.filename}:{last.lineno})"
        elif isinstance(exc, TypeError):
            # Raised by the call itself: the arguments do not fit the factory.
            raise NoAppError(
                f"cannot call {where}{inspect.signature(factory)} with the arguments given: {exc}"
            ) from None
        raise NoAppError(
            f"the factory {where}() raised {type(exc).__name__}: {exc}{location}"
        ) from None


def _find_default(module: ModuleType, module_name: str) -> App:
    for name in _DEFAULT_NAMES:
        value = getattr(module, name, None)
        if isinstance(value, App):
            return value
    apps = {name: value for name, value in vars(module).items() if isinstance(value, App)}
    if len(apps) == 1:
        return next(iter(apps.values()))
    if len(apps) > 1:
        names = ", ".join(sorted(apps))
        raise NoAppError(
            f"module {module_name!r} holds several App instances ({names}); name one, e.g."
            f" {module_name}:{sorted(apps)[0]}"
        )
    for name in _DEFAULT_FACTORIES:
        factory = getattr(module, name, None)
        if inspect.isfunction(factory):
            return _check(_call_factory(factory, f"{module_name}:{name}", [], {}), module_name)
    for name in _DEFAULT_NAMES:
        if hasattr(module, name):
            return _check(getattr(module, name), f"{module_name}:{name}")
    raise NoAppError(
        f"module {module_name!r} has no App: no 'app' or 'application', no App instance and"
        f" no create_app() or make_app() factory; name it, e.g. {module_name}:api"
    )


def _check(value: Any, where: str) -> App:
    if isinstance(value, App):
        return value
    hint = (
        " (a WSGI callable, but the command line needs the funapi_sync App itself: add"
        " middleware with app.use(), and point at the App)"
        if callable(value)
        else ""
    )
    raise NoAppError(
        f"{where!r} is {_describe(value)}, not a funapi_sync App{hint}; point at the App,"
        " e.g. module:app, or at a factory that returns one, e.g. module:create_app()"
    )


def _describe(value: Any) -> str:
    if inspect.ismodule(value):
        return f"the module {value.__name__!r}"
    return f"{type(value).__name__} {_short_repr(value)}"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _available(module: ModuleType) -> str:
    apps = sorted(name for name, value in vars(module).items() if isinstance(value, App))
    if apps:
        return f"its App instances: {', '.join(apps)}"
    return "it has no App instance at module level"
