"""The segment tree: a fast matcher for rules made of whole-segment parts.

Split from ``routing`` so the route table's bookkeeping and the matchers read apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from werkzeug.routing import BaseConverter, Rule, ValidationError

if TYPE_CHECKING:
    from .endpoint import Endpoint


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
