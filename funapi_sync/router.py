"""Router: routes declared apart from the app and mounted with ``include_router``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ._route_checks import refuse_unknown_options
from .endpoint import _inspect_handler, _normalise_depends

F = TypeVar("F", bound=Callable[..., Any])


class RouteDecorators:
    """``route()`` and its per-method shorthands, shared by ``App`` and ``Router``."""

    def _add_route(
        self, handler: Callable[..., Any], path: str, methods: list[str], options: dict[str, Any]
    ) -> None:
        raise NotImplementedError

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        *,
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
        **unknown: Any,
    ) -> Callable[[F], F]:
        """Register the decorated function for ``methods`` on ``path``.

        Every check that can fail (signature, schemas, dependency names, duplicates) fails
        here, at decoration time, with a message that names the route and the fix.

        :param media_type: what a success response carries when it is not JSON (e.g.
            ``"text/html"``), for the OpenAPI document; the handler returns the
            ``Response`` itself.
        :param body_media_type: how the body is documented: ``"application/json"``
            (default), ``"application/x-www-form-urlencoded"`` or ``"multipart/form-data"``
            (always, for a body with a ``File`` field).
        """
        refuse_unknown_options(path, unknown)
        if isinstance(methods, str):
            raise TypeError(f"route({path!r}) methods= must be a list such as ['GET'], not a str")
        options = {
            "body": body,
            "query": query,
            "path_schema": path_schema,
            "response_schema": response_schema,
            "depends": depends,
            "status_code": status_code,
            "tags": tags,
            "summary": summary,
            "responses": responses,
            "include_in_schema": include_in_schema,
            "media_type": media_type,
            "body_media_type": body_media_type,
        }
        method_list = list(methods)

        def decorator(handler: F) -> F:
            self._add_route(handler, path, method_list, options)
            return handler

        return decorator

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        """Register a ``GET`` route (``HEAD`` is answered by it too)."""
        return self.route(path, ["GET"], **options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        """Register a ``POST`` route."""
        return self.route(path, ["POST"], **options)

    def put(self, path: str, **options: Any) -> Callable[[F], F]:
        """Register a ``PUT`` route."""
        return self.route(path, ["PUT"], **options)

    def patch(self, path: str, **options: Any) -> Callable[[F], F]:
        """Register a ``PATCH`` route."""
        return self.route(path, ["PATCH"], **options)

    def delete(self, path: str, **options: Any) -> Callable[[F], F]:
        """Register a ``DELETE`` route."""
        return self.route(path, ["DELETE"], **options)


class Router(RouteDecorators):
    """A group of routes with a common prefix, tags and guard dependencies.

    Routes are checked against the app (registered names, duplicates) when the router is
    included; what can be checked alone (the handler's signature) is checked at once.

    :param prefix: prepended to every route path, e.g. ``"/users"``.
    :param tags: OpenAPI tags added to every route.
    :param depends: dependencies resolved for every route, even when the handler does
        not take them (an auth guard).
    """

    def __init__(
        self, prefix: str = "", *, tags: Iterable[str] | None = None, depends: Any = None
    ) -> None:
        _check_prefix(prefix)
        self.prefix = prefix
        self.tags = list(tags) if tags else []
        self.depends = _normalise_depends(depends, f"Router({prefix!r})")
        self.routes: list[tuple[Callable[..., Any], str, list[str], dict[str, Any]]] = []

    def _add_route(
        self, handler: Callable[..., Any], path: str, methods: list[str], options: dict[str, Any]
    ) -> None:
        name = getattr(handler, "__name__", repr(handler))
        _inspect_handler(handler, f"{name}() at {'/'.join(methods)} {self.prefix}{path}")
        self.routes.append((handler, path, methods, options))


def _check_prefix(prefix: str) -> None:
    if not isinstance(prefix, str):
        raise TypeError(f"a router prefix must be a str, got {prefix!r}")
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(
            f"a router prefix must start with '/' and not end with one, got {prefix!r}"
        )


def join_path(prefix: str, path: str) -> str:
    """``/users`` + ``/{id}`` -> ``/users/{id}``; ``/users`` + ``/`` -> ``/users``."""
    _check_prefix(prefix)
    if not prefix:
        return path
    return prefix if path == "/" else prefix + path
