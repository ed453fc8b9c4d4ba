"""Route: one route compiled once at registration, the record the rest of the house reads."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import marshmallow
from marshmallow import fields

from ._callables import callable_name, refuse_async
from .dependencies import Depends, label
from .parameters import Parameters, documented
from .routing import checks
from .routing.checks import to_rule
from .routing.options import RouteOptions, normalise_depends
from .schema import as_schema

if TYPE_CHECKING:
    from .dependencies import Plan, Registry

POSITIONAL_NAMES = ("input", "req", "task")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


def route_label(handler: Callable[..., Any], methods: Iterable[str], path: str) -> str:
    """``signup() at POST /signup``: how every message names a route."""
    methods_text = "/".join(str(method).upper() for method in methods)
    return f"{callable_name(handler, short=True)}() at {methods_text} {path}"


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
    #: Some dependency or guard is resolved: the request gets a RequestScope.
    wants_scope: bool


class Route:
    """A compiled route: handler arity, schemas, dependency plan and OpenAPI metadata.

    Built once when the route is added, read by the route table, the input builder and
    the OpenAPI document; :class:`~funapi_sync.endpoint.Endpoint` adds how it answers.
    """

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
        "label",
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
        registry: Registry,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"a route handler must be callable, got {handler!r}")
        self.handler = handler
        self.name = callable_name(handler, short=True)
        self.path = path
        self.rule = to_rule(path)
        self.methods = _normalise_methods(methods, self.name, path)
        self.label = where = route_label(handler, self.methods, path)
        self.status_code = _checked_status(options.status_code, where)
        self.body_schema = _optional_schema(options.body, f"{where}: body=")
        self.query_schema = _optional_schema(options.query, f"{where}: query=")
        if self.query_schema is not None and self.query_schema.many:
            raise TypeError(f"{where}: query= cannot be a list schema")
        checks.check_query_schema(self.query_schema, where)
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
        self.registry = registry
        self.depends = normalise_depends(options.depends, where)
        self.arity, keywords = inspect_handler(handler, where)
        # NOTE: ``*, user=Depends(current_user)`` is the same as depends={"user": ...};
        # an explicit depends= entry for the keyword wins.
        for keyword, default in _depends_defaults(handler).items():
            self.depends.setdefault(keyword, default)
        _check_keywords(keywords, self.depends, self.rule, where)
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
        if plan.parameters and self.query_schema is not None:
            # The route's query= and its dependencies' share one query string.
            declared = [(label(step.key), p) for step in plan.steps for p in step.declared]
            documented(
                [("the route", Parameters("query", self.query_schema, where)), *declared], where
            )
        compiled = self._compiled = Compiled(
            plan,
            version,
            plan.needs_background,
            self.arity > 1 or plan.needs_request,
            self.needs_input or plan.needs_input,
            bool(plan.steps or plan.guards),
        )
        return compiled

    def compiled(self) -> Compiled:
        """The plan and its flags, recompiled when ``dependency_overrides`` changed."""
        compiled = self._compiled
        if compiled.version != self.registry.overrides.version:
            return self._compile_plan(self.label)
        return compiled

    def current_plan(self) -> Plan:
        """The plan, recompiled when ``dependency_overrides`` changed since it was built."""
        return self.compiled().plan

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'/'.join(self.methods)} {self.path} -> {self.name}()>"


def _checked_status(status_code: Any, where: str) -> int:
    if type(status_code) is not int:
        raise TypeError(f"{where}: status_code must be an int from 100 to 599, got {status_code!r}")
    if not 100 <= status_code <= 599:
        raise ValueError(
            f"{where}: status_code must be an int from 100 to 599, got {status_code!r}"
        )
    return status_code


def _check_keywords(
    keywords: dict[str, bool], depends: Mapping[str, Any], rule: str, where: str
) -> None:
    """Refuse a keyword-only parameter that nothing would fill."""
    for keyword, has_default in keywords.items():
        if keyword == "background" or keyword in depends or has_default:
            continue
        hint = checks.keyword_hint(keyword, rule, where)
        if keyword == "background_tasks":
            hint = (
                f"{where} declares keyword-only parameter 'background_tasks'; the request's"
                " BackgroundTasks are injected under the name 'background' (FastAPI's"
                " background_tasks): name it `background`"
            )
        if hint is not None:
            raise TypeError(hint)
        raise TypeError(
            f"{where} declares keyword-only parameter {keyword!r}, which is neither"
            f" 'background' nor listed in depends=; add depends=[{keyword!r}] or"
            f" app.register({keyword!r}, ...)"
        )


def _check_route(
    endpoint: Route, handler: Callable[..., Any], options: RouteOptions, where: str
) -> tuple[str | None, str | None]:
    """Run the registration checks of ``routing.checks``; return the media types."""
    checks.check_positional_names(handler, endpoint.rule, where)
    checks.check_path_schema(endpoint.path_schema, endpoint.rule, where)
    checks.check_media_type(options.media_type, endpoint.response_schema, where)
    checks.check_response_schema(endpoint.response_schema, where)
    body_type = checks.body_media_type(endpoint.body_schema, options.body_media_type, where)
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
            if param.name == "background" or checks.is_fastapi_background(param):
                raise TypeError(
                    f"{where}: positional parameter {param.name!r} would receive"
                    f" {POSITIONAL_NAMES[min(arity, 2)]}, not the background tasks; they are"
                    " the keyword-only parameter named 'background': write"
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
