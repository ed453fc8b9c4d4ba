"""Router: routes declared apart from the app and mounted with ``include_router``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

from ..route import inspect_handler, route_label
from .options import RouteOptions, join_tags, normalise_depends

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


class Mount(NamedTuple):
    """What an ``include_router`` call adds around a router: prefix, tags, guards, responses."""

    prefix: str
    tags: list[str]
    depends: dict[str, Any]
    responses: dict[int, Any]

    @classmethod
    def of(cls, prefix: str, tags: Any, depends: Any, responses: Any, where: str) -> Mount:
        """Check the keyword arguments of a ``Router()`` or ``include_router()`` call."""
        _check_prefix(prefix)
        if isinstance(tags, str):
            raise TypeError(f"{where}: tags= must be a list such as ['users'], not a str")
        if responses is not None and not isinstance(responses, Mapping):
            raise TypeError(
                f"{where}: responses= must be a dict such as {{404: 'Not found'}},"
                f" got {responses!r}"
            )
        return cls(
            prefix, list(tags or ()), normalise_depends(depends, where), dict(responses or {})
        )

    def inside(self, outer: Mount) -> Mount:
        """This mount inside ``outer``: prefixes join, outer tags and guards come first,
        and this mount's entries win over the outer ones for the same key."""
        return Mount(
            join_path(outer.prefix, self.prefix),
            join_tags(outer.tags, self.tags),
            {**outer.depends, **self.depends},
            {**outer.responses, **self.responses},
        )


#: No prefix, tags, guards or responses.
TOP = Mount("", [], {}, {})


class Included(NamedTuple):
    """A router nested in another, with what its ``include_router`` call added."""

    router: Router
    mount: Mount


class Router(RouteDecorators):
    """A group of routes with a common prefix, tags, guard dependencies and responses.

    Routes are checked against the app (registered names, duplicates) when the router is
    included in the app; what can be checked alone (the handler's signature, the
    options) is checked at once. Routers nest: ``router.include_router(sub)``.

    :param prefix: prepended to every route path, e.g. ``"/users"``.
    :param tags: OpenAPI tags added to every route, before the route's own.
    :param depends: dependencies resolved for every route, even when the handler does
        not take them (an auth guard): a list of registered names, ``Depends(fn)`` or
        callables, or a dict of keyword to any of them.
    :param responses: other statuses for OpenAPI, merged into every route's
        (a route's own entry for a status wins).
    """

    def __init__(
        self,
        prefix: str = "",
        *,
        tags: Iterable[str] | None = None,
        depends: Any = None,
        responses: Mapping[int, Any] | None = None,
    ) -> None:
        own = Mount.of(prefix, tags, depends, responses, f"Router({prefix!r})")
        self.prefix = prefix
        self.tags = own.tags
        self.depends = own.depends
        self.responses = own.responses
        self._own = own
        #: The routes and included routers, in the order they were added.
        self.entries: list[Declared | Included] = []
        #: ``hook(app)`` for each, called when an app includes this router (directly or
        #: nested), before its routes are added: what a router needs of the app that
        #: serves it, such as ``app.background`` (Flask's ``Blueprint.record``).
        self.on_include: list[Callable[[Any], None]] = []

    @property
    def routes(self) -> list[Declared]:
        """The routes declared on this router itself (not those of included routers)."""
        return [entry for entry in self.entries if not isinstance(entry, Included)]

    def _add_route(
        self, handler: Callable[..., Any], path: str, methods: list[str], options: RouteOptions
    ) -> None:
        inspect_handler(handler, route_label(handler, methods, self.prefix + path))
        self.entries.append((handler, path, methods, options))

    def include_router(
        self,
        router: Router,
        prefix: str = "",
        *,
        tags: Iterable[str] | None = None,
        depends: Any = None,
        responses: Mapping[int, Any] | None = None,
    ) -> None:
        """Nest ``router`` in this one, under ``prefix`` + ``router.prefix``.

        Its routes are mounted when this router is included in an app (so a route added
        to ``router`` later is mounted too); dependency names are checked then.
        """
        where = f"Router({self.prefix!r}).include_router({prefix!r})"
        if not isinstance(router, Router):
            raise TypeError(f"{where} takes a Router, got {router!r}")
        if router is self or self in router.nested():
            raise ValueError(
                f"{where}: a router cannot include itself, directly or through the routers"
                " it includes"
            )
        self.entries.append(Included(router, Mount.of(prefix, tags, depends, responses, where)))

    def nested(self) -> list[Router]:
        """Every router included in this one, at any depth."""
        found: list[Router] = []
        for entry in self.entries:
            if isinstance(entry, Included):
                found.append(entry.router)
                found.extend(entry.router.nested())
        return found

    def mounted(self, outer: Mount = TOP) -> list[Declared]:
        """The routes as they are mounted inside ``outer``: full paths, merged options.

        ``outer`` is what the including calls add, outermost first (the app's guards, the
        ``include_router`` arguments, the routers this one is nested in).
        """
        mount = self._own.inside(outer)
        result: list[Declared] = []
        for entry in self.entries:
            if isinstance(entry, Included):
                result.extend(entry.router.mounted(entry.mount.inside(mount)))
                continue
            handler, path, methods, options = entry
            full_path = join_path(mount.prefix, path)
            where = route_label(handler, methods, full_path)
            merged = options.mounted(mount.tags, mount.depends, mount.responses, where)
            result.append((handler, full_path, methods, merged))
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
