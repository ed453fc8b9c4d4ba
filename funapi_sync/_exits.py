"""Dependency exits: each made from a factory's result, all run newest first, failures logged.

Internal; shared by the request scope and the registry's app-scoped values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("funapi_sync")

#: How a cleanup is called: ``exit_(exc_type, exc, traceback)``, as ``__exit__`` is.
Exit = Callable[..., Any]


def enter(result: Any) -> tuple[Any, Exit | None]:
    """Turn a factory's result into ``(value, exit)``: enter context managers, split pairs."""
    kind = type(result)
    if hasattr(kind, "__enter__") and hasattr(kind, "__exit__"):
        return result.__enter__(), result.__exit__
    if kind is tuple and len(result) == 2 and callable(result[1]):
        return result[0], _cleanup_exit(result[1])
    return result, None


def _cleanup_exit(cleanup: Callable[[], Any]) -> Exit:
    def exit_(*_exc_info: Any) -> bool:
        cleanup()
        return False

    return exit_


def close_exits(
    exits: list[tuple[str, Exit]], exc: BaseException | None, keep_first: bool = False
) -> Exception | None:
    """Call each exit newest first with ``exc``; a failure is logged and the rest still run.

    :param keep_first: return the first ``Exception`` raised instead of logging it.
    """
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else (None, None, None)
    first: Exception | None = None
    for label, exit_ in reversed(exits):
        try:
            exit_(*exc_info)
        except BaseException as failure:
            # NOTE: a generator that lets the request's exception through re-raises it;
            # that is not a cleanup failure.
            if failure is exc:
                continue
            if keep_first and first is None and isinstance(failure, Exception):
                # As in an ExitStack, the older exits see the failure thrown in.
                first = exc = failure
                exc_info = (type(failure), failure, failure.__traceback__)
                continue
            logger.error("cleanup of dependency %s failed", label, exc_info=failure)
    return first
