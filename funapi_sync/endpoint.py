"""Endpoint: one route compiled once at registration, with every check that can fail early."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import marshmallow
from marshmallow import fields

from . import _route_checks
from .dependencies import Depends
from .routing import to_rule
from .schema import as_schema

if TYPE_CHECKING:
    from .dependencies import Plan, Registry

POSITIONAL_NAMES = ("input", "req", "task")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


class Endpoint:
    """A compiled route: handler arity, schemas, dependency plan and OpenAPI metadata."""

    __slots__ = (
        "_keywords",
        "_plan_version",
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
        "plan",
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
        *,
        registry: Registry,
        body: Any = None,
        query: Any = None,
        path_schema: Any = None,
        response_schema: Any = None,
        depends: Any = None,
        status_code: int = 200,
        tags: Iterable[str] | None = None,
        summary: str | None = None,
        responses: Mapping[int, Any] | None = None,
        include_in_schema: bool = True,
        media_type: str | None = None,
        body_media_type: str | None = None,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"a route handler must be callable, got {handler!r}")
        self.handler = handler
        self.name = getattr(handler, "__name__", None) or type(handler).__name__
        self.path = path
        self.rule = to_rule(path)
        self.methods = _normalise_methods(methods, self.name, path)
        where = f"{self.name}() at {'/'.join(self.methods)} {path}"
        if type(status_code) is not int:
            raise TypeError(
                f"{where}: status_code must be an int from 100 to 599, got {status_code!r}"
            )
        if not 100 <= status_code <= 599:
            raise ValueError(
                f"{where}: status_code must be an int from 100 to 599, got {status_code!r}"
            )
        self.status_code = status_code
        self.body_schema = _optional_schema(body, f"{where}: body=")
        self.query_schema = _optional_schema(query, f"{where}: query=")
        if self.query_schema is not None and self.query_schema.many:
            raise TypeError(f"{where}: query= cannot be a list schema")
        self.query_lists = _list_keys(self.query_schema)
        self.body_lists = (
            _list_keys(self.body_schema)
            if self.body_schema and not self.body_schema.many
            else frozenset()
        )
        self.path_schema = _optional_schema(path_schema, f"{where}: path_schema=")
        self.response_schema = _optional_schema(response_schema, f"{where}: response_schema=")
        self.media_type, self.body_media_type = _check_route(
            self, handler, media_type, body_media_type, where
        )
        self.tags = list(tags) if tags else []
        doc = inspect.getdoc(handler) or ""
        self.summary = summary or (doc.splitlines()[0] if doc else None)
        self.description = doc or None
        self.include_in_schema = include_in_schema
        self.responses = _normalise_responses(responses, where)
        self.registry = registry
        self.depends = _normalise_depends(depends, where)
        self.arity, keywords = _inspect_handler(handler, where)
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
        self.plan = registry.plan(self.depends, self._keywords, where)
        self._plan_version = registry.overrides.version
        self.needs_input = bool(
            self.arity or self.body_schema or self.query_schema or self.path_schema
        )

    def current_plan(self) -> Plan:
        """The plan, recompiled when ``dependency_overrides`` changed since it was built."""
        if self._plan_version != self.registry.overrides.version:
            where = f"{self.name}() at {'/'.join(self.methods)} {self.path}"
            self.plan = self.registry.plan(self.depends, self._keywords, where)
            self._plan_version = self.registry.overrides.version
        return self.plan

    def __repr__(self) -> str:
        return f"<Endpoint {'/'.join(self.methods)} {self.path} -> {self.name}()>"


def _check_route(
    endpoint: Endpoint,
    handler: Callable[..., Any],
    media_type: str | None,
    body_media_type: str | None,
    where: str,
) -> tuple[str | None, str | None]:
    """Run the registration checks of ``_route_checks``; return the media types."""
    _route_checks.check_positional_names(handler, endpoint.rule, where)
    _route_checks.check_path_schema(endpoint.path_schema, endpoint.rule, where)
    _route_checks.check_media_type(media_type, endpoint.response_schema, where)
    _route_checks.check_response_schema(endpoint.response_schema, where)
    body_type = _route_checks.body_media_type(endpoint.body_schema, body_media_type, where)
    return media_type, body_type


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


def _normalise_depends(depends: Any, where: str) -> dict[str, Any]:
    if depends is None:
        return {}
    if isinstance(depends, Mapping):
        result = dict(depends)
    elif isinstance(depends, (list, tuple)):
        result = {}
        for item in depends:
            if not isinstance(item, str):
                raise TypeError(
                    f"{where}: a depends= list holds registered names; use a dict such as"
                    f" depends={{'user': Depends(fn)}} for callables, got {item!r}"
                )
            result[item] = item
    else:
        raise TypeError(f"{where}: depends= must be a list of names or a dict, got {depends!r}")
    for keyword in result:
        if not isinstance(keyword, str) or not keyword.isidentifier():
            raise ValueError(f"{where}: depends= keys must be identifiers, got {keyword!r}")
        if keyword == "background":
            raise ValueError(f"{where}: 'background' is always injected; remove it from depends=")
    return result


def _depends_defaults(handler: Callable[..., Any]) -> dict[str, Any]:
    return {
        param.name: param.default
        for param in inspect.signature(handler).parameters.values()
        if param.kind is param.KEYWORD_ONLY and isinstance(param.default, Depends)
    }


def _inspect_handler(handler: Callable[..., Any], where: str) -> tuple[int, dict[str, bool]]:
    """Return the positional arity (0-3) and ``{keyword: has_default}`` of a handler."""
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
