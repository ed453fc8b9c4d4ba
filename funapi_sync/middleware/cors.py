"""CORSMiddleware: answer CORS preflights and add the Access-Control-* headers to responses."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import add_vary, reject

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: Methods ``allow_methods="*"`` stands for.
ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
#: Request headers a browser may always send without asking (Fetch "CORS-safelisted").
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})

Origins = str | re.Pattern[str] | Iterable[str | re.Pattern[str]]


class CORSMiddleware:
    """Let browsers on the allowed origins call the wrapped app (the Fetch standard's CORS).

    A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is
    answered here with 204 and the ``Access-Control-Allow-*`` headers, or with 400
    ``{"detail": "Disallowed CORS origin"}`` (and/or ``method``, ``headers``) when the
    request is not allowed; the app does not see it. Every other request goes to the app,
    and an allowed ``Origin`` gets ``Access-Control-Allow-Origin`` on the response. The
    middleware owns the ``Access-Control-*`` response headers: the app's own are dropped.

    Only ``start_response`` is wrapped: the app's iterable, and so its ``close()`` (which
    runs the background tasks), is returned untouched.

    :param allow_origins: ``"*"`` or ``["*"]`` (Starlette's spelling) for any origin, a
        compiled regex (matched against the whole origin), or a list of exact origins
        (``"https://app.example.com"``) and compiled regexes.
    :param allow_methods: methods a preflight may ask for; ``"*"`` for all.
    :param allow_headers: request headers a preflight may ask for (the CORS-safelisted
        ones are always allowed); ``"*"`` allows whatever is asked.
    :param expose_headers: response headers the browser lets the page's script read.
    :param allow_credentials: allow cookies and ``Authorization``. Refused together with
        any origin: every site on the web could then act as the user.
    :param max_age: seconds a browser may cache a preflight answer.
    :raises ValueError: a setting that cannot work, with the fix in the message.
    """

    def __init__(
        self,
        app: WSGIApplication,
        allow_origins: Origins = (),
        allow_methods: str | Sequence[str] = ("GET",),
        allow_headers: str | Sequence[str] = (),
        expose_headers: Sequence[str] = (),
        allow_credentials: bool = False,
        max_age: int = 600,
    ) -> None:
        self.app = app
        self.allow_any_origin, self.origins, self.origin_patterns = _split_origins(allow_origins)
        if not (self.allow_any_origin or self.origins or self.origin_patterns):
            raise ValueError(
                "add_cors() allows no origin; pass allow_origins=['https://app.example.com'],"
                " a compiled regex, or '*'"
            )
        if self.allow_any_origin and allow_credentials:
            raise ValueError(
                f"add_cors(allow_origins={allow_origins!r}, allow_credentials=True) would let"
                " every website send requests with the user's cookies; list the trusted"
                " origins, or pass re.compile(r'https://.*\\.example\\.com') to match a"
                " family of them"
            )
        if isinstance(expose_headers, str) and expose_headers != "*":
            raise TypeError(
                f"expose_headers must be a list of header names, got {expose_headers!r}"
            )
        if expose_headers == "*" and allow_credentials:
            raise ValueError(
                "expose_headers='*' means no header at all to a browser when credentials are"
                " allowed; list the header names instead"
            )
        if not isinstance(max_age, int) or max_age < 0:
            raise ValueError(f"max_age must be a non-negative int of seconds, got {max_age!r}")
        self.allow_credentials = allow_credentials
        self.any_method = allow_methods == "*"
        methods = ALL_METHODS if self.any_method else _names(allow_methods, "allow_methods")
        self.methods = frozenset(method.upper() for method in methods)
        self.any_header = allow_headers == "*"
        headers = () if self.any_header else _names(allow_headers, "allow_headers")
        self.headers = SAFELISTED_HEADERS | {header.lower() for header in headers}
        # NOTE: with '*' and no credentials every origin gets the same answer, so caches
        # need no Vary: Origin; otherwise the answer depends on Origin, even its absence.
        self.varies = not self.allow_any_origin
        self.simple_headers: list[tuple[str, str]] = []
        if allow_credentials:
            self.simple_headers.append(("Access-Control-Allow-Credentials", "true"))
        if expose_headers:
            exposed = "*" if expose_headers == "*" else ", ".join(expose_headers)
            self.simple_headers.append(("Access-Control-Expose-Headers", exposed))
        self.preflight_headers: list[tuple[str, str]] = [
            ("Access-Control-Allow-Methods", ", ".join(sorted(self.methods))),
            ("Access-Control-Max-Age", str(max_age)),
        ]
        if allow_credentials:
            self.preflight_headers.append(("Access-Control-Allow-Credentials", "true"))

    def is_allowed_origin(self, origin: str) -> bool:
        """Whether ``origin`` (the request's ``Origin`` header) may call the app."""
        if self.allow_any_origin or origin in self.origins:
            return True
        return any(pattern.fullmatch(origin) for pattern in self.origin_patterns)

    def _allow_origin(self, origin: str) -> str:
        return "*" if self.allow_any_origin else origin

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        if (
            origin is not None
            and environ["REQUEST_METHOD"] == "OPTIONS"
            and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        ):
            return self._preflight(environ, origin, start_response)
        extra: list[tuple[str, str]] = []
        if origin is not None and self.is_allowed_origin(origin):
            extra = [("Access-Control-Allow-Origin", self._allow_origin(origin))]
            extra += self.simple_headers

        def cors_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            # NOTE: the middleware owns every Access-Control-* response header, so a
            # handler's own "Allow-Origin: *" with credentials cannot widen the policy for
            # an origin it refuses (nor reach a cache that serves it to one).
            headers = [pair for pair in headers if not _is_cors_header(pair[0])] + extra
            if self.varies:
                add_vary(headers, "Origin")
            return start_response(status, headers, exc_info)

        return self.app(environ, cors_start_response)

    def _preflight(
        self, environ: WSGIEnvironment, origin: str, start_response: StartResponse
    ) -> list[bytes]:
        method = environ["HTTP_ACCESS_CONTROL_REQUEST_METHOD"].strip().upper()
        requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")
        asked = [h.strip().lower() for h in requested.split(",") if h.strip()]
        failures = []
        if not self.is_allowed_origin(origin):
            failures.append("origin")
        if method not in self.methods:
            failures.append("method")
        if not self.any_header and any(header not in self.headers for header in asked):
            failures.append("headers")
        vary = [("Vary", "Origin")] if self.varies else []
        if failures:
            return reject(start_response, 400, f"Disallowed CORS {', '.join(failures)}", vary)
        headers = [("Access-Control-Allow-Origin", self._allow_origin(origin)), *vary]
        headers += self.preflight_headers
        if asked:
            # NOTE: echo what was asked (all of it was checked above, or '*' allows it):
            # a literal '*' would not cover Authorization, nor anything with credentials.
            headers.append(("Access-Control-Allow-Headers", ", ".join(asked)))
        start_response("204 No Content", headers)
        return []


def _is_cors_header(name: str) -> bool:
    return name[:15].lower() == "access-control-"


def _split_origins(
    allow_origins: Origins,
) -> tuple[bool, frozenset[str], tuple[re.Pattern[str], ...]]:
    """Return (any origin, exact origins, patterns)."""
    if allow_origins == "*":
        return True, frozenset(), ()
    if isinstance(allow_origins, re.Pattern):
        return False, frozenset(), (allow_origins,)
    if isinstance(allow_origins, str):
        raise TypeError(
            f"allow_origins={allow_origins!r} is a single string; pass a list"
            f" (allow_origins=[{allow_origins!r}]) or '*'"
        )
    entries = list(allow_origins)
    if "*" in entries:
        # NOTE: Starlette's spelling: a list holding "*" means any origin, whatever else
        # it lists.
        return True, frozenset(), ()
    exact: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for origin in entries:
        if isinstance(origin, re.Pattern):
            patterns.append(origin)
        elif not isinstance(origin, str):
            raise TypeError(f"allow_origins holds {origin!r}; use strings or compiled regexes")
        elif "*" in origin:
            raise ValueError(
                f"allow_origins entry {origin!r} has a wildcard, but entries match exactly;"
                " use allow_origins='*' alone, or a compiled regex such as"
                " re.compile(r'https://[a-z0-9-]+\\.example\\.com')"
            )
        elif origin.endswith("/"):
            raise ValueError(
                f"allow_origins entry {origin!r} ends with '/', but a browser's Origin header"
                f" never does; use {origin.rstrip('/')!r}"
            )
        else:
            exact.add(origin)
    return False, frozenset(exact), tuple(patterns)


def _names(value: str | Sequence[str], option: str) -> Sequence[str]:
    if isinstance(value, str):
        raise TypeError(f"{option}={value!r} is a single string; pass a list, or '*' for all")
    return value
