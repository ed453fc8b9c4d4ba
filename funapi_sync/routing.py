"""The route table: path syntax, duplicate checks and matching over a werkzeug ``Map``."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, FloatConverter, Map, MapAdapter, Rule, ValidationError

from ._route_checks import rule_shape

if TYPE_CHECKING:
    from .endpoint import Endpoint


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
    parts, and through werkzeug's own matcher otherwise and for every miss, so 404 and
    405 (with the allowed methods) are always werkzeug's answers. Registration order never
    decides between ``/users/me`` and ``/users/<id>``.
    """

    def __init__(self) -> None:
        # NOTE: one attribute, read and replaced whole: a thread matching while a route
        # is added keeps the snapshot it read, never a Map that is being changed.
        self._compiled: tuple[MapAdapter, _SegmentTree] | None = None
        self._ordered: list[Endpoint] = []  # every route, the defaults included
        self._static: dict[str, dict[str, Endpoint]] = {}
        self._seen: dict[tuple[str, str], Endpoint] = {}
        self._shapes: dict[tuple[str, str], Endpoint] = {}
        #: The app's own routes, in registration order.
        self.endpoints: list[Endpoint] = []
        #: Built-in routes (the docs) that a route of the app on their method+path replaces.
        self.defaults: list[Endpoint] = []

    def add(self, endpoint: Endpoint) -> None:
        """Add ``endpoint`` under its rule and methods; reject a duplicate method+path."""
        self.add_all([endpoint])

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
                per_method = self._static.setdefault(_static_key(endpoint.rule), {})
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
        compiled = self._compiled
        if compiled is None:
            rules = [_rule(endpoint) for endpoint in self._ordered]
            # NOTE: no redirects: trailing slashes are optional and '//' is not merged, so
            # a JSON client is never sent a 308 to a URL it did not ask for.
            adapter = Map(
                rules, strict_slashes=False, merge_slashes=False, converters=CONVERTERS
            ).bind("localhost")
            compiled = self._compiled = (adapter, _SegmentTree(rules))
        return compiled

    def match(self, path: str, method: str) -> tuple[Endpoint, dict[str, Any]]:
        """Return the endpoint and converted path values, or raise NotFound/MethodNotAllowed."""
        per_method = self._static.get(path.rstrip("/") or "/")
        if per_method is not None:
            endpoint = per_method.get(method)
            if endpoint is None and method == "HEAD":
                endpoint = per_method.get("GET")
            if endpoint is not None:
                return endpoint, {}
        adapter, tree = self._compiled or self.freeze()
        if tree.usable:
            hit = tree.find(path, method)
            if hit is not None:
                return hit
        try:
            found, values = adapter.match(path, method)
        except MethodNotAllowed as exc:
            raise _confirmed(adapter, path, exc) from None
        return found, values  # type: ignore[return-value]


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


def _confirmed(adapter: MapAdapter, path: str, exc: MethodNotAllowed) -> Exception:
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


_WHOLE_PART = re.compile(r"^<(?:[A-Za-z_][A-Za-z0-9_]*(?:\(.*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>$")


class _Node:
    __slots__ = ("dynamic", "rules", "static")

    def __init__(self) -> None:
        self.static: dict[str, _Node] = {}
        # (weight, regex text, compiled regex, child), merged by regex like werkzeug's.
        self.dynamic: list[tuple[int, str, re.Pattern[str], _Node]] = []
        # Rules ending here, each with its converters in the order of its parts.
        self.rules: list[tuple[Endpoint, list[tuple[str, BaseConverter]]]] = []


#: A node with more static children than this keeps the walk: the regex tries its static
#: alternatives one by one, the walk looks one up (measured: the regex is faster up to
#: about 150 siblings at 0.9-1.3 µs against 2.0, and slower beyond).
_MAX_STATIC_ALTERNATIVES = 64

#: A path parameter of a compiled rule: its name, its regex group and its converter.
_Param = tuple[str, str, BaseConverter]
#: A method's rules as one regex, and each rule's endpoint and parameters by the name of
#: the empty group that ends the rule.
_Compiled = tuple[re.Pattern[str], dict[str, tuple["Endpoint", list[_Param]]]]


class _ConversionFailed(Exception):
    pass


class _SegmentTree:
    """Match rules whose every segment is static text or one whole converter.

    PERF: werkzeug's state-machine matcher costs ~6 µs for ``/users/<int:id>``; walking
    segments with one dict lookup or one compiled regex each costs ~1-2 µs. It mirrors
    werkzeug's algorithm (static transitions first, then converter regexes by weight,
    merged by regex; values converted once a rule is chosen) and is used only when *every*
    dynamic rule fits (no ``path`` converter, no ``<a>.<b>`` segments). Every miss, and a
    value its converter refuses, falls through to werkzeug, which then gives the 404 or
    the 405 with its ``Allow`` list.
    """

    def __init__(self, rules: list[Rule]) -> None:
        self.root = _Node()
        self.usable = True
        for rule in rules:
            if rule.arguments and not self._add(rule):
                self.usable = False
                return
        for node in self._nodes(self.root):
            node.dynamic.sort(key=lambda item: item[0])
        nodes = list(self._nodes(self.root))
        self._compilable = all(
            len(node.static) <= _MAX_STATIC_ALTERNATIVES
            and all(_plain_regex(item[1]) for item in node.dynamic)
            for node in nodes
        )
        # NOTE: compiled here, once, for the methods the rules allow (HEAD with GET); any
        # other method matches no rule, so a client's made-up methods compile nothing.
        self._patterns: dict[str, _Compiled] = {}
        if self._compilable:
            methods = {m for node in nodes for endpoint, _c in node.rules for m in endpoint.methods}
            if "GET" in methods:
                methods.add("HEAD")
            self._patterns = {method: self._compile(method) for method in methods}

    def _nodes(self, node: _Node) -> Iterator[_Node]:
        yield node
        for child in [*node.static.values(), *(item[3] for item in node.dynamic)]:
            yield from self._nodes(child)

    def _add(self, rule: Rule) -> bool:
        node = self.root
        converters: list[tuple[str, BaseConverter]] = []
        for segment in _segments(rule.rule):
            if "<" not in segment:
                node = node.static.setdefault(segment, _Node())
                continue
            match = _WHOLE_PART.match(segment)
            if match is None:
                return False
            name = match.group(1)
            converter = rule._converters[name]
            if not getattr(converter, "part_isolating", False):
                return False
            converters.append((name, converter))
            for _weight, regex, _compiled, child in node.dynamic:
                if regex == converter.regex:
                    node = child
                    break
            else:
                child = _Node()
                compiled = re.compile(converter.regex)
                node.dynamic.append((converter.weight, converter.regex, compiled, child))
                node = child
        node.rules.append((rule.endpoint, converters))
        return True

    def find(self, path: str, method: str) -> tuple[Endpoint, dict[str, Any]] | None:
        if self._compilable:
            return self._find_compiled(path, method)
        parts: list[str] = []
        try:
            return _find(self.root, _segments(path), 0, method, parts)
        except _ConversionFailed:
            return None

    def _find_compiled(self, path: str, method: str) -> tuple[Endpoint, dict[str, Any]] | None:
        # PERF: one C-level fullmatch instead of a Python walk (about 4 µs of a 130 µs
        # request under gunicorn for /users/<int:id>).
        compiled = self._patterns.get(method)
        if compiled is None:
            return None
        pattern, rules = compiled
        found = pattern.fullmatch(path)
        if found is None:
            return None
        endpoint, params = rules[found.lastgroup]  # type: ignore[index]
        values: dict[str, Any] = {}
        for name, group, converter in params:
            try:
                values[name] = converter.to_python(found.group(group))
            except ValidationError:
                return None
        return endpoint, values

    def _compile(self, method: str) -> _Compiled:
        """The tree, pruned to the rules that allow ``method``, as one regex.

        Each node is an alternation, tried in the walk's order: the rule ending there (an
        optional trailing slash, the end, and an empty group naming the rule), then each
        static child, then each parameter by weight. The regex engine's backtracking is
        the walk's, so its first full match is the walk's answer.
        """
        rules: dict[str, tuple[Endpoint, list[_Param]]] = {}
        groups: dict[int, str] = {}  # id of a dynamic edge's child node -> its group name

        def compile_node(node: _Node, path_groups: list[str]) -> str | None:
            alternatives = []
            for endpoint, converters in node.rules:
                methods = endpoint.methods
                if method in methods or (method == "HEAD" and "GET" in methods):
                    name = f"r{len(rules)}"
                    params = zip(converters, path_groups, strict=True)
                    rules[name] = (endpoint, [(n, group, c) for (n, c), group in params])
                    alternatives.append(rf"/?\Z(?P<{name}>)")
                    break  # as the walk does: the first rule here that allows the method
            for segment, child in node.static.items():
                inner = compile_node(child, path_groups)
                if inner is not None:
                    alternatives.append("/" + re.escape(segment) + inner)
            for _weight, regex, _compiled, child in node.dynamic:
                group = groups.setdefault(id(child), f"g{len(groups)}")
                inner = compile_node(child, [*path_groups, group])
                if inner is not None:
                    alternatives.append(f"/(?P<{group}>{regex}){inner}")
            if not alternatives:
                return None
            return f"(?:{'|'.join(alternatives)})"

        text = compile_node(self.root, [])
        return re.compile(text if text is not None else r"(?!)"), rules


def _segments(path: str) -> list[str]:
    # One leading slash, and one optional trailing slash (strict_slashes=False).
    inner = path[1:]
    if inner.endswith("/"):
        inner = inner[:-1]
    return inner.split("/") if inner else []


def _find(
    node: _Node, segments: list[str], index: int, method: str, parts: list[str]
) -> tuple[Endpoint, dict[str, Any]] | None:
    if index == len(segments):
        for endpoint, converters in node.rules:
            methods = endpoint.methods
            if method in methods or (method == "HEAD" and "GET" in methods):
                values: dict[str, Any] = {}
                for (name, converter), raw in zip(converters, parts, strict=True):
                    try:
                        values[name] = converter.to_python(raw)
                    except ValidationError:
                        raise _ConversionFailed from None
                return endpoint, values
        return None
    segment = segments[index]
    child = node.static.get(segment)
    if child is not None:
        found = _find(child, segments, index + 1, method, parts)
        if found is not None:
            return found
    for _weight, _regex, compiled, child in node.dynamic:
        if compiled.fullmatch(segment) is None:
            continue
        parts.append(segment)
        found = _find(child, segments, index + 1, method, parts)
        if found is not None:
            return found
        parts.pop()
    return None


def _plain_regex(regex: str) -> bool:
    # A converter regex that captures nothing and never matches an empty segment can be
    # spliced into one full-path regex with the same meaning as matching segment by segment.
    compiled = re.compile(regex)
    return compiled.groups == 0 and compiled.fullmatch("") is None
