"""Route options: the one declaration of what ``route()`` and its shorthands accept."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .._callables import callable_name
from ..dependencies import Depends
from .checks import fastapi_hint


@dataclasses.dataclass(frozen=True)
class RouteOptions:
    """The keyword arguments of ``route()``, ``get()``, ... on ``App`` and ``Router``.

    Declared once, here: the decorators take ``**options`` and build one of these (an
    unknown keyword fails at decoration time), ``Router`` keeps it until it is included,
    and :class:`~funapi_sync.endpoint.Endpoint` compiles it. Adding an option is one line.

    :param body: the body's schema (class, instance, or ``[Schema]`` for a JSON array).
    :param query: the query string's schema.
    :param path_schema: a schema that validates the converted path values further.
    :param response_schema: the schema a successful payload is dumped through.
    :param depends: a list of registered names, or a dict of keyword to registered name,
        ``Depends(fn)`` or callable.
    :param status_code: the status of a plain payload (default 200).
    :param tags: OpenAPI tags.
    :param summary: OpenAPI summary (default: the docstring's first line).
    :param responses: other statuses for OpenAPI, ``{409: "Name taken"}`` or a schema.
    :param include_in_schema: False leaves the route out of ``/openapi.json``.
    :param media_type: what a success response carries when it is not JSON (e.g.
        ``"text/html"``), for the OpenAPI document; the handler returns the ``Response``.
    :param body_media_type: how the body is documented: ``"application/json"`` (default),
        ``"application/x-www-form-urlencoded"`` or ``"multipart/form-data"`` (always, for
        a body with a ``File`` field).
    :param persist: when a durable backend stores this route's tasks, overriding the
        backend's ``persist=``: ``"after_response"`` (in ``close()``) or
        ``"before_response"`` (before the status line is sent; 503 when they cannot be).
    """

    body: Any = None
    query: Any = None
    path_schema: Any = None
    response_schema: Any = None
    depends: Any = None
    status_code: int = 200
    tags: Iterable[str] | None = None
    summary: str | None = None
    responses: Mapping[int, Any] | None = None
    include_in_schema: bool = True
    media_type: str | None = None
    body_media_type: str | None = None
    persist: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str) -> RouteOptions:
        """Build from a decorator's keyword arguments; an unknown one is a ``TypeError``."""
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(
                f"{where} got unknown route options {unknown}{fastapi_hint(unknown)};"
                f" known options are {known}"
            )
        return cls(**options)

    def mounted(
        self,
        tags: Iterable[str],
        depends: Mapping[str, Any],
        responses: Mapping[int, Any],
        where: str,
    ) -> RouteOptions:
        """These options under a router (or an app): its tags first, its ``depends`` and
        ``responses`` merged in.

        The route's own entry wins over the router's for the same keyword or status,
        as an inner router's wins over an outer one's.
        """
        merged = dict(depends)
        merged.update(normalise_depends(self.depends, where))
        statuses = dict(responses)
        statuses.update(self.responses or {})
        return dataclasses.replace(
            self,
            depends=merged or None,
            tags=join_tags(tags, self.tags or ()),
            responses=statuses or None,
        )


def join_tags(outer: Iterable[str], inner: Iterable[str]) -> list[str]:
    """The outer tags, then the inner ones not already there (each tag once)."""
    result = list(dict.fromkeys(outer))
    result.extend(tag for tag in inner if tag not in result)
    return result


def guard_key(target: Any) -> str:
    """The key of a guard given without a keyword (``depends=[Depends(fn)]``).

    Not an identifier, so it never collides with a handler keyword; the same callable
    gets the same key at every level, so a guard declared twice runs once (two scheme
    instances of one class are two guards).
    """
    func = target.dependency if isinstance(target, Depends) else target
    return f"<guard {callable_name(func)} {id(func):x}>"


def normalise_depends(depends: Any, where: str) -> dict[str, Any]:
    """Turn ``depends=`` (a list or a dict) into ``{keyword: source}``.

    A list holds registered names (each injected under its own name) and guards,
    ``Depends(fn)`` or plain callables whose value nobody takes (FastAPI's
    ``dependencies=[Depends(verify_token)]``).
    """
    if depends is None:
        return {}
    if isinstance(depends, Mapping):
        result = dict(depends)
    elif isinstance(depends, (list, tuple)):
        result = {}
        for item in depends:
            if isinstance(item, str):
                result[item] = item
            elif isinstance(item, Depends) or callable(item):
                result[guard_key(item)] = item
            else:
                raise TypeError(
                    f"{where}: a depends= list holds registered names, Depends(fn) or"
                    f" callables; got {item!r}"
                )
    else:
        raise TypeError(f"{where}: depends= must be a list or a dict, got {depends!r}")
    for keyword, target in result.items():
        # A guard from a list, merged into a route's depends (RouteOptions.mounted).
        if _is_guard_entry(keyword, target):
            continue
        if not isinstance(keyword, str) or not keyword.isidentifier():
            raise ValueError(f"{where}: depends= keys must be identifiers, got {keyword!r}")
        if keyword == "background":
            raise ValueError(f"{where}: 'background' is always injected; remove it from depends=")
    return result


def _is_guard_entry(keyword: Any, target: Any) -> bool:
    return (
        isinstance(keyword, str)
        and keyword.startswith("<guard ")
        and (isinstance(target, Depends) or callable(target))
        and keyword == guard_key(target)
    )
