"""Errors: the one place that turns an exception raised by a request into its response.

Policy (STYLE rule 8): an exception handler registered for the exception's class (or a
base class, found along the MRO) answers it; else ``HTTPException``, ``ValidationError``
and werkzeug's HTTP errors answer with their status; anything else is a logged 500 whose
body never carries the exception's text (unless ``App(debug=True)``). Answering can fail
too (a detail JSON cannot encode, a handler that raises): that is a logged 500 with a
fixed body, so no exception ever escapes the app, and the request's cleanup still runs.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException as WerkzeugHTTPException

from ._callables import callable_name
from ._logtext import log_method, log_path
from .exceptions import HTTPException, ValidationError
from .responses import Parts, error_parts, header_list, phrase, render

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

logger = logging.getLogger("funapi_sync")

#: The answer when answering failed; built once, so it cannot fail itself.
SERVER_ERROR: Parts = error_parts(500, "Internal Server Error")

ExceptionHandler = Callable[[Any, Any], Any]


class ErrorResponder:
    """An app's exception handlers, and the guarded way from an exception to a response."""

    __slots__ = ("debug", "handlers")

    def __init__(self, debug: bool) -> None:
        self.debug = debug
        self.handlers: dict[type[BaseException], ExceptionHandler] = {}

    def add(self, exc_type: type[BaseException], handler: ExceptionHandler) -> None:
        """Answer ``exc_type`` and its subclasses with ``handler(req, exc)``."""
        self.handlers[exc_type] = handler

    def find(self, exc_type: type[BaseException]) -> ExceptionHandler | None:
        """The handler of the nearest class along ``exc_type``'s MRO, or None."""
        handlers = self.handlers
        if not handlers:
            return None
        for cls in exc_type.__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                return handler
        return None

    def respond(self, request: Request, exc: Exception) -> Parts | Response:
        """Answer ``exc``; never raises (a failure while answering is a logged 500)."""
        try:
            return self._respond(request, exc)
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

    def _respond(self, request: Request, exc: Exception) -> Parts | Response:
        handler = self.find(type(exc))
        if handler is not None:
            try:
                return render(handler(request, exc), 200, None)
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
            return error_parts(exc.status_code, exc.detail, header_list(exc.headers))
        if isinstance(exc, ValidationError):
            return error_parts(422, exc.errors)
        if isinstance(exc, WerkzeugHTTPException) and exc.code is not None:
            return error_parts(exc.code, phrase(exc.code))
        logger.error(
            "Exception on %s %s",
            log_method(request.environ),
            log_path(request.environ),
            exc_info=exc,
        )
        return self.server_error(exc)

    def server_error(self, exc: BaseException) -> Parts:
        """The 500 for ``exc``: a fixed body, or the traceback with ``App(debug=True)``."""
        if self.debug:
            return error_parts(
                500, {"error": repr(exc), "traceback": traceback.format_exception(exc)}
            )
        return SERVER_ERROR
