"""WSGI middleware helpers: :func:`closing` is how every response wrapper forwards ``close()``.

The built-in middleware live in this package, one module each (``cors``, ``trusted_host``,
``request_logger``, ``gzip``). Each either wraps only ``start_response`` and hands the
app's iterable back untouched, or wraps the iterable through :func:`closing`, so the
``close()`` that submits the background tasks always reaches the app (PEP 3333). The
app's own body (:mod:`funapi_sync.after_close`) follows the same rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..responses import STATUS_LINES, error_parts

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

logger = logging.getLogger("funapi_sync")


class ClosingIterable:
    """Wrap a WSGI response iterable, forwarding ``close()`` and then running callbacks.

    Unlike werkzeug's ``ClosingIterator``, each step runs in its own ``try``: a failing
    inner ``close()`` or callback is logged and never stops the ones after it (the
    background tasks among them). ``close()`` is idempotent. A wrapper that is never
    closed needs no report of its own: the app's body inside it reports what is lost.
    """

    __slots__ = ("_callbacks", "_iterable")

    def __init__(self, iterable: Iterable[bytes], *callbacks: Callable[[], Any]) -> None:
        self._iterable = iterable
        self._callbacks = callbacks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._iterable)

    def close(self) -> None:
        # NOTE: idempotent: a second close() finds no callbacks and an empty tuple.
        callbacks, self._callbacks = self._callbacks, ()
        iterable, self._iterable = self._iterable, ()
        inner_close = getattr(iterable, "close", None)
        if inner_close is not None:
            try:
                inner_close()
            except Exception:
                logger.exception("closing the response iterable failed")
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("a response close callback failed")


def closing(iterable: Iterable[bytes], *callbacks: Callable[[], Any]) -> ClosingIterable:
    """Return ``iterable`` wrapped so that ``close()`` reaches it and then each callback."""
    return ClosingIterable(iterable, *callbacks)


def reject(
    start_response: StartResponse,
    status: int,
    detail: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """Answer a request from a middleware with ``{"detail": detail}``; the app is not called."""
    code, all_headers, body = error_parts(status, detail, headers)
    start_response(STATUS_LINES[code], all_headers)
    return [body]


def add_vary(headers: list[tuple[str, str]], field: str) -> None:
    """Add ``field`` to the response's ``Vary`` header (in place), merging an existing one."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            present = {item.strip().lower() for item in value.split(",")}
            if field.lower() not in present and "*" not in present:
                headers[index] = (name, f"{value}, {field}")
            return
    headers.append(("Vary", field))
