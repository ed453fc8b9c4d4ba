"""Internal: how a type checker sees ``Depends``, so ``user: User = Depends(current_user)`` checks.

``funapi_sync/__init__.py`` exports this function to type checkers and the class
:class:`funapi_sync.dependencies.Depends` at run time (FastAPI's trick: its ``Depends`` is
a function returning ``Any``). A default of type ``Depends`` would not match the
parameter's annotation under ``mypy --strict``; ``Any`` matches any annotation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import dependencies


def Depends(dependency: Callable[..., Any], *, cleanup: str = "before_response") -> Any:
    """Mark a callable as a dependency; see :class:`funapi_sync.dependencies.Depends`."""
    return dependencies.Depends(dependency, cleanup=cleanup)
