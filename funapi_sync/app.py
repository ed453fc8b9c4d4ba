"""App: the application object a user registers routes on, freezes by serving, and serves."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextvars import copy_context
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wrappers import Request

from . import logconfig, security
from ._body import BodyRequest
from ._callables import refuse_async
from ._json import chain_default, encode_json, make_encoder
from .backends import Backend
from .backends import resolve as resolve_backend
from .dependencies import DependencyOverrides, Registry
from .endpoint import Endpoint, Mode, Runtime
from .errors import ErrorResponder
from .exceptions import HTTPException, ValidationError
from .lazy_request import LazyRequest
from .lifecycle import Lifecycle
from .openapi import OpenAPI
from .pool import PoolSettings, check_settings
from .responses import send
from .route import route_label
from .routing.options import RouteOptions
from .routing.router import Mount, RouteDecorators, Router
from .routing.table import RouteTable
from .schema import as_schema
from .settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .security import SecurityScheme
    from .testing import TestClient

logger = logging.getLogger("funapi_sync")

_DOCS_ROUTE = RouteOptions(include_in_schema=False)


class App(RouteDecorators):
    """A WSGI application for JSON APIs.

    Setup (routes, routers, middleware, exception handlers, startup hooks) is frozen
    when the app starts serving in a process: a later call is a ``RuntimeError`` naming
    the fix. ``register()`` (a name is only ever added), ``dependency_overrides`` (for
    tests) and ``on_shutdown`` stay open; see ``docs/architecture.md``.

    :param title: the API's name (OpenAPI ``info.title``).
    :param version: the API's version (OpenAPI ``info.version``).
    :param description: a longer description (OpenAPI ``info.description``).
    :param depends: guards for every route of the app (not ``/openapi.json`` and
        ``/docs``), run even when the handler does not take them: a list of registered
        names, ``Depends(fn)`` or callables, or a dict of keyword to any of them.
    :param settings: see :class:`~funapi_sync.settings.Settings`: ``debug``,
        ``max_body_size`` (bytes, default 1 MiB), ``background_workers`` (4),
        ``background_queue_size`` (1024), ``background_slow_warning`` (30.0 s),
        ``background_shutdown_timeout`` (25.0 s), ``background_submit_timeout`` (10.0 s),
        ``background_status_size`` (10000 recent tasks for ``app.background.status()``),
        ``background_backend`` (``"thread"``, ``"inline"``, ``"record"``, ``"sqlite"`` or
        a backend object such as ``funapi_sync.backends.rq.RQBackend(...)``; see
        docs/durable-tasks.md), ``task_tracing`` (``"child"``, ``"link"`` or ``"off"``:
        each task's OpenTelemetry span, see docs/task-status.md), ``openapi_url`` and
        ``docs_url``, ``json_default`` (``fn(obj)`` encoding what JSON cannot, tried before
        the built-in encodings of datetime, UUID, Decimal...; a ``TypeError`` it raises
        falls back to them).
    """

    def __init__(
        self,
        title: str = "FunApi Application",
        version: str = "1.0.0",
        description: str = "",
        *,
        depends: Any = None,
        **settings: Any,
    ) -> None:
        #: The app's :class:`~funapi_sync.settings.Settings`, a read-only mapping.
        self.settings = Settings.from_options(settings)
        self.title = title
        self.version = version
        self.description = description
        #: What every route is mounted inside: the app's guards (``App(depends=...)``).
        self._top = Mount.of("", None, depends, None, "App(depends=...)")
        max_body = self.settings.max_body_size
        pool_settings = self.settings.pool
        #: Where this app's background tasks go: the backend (``stats()``, ``drain()``),
        #: which ``settings["background_backend"]`` holds too (made from its name).
        self.background = _backend(self.settings.background_backend, pool_settings)
        self.settings = self.settings.with_backend(self.background)
        self.registry = Registry()
        self.routes = RouteTable()
        self.lifecycle = Lifecycle(self.registry)
        self.errors = ErrorResponder(self.settings.debug, _encoder(self.settings.json_default))
        self.request_class = _request_class(max_body)
        self._mode = Mode()
        self._runtime = Runtime(
            self.registry,
            self.request_class,
            self.errors,
            pool_settings.slow_warning,
            self._mode,
            self.background,
            self.errors.encode,
            self.settings.task_tracing,
        )
        self._frozen = False
        self._scheme_names: dict[str, SecurityScheme] = {}  # by name in /openapi.json
        #: The WSGI callable that ``__call__`` delegates to: the middleware stack with
        #: the app's own dispatcher innermost (wrap it freely, as with Flask).
        self.wsgi_app: WSGIApplication = self._dispatch
        # NOTE: the first startup hook, so every way of starting (gunicorn's worker init,
        # run(), the first request) freezes setup before any other hook or request runs.
        self.lifecycle.add_startup(self._freeze)
        # NOTE: a durable backend starts taking stored tasks where the app starts serving
        # (each gunicorn worker, a worker process), never in a --preload master.
        start_backend = getattr(self.background, "start", None)
        if callable(start_backend):
            self.lifecycle.add_startup(start_backend)
        #: ``/openapi.json`` and ``/docs``, or None when ``openapi_url=None`` turns them off.
        self.openapi = self._add_docs_routes()
        # NOTE: plain `gunicorn module:app` runs no hook of ours before the first request;
        # this is the first code of ours to run in its worker (see logconfig).
        logconfig.install_under_gunicorn()

    def _add_docs_routes(self) -> OpenAPI | None:
        if self.settings.openapi_url is None:
            return None
        openapi = OpenAPI(self, self.settings.openapi_url, self.settings.docs_url)
        for path, handler in openapi.routes():
            # A user route on one of these paths replaces it (logged), whenever added.
            self.routes.add_replaceable(self._compile(handler, path, ["GET"], _DOCS_ROUTE))
        return openapi

    @property
    def debug(self) -> bool:
        """``App(debug=True)``: 500 bodies carry the traceback (never in production)."""
        return bool(self.settings.debug)

    @property
    def testing(self) -> bool:
        """``app.testing = True`` (Flask's convention): run each request's background tasks
        in the calling thread once its response is closed or its body read to the end, and
        let a failing task raise there. For werkzeug's own ``Client``; see docs/testing.md.
        """
        return self._mode.testing

    @testing.setter
    def testing(self, value: bool) -> None:
        self._mode.testing = bool(value)

    # -- registration ---------------------------------------------------------------

    def _check_setup(self, call: str, fix: str) -> None:
        if self._frozen:
            # NOTE: other threads already match routes and run requests through the
            # stack; a late change would apply to some requests and not others (Flask's
            # @setupmethod, Starlette's add_middleware).
            raise RuntimeError(f"{call} was called after the app started serving; {fix}")

    def _freeze(self) -> None:
        self._frozen = True
        self.routes.freeze()

    def _compile(
        self, handler: Callable[..., Any], path: str, methods: list[str], options: RouteOptions
    ) -> Endpoint:
        return Endpoint(handler, path, methods, options, self._runtime)

    def _add_route(
        self, handler: Callable[..., Any], path: str, methods: list[str], options: RouteOptions
    ) -> None:
        self._check_setup(
            f"route({path!r})", "add routes before the first request (e.g. at import time)"
        )
        top = self._top
        if top.depends:
            where = route_label(handler, methods, path)
            options = options.mounted((), top.depends, {}, where)
        self._mount([self._compile(handler, path, methods, options)])

    def include_router(
        self,
        router: Router,
        prefix: str = "",
        *,
        tags: Iterable[str] | None = None,
        depends: Any = None,
        responses: Mapping[int, Any] | None = None,
    ) -> None:
        """Mount every route of ``router`` (and of the routers nested in it) under
        ``prefix`` + ``router.prefix``.

        :param tags: OpenAPI tags put before the router's own on each of its routes.
        :param depends: guards for each of its routes, run before the router's own.
        :param responses: other statuses for OpenAPI, merged into each route's (the
            router's and the route's own entries win).
        :raises ValueError: a route cannot be added (an unknown dependency name, a
            duplicate path): then none of the router's routes is.

        Each router's ``on_include`` hooks are called with this app before its routes are
        added (a hook that raises adds none of them).
        """
        if not isinstance(router, Router):
            raise TypeError(f"include_router() takes a Router, got {router!r}")
        where = f"include_router({router.prefix!r})"
        self._check_setup(where, "include routers before the first request")
        mount = Mount.of(prefix, tags, depends, responses, where).inside(self._top)
        # NOTE: every route is compiled and checked before any is added, so a router with
        # one bad route mounts nothing rather than half of itself.
        endpoints = [self._compile(*route) for route in router.mounted(mount)]
        for each in (router, *router.nested()):
            for hook in each.on_include:
                hook(self)
        self._mount(endpoints)

    def _mount(self, endpoints: list[Endpoint]) -> None:
        names = dict(self._scheme_names)
        for endpoint in endpoints:
            security.check_names(security.schemes_of(endpoint), names, endpoint.label)
        _log_replaced(self.routes.add_all(endpoints))
        self._scheme_names = names

    def register(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        scope: str = "request",
        cleanup: str = "before_response",
        query: Any = None,
        headers: Any = None,
    ) -> None:
        """Make ``factory``'s result injectable as ``name`` (see ``depends=``).

        :param scope: ``"request"`` (created once per request that needs it) or ``"app"``
            (once per process, cleaned up at shutdown).
        :param cleanup: when a request-scoped value is cleaned up: ``"before_response"``
            (after the handler, before the response is sent; a failing cleanup is the
            response), ``"after_response"`` (once the body is sent, before the tasks) or
            ``"after_tasks"`` (after the request's tasks, on the pool thread).
        :param query: a schema of the query parameters ``factory`` reads, as in
            ``Depends(fn, query=...)``: validated, passed by field name, documented.
        :param headers: the same for request headers.
        """
        self.registry.register(name, factory, scope, cleanup, query, headers)

    @property
    def dependency_overrides(self) -> DependencyOverrides:
        """Swap a dependency (by registered name or callable) for another, e.g. in tests."""
        return self.registry.overrides

    def exception_handler(
        self, exc_type: type[Exception], *, schema: Any = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``fn(req, exc)`` to answer ``exc_type`` (and subclasses).

        The routing 404 and 405 are :class:`HTTPException` errors, so a handler of
        ``HTTPException`` reshapes them too (a 405 keeps its ``Allow`` header).

        :param schema: the shape the handler answers with, for ``/openapi.json``: given
            for ``HTTPException``, ``ValidationError`` or a base class of them, it is
            documented for every error status that handler answers (401, 404, 413, 422,
            ``responses=`` descriptions...) instead of the default ``{"detail": ...}``.
        """
        name = getattr(exc_type, "__name__", repr(exc_type))
        _check_exception_type(exc_type, name)
        documented = None
        if schema is not None:
            documented = _error_schema(exc_type, name, schema)

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(fn):
                raise TypeError(f"an exception handler must be callable, got {fn!r}")
            refuse_async(fn, f"exception_handler({name})", "exception handler")
            self._check_setup(
                f"exception_handler({name})",
                "register exception handlers before the first request",
            )
            self.errors.add(exc_type, fn, documented)
            return fn

        return decorator

    def on_startup(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Run ``fn()`` once per process before it serves its first request.

        :raises RuntimeError: the app already started serving in this process.
        """
        if not callable(fn):
            raise TypeError(f"on_startup() takes a callable, got {fn!r}")
        refuse_async(fn, "on_startup()", "startup hook")
        self.lifecycle.add_startup(fn)
        return fn

    def on_shutdown(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Run ``fn()`` at process exit, after the background pool drained."""
        if not callable(fn):
            raise TypeError(f"on_shutdown() takes a callable, got {fn!r}")
        refuse_async(fn, "on_shutdown()", "shutdown hook")
        self.lifecycle.add_shutdown(fn)
        return fn

    def use(self, middleware: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Wrap the app in ``middleware(app, *args, **kwargs)``; the last added is outermost."""
        if not callable(middleware):
            raise TypeError(f"use() takes a WSGI middleware class or factory, got {middleware!r}")
        self._check_setup(
            f"use({getattr(middleware, '__name__', middleware)!r})",
            "add middleware before the first request",
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
            answer = self.errors.not_routed(environ, self.request_class)
            return send(environ, start_response, answer)
        except MethodNotAllowed as exc:
            allowed = ", ".join(sorted({*(exc.valid_methods or ()), "OPTIONS"}))
            if method == "OPTIONS":
                return send(environ, start_response, (204, [("Allow", allowed)], b""))
            answer = self.errors.not_routed(environ, self.request_class, allowed)
            return send(environ, start_response, answer)
        # NOTE: each request runs in a copy of the server thread's context, so a ContextVar
        # a handler sets (a request id) does not leak into the next request on the thread.
        return copy_context().run(endpoint.run, environ, start_response, path_values)

    # -- running --------------------------------------------------------------------

    def run(self, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
        """Serve on werkzeug's development server (use gunicorn in production).

        :param options: passed to :func:`werkzeug.serving.run_simple`, e.g.
            ``use_reloader=True``; ``threaded`` defaults to True.
        """
        from .server import dev

        dev.run(self, self.lifecycle, host, port, **options)

    def test_client(self, *, raise_task_errors: bool = False, **kwargs: Any) -> TestClient:
        """A werkzeug test ``Client`` whose calls return after the request's tasks ran.

        :param raise_task_errors: run each request's tasks in the calling thread and
            re-raise a task's exception from the call (by default it is logged, as in
            production, and does not change the response).
        """
        from .testing import TestClient

        return TestClient(self, raise_task_errors=raise_task_errors, **kwargs)


def _backend(spec: Any, pool_settings: PoolSettings) -> Backend:
    backend = resolve_backend(spec, pool_settings)
    if not getattr(backend, "own_pool", False):
        # NOTE: only an app on the shared pool can ask for settings it will not get.
        check_settings(pool_settings)
    return backend


def _request_class(max_body: int) -> type[Request]:
    # NOTE: max_content_length on a per-app Request class makes werkzeug refuse an
    # oversized Content-Length before reading and stop a chunked body while reading.
    # PERF: built on LazyRequest, so a `req` the handler never reads costs nothing.
    # BodyRequest: every read of the body refuses one cut short or badly framed.
    return type(
        "Request",
        (BodyRequest, LazyRequest),
        {"max_content_length": max_body, "max_form_memory_size": max_body},
    )


def _encoder(json_default: Callable[[Any], Any] | None) -> Callable[[Any], bytes]:
    # PERF: an app without json_default shares the process's encoder (one C encoder per
    # thread); one with it gets its own, built once here.
    return encode_json if json_default is None else make_encoder(chain_default(json_default))


def _check_exception_type(exc_type: Any, name: str) -> None:
    if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
        raise TypeError(f"exception_handler() takes an exception class, got {exc_type!r}")
    if not issubclass(exc_type, Exception):
        # NOTE: a request raising KeyboardInterrupt or SystemExit is stopped, not answered:
        # such a handler could never run.
        raise TypeError(
            f"exception_handler({name}): {name} is a BaseException but not an Exception,"
            " and no handler ever answers one (the server is being stopped); register a"
            " handler for an Exception subclass, e.g. exception_handler(Exception)"
        )


def _error_schema(exc_type: type[Exception], name: str, schema: Any) -> Any:
    if not (issubclass(HTTPException, exc_type) or issubclass(ValidationError, exc_type)):
        raise TypeError(
            f"exception_handler({name}, schema=...): schema= documents the error responses"
            f" of HTTPException and ValidationError, which {name} does not answer; document"
            f" {name}'s status on the routes that raise it with responses={{409: Schema}}"
        )
    return as_schema(schema, what=f"exception_handler({name}, schema=...)")


def _log_replaced(replaced: list[Endpoint]) -> None:
    for endpoint in replaced:
        logger.warning(
            "not serving %s at %s: a route of the app answers GET there already;"
            " pass App(openapi_url=...) or App(docs_url=...) to move it, or None",
            endpoint.name,
            endpoint.path,
        )
