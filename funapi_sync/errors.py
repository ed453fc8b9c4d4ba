"""Errors: the one place that turns an exception raised by a request into its response.

Policy (STYLE rule 8): an exception handler registered for the exception's class (or a
base class, found along the MRO) answers it; else ``HTTPException``, ``ValidationError``
and werkzeug's HTTP errors answer with their status; anything else is a logged 500 whose
body never carries the exception's text (unless ``App(debug=True)``). The routing 404 and
405 are ``HTTPException`` errors answered the same way. An unexpected exception that a
catch-all ``exception_handler(Exception)`` answers is still logged with its traceback (as
Starlette and Flask do). Answering can fail too (a detail JSON cannot encode, a handler
that raises): that is a logged 500 with a fixed body, so no exception ever escapes the
app, and the request's cleanup still runs.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import marshmallow
from werkzeug.exceptions import HTTPException as WerkzeugHTTPException

from ._callables import callable_name
from ._json import UnencodableError, encode_json
from ._logtext import log_method, log_path
from .exceptions import HTTPException, ValidationError
from .responses import Parts, error_parts, header_list, phrase, render

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from werkzeug.wrappers import Request, Response

logger = logging.getLogger("funapi_sync")

#: The answer when answering failed; built once, so it cannot fail itself.
SERVER_ERROR: Parts = error_parts(500, "Internal Server Error")
_NOT_FOUND: Parts = error_parts(404, "Not Found")

#: Exceptions a request raises on purpose: answered by a handler, they are not logged.
_EXPECTED = (HTTPException, ValidationError, WerkzeugHTTPException)

ExceptionHandler = Callable[[Any, Any], Any]


class ErrorResponder:
    """An app's exception handlers, and the guarded way from an exception to a response."""

    __slots__ = ("debug", "encode", "handlers", "http_handler", "schemas")

    def __init__(self, debug: bool, encode: Callable[[Any], bytes] = encode_json) -> None:
        self.debug = debug
        #: The app's JSON encoder (``App(json_default=...)``), for every error body.
        self.encode = encode
        self.handlers: dict[type[BaseException], ExceptionHandler] = {}
        #: The error shapes declared with ``exception_handler(..., schema=...)``.
        self.schemas: dict[type[BaseException], marshmallow.Schema] = {}
        #: PERF: the handler of the routing 404/405, found once, not per request.
        self.http_handler: ExceptionHandler | None = None

    def add(
        self,
        exc_type: type[BaseException],
        handler: ExceptionHandler,
        schema: marshmallow.Schema | None = None,
    ) -> None:
        """Answer ``exc_type`` and its subclasses with ``handler(req, exc)``."""
        self.handlers[exc_type] = handler
        if schema is not None:
            self.schemas[exc_type] = schema
        else:
            self.schemas.pop(exc_type, None)
        self.http_handler = self.find(HTTPException)

    def _owner(self, exc_type: type[BaseException]) -> type[BaseException] | None:
        """The nearest class along ``exc_type``'s MRO that has a handler, or None."""
        handlers = self.handlers
        if not handlers:
            return None
        for cls in exc_type.__mro__:
            if cls in handlers:
                return cls
        return None

    def find(self, exc_type: type[BaseException]) -> ExceptionHandler | None:
        """The handler of the nearest class along ``exc_type``'s MRO, or None."""
        owner = self._owner(exc_type)
        return None if owner is None else self.handlers[owner]

    def schema_for(self, exc_type: type[BaseException]) -> marshmallow.Schema | None:
        """The error shape declared by the handler that answers ``exc_type``, or None."""
        owner = self._owner(exc_type)
        return None if owner is None else self.schemas.get(owner)

    def not_routed(
        self, environ: WSGIEnvironment, request_class: type[Request], allow: str | None = None
    ) -> Parts | Response:
        """The routing 404 (``allow`` None) or 405, through the handlers of HTTPException.

        A 405 keeps its ``Allow`` header whatever the handler returns (RFC 9110 §15.5.6).
        """
        if self.http_handler is None:
            # PERF: no handler reshapes it: today's fixed answers, headers copied since a
            # middleware may extend the list it is given.
            if allow is None:
                return _NOT_FOUND[0], list(_NOT_FOUND[1]), _NOT_FOUND[2]
            return error_parts(405, "Method Not Allowed", [("Allow", allow)], self.encode)
        if allow is None:
            return self.respond(request_class(environ), HTTPException(404))
        result = self.respond(request_class(environ), HTTPException(405, headers={"Allow": allow}))
        if isinstance(result, tuple):
            if not any(name.lower() == "allow" for name, _ in result[1]):
                result[1].append(("Allow", allow))
        elif "Allow" not in result.headers:
            result.headers["Allow"] = allow
        return result

    def respond(self, request: Request, exc: Exception, where: str = "") -> Parts | Response:
        """Answer ``exc``; never raises (a failure while answering is a logged 500).

        :param where: the route's label, for the log line of an unencodable payload.
        """
        try:
            return self._respond(request, exc, where)
        except Exception as failed:
            # NOTE: Flask's finalize_request(from_error_handler=True) wording, so the log
            # line reads the same to someone who knows Flask.
            logger.error(
                "Request finalizing failed with an error while handling an error (%s on %s %s)",
                type(exc).__name__,
                log_method(request.environ),
                log_path(request.environ),
                exc_info=failed,
            )
            return SERVER_ERROR

    def _respond(self, request: Request, exc: Exception, where: str) -> Parts | Response:
        owner = self._owner(type(exc))
        if owner is not None:
            handler = self.handlers[owner]
            if owner is Exception and not isinstance(exc, _EXPECTED):
                # NOTE: a catch-all handler reshapes the 500, it does not make the bug
                # expected: its traceback is still logged (Starlette's ServerErrorMiddleware).
                _log_unexpected(request, exc, where)
            try:
                return render(handler(request, exc), 200, None, self.encode)
            except Exception as handler_exc:
                logger.error(
                    "exception handler %s failed on %s %s",
                    callable_name(handler),
                    log_method(request.environ),
                    log_path(request.environ),
                    exc_info=handler_exc,
                )
                return self.server_error(handler_exc)
        if isinstance(exc, HTTPException):
            return error_parts(exc.status_code, exc.detail, header_list(exc.headers), self.encode)
        if isinstance(exc, ValidationError):
            return error_parts(422, exc.errors, None, self.encode)
        if isinstance(exc, WerkzeugHTTPException) and exc.code is not None:
            return error_parts(exc.code, phrase(exc.code), None, self.encode)
        _log_unexpected(request, exc, where)
        return self.server_error(exc)

    def server_error(self, exc: BaseException) -> Parts:
        """The 500 for ``exc``: a fixed body, or the traceback with ``App(debug=True)``."""
        if self.debug:
            return error_parts(
                500, {"error": repr(exc), "traceback": traceback.format_exception(exc)}
            )
        return SERVER_ERROR


def _log_unexpected(request: Request, exc: Exception, where: str) -> None:
    if isinstance(exc, UnencodableError):
        # NOTE: the bare "Object of type Row is not JSON serializable" names neither the
        # route nor the way out; this line names both.
        logger.error(
            "%s returned %s on %s %s; %s",
            where or "the handler",
            exc.what,
            log_method(request.environ),
            log_path(request.environ),
            exc.fix,
            exc_info=exc,
        )
        return
    logger.error(
        "Exception on %s %s",
        log_method(request.environ),
        log_path(request.environ),
        exc_info=exc,
    )
