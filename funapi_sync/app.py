"""App: settings, the registration API, and the WSGI entry point that dispatches requests."""

from __future__ import annotations

import logging
import signal
import threading
import traceback
from collections.abc import Callable, Iterable
from contextvars import copy_context
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException as WerkzeugHTTPException
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

from . import openapi
from .background import BackgroundTask, BackgroundTasks
from .concurrency import TASK
from .dependencies import DependencyOverrides, Registry, RequestScope
from .endpoint import Endpoint
from .exceptions import HTTPException, ValidationError
from .inputs import build_input
from .lazy_request import LazyRequest
from .lifecycle import Lifecycle
from .middleware import ClosingIterable
from .pool import Batch, PoolSettings, PoolView, check_settings, get_pool
from .responses import (
    STATUS_LINES,
    dump_checked,
    error_parts,
    header_list,
    json_parts,
    unpack,
)
from .router import RouteDecorators, Router, join_path
from .routing import RouteTable

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .testing import TestClient

logger = logging.getLogger("funapi_sync")

#: The environ key of a list that collects the request's task batch (set by the test
#: client; a list, because servers and middleware may hand the app a shallow copy).
BATCHES_KEY = "funapi_sync.batches"

_SETTINGS: dict[str, Any] = {
    "debug": False,
    "max_body_size": 1024 * 1024,
    "background_workers": 4,
    "background_queue_size": 1024,
    "background_slow_warning": 30.0,
    "background_shutdown_timeout": 25.0,
    "openapi_url": "/openapi.json",
    "docs_url": "/docs",
}

Parts = tuple[int, list[tuple[str, str]], bytes]


class App(RouteDecorators):
    """A WSGI application for JSON APIs.

    :param title: the API's name (OpenAPI ``info.title``).
    :param version: the API's version (OpenAPI ``info.version``).
    :param description: a longer description (OpenAPI ``info.description``).
    :param settings: ``debug``, ``max_body_size`` (bytes, default 1 MiB),
        ``background_workers`` (4), ``background_queue_size`` (1024),
        ``background_slow_warning`` (30.0 s), ``background_shutdown_timeout`` (25.0 s),
        ``openapi_url`` and ``docs_url``.
    """

    def __init__(
        self,
        title: str = "FunApi Application",
        version: str = "1.0.0",
        description: str = "",
        **settings: Any,
    ) -> None:
        unknown = set(settings) - set(_SETTINGS)
        if unknown:
            raise TypeError(
                f"App() got unknown settings {sorted(unknown)}; known settings are"
                f" {sorted(_SETTINGS)}"
            )
        self.title = title
        self.version = version
        self.description = description
        self.settings = {**_SETTINGS, **settings}
        self.debug = bool(self.settings["debug"])
        max_body = self.settings["max_body_size"]
        if not isinstance(max_body, int) or max_body < 0:
            raise ValueError(f"max_body_size must be a non-negative int, got {max_body!r}")
        pool_settings = PoolSettings(
            workers=_positive_int(self.settings, "background_workers"),
            queue_size=_positive_int(self.settings, "background_queue_size"),
            slow_warning=float(self.settings["background_slow_warning"]),
            shutdown_timeout=float(self.settings["background_shutdown_timeout"]),
        )
        check_settings(pool_settings)
        self._pool_settings = pool_settings
        #: The process-wide background pool, as this app sees it: ``stats()``, ``drain()``.
        self.background = PoolView(pool_settings)
        self.registry = Registry()
        self.routes = RouteTable()
        self.lifecycle = Lifecycle(self.registry)
        self._exception_handlers: dict[type[BaseException], Callable[..., Any]] = {}
        # NOTE: max_content_length on a per-app Request class makes werkzeug refuse an
        # oversized Content-Length before reading and stop a chunked body while reading.
        # PERF: built on LazyRequest, so a `req` the handler never reads costs nothing.
        self.request_class: type[Request] = type(
            "Request",
            (LazyRequest,),
            {"max_content_length": max_body, "max_form_memory_size": max_body},
        )
        #: The WSGI callable that ``__call__`` delegates to: the middleware stack with
        #: the app's own dispatcher innermost (wrap it freely, as with Flask).
        self.wsgi_app: WSGIApplication = self._dispatch
        #: ``/openapi.json`` and ``/docs`` (routes added at startup), or None when turned off.
        self.openapi = openapi.setup(self)

    # -- registration ---------------------------------------------------------------

    def _add_route(
        self, handler: Callable[..., Any], path: str, methods: list[str], options: dict[str, Any]
    ) -> None:
        endpoint = Endpoint(handler, path, methods, registry=self.registry, **options)
        self.routes.add(endpoint)

    def include_router(self, router: Router, prefix: str = "") -> None:
        """Mount every route of ``router`` under ``prefix`` + ``router.prefix``."""
        if not isinstance(router, Router):
            raise TypeError(f"include_router() takes a Router, got {router!r}")
        # NOTE: every route is compiled and checked before any is added, so a router with
        # one bad route mounts nothing rather than half of itself.
        endpoints: list[Endpoint] = []
        for handler, path, methods, options in router.routes:
            full_path = join_path(prefix, join_path(router.prefix, path))
            route_depends = options["depends"]
            depends = dict(router.depends)
            if route_depends is not None:
                depends.update(
                    {name: name for name in route_depends}
                    if isinstance(route_depends, (list, tuple))
                    else route_depends
                )
            merged = {
                **options,
                "depends": depends or None,
                "tags": [*router.tags, *(options["tags"] or [])],
            }
            endpoints.append(
                Endpoint(handler, full_path, methods, registry=self.registry, **merged)
            )
        self.routes.add_all(endpoints)

    def register(self, name: str, factory: Callable[..., Any], *, scope: str = "request") -> None:
        """Make ``factory``'s result injectable as ``name`` (see ``depends=``).

        :param scope: ``"request"`` (created once per request that needs it) or ``"app"``
            (once per process, cleaned up at shutdown).
        """
        self.registry.register(name, factory, scope)

    @property
    def dependency_overrides(self) -> DependencyOverrides:
        """Swap a dependency (by registered name or callable) for another, e.g. in tests."""
        return self.registry.overrides

    def exception_handler(
        self, exc_type: type[BaseException]
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``fn(req, exc)`` to answer ``exc_type`` (and subclasses)."""
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            raise TypeError(f"exception_handler() takes an exception class, got {exc_type!r}")

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(fn):
                raise TypeError(f"an exception handler must be callable, got {fn!r}")
            self._exception_handlers[exc_type] = fn
            return fn

        return decorator

    def on_startup(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Run ``fn()`` once per process before it serves its first request.

        :raises RuntimeError: the app already started serving in this process.
        """
        if not callable(fn):
            raise TypeError(f"on_startup() takes a callable, got {fn!r}")
        self.lifecycle.add_startup(fn)
        return fn

    def on_shutdown(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Run ``fn()`` at process exit, after the background pool drained."""
        if not callable(fn):
            raise TypeError(f"on_shutdown() takes a callable, got {fn!r}")
        self.lifecycle.add_shutdown(fn)
        return fn

    def use(self, middleware: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Wrap the app in ``middleware(app, *args, **kwargs)``; the last added is outermost."""
        if not callable(middleware):
            raise TypeError(f"use() takes a WSGI middleware class or factory, got {middleware!r}")
        if self.lifecycle.started:
            # NOTE: requests already in flight would run through the old stack, so a
            # late use() is refused rather than half applied (Flask's setupmethod rule).
            raise RuntimeError(
                f"use({getattr(middleware, '__name__', middleware)!r}) was called after the"
                " app started serving; add middleware before the first request"
            )
        self.wsgi_app = middleware(self.wsgi_app, *args, **kwargs)

    def add_cors(self, **options: Any) -> None:
        """Answer CORS preflights and allow the listed origins; see :class:`.CORSMiddleware`."""
        from .middleware.cors import CORSMiddleware

        self.use(CORSMiddleware, **options)

    def add_trusted_host(self, allowed_hosts: Iterable[Any]) -> None:
        """Refuse requests for other hosts with 400; see :class:`.TrustedHostMiddleware`."""
        from .middleware.trusted_host import TrustedHostMiddleware

        self.use(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    def add_request_logger(self, **options: Any) -> None:
        """Log each request on ``funapi_sync.access``; see :class:`.RequestLoggerMiddleware`."""
        from .middleware.request_logger import RequestLoggerMiddleware

        self.use(RequestLoggerMiddleware, **options)

    def add_gzip(self, minimum_size: int = 500, **options: Any) -> None:
        """Gzip compressible responses; see :class:`.GZipMiddleware`."""
        from .middleware.gzip import GZipMiddleware

        self.use(GZipMiddleware, minimum_size=minimum_size, **options)

    # -- serving --------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point; delegates to :attr:`wsgi_app` so middleware can wrap it."""
        return self.wsgi_app(environ, start_response)

    def _dispatch(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not self.lifecycle.started:
            self.lifecycle.ensure_started()
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        if not path.isascii():
            # PEP 3333 hands over the path as latin-1; the URL was UTF-8.
            path = path.encode("latin-1").decode("utf-8", "replace")
        try:
            endpoint, path_values = self.routes.match(path, method)
        except NotFound:
            return _send(environ, start_response, error_parts(404, "Not Found"))
        except MethodNotAllowed as exc:
            allowed = ", ".join(sorted({*(exc.valid_methods or ()), "OPTIONS"}))
            if method == "OPTIONS":
                return _send(environ, start_response, (204, [("Allow", allowed)], b""))
            parts = error_parts(405, "Method Not Allowed", [("Allow", allowed)])
            return _send(environ, start_response, parts)
        # NOTE: each request runs in a copy of the server thread's context, so a ContextVar
        # a handler sets (a request id) does not leak into the next request on the thread.
        return copy_context().run(self._handle, endpoint, path_values, environ, start_response)

    def _handle(
        self,
        endpoint: Endpoint,
        path_values: dict[str, Any],
        environ: WSGIEnvironment,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        request: Request | None = None
        background: BackgroundTasks | None = None
        scope: RequestScope | None = None
        failure: BaseException | None = None
        try:
            plan = endpoint.current_plan()
            if plan.needs_background:
                background = BackgroundTasks()
            # PERF: the werkzeug Request is built only for a handler or dependency that
            # takes `req` (or a body that needs werkzeug's form parser).
            if endpoint.arity > 1 or plan.needs_request:
                request = self.request_class(environ)
            input_ = None
            if endpoint.needs_input or plan.needs_input:
                input_, request = build_input(
                    environ, endpoint, path_values, request, self.request_class
                )
            kwargs: dict[str, Any] = {}
            if plan.steps:
                scope = RequestScope(
                    self.registry, {"input": input_, "req": request, "background": background}
                )
                kwargs = scope.resolve(plan)
            elif background is not None:
                kwargs = {"background": background}
            rv = endpoint.handler(*(input_, request, TASK)[: endpoint.arity], **kwargs)
            result = self._render(rv, endpoint)
        except Exception as exc:
            failure = exc
            if request is None:
                request = self.request_class(environ)
            result = self._render_exception(request, exc)
        tasks = background.to_run(failure is not None) if background is not None else ()
        after = None if scope is None else _closer(scope, failure)
        if request is not None and request.__dict__.get("files"):
            # NOTE: werkzeug spools uploads to temporary files; close them after the
            # tasks (which may still read an upload) and the cleanups, or they leak.
            after = _then(after, request.close)
        if not tasks and after is None:
            return _send(environ, start_response, result)
        label = f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '/')}"
        return _send(
            environ, start_response, result, lambda: self._after_close(environ, tasks, after, label)
        )

    def _after_close(
        self,
        environ: WSGIEnvironment,
        tasks: list[BackgroundTask] | tuple[()],
        after: Callable[[], None] | None,
        label: str,
    ) -> None:
        # NOTE: this runs in the response iterable's close(), which PEP 3333 servers call
        # once the body is sent; gunicorn's sync worker holds the client socket until it
        # returns, so it only enqueues.
        if not tasks:
            if after is not None:
                after()
            return
        batch = Batch(list(tasks), label, after)
        sink = environ.get(BATCHES_KEY)
        if sink is not None:
            sink.append(batch)
        get_pool(self._pool_settings).submit(batch)

    def _render(self, rv: Any, endpoint: Endpoint | None) -> Parts | Response:
        if isinstance(rv, Response):
            return rv
        payload, status, headers = unpack(rv, endpoint.status_code if endpoint else 200)
        if isinstance(payload, Response):
            payload.status_code = status
            if headers:
                payload.headers.extend(headers)
            return payload
        if endpoint is not None and endpoint.response_schema is not None and status < 400:
            payload = dump_checked(endpoint.response_schema, payload)
        return json_parts(payload, status, headers)

    def _render_exception(self, request: Request, exc: Exception) -> Parts | Response:
        handler = self._find_exception_handler(type(exc))
        if handler is not None:
            try:
                return self._render(handler(request, exc), None)
            except Exception as handler_exc:
                logger.error(
                    "exception handler %s failed on %s %s",
                    getattr(handler, "__qualname__", handler),
                    request.method,
                    request.path,
                    exc_info=handler_exc,
                )
                return self._server_error(handler_exc)
        if isinstance(exc, HTTPException):
            return error_parts(exc.status_code, exc.detail, header_list(exc.headers))
        if isinstance(exc, ValidationError):
            return error_parts(422, exc.errors)
        if isinstance(exc, WerkzeugHTTPException) and exc.code is not None:
            return error_parts(exc.code, STATUS_LINES.get(exc.code, str(exc.code)).split(" ", 1)[1])
        logger.error("Exception on %s %s", request.method, request.path, exc_info=exc)
        return self._server_error(exc)

    def _server_error(self, exc: BaseException) -> Parts:
        if self.debug:
            return error_parts(
                500, {"error": repr(exc), "traceback": traceback.format_exception(exc)}
            )
        return error_parts(500, "Internal Server Error")

    def _find_exception_handler(self, exc_type: type[BaseException]) -> Callable[..., Any] | None:
        handlers = self._exception_handlers
        if not handlers:
            return None
        for cls in exc_type.__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                return handler
        return None

    # -- running --------------------------------------------------------------------

    def run(self, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
        """Serve on werkzeug's development server (use gunicorn in production).

        :param options: passed to :func:`werkzeug.serving.run_simple`, e.g.
            ``use_reloader=True``; ``threaded`` defaults to True.
        """
        from werkzeug.serving import run_simple

        from .lifecycle import shutdown_process

        options.setdefault("threaded", True)
        self.lifecycle.ensure_started()
        if threading.current_thread() is threading.main_thread():
            # NOTE: SIGTERM would end the process without unwinding; turn it into the
            # same clean exit as Ctrl-C so queued background tasks are drained.
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            run_simple(host, port, self, **options)
        finally:
            shutdown_process()

    def test_client(self, **kwargs: Any) -> TestClient:
        """A werkzeug test ``Client`` whose calls return after the request's tasks ran."""
        from .testing import TestClient

        return TestClient(self, **kwargs)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _positive_int(settings: dict[str, Any], key: str) -> int:
    value = settings[key]
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a positive int, got {value!r}")
    return value


def _closer(scope: RequestScope, failure: BaseException | None) -> Callable[[], None]:
    return lambda: scope.close(failure)


def _then(first: Callable[[], None] | None, second: Callable[[], None]) -> Callable[[], None]:
    if first is None:
        return second

    def both() -> None:
        try:
            first()
        finally:
            second()

    return both


def _send(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    result: Parts | Response,
    on_close: Callable[[], Any] | None = None,
) -> Iterable[bytes]:
    if isinstance(result, Response):
        iterable: Iterable[bytes] = result(environ, start_response)
    else:
        status, headers, body = result
        start_response(STATUS_LINES[status], headers)
        iterable = [body] if body and environ["REQUEST_METHOD"] != "HEAD" else []
    if on_close is None:
        return iterable
    return ClosingIterable(iterable, on_close)
