"""Endpoint: how a compiled route answers one request, as a short sequence of named steps."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from .after_close import after_close, close_now, persist_early, persist_now, request_label
from .background import BackgroundTasks
from .batch import close_request
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

        The request's scope and uploads are cleaned up in ``close()`` once the body is
        sent, or here, in ``finally``, when nothing could be handed to ``close()`` (the
        shape of Flask's ``wsgi_app``).
        """
        runtime, compiled = self.runtime, self.compiled()
        background = BackgroundTasks(runtime.backend.check) if compiled.wants_background else None
        # PERF: the werkzeug Request is built only for a handler or dependency that takes
        # `req` (or, in build_input, for a body that needs werkzeug's form parser).
        request = runtime.request_class(environ) if compiled.wants_request else None
        scope = _scope(runtime.registry, request, background) if compiled.wants_scope else None
        if scope is not None and compiled.plan.needs_environ:
            # NOTE: only then: the scope may outlive the response (after_tasks cleanups),
            # and the environ holds the server's buffers.
            scope.values[ENVIRON] = environ
        failure: BaseException | None = None
        handed_over = False
        try:
            result, request, failure = self._respond(
                environ, path_values, compiled, request, scope, background
            )
            if background and self.persist_early and not runtime.mode.testing:
                result, request, failure = self._persist(
                    environ, background, result, request, failure
                )
            body = send(environ, start_response, result, checked=True)
            work = None
            # PERF: most requests leave close() nothing (no task, scope or upload).
            if scope is not None or background or (request and "files" in request.__dict__):
                work = after_close(environ, runtime, background, scope, failure, request)
            elif background is not None:
                # NOTE: a thread the handler started may still hold `background`.
                close_request(background, request_label(environ))
            # NOTE: from here the work's close() owns the cleanup, even when the testing
            # twin does it at once, in attach(), and a task's failure is raised from there.
            handed_over = True
            return body if work is None else work.attach(body)
        finally:
            if not handed_over:
                # NOTE: sending failed (or the handler raised a BaseException), so close()
                # will never run: clean up now, as Flask's wsgi_app does.
                close_now(
                    environ,
                    runtime.backend,
                    background,
                    scope,
                    failure or sys.exc_info()[1],
                    request,
                )
            if request is not None and environ.get("werkzeug.request") is request:
                # PERF: werkzeug's Request registers itself in its environ, a reference
                # cycle that keeps the server's whole environ (socket, parser, buffers)
                # alive until the garbage collector runs. Flask breaks it at the same
                # point (RequestContext.pop); the request object itself stays usable.
                environ["werkzeug.request"] = None

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
        rendering, the ``before_response`` cleanups; any exception becomes a response
        through :class:`~funapi_sync.errors.ErrorResponder`.
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
        if scope is not None and scope.exits[BEFORE_RESPONSE]:
            failure, result = _close_before_response(scope, failure, result)
        if result is None:
            assert failure is not None
            trusted = False
            request = request or self.runtime.request_class(environ)
            result = self.runtime.errors.respond(request, failure, self.label)
        if not trusted:
            failure, result = _refuse_unsafe(result, environ, failure)
        return result, request, failure

    def _persist(
        self,
        environ: WSGIEnvironment,
        background: BackgroundTasks,
        result: Parts | Response,
        request: Request | None,
        failure: Exception | None,
    ) -> tuple[Parts | Response, Request | None, Exception | None]:
        """Store the tasks now (after the ``before_response`` cleanups); 503 if they cannot be."""
        error = persist_now(environ, self.runtime.backend, background, failure)
        if error is None:
            return result, request, failure
        request = request or self.runtime.request_class(environ)
        return self.runtime.errors.respond(request, error), request, error


def _scope(
    registry: Registry, request: Request | None, background: BackgroundTasks | None
) -> RequestScope:
    return RequestScope(registry, {"input": None, "req": request, "background": background})


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
