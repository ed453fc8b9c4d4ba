"""The route table: path syntax, duplicate checks and matching over a werkzeug ``Map``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, MapAdapter, Rule

if TYPE_CHECKING:
    from .endpoint import Endpoint

_BRACES = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_COLON = re.compile(r"(?<=/):([A-Za-z_][A-Za-z0-9_]*)")


def to_rule(path: str) -> str:
    """Turn ``/users/{id}`` and ``/users/:id`` into werkzeug's ``/users/<id>``."""
    if not isinstance(path, str):
        raise TypeError(f"route path must be a str, got {type(path).__name__}")
    if not path.startswith("/"):
        raise ValueError(f"route path must start with '/', got {path!r}")
    return _COLON.sub(r"<\1>", _BRACES.sub(r"<\1>", path))


def _static_key(rule: str) -> str:
    # NOTE: the Map uses strict_slashes=False, so '/items' and '/items/' are one route.
    return rule.rstrip("/") or "/"


class RouteTable:
    """Map (method, path) to an endpoint; static segments win over parameters.

    Static rules are looked up in a dict first (one hash per request); rules with
    converters go through werkzeug's matcher, which orders rules by specificity, so
    registration order never decides between ``/users/me`` and ``/users/<id>``.
    """

    def __init__(self) -> None:
        # NOTE: no redirects: trailing slashes are optional and '//' is not merged, so a
        # JSON client is never sent a 308 to a URL it did not ask for.
        self._map = Map(strict_slashes=False, merge_slashes=False)
        self._adapter: MapAdapter | None = None
        self._static: dict[str, dict[str, Endpoint]] = {}
        self._seen: dict[tuple[str, str], Endpoint] = {}
        self.endpoints: list[Endpoint] = []

    def add(self, endpoint: Endpoint) -> None:
        """Add ``endpoint`` under its rule and methods; reject a duplicate method+path."""
        rule_text = endpoint.rule
        # NOTE: trailing slashes are optional, so '/items' and '/items/' are one path.
        seen_key = _static_key(rule_text)
        for method in endpoint.methods:
            other = self._seen.get((seen_key, method))
            if other is not None:
                raise ValueError(
                    f"{endpoint.name}() at {method} {endpoint.path} duplicates"
                    f" {other.name}() already registered for {method} {other.path};"
                    " each method+path may have one handler"
                )
        rule = Rule(rule_text, endpoint=endpoint, methods=list(endpoint.methods))
        try:
            self._map.add(rule)
        except (ValueError, LookupError) as exc:
            raise ValueError(
                f"{endpoint.name}() has an invalid path {endpoint.path!r}: {exc}"
            ) from None
        for method in endpoint.methods:
            self._seen[(seen_key, method)] = endpoint
        if not rule.arguments:
            per_method = self._static.setdefault(_static_key(rule_text), {})
            for method in endpoint.methods:
                per_method[method] = endpoint
        self.endpoints.append(endpoint)
        self._adapter = None

    def match(self, path: str, method: str) -> tuple[Endpoint, dict[str, Any]]:
        """Return the endpoint and converted path values, or raise NotFound/MethodNotAllowed."""
        per_method = self._static.get(path.rstrip("/") or "/")
        if per_method is not None:
            endpoint = per_method.get(method)
            if endpoint is None and method == "HEAD":
                endpoint = per_method.get("GET")
            if endpoint is not None:
                return endpoint, {}
        adapter = self._adapter
        if adapter is None:
            adapter = self._adapter = self._map.bind("localhost")
        found, values = adapter.match(path, method)
        return found, values  # type: ignore[return-value]

    def allowed_methods(self, path: str) -> list[str]:
        """The methods some route accepts at ``path`` (empty when the path is unknown)."""
        try:
            self.match(path, "\x00")
        except MethodNotAllowed as exc:
            return sorted(exc.valid_methods or ())
        except NotFound:
            return []
        return []
