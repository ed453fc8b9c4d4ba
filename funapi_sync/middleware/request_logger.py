"""RequestLoggerMiddleware: one access-log line per request, with a request id."""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._logtext import log_method, log_text
from ..after_close import REQUEST_ID_KEY
from . import closing

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

access_logger = logging.getLogger("funapi_sync.access")

#: The current request's id; background tasks see it too (they run in a copy of the
#: context taken when they were added).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "funapi_sync.request_id", default=None
)

#: The environ key holding the request id, for code that has the environ but not the context.
ENVIRON_KEY = REQUEST_ID_KEY

#: An incoming id is kept only if it is short and plain: it ends up in logs and headers.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


class RequestLoggerMiddleware:
    """Log ``METHOD path status duration request_id`` on ``funapi_sync.access`` per request.

    The request id is the incoming ``X-Request-ID`` when it is a plain token of at most 128
    characters, else a new ``uuid4().hex``; it is set on the response's ``X-Request-ID``,
    in ``environ["funapi_sync.request_id"]`` and in the :data:`request_id` context
    variable (so handlers, their background tasks and their log lines can use it).

    The line is logged from the response iterable's ``close()``, which PEP 3333 servers
    call once the body is sent, so the duration covers sending the body. The iterable is
    wrapped with :func:`~funapi_sync.middleware.closing`, which closes the app's iterable
    first (submitting its background tasks) and then logs. The query string is left out:
    it often carries tokens.

    The record's ``extra`` fields are ``method``, ``path``, ``status``, ``duration_ms`` and
    ``request_id``, for structured log formatters.

    :param header: the request and response header that carries the id.
    :param level: the level of the access lines (``logging.INFO``).
    """

    def __init__(
        self, app: WSGIApplication, header: str = "X-Request-ID", level: int = logging.INFO
    ) -> None:
        if not isinstance(header, str) or not re.fullmatch(r"[A-Za-z0-9-]+", header):
            raise ValueError(f"header must be a header name such as 'X-Request-ID', got {header!r}")
        self.app = app
        self.header = header
        self.environ_header = "HTTP_" + header.upper().replace("-", "_")
        self.level = level

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        incoming = environ.get(self.environ_header, "")
        rid = incoming if _SAFE_ID.fullmatch(incoming) else uuid.uuid4().hex
        environ[ENVIRON_KEY] = rid
        method = log_method(environ)
        path = log_text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        status = ["-"]
        lowered = self.header.lower()

        def logging_start_response(
            status_line: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            status[0] = status_line.split(" ", 1)[0]
            headers = [(n, v) for n, v in headers if n.lower() != lowered]
            headers.append((self.header, rid))
            return start_response(status_line, headers, exc_info)

        def log() -> None:
            duration_ms = (time.perf_counter() - started) * 1000
            access_logger.log(
                self.level,
                "%s %s %s %.1fms request_id=%s",
                method,
                path,
                status[0],
                duration_ms,
                rid,
                extra={
                    "method": method,
                    "path": path,
                    "status": status[0],
                    "duration_ms": duration_ms,
                    "request_id": rid,
                },
            )

        token = request_id.set(rid)
        try:
            iterable = self.app(environ, logging_start_response)
        except BaseException:
            status[0] = "500"
            log()
            raise
        finally:
            # NOTE: reset here, in the context that set it; the body is iterated later,
            # but a streaming body that needs the id can read it from environ.
            request_id.reset(token)
        return closing(iterable, log)
