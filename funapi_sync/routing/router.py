"""Router: routes declared apart from the app and mounted with ``include_router``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ..route import inspect_handler, route_label
from .options import RouteOptions, normalise_depends

F = TypeVar("F", bound=Callable[..., Any])

#: A route as declared: ``(handler, path, methods, options)``.
Declared = tuple[Callable[..., Any], str, list[str], RouteOptions]


class RouteDecorators:
    """``route()`` and its per-method shorthands, shared by ``App`` and ``Router``.

    Each takes the keyword arguments declared by :class:`~funapi_sync.routing.options.RouteOptions`.
    """

    def _add_route(
        self, handler: Callable[..., Any], path: str, methods: list[str], options: RouteOptions
    ) -> None:
        raise NotImplementedError

    def route(
        self, path: str, methods: Iterable[str] = ("GET",), **options: Any
    ) -> Callable[[F], F]:
        """Register the decorated function for ``methods`` on ``path``.

        Every check that can fail (signature, schemas, dependency names, duplicates) fails
        here, at decoration time, with a message that names the route and the fix.

        :param options: see :class:`~funapi_sync.routing.options.RouteOptions`.
        """
        if isinstance(methods, str):
            raise TypeError(f"route({path!r}) methods= must be a list such as ['GET'], not a str")
        declared = RouteOptions.from_options(options, f"route({path!r})")
        method_list = list(methods)

        def decorator(handler: F) -> F:
            self._add_route(handler, path, method_list, declared)
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
        self.depends = normalise_depends(depends, f"Router({prefix!r})")
        self.routes: list[Declared] = []

    def _add_route(
        self, handler: Callable[..., Any], path: str, methods: list[str], options: RouteOptions
    ) -> None:
        inspect_handler(handler, route_label(handler, methods, self.prefix + path))
        self.routes.append((handler, path, methods, options))

    def mounted(self, prefix: str = "") -> list[Declared]:
        """The routes as they are mounted under ``prefix``: full paths, merged options."""
        result: list[Declared] = []
        for handler, path, methods, options in self.routes:
            full_path = join_path(prefix, join_path(self.prefix, path))
            where = route_label(handler, methods, full_path)
            result.append(
                (handler, full_path, methods, options.mounted(self.tags, self.depends, where))
            )
        return result


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
