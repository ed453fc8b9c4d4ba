"""Endpoint: how a compiled route answers one request, as a short sequence of named steps."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from .after_close import (
    AfterClose,
    ClosedRequest,
    after_close,
    close_now,
    persist_early,
    persist_now,
)
from .background import BackgroundTasks
from .concurrency import TASK
from .dependencies import BEFORE_RESPONSE, ENVIRON
from .inputs import build_input
from .responses import Parts, UnsafeHeaderError, json_parts, refuse_split_headers, render, send
from .route import Compiled, Route
from .scope import RequestScope

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from werkzeug.wrappers import Request, Response

    from .backends import Backend
    from .dependencies import Registry
    from .errors import ErrorResponder
    from .routing.options import RouteOptions


class Mode:
    """The app's switches that may change after it is made: ``app.testing``."""

    __slots__ = ("testing",)

    def __init__(self) -> None:
        self.testing = False


class Runtime(NamedTuple):
    """What an app lends its endpoints for answering requests (fixed when it is made)."""

    registry: Registry
    request_class: type[Request]
    errors: ErrorResponder
    #: Seconds after which a background task is logged as slow (its app's setting).
    slow_warning: float
    mode: Mode
    #: Where the request's batches go (funapi_sync.backends), and its add_task check.
    backend: Backend
    #: The app's JSON encoder (``App(json_default=...)``).
    encode: Callable[[Any], bytes]
    #: Each background task's OpenTelemetry span (``App(task_tracing=...)``).
    task_tracing: str


class Endpoint(Route):
    """A route that answers requests: :meth:`run` is the request's whole path."""

    __slots__ = ("persist_early", "runtime")

    def __init__(
        self,
        handler: Callable[..., Any],
        path: str,
        methods: Iterable[str],
        options: RouteOptions,
        runtime: Runtime,
    ) -> None:
        super().__init__(handler, path, methods, options, runtime.registry)
        self.runtime = runtime
        #: Store the tasks before the status line (a durable backend's "before_response").
        self.persist_early = persist_early(runtime.backend, options.persist, self.label)

    def run(
        self, environ: WSGIEnvironment, start_response: StartResponse, path_values: dict[str, Any]
    ) -> Iterable[bytes]:
        """Answer one request: respond, send, then hand ``close()`` the rest of the work.

        What ``close()`` cannot get (sending failed) is cleaned up in ``finally`` (Flask).
        """
        runtime, compiled = self.runtime, self.compiled()
        background = BackgroundTasks(runtime.backend.check) if compiled.wants_background else None
        # PERF: the werkzeug Request is built only for a handler or dependency that takes
        # `req` (or, in build_input, for a body that needs werkzeug's form parser).
        request = runtime.request_class(environ) if compiled.wants_request else None
        scope = (
            self._scope(compiled, environ, request, background) if compiled.wants_scope else None
        )
        failure: BaseException | None = None
        handed_over = False
        try:
            result, request, failure = self._respond(
                environ, path_values, compiled, request, scope, background
            )
            body = send(environ, start_response, result, checked=True)
            # PERF: most requests leave close() nothing (no task, scope or upload).
            work = None
            if scope is not None or background is not None or _has_files(request):
                work = self._close_work(environ, background, scope, failure, request)
            # NOTE: from here close() owns the cleanup (the testing twin's attach() too).
            handed_over = True
            return body if work is None else work.attach(body)
        finally:
            if not handed_over:
                # NOTE: nothing reached the server's close(): clean up now, as Flask does.
                error = failure or sys.exc_info()[1]
                close_now(environ, runtime.backend, background, scope, error, request)
            if request is not None and environ.get("werkzeug.request") is request:
                # PERF: werkzeug's Request registers itself in its environ, a reference
                # cycle that keeps the server's whole environ (socket, parser, buffers)
                # alive until the garbage collector runs. Flask breaks it at the same
                # point (RequestContext.pop); the request object itself stays usable.
                environ["werkzeug.request"] = None

    def _scope(
        self,
        compiled: Compiled,
        environ: WSGIEnvironment,
        request: Request | None,
        background: BackgroundTasks | None,
    ) -> RequestScope:
        values = {"input": None, "req": request, "background": background}
        scope = RequestScope(self.runtime.registry, values)
        if compiled.plan.needs_environ:
            # NOTE: only then: the scope may outlive the response (after_tasks cleanups),
            # and the environ holds the server's buffers.
            scope.values[ENVIRON] = environ
        return scope

    def _respond(
        self,
        environ: WSGIEnvironment,
        path_values: dict[str, Any],
        compiled: Compiled,
        request: Request | None,
        scope: RequestScope | None,
        background: BackgroundTasks | None,
    ) -> tuple[Parts | Response, Request | None, Exception | None]:
        """The response to send, the request (if one was built) and the request's failure.

        Guards, input, the handler (with exactly the arguments decided at registration),
        rendering; then :meth:`_settle` makes any failure the response.
        """
        failure: Exception | None = None
        result: Parts | Response | None = None
        trusted = False
        try:
            if compiled.plan.guards:
                # NOTE: credentials are checked before the body is read (FastAPI's order:
                # a 401 whatever the body, and no anonymous upload parsed).
                assert scope is not None  # a plan with guards wants a scope
                scope.make(compiled.plan.guards)
            input_ = None
            if compiled.wants_input:
                input_, request = build_input(
                    environ, self, path_values, request, self.runtime.request_class
                )
            kwargs: dict[str, Any] = {}
            if compiled.plan.steps:
                assert scope is not None
                # NOTE: dependencies read the query as sent; query= validates it for
                # the handler only (a guard's token is no unknown field).
                scope.values["input"] = input_ if input_ is None else input_.as_sent()
                kwargs = scope.resolve(compiled.plan)
            elif background is not None:
                kwargs = {"background": background}
            rv = self.handler(*(input_, request, TASK)[: self.arity], **kwargs)
            if type(rv) is dict and self.response_schema is None:
                # PERF: the most common return value. Its only headers are the two
                # json_parts makes, which cannot hold CR, LF or NUL: no check below.
                result = json_parts(rv, self.status_code, None, self.runtime.encode)
                trusted = True
            else:
                result = render(rv, self.status_code, self.response_schema, self.runtime.encode)
        except Exception as exc:
            failure = exc
        if trusted and scope is None and not (self.persist_early and background):
            assert result is not None
            return result, request, None
        return self._settle(environ, result, request, scope, background, failure)

    def _settle(
        self,
        environ: WSGIEnvironment,
        result: Parts | Response | None,
        request: Request | None,
        scope: RequestScope | None,
        background: BackgroundTasks | None,
        failure: Exception | None,
    ) -> tuple[Parts | Response, Request | None, Exception | None]:
        """Run the ``before_response`` cleanups, store early tasks, answer any failure.

        A failing cleanup (a commit) or store becomes the request's failure, answered
        through :class:`~funapi_sync.errors.ErrorResponder` like a handler's exception;
        headers with CR, LF or NUL refuse the response.
        """
        runtime = self.runtime
        if scope is not None and scope.exits[BEFORE_RESPONSE]:
            failure, result = _close_before_response(scope, failure, result)
        if self.persist_early and background and not runtime.mode.testing:
            # NOTE: after the before_response cleanups (a committed row's task is
            # stored), before the status line: a 202 then means "stored".
            error = persist_now(environ, runtime.backend, background, failure)
            if error is not None:
                failure, result = error, None
        if result is None:
            assert failure is not None
            request = request or runtime.request_class(environ)
            result = runtime.errors.respond(request, failure, self.label)
        failure, result = _refuse_unsafe(result, environ, failure)
        return result, request, failure

    def _close_work(
        self,
        environ: WSGIEnvironment,
        background: BackgroundTasks | None,
        scope: RequestScope | None,
        failure: BaseException | None,
        request: Request | None,
    ) -> AfterClose | None:
        """The close-time work to wrap the body in, or None (then add_task is over)."""
        # PERF: the task list read directly (BackgroundTasks.__len__ is a Python call).
        if background is not None and not background.tasks:
            # NOTE: a thread the handler started may still hold `background`: from now on
            # its add_task raises. PERF: no lock, no label formatted; a task that raced
            # in before the close is handed over below like any other.
            background.close(ClosedRequest(environ))
        if (
            scope is not None
            or (background is not None and background.tasks)
            or _has_files(request)
        ):
            return after_close(environ, self.runtime, background, scope, failure, request)
        return None


def _has_files(request: Request | None) -> bool:
    # NOTE: only a request whose uploads were parsed has temporary files to close.
    return request is not None and "files" in request.__dict__


def _close_before_response(
    scope: RequestScope, failure: Exception | None, result: Parts | Response | None
) -> tuple[Exception | None, Parts | Response | None]:
    # NOTE: before the response starts, so a failing commit is the client's answer
    # (exception handlers apply) and its add_task tasks are dropped.
    error = scope.close_before_response(failure)
    return (failure, result) if error is None else (error, None)


def _refuse_unsafe(
    result: Parts | Response, environ: WSGIEnvironment, failure: Exception | None
) -> tuple[Exception | None, Parts | Response]:
    # NOTE: checked before the close-time work is built: a refused response is a failed
    # request, so only its add_task_always tasks run (SPEC §5).
    checked = refuse_split_headers(result, environ)
    if checked is not result and failure is None:
        failure = UnsafeHeaderError("the response was refused: a header could not be sent safely")
    return failure, checked
