"""Endpoint: one route compiled once at registration, and how it answers a request."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import marshmallow
from marshmallow import fields

from . import _route_checks
from ._callables import refuse_async
from .after_close import AfterClose, close_now, send
from .background import BackgroundTasks
from .concurrency import TASK
from .dependencies import BEFORE_RESPONSE, Depends
from .inputs import build_input
from .pool import PoolSettings
from .responses import Parts, UnsafeHeaderError, json_parts, refuse_split_headers, render
from .route_options import RouteOptions, normalise_depends
from .routing import to_rule
from .schema import as_schema
from .scope import RequestScope

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from werkzeug.wrappers import Request, Response

    from .backends import Backend
    from .dependencies import Plan, Registry
    from .errors import ErrorResponder

POSITIONAL_NAMES = ("input", "req", "task")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


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
    pool_settings: PoolSettings
    mode: Mode
    #: Where the request's batches go (funapi_sync.backends), and its add_task check.
    backend: Backend


def route_label(handler: Callable[..., Any], methods: Iterable[str], path: str) -> str:
    """``signup() at POST /signup``: how registration errors name a route."""
    name = getattr(handler, "__name__", None) or type(handler).__name__
    return f"{name}() at {'/'.join(str(m).upper() for m in methods)} {path}"


class Compiled(NamedTuple):
    """An endpoint's dependency plan and what a request needs, swapped as one value.

    NOTE: one immutable record, replaced in one assignment and read once per request,
    so a request running while ``dependency_overrides`` changes never pairs a new plan
    with the old plan's flags.
    """

    plan: Plan
    version: int
    wants_background: bool
    wants_request: bool
    wants_input: bool


class Endpoint:
    """A compiled route: handler arity, schemas, dependency plan and OpenAPI metadata."""

    __slots__ = (
        "_compiled",
        "_keywords",
        "arity",
        "body_lists",
        "body_media_type",
        "body_schema",
        "depends",
        "description",
        "handler",
        "include_in_schema",
        "media_type",
        "methods",
        "name",
        "needs_input",
        "path",
        "path_schema",
        "query_lists",
        "query_schema",
        "registry",
        "response_schema",
        "responses",
        "rule",
        "runtime",
        "status_code",
        "summary",
        "tags",
    )

    def __init__(
        self,
        handler: Callable[..., Any],
        path: str,
        methods: Iterable[str],
        options: RouteOptions,
        runtime: Runtime,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"a route handler must be callable, got {handler!r}")
        self.handler = handler
        self.name = getattr(handler, "__name__", None) or type(handler).__name__
        self.path = path
        self.rule = to_rule(path)
        self.methods = _normalise_methods(methods, self.name, path)
        where = f"{self.name}() at {'/'.join(self.methods)} {path}"
        status_code = options.status_code
        if type(status_code) is not int:
            raise TypeError(
                f"{where}: status_code must be an int from 100 to 599, got {status_code!r}"
            )
        if not 100 <= status_code <= 599:
            raise ValueError(
                f"{where}: status_code must be an int from 100 to 599, got {status_code!r}"
            )
        self.status_code = status_code
        self.body_schema = _optional_schema(options.body, f"{where}: body=")
        self.query_schema = _optional_schema(options.query, f"{where}: query=")
        if self.query_schema is not None and self.query_schema.many:
            raise TypeError(f"{where}: query= cannot be a list schema")
        self.query_lists = _list_keys(self.query_schema)
        self.body_lists = (
            _list_keys(self.body_schema)
            if self.body_schema and not self.body_schema.many
            else frozenset()
        )
        self.path_schema = _optional_schema(options.path_schema, f"{where}: path_schema=")
        self.response_schema = _optional_schema(
            options.response_schema, f"{where}: response_schema="
        )
        self.media_type, self.body_media_type = _check_route(self, handler, options, where)
        self.tags = list(options.tags) if options.tags else []
        doc = inspect.getdoc(handler) or ""
        self.summary = options.summary or (doc.splitlines()[0] if doc else None)
        self.description = doc or None
        self.include_in_schema = options.include_in_schema
        self.responses = _normalise_responses(options.responses, where)
        self.runtime = runtime
        self.registry = runtime.registry
        self.depends = normalise_depends(options.depends, where)
        self.arity, keywords = inspect_handler(handler, where)
        # NOTE: ``*, user=Depends(current_user)`` is the same as depends={"user": ...};
        # an explicit depends= entry for the keyword wins.
        for keyword, default in _depends_defaults(handler).items():
            self.depends.setdefault(keyword, default)
        for keyword, has_default in keywords.items():
            if keyword == "background" or keyword in self.depends:
                continue
            if has_default:
                continue
            hint = _route_checks.keyword_hint(keyword, self.rule, where)
            if hint is not None:
                raise TypeError(hint)
            raise TypeError(
                f"{where} declares keyword-only parameter {keyword!r}, which is neither"
                f" 'background' nor listed in depends=; add depends=[{keyword!r}] or"
                f" app.register({keyword!r}, ...)"
            )
        self._keywords = frozenset(keywords)
        self.needs_input = bool(
            self.arity or self.body_schema or self.query_schema or self.path_schema
        )
        self._compile_plan(where)

    def _compile_plan(self, where: str) -> Compiled:
        # PERF: what a request needs is decided here, once per plan, not on each request.
        # NOTE: the version is read before the plan is built, so an override changed
        # meanwhile makes the next request recompile rather than keep a stale plan.
        version = self.registry.overrides.version
        plan = self.registry.plan(self.depends, self._keywords, where)
        compiled = self._compiled = Compiled(
            plan,
            version,
            plan.needs_background,
            self.arity > 1 or plan.needs_request,
            self.needs_input or plan.needs_input,
        )
        return compiled

    def compiled(self) -> Compiled:
        """The plan and its flags, recompiled when ``dependency_overrides`` changed."""
        compiled = self._compiled
        if compiled.version != self.registry.overrides.version:
            return self._compile_plan(f"{self.name}() at {'/'.join(self.methods)} {self.path}")
        return compiled

    @property
    def plan(self) -> Plan:
        """The dependency plan a request would use now."""
        return self.compiled().plan

    def current_plan(self) -> Plan:
        """The plan, recompiled when ``dependency_overrides`` changed since it was built."""
        return self.compiled().plan

    def run(
        self, environ: WSGIEnvironment, start_response: StartResponse, path_values: dict[str, Any]
    ) -> Iterable[bytes]:
        """Answer one request: input, dependencies, handler, response, after-close wiring.

        Any exception becomes a response through :class:`~funapi_sync.errors.ErrorResponder`;
        the request's scope and uploads are cleaned up in ``close()`` once the body is sent,
        or here, in ``finally``, when nothing could be handed to ``close()``.
        """
        runtime = self.runtime
        compiled = self.compiled()
        plan = compiled.plan
        request: Request | None = None
        background: BackgroundTasks | None = None
        scope: RequestScope | None = None
        failure: Exception | None = None
        handed_over = trusted = False
        try:
            try:
                if compiled.wants_background:
                    background = BackgroundTasks(runtime.backend.check)
                # PERF: the werkzeug Request is built only for a handler or dependency that
                # takes `req` (or a body that needs werkzeug's form parser).
                if compiled.wants_request:
                    request = runtime.request_class(environ)
                input_ = None
                if plan.guards:
                    # NOTE: credentials are checked before the body is read (FastAPI's
                    # order: a 401 whatever the body, and no anonymous upload parsed).
                    # The scope is made first so a failing guard's siblings are cleaned up.
                    scope = RequestScope(
                        runtime.registry, {"input": None, "req": request, "background": background}
                    )
                    scope.make(plan.guards)
                if compiled.wants_input:
                    input_, request = build_input(
                        environ, self, path_values, request, runtime.request_class
                    )
                kwargs: dict[str, Any] = {}
                if plan.steps:
                    if scope is None:
                        scope = RequestScope(
                            runtime.registry,
                            {"input": input_, "req": request, "background": background},
                        )
                    else:
                        scope.values["input"] = input_
                    kwargs = scope.resolve(plan)
                elif background is not None:
                    kwargs = {"background": background}
                rv = self.handler(*(input_, request, TASK)[: self.arity], **kwargs)
                if type(rv) is dict and self.response_schema is None:
                    # PERF: the most common return value. Its only headers are the two
                    # json_parts makes, which cannot hold CR, LF or NUL: no check below.
                    result: Parts | Response | None = json_parts(rv, self.status_code, None)
                    trusted = True
                else:
                    result = render(rv, self.status_code, self.response_schema)
            except Exception as exc:
                failure = exc
                result = None
            if scope is not None and scope.exits[BEFORE_RESPONSE]:
                # NOTE: before the response starts, so a failing commit is the client's
                # answer (exception handlers apply) and its add_task tasks are dropped.
                error = scope.close_before_response(failure)
                if error is not None:
                    failure, result = error, None
            if result is None:
                assert failure is not None
                trusted = False
                if request is None:
                    request = runtime.request_class(environ)
                result = runtime.errors.respond(request, failure)
            # NOTE: checked before the close callback is built: a refused response is a
            # failed request, so only its add_task_always tasks run (SPEC §5).
            checked = result if trusted else refuse_split_headers(result, environ)
            if checked is not result:
                result = checked
                if failure is None:
                    failure = UnsafeHeaderError(
                        "the response was refused: a header has a CR, LF or NUL character"
                    )
            # PERF: most requests have nothing for close() to do (no task, no scope, no
            # upload); they get no close-time work at all.
            after_close = None
            if (
                scope is not None
                or (background is not None and background.tasks)
                or (request is not None and "files" in request.__dict__)
            ):
                after_close = AfterClose.wanted(
                    environ, runtime, background, scope, failure, request
                )
            iterable = send(environ, start_response, result, after_close, checked=True)
            handed_over = True
            return iterable
        finally:
            if not handed_over:
                # NOTE: sending failed (or the handler raised a BaseException), so close()
                # will never run our callback: clean up now, as Flask's wsgi_app does.
                close_now(environ, background, scope, failure or sys.exc_info()[1], request)
            if request is not None and environ.get("werkzeug.request") is request:
                # PERF: werkzeug's Request registers itself in its environ, a reference
                # cycle that keeps the server's whole environ (socket, parser, buffers)
                # alive until the garbage collector runs: 4-5 % of req/s under gunicorn.
                # Flask breaks it at the same point (RequestContext.pop); the request
                # object itself stays usable, by close-time cleanups and tasks too.
                environ["werkzeug.request"] = None

    def __repr__(self) -> str:
        return f"<Endpoint {'/'.join(self.methods)} {self.path} -> {self.name}()>"


def _check_route(
    endpoint: Endpoint, handler: Callable[..., Any], options: RouteOptions, where: str
) -> tuple[str | None, str | None]:
    """Run the registration checks of ``_route_checks``; return the media types."""
    _route_checks.check_positional_names(handler, endpoint.rule, where)
    _route_checks.check_path_schema(endpoint.path_schema, endpoint.rule, where)
    _route_checks.check_media_type(options.media_type, endpoint.response_schema, where)
    _route_checks.check_response_schema(endpoint.response_schema, where)
    body_type = _route_checks.body_media_type(endpoint.body_schema, options.body_media_type, where)
    return options.media_type, body_type


def _normalise_methods(methods: Iterable[str], name: str, path: str) -> tuple[str, ...]:
    if isinstance(methods, str):
        raise TypeError(f"{name}() at {path}: methods= must be a list such as ['GET'], not a str")
    result: list[str] = []
    for method in methods:
        upper = str(method).upper()
        if upper not in HTTP_METHODS:
            raise ValueError(f"{name}() at {path}: unknown HTTP method {method!r}")
        if upper not in result:
            result.append(upper)
    if not result:
        raise ValueError(f"{name}() at {path}: methods= must name at least one method")
    return tuple(result)


def _optional_schema(spec: Any, what: str) -> marshmallow.Schema | None:
    return None if spec is None else as_schema(spec, what=what)


def _normalise_responses(responses: Mapping[int, Any] | None, where: str) -> dict[int, Any]:
    """Check ``responses=`` (extra statuses for OpenAPI) and instantiate its schemas once."""
    if responses is None:
        return {}
    if not isinstance(responses, Mapping):
        raise TypeError(
            f"{where}: responses= must be a dict such as {{409: 'Name taken'}}, got {responses!r}"
        )
    result: dict[int, Any] = {}
    for status, described in responses.items():
        if type(status) is not int or not 100 <= status <= 599:
            raise ValueError(f"{where}: responses= keys must be HTTP status ints, got {status!r}")
        if isinstance(described, (str, Mapping)):
            result[status] = described
        else:
            result[status] = as_schema(
                described,
                what=f"{where}: responses[{status}] (a description, a schema or an OpenAPI dict)",
            )
    return result


def _list_keys(schema: marshmallow.Schema | None) -> frozenset[str]:
    if schema is None:
        return frozenset()
    return frozenset(
        field.data_key or name
        for name, field in schema.load_fields.items()
        if isinstance(field, (fields.List, fields.Tuple))
    )


def _depends_defaults(handler: Callable[..., Any]) -> dict[str, Any]:
    return {
        param.name: param.default
        for param in inspect.signature(handler).parameters.values()
        if param.kind is param.KEYWORD_ONLY and isinstance(param.default, Depends)
    }


def inspect_handler(handler: Callable[..., Any], where: str) -> tuple[int, dict[str, bool]]:
    """Return the positional arity (0-3) and ``{keyword: has_default}`` of a handler."""
    refuse_async(handler, where, "handler")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: cannot read the handler's signature ({exc})") from None
    arity = 0
    keywords: dict[str, bool] = {}
    for param in signature.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            if param.name == "background":
                raise TypeError(
                    f"{where}: 'background' must be keyword-only; write"
                    " def handler(input, req, task, *, background)"
                )
            arity += 1
        elif param.kind is param.KEYWORD_ONLY:
            keywords[param.name] = param.default is not param.empty
        else:
            raise TypeError(
                f"{where}: handlers cannot take *args or **kwargs; declare"
                f" (input, req, task, *, background, <dependencies>)"
            )
    if arity > 3:
        raise TypeError(
            f"{where} takes {arity} positional parameters; a handler takes at most"
            f" {', '.join(POSITIONAL_NAMES)} (each optional from the right)"
        )
    return arity, keywords
