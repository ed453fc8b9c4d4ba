"""The route table: one endpoint per method+path, matched in time linear in the path."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import FloatConverter, Map, MapAdapter, Rule, ValidationError

from ._segment_tree import StateMachine, _SegmentTree
from .checks import rule_shape

if TYPE_CHECKING:
    from ..endpoint import Endpoint


class _FiniteFloatConverter(FloatConverter):
    """werkzeug's ``<float:...>``, refusing values that overflow to ``inf``.

    NOTE: a few hundred digits match werkzeug's regex and convert to ``inf``, which no
    JSON encoder can echo back; such a value is no match (a 404), like any other value
    a converter refuses.
    """

    def to_python(self, value: str) -> Any:
        number = super().to_python(value)
        if not math.isfinite(number):
            raise ValidationError()
        return number


#: The converters of every Map the app builds (werkzeug's defaults, ``float`` made finite).
CONVERTERS = {"float": _FiniteFloatConverter}


def _rule(endpoint: Endpoint) -> Rule:
    return Rule(endpoint.rule, endpoint=endpoint, methods=list(endpoint.methods))


def _static_key(rule: str) -> str:
    # NOTE: the Map uses strict_slashes=False, so '/items' and '/items/' are one route.
    return rule.rstrip("/") or "/"


class RouteTable:
    """Map (method, path) to an endpoint; static segments win over parameters.

    Static rules are looked up in a dict first (one hash per request). Rules with
    converters go through a segment tree that follows werkzeug's precedence (static
    segments first, then converters by weight) when every rule is made of whole-segment
    parts, and through ``StateMachine`` (werkzeug's own matcher, rebuilt to take time
    linear in the path's length) otherwise and for every miss, so 404 and 405 (with the
    allowed methods) are always werkzeug's answers. Registration order never decides
    between ``/users/me`` and ``/users/<id>``.
    """

    def __init__(self) -> None:
        # NOTE: one attribute, read and replaced whole: a thread matching while a route
        # is added keeps the snapshot it read, never a Map that is being changed.
        self._compiled: tuple[MapAdapter, _SegmentTree, StateMachine] | None = None
        self._ordered: list[Endpoint] = []  # every route, the defaults included
        self._static: dict[str, dict[str, Endpoint]] = {}
        self._seen: dict[tuple[str, str], Endpoint] = {}
        self._shapes: dict[tuple[str, str], Endpoint] = {}
        #: The app's own routes, in registration order.
        self.endpoints: list[Endpoint] = []
        #: Built-in routes (the docs) that a route of the app on their method+path replaces.
        self.defaults: list[Endpoint] = []

    def add_replaceable(self, endpoint: Endpoint) -> bool:
        """Add a default route that a user route on its method+path replaces.

        Returns False (and adds nothing) when a route answers there already.
        """
        key = _static_key(endpoint.rule)
        if any((key, method) in self._seen for method in endpoint.methods):
            return False
        self.add_all([endpoint])
        self.endpoints.remove(endpoint)
        self.defaults.append(endpoint)
        return True

    def add_all(self, endpoints: list[Endpoint]) -> list[Endpoint]:
        """Add every endpoint, or none when one is refused (``include_router``).

        Returns the replaceable endpoints that the new ones replaced.
        """
        seen = dict(self._seen)
        shapes = dict(self._shapes)
        replaced: list[Endpoint] = []
        static: set[Endpoint] = set()
        for endpoint in endpoints:
            _check_shape(endpoint, shapes)
            # NOTE: trailing slashes are optional, so '/items' and '/items/' are one path.
            seen_key = _static_key(endpoint.rule)
            for method in endpoint.methods:
                other = seen.get((seen_key, method))
                if other is not None and other in self.defaults:
                    if other not in replaced:
                        replaced.append(other)
                elif other is not None:
                    raise ValueError(
                        f"{endpoint.name}() at {method} {endpoint.path} duplicates"
                        f" {other.name}() already registered for {method} {other.path};"
                        " each method+path may have one handler"
                    )
                seen[(seen_key, method)] = endpoint
            probe = _rule(endpoint)
            try:
                Map([probe], converters=CONVERTERS)  # compiles the rule: a bad path fails here
            except (ValueError, LookupError) as exc:
                raise ValueError(
                    f"{endpoint.name}() has an invalid path {endpoint.path!r}: {exc}"
                ) from None
            if not probe.arguments:
                static.add(endpoint)
        for old in replaced:
            self._remove(old)
        for endpoint in endpoints:
            if endpoint in static:
                key = _static_key(endpoint.rule)
                per_method = self._static.setdefault(key, {})
                if key != "/":
                    # PERF: the path with its one optional trailing slash is a key of its
                    # own, so a request's path is looked up as it is, with no stripping.
                    self._static[key + "/"] = per_method
                for method in endpoint.methods:
                    per_method[method] = endpoint
            self.endpoints.append(endpoint)
        self._ordered = [e for e in self._ordered if e not in replaced] + endpoints
        self._seen = seen
        self._shapes = shapes
        self._compiled = None
        return replaced

    def _remove(self, endpoint: Endpoint) -> None:
        self.defaults.remove(endpoint)
        for per_method in self._static.values():
            for method in [m for m, e in per_method.items() if e is endpoint]:
                del per_method[method]

    def freeze(self) -> tuple[MapAdapter, _SegmentTree]:
        """Build the werkzeug ``Map`` and the segment tree from the routes added so far.

        Built once (on the first match) and rebuilt only after a route was added; a built
        ``Map`` is never changed.
        """
        adapter, tree, _machine = self._build()
        return adapter, tree

    def _build(self) -> tuple[MapAdapter, _SegmentTree, StateMachine]:
        compiled = self._compiled
        if compiled is None:
            rules = [_rule(endpoint) for endpoint in self._ordered]
            # NOTE: no redirects: trailing slashes are optional and '//' is not merged, so
            # a JSON client is never sent a 308 to a URL it did not ask for.
            adapter = Map(
                rules, strict_slashes=False, merge_slashes=False, converters=CONVERTERS
            ).bind("localhost")
            # NOTE: the Map binds the rules (their parts and converters), which the state
            # machine is built from; it is kept for what it answers besides matching.
            machine = StateMachine(rules)
            compiled = self._compiled = (adapter, _SegmentTree(rules), machine)
        return compiled

    def match(self, path: str, method: str) -> tuple[Endpoint, dict[str, Any]]:
        """Return the endpoint and converted path values, or raise NotFound/MethodNotAllowed."""
        # NOTE: only one trailing slash is optional, as in werkzeug: '/items//' is not
        # '/items' (it is a 404 from the state machine).
        per_method = self._static.get(path)
        if per_method is not None:
            endpoint = per_method.get(method)
            if endpoint is None and method == "HEAD":
                endpoint = per_method.get("GET")
            if endpoint is not None:
                return endpoint, {}
        _adapter, tree, machine = self._compiled or self._build()
        if tree.usable:
            hit = tree.find(path, method)
            if hit is not None:
                return hit
        # PERF: every other answer, the 404s and 405s too, is the state machine's: werkzeug's
        # own matcher, but linear in the path's length where werkzeug's regex for a rule
        # with several ``path`` converters backtracks at a power of it.
        try:
            return machine.match(path, method)
        except MethodNotAllowed as exc:
            raise _confirmed(machine, path, exc) from None


def _check_shape(endpoint: Endpoint, shapes: dict[tuple[str, str], Endpoint]) -> None:
    """Refuse a rule that differs from one already added only in its parameter names."""
    shape = rule_shape(endpoint.rule)
    for method in endpoint.methods:
        other = shapes.get((shape, method))
        if other is not None and other.rule.rstrip("/") != endpoint.rule.rstrip("/"):
            raise ValueError(
                f"{endpoint.name}() at {method} {endpoint.path} matches the same URLs as"
                f" {other.name}() already registered for {method} {other.path} (only the"
                " parameter names differ), so it could never be reached; give both one"
                " path, or tell them apart with a converter such as <int:...> or a static"
                " segment"
            )
        shapes[(shape, method)] = endpoint


class _Matcher(Protocol):
    def match(self, path: str, method: str, /) -> object: ...


def _confirmed(adapter: _Matcher, path: str, exc: MethodNotAllowed) -> Exception:
    """Keep a 405 only for the methods whose rule really matches ``path``, else a 404.

    NOTE: werkzeug's matcher counts a rule's methods as allowed before its converters
    have accepted the value, so ``DELETE /p/11`` beside ``GET /p/<int(max=10):i>`` was a
    405 naming GET, though ``GET /p/11`` is a 404.
    """
    allowed = []
    for method in exc.valid_methods or ():
        try:
            adapter.match(path, method)
        except (NotFound, MethodNotAllowed):
            continue
        allowed.append(method)
    if not allowed:
        return NotFound()
    return MethodNotAllowed(valid_methods=allowed)
