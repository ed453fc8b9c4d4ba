"""Import werkzeug's modules without its package ``__init__``, which runs on first use instead.

Internal. ``werkzeug/__init__.py`` re-exports ``run_simple`` and ``Client``, so any
``import werkzeug.<module>`` also imports the development server (``werkzeug.serving``, and
with it ``http.server``, ``socketserver``, ``ssl``, ``email``) and ``werkzeug.test``, which an
app served by gunicorn or granian never uses. :func:`install` puts the package in
``sys.modules`` without running its ``__init__``; the first attribute that is not an
imported submodule (``werkzeug.run_simple``, ``from werkzeug import Request``) runs it, so
code that uses ``import werkzeug`` sees the package it always did.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from typing import Any


def install(name: str = "werkzeug") -> None:
    """Register the package ``name``, its ``__init__`` deferred (no-op once it is imported)."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # pragma: no cover - werkzeug is a dependency, found like any package
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    submodules = _submodules(spec.submodule_search_locations)
    lock = threading.RLock()
    running: list[bool] = []

    def deferred_init(attribute: str) -> Any:
        if attribute in submodules:
            # NOTE: `from .. import http` (werkzeug's own modules) and `werkzeug.serving`
            # (which the __init__ would have imported) get the submodule, imported now,
            # without running the __init__.
            return importlib.import_module(f"{name}.{attribute}")
        with lock:
            # NOTE: while the __init__ runs, a name it has not bound yet is missing, as
            # it would be under a plain import; the same thread must not run it twice.
            if "__getattr__" in vars(package) and not running:
                running.append(True)
                try:
                    loader.exec_module(package)
                finally:
                    vars(package).pop("__getattr__", None)
        try:
            return vars(package)[attribute]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}") from None

    package.__getattr__ = deferred_init  # type: ignore[method-assign]
    sys.modules[name] = package


def _submodules(locations: list[str]) -> frozenset[str]:
    names = set()
    for location in locations:
        with os.scandir(location) as entries:
            for entry in entries:
                stem, dot, suffix = entry.name.partition(".")
                is_module = (dot and suffix == "py") or (not dot and entry.is_dir())
                if is_module and stem.isidentifier() and not stem.startswith("__"):
                    names.add(stem)
    return frozenset(names)
