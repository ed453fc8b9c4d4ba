"""Route matchers behind the route table: a path against the compiled rules, never backtracking.

Internal. ``_SegmentTree`` is the fast path for rules made of whole-segment parts (one
compiled regex per method); ``StateMachine`` is werkzeug's own matcher rebuilt so that
every miss, 404 and 405 costs time linear in the path, ``path`` converters included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, PathConverter, Rule, ValidationError
from werkzeug.routing.rules import RulePart

from ._pieces import Pieces, literal, piece

if TYPE_CHECKING:
    from ..endpoint import Endpoint


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
    value its converter refuses, falls through to ``StateMachine`` (werkzeug's algorithm),
    which then gives the 404 or the 405 with its ``Allow`` list.
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
        if any(len({e.rule.endswith("/") for e, _c in node.rules}) > 1 for node in nodes):
            # NOTE: werkzeug tries '/p/<int:x>' before '/p/<int(max=5):x>/' for '/p/3' and
            # the other way round for '/p/3/'; the tree, which drops trailing slashes, would
            # take registration order, so such a table is left to the state machine.
            self.usable = False
            return
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


# -- werkzeug's state machine, with linear-time final parts ---------------------------------
#
# NOTE: werkzeug compiles the rest of a rule from its first non part-isolating converter
# (``path``) on into one regex, whose backtracking grows with the path's length to the power
# of the rule's ``path`` converters on a miss. ``StateMachine`` is werkzeug's own matcher
# (``werkzeug.routing.matcher.StateMachineMatcher``) rebuilt from the same ``Rule._parts``:
# the same states, merged and ordered by the same parts and weights, the same trailing-slash
# branches and the same methods seen for a 405. Only a final part is matched differently:
# segment by segment (``_Tail``), trying the alternatives in the regex's own order and
# remembering each failed (element, segment) state, so it finds the regex's first match.

#: werkzeug's ``path`` converter regex: a first character that is not '/', then any
#: characters but '\n' (``.`` without DOTALL), as few as let the rest of the rule match.
_PATH_REGEX = PathConverter.regex
#: The backtracking steps (about length ** converters) werkzeug's regex may take on a miss
#: before ``Pieces`` is used instead: a short segment costs the regex little.
_REGEX_BUDGET = 1024
_STATIC, _SEGMENT, _PATH = 0, 1, 2
#: One segment of a rule's tail: static text; a regex over one whole segment and its group
#: names; or a ``path`` value with the static text before and after it in its segments.
_Element = tuple[int, str, "re.Pattern[str] | Pieces | None", list[str], str]


class _Failed(Exception):
    """A final part whose converters could not be held by ``_Tail`` (see ``_elements``)."""


def _rule_segments(rule: Rule) -> list[list[tuple[bool, str]]]:
    """The rule's path as segments, each a list of (is a converter, text or name) tokens."""
    trace = rule._trace
    start = trace.index((False, "|")) + 1  # the domain's trace ends at the first '|'
    segments: list[list[tuple[bool, str]]] = [[]]
    for is_dynamic, data in trace[start:]:
        if not is_dynamic and data == "/":
            segments.append([])
        else:
            segments[-1].append((is_dynamic, data))
    return segments


def _element(rule: Rule, tokens: list[tuple[bool, str]]) -> _Element:
    names = [data for is_dynamic, data in tokens if is_dynamic]
    if not names:
        return (_STATIC, "".join(data for _d, data in tokens), None, [], "")
    converters = [rule._converters[name] for name in names]
    if all(c.part_isolating and "/" not in c.regex for c in converters):
        pieces = _in_segment(rule, tokens)
        if pieces is not None:
            return (_SEGMENT, "", pieces, [], "")
        pattern = "".join(
            f"(?P<_v{index}>{rule._converters[data].regex})" if is_dynamic else re.escape(data)
            for index, (is_dynamic, data) in enumerate(tokens)
        )
        groups = [f"_v{index}" for index, (is_dynamic, _d) in enumerate(tokens) if is_dynamic]
        return (_SEGMENT, "", re.compile(pattern), groups, "")
    if len(converters) == 1 and converters[0].regex == _PATH_REGEX:
        # NOTE: a path value between static text in its segments ('/<path:name>.json'); a
        # second converter beside it ('/<path:a>.<b>') makes the whole tail one ``Pieces``.
        at = next(index for index, (is_dynamic, _d) in enumerate(tokens) if is_dynamic)
        before = "".join(data for _d, data in tokens[:at])
        after = "".join(data for _d, data in tokens[at + 1 :])
        return (_PATH, before, None, [], after)
    raise _Failed


def _in_segment(rule: Rule, tokens: list[tuple[bool, str]]) -> Pieces | None:
    """Several converters in one segment as ``Pieces``; None for one, or for a converter
    whose regex ``piece`` does not know (werkzeug's regex is kept for those)."""
    if sum(1 for is_dynamic, _d in tokens if is_dynamic) < 2:
        return None  # NOTE: one greedy converter and static text: the regex is linear
    return _pieces(rule, [tokens])


def _pieces(
    rule: Rule, segments: list[list[tuple[bool, str]]], suffixed: bool = False
) -> Pieces | None:
    items = []
    for number, tokens in enumerate(segments):
        if number:
            items.append(literal("/"))
        for is_dynamic, data in tokens:
            item = piece(rule._converters[data]) if is_dynamic else literal(data)
            if item is None:
                return None
            items.append(item)
    return Pieces(items, suffixed)


class _Transition:
    """A dynamic part: a regex over one segment, or a final part over the rest of the path."""

    __slots__ = ("final", "groups", "pieces", "regex", "short", "suffixed", "tail")

    def __init__(self, part: RulePart, rule: Rule, first_segment: int) -> None:
        self.regex = re.compile(part.content)
        names = [name for name in self.regex.groupindex if name.startswith("__werkzeug_")]
        self.groups = sorted(names, key=lambda name: int(name[11:]))
        self.final = part.final
        self.suffixed = part.suffixed
        self.tail: _Tail | None = None
        self.pieces: Pieces | None = None
        # PERF: werkzeug's regex backtracks at most about length ** converters steps, so
        # up to this length it is kept (faster than ``Pieces`` on a short segment).
        converters = len(self.groups)
        self.short = int(_REGEX_BUDGET ** (1 / converters)) if converters else 0
        if not part.final:
            self.pieces = _in_segment(rule, _rule_segments(rule)[first_segment])
            return
        segments = _rule_segments(rule)[first_segment:]
        if part.suffixed:
            segments = segments[:-1]  # the trailing slash: the regex's '(?<!/)(/?)\Z'
        try:
            elements = [_element(rule, tokens) for tokens in segments]
        except _Failed:
            # A converter beside a ``path`` one in a segment: the tail as one ``Pieces``,
            # or werkzeug's regex for a converter ``piece`` does not know.
            self.pieces = _pieces(rule, segments, part.suffixed)
        else:
            self.tail = _Tail(elements, part.suffixed)

    def take(self, parts: list[str], index: int) -> tuple[list[str], int] | None:
        """The values this part captures at ``parts[index]`` and the index after it."""
        if not self.final:
            segment = parts[index]
            if self.pieces is not None and len(segment) > self.short:
                return self._pieces(self.pieces, segment, index + 1)
            # NOTE: werkzeug's regex over one segment: linear for one converter in it;
            # several ('/<a>-<b>.json') are ``Pieces`` but for a custom converter regex
            # that ``piece`` does not know, whose backtracking is werkzeug's.
            found = self.regex.match(segment)
            if found is None:
                return None
            return [found.group(name) for name in self.groups], index + 1
        if self.tail is not None:
            return _TailSearch(self.tail, parts, index).run()
        # NOTE: a tail with a custom converter regex that ``piece`` does not know beside a
        # ``path`` converter in one segment keeps werkzeug's regex, so its cost is
        # werkzeug's for that one rule (a power of the path's length); it is paid only
        # when the walk reaches this part, never for the rest of the table.
        target = "/".join(parts[index:])
        if self.pieces is not None and len(target) > self.short:
            return self._pieces(self.pieces, target, len(parts))
        found = self.regex.match(target)
        if found is None:
            return None
        end = len(parts)
        if self.suffixed and found.groups()[-1] == "/":
            end -= 1  # werkzeug's remaining [""]: the trailing slash is matched next
        return [found.group(name) for name in self.groups], end

    @staticmethod
    def _pieces(pieces: Pieces, target: str, end: int) -> tuple[list[str], int] | None:
        matched = pieces.match(target)
        if matched is None:
            return None
        values, slash = matched
        return values, end - slash  # werkzeug's remaining [""]: the slash is matched next


class _Tail:
    """A final part as segment elements, matched like its regex but in linear time."""

    __slots__ = ("elements", "suffixed")

    def __init__(self, elements: list[_Element], suffixed: bool) -> None:
        self.elements = elements
        self.suffixed = suffixed


class _TailSearch:
    """One match of a ``_Tail`` against ``parts[start:]``: a depth-first search over
    (element, segment) states in the regex's backtracking order.

    NOTE: without backreferences, whether the rest of the regex matches from a state does
    not depend on how the state was reached, so a state that failed once fails again and is
    never searched twice: the first success is the regex's first match. A ``path`` element
    tries its ends shortest first (a lazy ``.*?``), skipping ends already known to fail (a
    union-find of dead ends per element), so each end is tried once per element however
    many starts reach it. The recursion is one level per element: bounded by the rule.
    """

    __slots__ = ("dead", "failed", "newline", "parts", "start", "tail", "values")

    def __init__(self, tail: _Tail, parts: list[str], start: int) -> None:
        self.tail = tail
        self.parts = parts
        self.start = start
        self.failed: set[tuple[int, int]] = set()
        self.dead: dict[int, list[int]] = {}  # per path element: next end not known dead
        self.newline: list[int] | None = None  # first segment at or after i holding '\n'
        self.values: list[str] = []  # filled backwards as the successful search unwinds

    def run(self) -> tuple[list[str], int] | None:
        end = self._solve(0, self.start)
        if end is None:
            return None
        self.values.reverse()
        return self.values, end

    def _solve(self, element: int, index: int) -> int | None:
        """Match elements from ``element`` on at segment ``index``; the index after them."""
        elements = self.tail.elements
        if element == len(elements):
            return self._finish(index)
        if index >= len(self.parts) or (element, index) in self.failed:
            return None
        kind, before, regex, groups, after = elements[element]
        segment = self.parts[index]
        end: int | None = None
        if kind == _STATIC:
            if segment == before:
                end = self._solve(element + 1, index + 1)
        elif kind == _SEGMENT:
            assert regex is not None
            captured = _captured(regex, groups, segment)
            if captured is not None:
                end = self._solve(element + 1, index + 1)
                if end is not None:
                    self.values.extend(reversed(captured))
        else:
            end = self._path(element, index, before, after)
        if end is None:
            self.failed.add((element, index))
        return end

    def _finish(self, index: int) -> int | None:
        parts = self.parts
        if not self.tail.suffixed:
            return index if index == len(parts) else None  # the regex's '\Z'
        # '(?<!/)(/?)\Z': the last element does not end in '/', then at most a trailing '/'.
        if parts[index - 1] == "" and index - 1 != self.start:
            return None
        if index == len(parts) or (index == len(parts) - 1 and parts[index] == ""):
            return index
        return None

    def _path(self, element: int, index: int, before: str, after: str) -> int | None:
        """A ``path`` value from segment ``index``: its ends tried shortest first."""
        parts = self.parts
        first = parts[index]
        # The value starts after ``before``, with a character that is not '/'.
        if not first.startswith(before) or len(first) == len(before):
            return None
        head = first[len(before) :]
        value = head[: len(head) - len(after)]
        if len(head) > len(after) and head.endswith(after) and "\n" not in value[1:]:
            end = self._solve(element + 1, index + 1)
            if end is not None:
                self.values.append(value)
                return end
        if "\n" in head[1:]:
            return None  # every longer value holds this '\n'
        # The value may run up to (and end inside) the first later segment with a '\n'.
        last = min(self._newline(index + 1) + 1, len(parts))
        dead = self.dead.get(element)
        if dead is None:
            dead = self.dead[element] = list(range(len(parts) + 2))
        stop = _alive(dead, index + 2)
        while stop <= last:
            # ``stop`` ends the value in segment ``stop - 1``: i-independent checks first.
            tail_segment = parts[stop - 1]
            if (
                tail_segment.endswith(after)
                and "\n" not in tail_segment[: len(tail_segment) - len(after)]
            ):
                end = self._solve(element + 1, stop)
                if end is not None:
                    value = "/".join(parts[index:stop])
                    self.values.append(value[len(before) : len(value) - len(after)])
                    return end
            dead[stop] = stop + 1
            stop = _alive(dead, stop + 1)
        return None

    def _newline(self, index: int) -> int:
        newline = self.newline
        if newline is None:
            parts = self.parts
            newline = self.newline = [len(parts)] * (len(parts) + 1)
            for at in range(len(parts) - 1, -1, -1):
                newline[at] = at if "\n" in parts[at] else newline[at + 1]
        return newline[index] if index < len(newline) else len(self.parts)


def _captured(regex: re.Pattern[str] | Pieces, groups: list[str], segment: str) -> list[str] | None:
    if isinstance(regex, Pieces):
        matched = regex.match(segment)
        return None if matched is None else matched[0]
    found = regex.fullmatch(segment)
    return None if found is None else [found.group(name) for name in groups]


def _alive(dead: list[int], index: int) -> int:
    """The first end at or after ``index`` not known to fail (with path compression)."""
    root = index
    while dead[root] != root:
        root = dead[root]
    while dead[index] != root:
        dead[index], index = root, dead[index]
    return root


class _State:
    __slots__ = ("dynamic", "rules", "static")

    def __init__(self) -> None:
        self.static: dict[str, _State] = {}
        self.dynamic: list[tuple[RulePart, _Transition, _State]] = []
        self.rules: list[Rule] = []


class StateMachine:
    """werkzeug's matcher for every rule of the table, in time linear in the path's length.

    ``match`` has ``MapAdapter.match``'s answers for a ``Map`` with strict_slashes=False
    and merge_slashes=False: the endpoint and converted values, ``NotFound``, or werkzeug's
    (unconfirmed) ``MethodNotAllowed``. The rules must be bound to such a ``Map``.
    """

    def __init__(self, rules: list[Rule]) -> None:
        self.root = _State()
        for rule in rules:
            self._add(rule)
        states = [self.root]
        for state in states:
            # NOTE: werkzeug sorts once, after every rule is added; the sort is stable, so
            # equal weights keep the order the rules were added in.
            state.dynamic.sort(key=lambda entry: entry[0].weight)
            states.extend(state.static.values())
            states.extend(child for _p, _t, child in state.dynamic)

    def _add(self, rule: Rule) -> None:
        state = self.root
        # The first part is the (empty) domain, which every rule of the table shares.
        for index, part in enumerate(rule._parts[1:]):
            if part.static:
                state = state.static.setdefault(part.content, _State())
                continue
            for other, _transition, child in state.dynamic:
                if other == part:
                    state = child
                    break
            else:
                child = _State()
                state.dynamic.append((part, _Transition(part, rule, index), child))
                state = child
        state.rules.append(rule)

    def match(self, path: str, method: str) -> tuple[Endpoint, dict[str, Any]]:
        """Return the endpoint and converted path values, or raise NotFound/MethodNotAllowed."""
        # As MapAdapter.match: leading slashes are one.
        parts = f"/{path.lstrip('/')}".split("/") if path else [""]
        seen: set[str] = set()
        found = _walk(self.root, parts, 0, method, [], seen)
        if found is not None:
            values = _converted(*found)
            if values is not None:
                return found[0].endpoint, values
        if seen:
            raise MethodNotAllowed(valid_methods=list(seen))
        raise NotFound()


def _converted(rule: Rule, raw: list[str]) -> dict[str, Any] | None:
    # NOTE: as werkzeug: values are converted once a rule is chosen, and a value its
    # converter refuses is no match at all; no other rule is tried.
    values: dict[str, Any] = {}
    for (name, converter), value in zip(rule._converters.items(), raw, strict=False):
        try:
            values[name] = converter.to_python(value)
        except ValidationError:
            return None
    return values


def _walk(
    state: _State, parts: list[str], index: int, method: str, values: list[str], seen: set[str]
) -> tuple[Rule, list[str]] | None:
    """werkzeug's ``_match`` over ``parts[index:]``, collecting the methods of near misses.

    The recursion is one level per non-final part of a rule, so bounded by the rules.
    """
    if index == len(parts):
        for rule in state.rules:
            if rule.methods is not None and method not in rule.methods:
                seen.update(rule.methods)
            else:
                return rule, values
        # strict_slashes=False: a rule with a trailing slash matches without it.
        slashed = state.static.get("")
        if slashed is not None:
            for rule in slashed.rules:
                if rule.methods is None or method in rule.methods:
                    return rule, values
        return None
    part = parts[index]
    child = state.static.get(part)
    if child is not None:
        found = _walk(child, parts, index + 1, method, values, seen)
        if found is not None:
            return found
    for _part, transition, child in state.dynamic:
        taken = transition.take(parts, index)
        if taken is not None:
            found = _walk(child, parts, taken[1], method, values + taken[0], seen)
            if found is not None:
                return found
    if index == len(parts) - 1 and part == "":
        for rule in state.rules:
            if rule.strict_slashes:
                continue
            if rule.methods is not None and method not in rule.methods:
                seen.update(rule.methods)
            else:
                return rule, values
    return None
