"""TrustedHostMiddleware: refuse requests whose Host header names a host the app does not serve."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import reject

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: A Host header: a name or IPv4 (letters, digits, '.', '-', '_') or a bracketed IPv6, then
#: an optional port. Anything else (a '/', '@', spaces) is refused before any comparison.
_HOST_PORT = re.compile(r"(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::\d+)?")


class TrustedHostMiddleware:
    """Answer 400 ``{"detail": "Invalid host header"}`` unless the request's host is allowed.

    A forged ``Host`` header poisons every absolute URL the app builds (password-reset
    links, redirects, cache keys); Django's ``ALLOWED_HOSTS`` and Starlette's
    ``TrustedHostMiddleware`` refuse it up front, and so does this. The host is taken
    from ``HTTP_HOST`` (else ``SERVER_NAME``), without its port, compared case-insensitively.
    Behind a proxy, add ``ProxyFix`` *after* this middleware (outermost), so that the
    forwarded host is the one checked.

    Only ``start_response`` is involved: an allowed request gets the app's iterable, and
    so its ``close()``, untouched.

    :param allowed_hosts: exact names (``"example.com"``, ``"127.0.0.1"``, ``"[::1]"``),
        ``"*.example.com"`` for any subdomain (not ``example.com`` itself), ``"*"`` for any
        host, or compiled regexes matched against the whole host.
    :raises ValueError: no hosts, or a wildcard anywhere but a leading ``*.`` label.
    """

    def __init__(
        self, app: WSGIApplication, allowed_hosts: Iterable[str | re.Pattern[str]] = ()
    ) -> None:
        self.app = app
        if isinstance(allowed_hosts, str | re.Pattern):
            raise TypeError(
                f"allowed_hosts={allowed_hosts!r} is a single value; pass a list,"
                f" e.g. allowed_hosts=[{allowed_hosts!r}]"
            )
        exact: set[str] = set()
        suffixes: list[str] = []
        patterns: list[re.Pattern[str]] = []
        self.allow_any = False
        for host in allowed_hosts:
            if isinstance(host, re.Pattern):
                patterns.append(host)
            elif not isinstance(host, str):
                raise TypeError(f"allowed_hosts holds {host!r}; use strings or compiled regexes")
            elif host == "*":
                self.allow_any = True
            elif host.startswith("*.") and "*" not in host[2:]:
                suffixes.append(host[1:].lower())
            elif "*" in host or (":" in host and not host.startswith("[")):
                raise ValueError(
                    f"allowed_hosts entry {host!r} is not a host name: use an exact name"
                    " without port ('example.com'), '*.example.com' for its subdomains,"
                    " '*' for any host, or a compiled regex"
                )
            else:
                exact.add(host.lower().rstrip("."))
        if not (self.allow_any or exact or suffixes or patterns):
            raise ValueError(
                "add_trusted_host() got no allowed_hosts, so every request would be refused;"
                " pass allowed_hosts=['example.com', '*.example.com']"
            )
        self.exact = frozenset(exact)
        self.suffixes = tuple(suffixes)
        self.patterns = tuple(patterns)

    def is_allowed_host(self, host: str) -> bool:
        """Whether ``host`` (a ``Host`` header value, with or without port) is allowed."""
        if self.allow_any:
            return True
        match = _HOST_PORT.fullmatch(host)
        if match is None:
            return False
        name = match["host"].lower().rstrip(".")
        if not name:
            return False
        if name in self.exact:
            return True
        if any(name.endswith(suffix) and len(name) > len(suffix) for suffix in self.suffixes):
            return True
        return any(pattern.fullmatch(name) for pattern in self.patterns)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if not self.is_allowed_host(host):
            return reject(start_response, 400, "Invalid host header")
        return self.app(environ, start_response)
