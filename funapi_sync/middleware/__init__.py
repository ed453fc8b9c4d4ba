"""WSGI middleware helpers; ``closing`` is the one every response wrapper goes through.

The built-in middleware live in this package, one module each (``cors``, ``trusted_host``,
``request_logger``, ``gzip``). Each either wraps only ``start_response`` and hands the
app's iterable back untouched, or wraps the iterable through :func:`closing`, so the
``close()`` that submits the background tasks always reaches the app (PEP 3333).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..closing import ClosingIterable as ClosingIterable
from ..closing import closing as closing
from ..responses import STATUS_LINES, error_parts

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse


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
