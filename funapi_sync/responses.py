"""Responses: what a handler returns, rendered to status, headers and body, then sent."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import marshmallow
from werkzeug.datastructures import Headers
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response

from ._json import encode_json
from ._logtext import log_method, log_path

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger("funapi_sync")

#: ``"404 Not Found"`` for every known status, built once.
STATUS_LINES: dict[int, str] = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}
#: Statuses that never carry a body (RFC 9110 §6.4.1).
BODYLESS = frozenset({204, 304}) | frozenset(range(100, 200))

JSON_CONTENT_TYPE = ("Content-Type", "application/json")

#: A response not yet sent: ``(status, WSGI headers, body)``.
Parts = tuple[int, list[tuple[str, str]], bytes]


def phrase(status: int) -> str:
    """The reason phrase of any status: the standard library's, else werkzeug's."""
    line = STATUS_LINES.get(status)
    if line is not None:
        return line.split(" ", 1)[1]
    return HTTP_STATUS_CODES.get(status, "Unknown")


def status_line(status: int) -> str:
    """``"404 Not Found"``; a code with no known phrase still gets a valid line."""
    return STATUS_LINES.get(status) or f"{status} {phrase(status)}"


class ResponseSchemaError(Exception):
    """The handler's payload does not satisfy its ``response_schema`` (a server bug)."""


def dump_checked(schema: marshmallow.Schema, payload: Any) -> Any:
    """Dump ``payload`` through ``schema`` and check the result satisfies it.

    Dumping drops undeclared fields (``password`` never leaks); validating the dumped data
    catches a payload missing required fields, which is the handler's bug, not the client's.
    """
    if not schema.many and isinstance(payload, (list, tuple)):
        name = type(schema).__name__
        raise ResponseSchemaError(
            f"the handler returned a list, but response_schema={name} describes one object;"
            f" use response_schema=[{name}] for a list"
        )
    try:
        data = schema.dump(payload)
    except Exception as exc:
        raise ResponseSchemaError(
            f"dumping through {type(schema).__name__} failed: {exc!r}"
        ) from exc
    errors = schema.validate(data)
    if errors:
        raise ResponseSchemaError(f"the payload does not satisfy {type(schema).__name__}: {errors}")
    return data


def header_list(headers: Any) -> list[tuple[str, str]]:
    """Normalise a dict, list of pairs or werkzeug ``Headers`` into WSGI header pairs."""
    if headers is None:
        return []
    if isinstance(headers, Headers):
        return headers.to_wsgi_list()
    items = headers.items() if isinstance(headers, Mapping) else headers
    result = []
    for name, value in items:
        if not isinstance(name, str):
            raise TypeError(f"response header names must be str, got {name!r}")
        result.append((name, str(value)))
    return result


def json_parts(
    payload: Any, status: int, headers: list[tuple[str, str]] | None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Encode a payload; return (status, headers with Content-Type/Length, body)."""
    if status in BODYLESS:
        return status, headers or [], b""
    body = encode_json(payload)
    out = [JSON_CONTENT_TYPE, ("Content-Length", str(len(body)))]
    if headers:
        names = {name.lower() for name, _ in headers}
        if "content-type" in names:
            out = [out[1]]
        out.extend(pair for pair in headers if pair[0].lower() != "content-length")
    return status, out, body


def error_parts(
    status: int, detail: Any, headers: list[tuple[str, str]] | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    return json_parts({"detail": detail}, status, headers)


def unpack(rv: Any, default_status: int) -> tuple[Any, int, list[tuple[str, str]] | None]:
    """Split ``payload | (payload, status) | (payload, status, headers)``."""
    if type(rv) is not tuple:
        return rv, default_status, None
    if len(rv) == 2:
        payload, status = rv
        headers = None
    elif len(rv) == 3:
        payload, status, headers = rv
    else:
        raise TypeError(
            f"a handler returned a tuple of {len(rv)} items; return payload,"
            " (payload, status) or (payload, status, headers)"
        )
    if isinstance(status, HTTPStatus):
        status = status.value
    if type(status) is not int or status not in STATUS_LINES:
        raise TypeError(
            f"a handler returned status {status!r}; the second item must be a known HTTP"
            " status code such as 201"
        )
    return payload, status, header_list(headers) if headers is not None else None


def render(rv: Any, default_status: int, schema: marshmallow.Schema | None) -> Parts | Response:
    """Turn a handler's return value into a response: ``Response`` as is, else JSON parts.

    ``schema`` (the route's ``response_schema``) filters a successful payload.
    """
    if type(rv) is dict and schema is None:
        # PERF: the most common return value skips the Response and tuple checks.
        return json_parts(rv, default_status, None)
    if isinstance(rv, Response):
        return rv
    payload, status, headers = unpack(rv, default_status)
    if isinstance(payload, Response):
        payload.status_code = status
        if headers:
            payload.headers.extend(headers)
        return payload
    if schema is not None and status < 400:
        payload = dump_checked(schema, payload)
    return json_parts(payload, status, headers)


# NOTE: CR or LF ends a header line (RFC 9112 §2.2), so one in a name or a value lets
# whatever follows become headers or a body of the attacker's choosing; NUL is refused
# by RFC 9110 §5.5. gunicorn refuses all three, werkzeug's dev server writes them.
def _unsafe(text: str) -> bool:
    return "\r" in text or "\n" in text or "\x00" in text


# NOTE: RFC 9110 §5.1: a field name is a token. A name built from input (`evil=1; x`,
# `a b`, or an empty one) is refused by gunicorn and written as given by the dev server.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

#: Names already found to be tokens. PERF: most responses repeat a handful of literal
#: names, so the regex runs once per name; the set is bounded against names from input.
_TOKEN_NAMES: set[str] = set()
_TOKEN_NAMES_MAX = 1024


class UnsafeHeaderError(ValueError):
    """The failure a request is marked with when its response was refused for a header."""


def header_problem(name: str, value: str) -> str | None:
    """Why the header ``name: value`` cannot be sent, or None when it can."""
    if name not in _TOKEN_NAMES:
        if _unsafe(name):
            return "has a CR, LF or NUL character in its name (response splitting)"
        if _TOKEN.fullmatch(name) is None:
            return "has a name that is not an RFC 9110 token (a space, ';', ':' or empty)"
        if len(_TOKEN_NAMES) < _TOKEN_NAMES_MAX:
            _TOKEN_NAMES.add(name)
    if _unsafe(value):
        return "has a CR, LF or NUL character in its value (response splitting)"
    if not value.isascii():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            return (
                "has a value that is not latin-1 (PEP 3333), which no server can send;"
                " percent-encode it"
            )
    return None


def refuse_split_headers(
    result: tuple[int, list[tuple[str, str]], bytes] | Response, environ: WSGIEnvironment
) -> tuple[int, list[tuple[str, str]], bytes] | Response:
    """Return ``result``, or a 500 if one of its headers cannot be sent safely.

    Refused: CR, LF or NUL in a name or a value, a name that is not an RFC 9110 token,
    a value that is not latin-1. The check runs here, just before ``start_response``, so
    it holds on every server and for every source of headers: a returned headers tuple,
    ``HTTPException(headers=)``, an exception handler's answer, a werkzeug ``Response``
    (a redirect's ``Location``).
    """
    headers: Iterable[tuple[str, str]] = (
        result.headers.items() if isinstance(result, Response) else result[1]
    )
    for name, value in headers:
        # PERF: the common header (a known name, an ASCII value) costs a set lookup and
        # three substring tests.
        if (
            name in _TOKEN_NAMES
            and value.isascii()
            and not ("\r" in value or "\n" in value or "\x00" in value)
        ):
            continue
        problem = header_problem(name, value)
        if problem is None:
            continue
        logger.error(
            "refused to send the response to %s %s: header %r %s; strip or percent-encode"
            " request data before putting it in a header",
            log_method(environ),
            log_path(environ),
            name,
            problem,
        )
        if isinstance(result, Response):
            # NOTE: closing runs the response's own close callbacks, as sending it would.
            result.close()
        return error_parts(500, "Internal Server Error")
    return result


def send(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    result: Parts | Response,
    *,
    checked: bool = False,
) -> Iterable[bytes]:
    """Start the response and return its body: every response of the app starts here.

    :param checked: ``result`` already went through :func:`refuse_split_headers`.
    """
    if not checked:
        result = refuse_split_headers(result, environ)
    if isinstance(result, tuple):
        status, headers, body = result
        start_response(status_line(status), headers)
        return [body] if body and environ["REQUEST_METHOD"] != "HEAD" else []
    return result(environ, start_response)
