"""Request text made safe for a log line: decoded as the client sent it, controls escaped.

PEP 3333 hands the path over as latin-1-decoded bytes, while browsers and clients send
UTF-8: ``/caf%C3%A9`` arrives as ``/cafÃ©``. :func:`log_text` re-reads those bytes as
UTF-8 (an invalid byte is written ``\\xff``), then escapes every C0 and C1 control
character, DEL and the Unicode line separators (``\\r``, ``\\n``, ``\\x1b``, ``\\u2028``),
as uvicorn and Django (CVE-2025-48432) do, so a ``%0D%0A`` in a path cannot forge a line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


def _escape(code: int) -> str:
    return {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}.get(code, f"\\x{code:02x}")


# NOTE: every character that a terminal or a log viewer may act on rather than print.
_CONTROLS: dict[int, str] = {
    **{code: _escape(code) for code in (*range(0x20), *range(0x7F, 0xA0))},
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def log_text(raw: str) -> str:
    """``raw``, a WSGI string (latin-1-decoded bytes), as text a log line can hold."""
    # PERF: a plain ASCII path, the common case, is returned as it is.
    if raw.isascii() and raw.isprintable():
        return raw
    try:
        text = raw.encode("latin-1").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # not a WSGI string after all: already text
        text = raw
    return text.translate(_CONTROLS)


def one_line(text: str) -> str:
    """``text`` (already decoded) with its control characters escaped: one printable line."""
    return text if text.isprintable() else text.translate(_CONTROLS)


def log_path(environ: WSGIEnvironment) -> str:
    """The request's ``PATH_INFO`` for a log line (see :func:`log_text`)."""
    return log_text(environ.get("PATH_INFO", "/"))


def log_method(environ: WSGIEnvironment) -> str:
    """The request's method for a log line (the dev server passes any word through)."""
    return log_text(environ.get("REQUEST_METHOD", "-"))
