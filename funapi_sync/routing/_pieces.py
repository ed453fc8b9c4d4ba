"""Match converters side by side (``/<a>-<b>.json``) as werkzeug's regex does, in linear time.

Internal. werkzeug compiles a segment such as ``<a>-<b>-<c>.json`` to one regex whose
backtracking on a miss is a power of the segment's length (the number of its converters).
``Pieces`` finds the same first match: a depth-first search over (piece, position) states
in the regex's own order, where each converter's candidate ends are an interval tried
longest first (greedy) or shortest first (``path``, lazy), or a short list (``any``, a
fixed-width regex). Whether the rest matches from a state does not depend on how it was
reached (no backreferences), so a failed state is never searched twice, and an end that
failed once for a converter is skipped (a union-find of dead ends) from every other start:
each (piece, position) is tried once, so a miss costs pieces x positions.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from werkzeug.routing import BaseConverter, PathConverter, UUIDConverter

_LITERAL, _CHARS, _DIGITS, _FLOAT, _PATH, _CHOICES, _FIXED = range(7)
#: werkzeug's ``[^/]+`` (BaseConverter) and ``[^/]{m,}``, ``[^/]{m,M}``, ``[^/]{n}`` (string).
_CHARS_REGEX = re.compile(r"\[\^/\](?:(\+)|(\*)|\{(\d+)\}|\{(\d+),(\d*)\})")
_RUNS = re.compile(r"\d+")
_RUN = re.compile(r"\d*")
#: Up to this length a run of digits is read from each start (bounded work); a longer text
#: has its runs found once, so starts inside one long run do not each read it again.
_SHORT = 64
#: A piece: its kind, then literal text, a length range, a sign, choices or a regex.
_Piece = tuple[int, str, int, int, bool, "tuple[str, ...]", "re.Pattern[str] | None"]


def piece(converter: BaseConverter) -> _Piece | None:
    """The piece matching like ``converter.regex`` in werkzeug's rule regex, or None."""
    regex = converter.regex
    if regex == PathConverter.regex:
        return (_PATH, "", 1, 0, False, (), None)
    found = _CHARS_REGEX.fullmatch(regex)
    if found is not None:
        plus, star, exact, low, high = found.groups()
        if plus or star:
            return (_CHARS, "", 0 if star else 1, -1, False, (), None)
        if exact is not None:
            return (_CHARS, "", int(exact), int(exact), False, (), None)
        return (_CHARS, "", int(low), int(high) if high else -1, False, (), None)
    for kind, plain in ((_DIGITS, r"\d+"), (_FLOAT, r"\d+\.\d+")):
        if regex in (plain, "-?" + plain):
            return (kind, "", 0, 0, regex != plain, (), None)
    choices = _choices(regex)
    if choices is not None:
        return (_CHOICES, "", 0, 0, False, choices, None)
    if regex == UUIDConverter.regex:  # fixed width: at most one end from each start
        return (_FIXED, "", 0, 0, False, (), re.compile(regex))
    return None


def literal(text: str) -> _Piece:
    return (_LITERAL, text, 0, 0, False, (), None)


def _choices(regex: str) -> tuple[str, ...] | None:
    # AnyConverter's '(?:a|b)', its items escaped: read back, kept only if it re-escapes alike.
    if not (regex.startswith("(?:") and regex.endswith(")")):
        return None
    items: list[str] = []
    current: list[str] = []
    body, at = regex[3:-1], 0
    while at < len(body):
        char = body[at]
        if char == "\\" and at + 1 < len(body):
            current.append(body[at + 1])
            at += 2
            continue
        if char == "|":
            items.append("".join(current))
            current = []
        else:
            current.append(char)
        at += 1
    items.append("".join(current))
    if f"(?:{'|'.join(re.escape(item) for item in items)})" != regex:
        return None
    return tuple(items)


class Pieces:
    """A run of literals and converters matched against a whole string (its ``\\Z``).

    ``suffixed`` is werkzeug's ``(?<!/)(/?)\\Z`` ending of a rule's last ``path`` part.
    """

    __slots__ = ("pieces", "suffixed")

    def __init__(self, pieces: list[_Piece], suffixed: bool = False) -> None:
        merged: list[_Piece] = []
        for item in pieces:
            if item[0] == _LITERAL and merged and merged[-1][0] == _LITERAL:
                merged[-1] = literal(merged[-1][1] + item[1])
            elif item[0] != _LITERAL or item[1]:
                merged.append(item)
        self.pieces = merged
        self.suffixed = suffixed

    def match(self, text: str) -> tuple[list[str], bool] | None:
        """The converters' values, and whether a trailing '/' was left to the suffix."""
        search = _Search(self, text)
        if not search.solve(0, 0):
            return None
        search.values.reverse()
        return search.values, search.slash


class _Search:
    __slots__ = ("dead", "failed", "pieces", "runs", "slash", "suffixed", "text", "values")

    def __init__(self, pieces: Pieces, text: str) -> None:
        self.pieces = pieces.pieces
        self.suffixed = pieces.suffixed
        self.text = text
        self.failed: set[tuple[int, int]] = set()
        self.dead: dict[int, dict[int, int]] = {}  # per converter: dead end -> next to try
        self.runs: tuple[list[int], list[int]] | None = None  # digit runs: starts, ends
        self.values: list[str] = []  # filled backwards as the successful search unwinds
        self.slash = False

    def solve(self, index: int, at: int) -> bool:
        """Whether the pieces from ``index`` on match ``text[at:]`` to its end."""
        if index == len(self.pieces):
            return self._end(at)
        if (index, at) in self.failed:
            return False
        kind, text = self.pieces[index][:2]
        if kind == _LITERAL:
            found = self.text.startswith(text, at) and self.solve(index + 1, at + len(text))
        elif kind in (_CHOICES, _FIXED):
            found = self._listed(index, at)
        else:
            found = self._interval(index, at)
        if not found:
            self.failed.add((index, at))
        return found

    def _end(self, at: int) -> bool:
        text = self.text
        if not self.suffixed:
            return at == len(text)
        if at and text[at - 1] == "/":
            return False
        self.slash = at == len(text) - 1 and text[at] == "/"
        return self.slash or at == len(text)

    def _listed(self, index: int, at: int) -> bool:
        _kind, _t, _l, _h, _s, choices, regex = self.pieces[index]
        if regex is not None:
            found = regex.match(self.text, at)
            ends = [] if found is None else [found.end()]
        else:
            ends = [at + len(choice) for choice in choices if self.text.startswith(choice, at)]
        for end in ends:
            if self.solve(index + 1, end):
                self.values.append(self.text[at:end])
                return True
        return False

    def _interval(self, index: int, at: int) -> bool:
        bounds = self._bounds(index, at)
        if bounds is None:
            return False
        low, high = bounds
        lazy = self.pieces[index][0] == _PATH
        dead = self.dead.setdefault(index, {})
        step = 1 if lazy else -1
        end = _alive(dead, low if lazy else high)
        while low <= end <= high:
            # PERF: only an end where the next literal follows can match; the ends skipped
            # to reach it fail from every start, so they are dead ends too.
            found = self._next_literal(index, end, low, high, lazy)
            if found != end:
                dead[end] = found
                end = _alive(dead, found)
                continue
            if self.solve(index + 1, end):
                self.values.append(self.text[at:end])
                return True
            dead[end] = end + step
            end = _alive(dead, end + step)
        return False

    def _next_literal(self, index: int, end: int, low: int, high: int, lazy: bool) -> int:
        """The first end from ``end`` on where the literal after the converter begins."""
        pieces = self.pieces
        if index + 1 == len(pieces) or pieces[index + 1][0] != _LITERAL:
            return end
        text = pieces[index + 1][1]
        if lazy:
            found = self.text.find(text, end, high + len(text))
            return high + 1 if found < 0 else found
        found = self.text.rfind(text, low, end + len(text))
        return low - 1 if found < 0 else found

    def _bounds(self, index: int, at: int) -> tuple[int, int] | None:
        """The ends a converter may take from ``at``: an interval, or None."""
        kind, _t, low, high, signed, _c, _r = self.pieces[index]
        text = self.text
        if kind == _PATH:  # '[^/].*?': not '/' first, then no '\n'
            if at >= len(text) or text[at] == "/":
                return None
            newline = text.find("\n", at + 1)
            return at + 1, len(text) if newline < 0 else newline
        if kind == _CHARS:
            slash = text.find("/", at)
            stop = len(text) if slash < 0 else slash
            return at + low, stop if high < 0 else min(stop, at + high)
        start = at + 1 if signed and text.startswith("-", at) else at
        stop = self._run(start)
        if kind == _DIGITS:
            return start + 1, stop
        # '\d+\.\d+': the first run is whole (a shorter one is followed by a digit).
        if stop == start or not text.startswith(".", stop):
            return None
        return stop + 2, self._run(stop + 1)

    def _run(self, at: int) -> int:
        """The end of the run of ``\\d`` characters from ``at`` (``at`` when there is none)."""
        if len(self.text) <= _SHORT:
            run = _RUN.match(self.text, at)
            return run.end() if run is not None else at
        runs = self.runs
        if runs is None:
            found = list(_RUNS.finditer(self.text))
            runs = self.runs = ([m.start() for m in found], [m.end() for m in found])
        which = bisect_right(runs[0], at) - 1
        if which >= 0 and runs[1][which] > at:
            return runs[1][which]
        return at


def _alive(dead: dict[int, int], end: int) -> int:
    """The first end from ``end`` on (in the piece's direction) not known to fail."""
    root = end
    while root in dead:
        root = dead[root]
    while end in dead and dead[end] != root:
        dead[end], end = root, dead[end]
    return root
