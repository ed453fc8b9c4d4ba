"""Security schemes: dependencies that read credentials and document them in OpenAPI.

Each instance is a dependency (``depends={"token": HTTPBearer()}``) whose ``__call__``
takes the werkzeug ``req`` by name, as any dependency parameter is resolved, and returns
the credentials it found. They only *read* credentials; checking them is the app's job
(see ``docs/security.md``). Missing or malformed credentials are a 401 with the
``WWW-Authenticate`` challenge RFC 9110 §15.5.2 requires, or ``None`` with
``auto_error=False``. The OpenAPI generator finds the instances in each endpoint's
dependency plan and adds the ``securitySchemes`` entry and the operation's ``security``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from werkzeug.wrappers import Request

from .exceptions import HTTPException

if TYPE_CHECKING:
    from .route import Route

__all__ = [
    "APIKeyCookie",
    "APIKeyHeader",
    "APIKeyQuery",
    "HTTPBasic",
    "HTTPBasicCredentials",
    "HTTPBearer",
    "SecurityScheme",
]


#: An authorization scheme's name: an RFC 9110 token.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class HTTPBasicCredentials(NamedTuple):
    """What :class:`HTTPBasic` returns: a ``(username, password)`` pair with names."""

    username: str
    password: str


class SecurityScheme:
    """The base of every scheme: its OpenAPI entry, its name there, and its 401.

    :param scheme_name: the key under ``components.securitySchemes`` (default: the
        class name, e.g. ``HTTPBearer``).
    :param description: shown next to the scheme in Swagger UI's Authorize dialog.
    :param auto_error: answer 401 when the credentials are missing or malformed
        (default); with False the dependency returns ``None`` instead, so a route can
        serve anonymous and signed-in users alike.
    """

    #: The ``WWW-Authenticate`` challenge sent with the 401.
    challenge = ""
    #: Marks a scheme for ``dependencies.checks_credentials``: the routes resolve it (and
    #: the dependencies built on it) before reading the body.
    checks_credentials = True

    def __init__(
        self,
        *,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        if scheme_name is not None and (not isinstance(scheme_name, str) or not scheme_name):
            raise TypeError(
                f"{type(self).__name__}(scheme_name=...) must be a non-empty str,"
                f" got {scheme_name!r}"
            )
        self.scheme_name = scheme_name or type(self).__name__
        #: The name was given: a clash with another scheme is refused, not renamed.
        self.named = scheme_name is not None
        self.description = description
        self.auto_error = bool(auto_error)

    def openapi(self) -> dict[str, Any]:
        """The scheme's OpenAPI ``securitySchemes`` entry."""
        raise NotImplementedError

    def _document(self, entry: dict[str, Any]) -> dict[str, Any]:
        if self.description:
            entry["description"] = self.description
        return entry

    def _refuse(self, detail: str) -> None:
        """Answer 401, or let the dependency return None with ``auto_error=False``."""
        if self.auto_error:
            raise HTTPException(401, detail, headers={"WWW-Authenticate": self.challenge})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scheme_name={self.scheme_name!r})"


def check_names(
    schemes: Iterable[SecurityScheme], taken: dict[str, SecurityScheme], where: str
) -> None:
    """Refuse a ``scheme_name=`` that another, differently documented scheme has.

    Two default names that clash (``HTTPBearer()`` and ``HTTPBearer(bearer_format="JWT")``)
    are numbered in the document; a name the app chose is never silently renamed, since
    clients generated from the document refer to it.
    """
    for scheme in schemes:
        other = taken.setdefault(scheme.scheme_name, scheme)
        if other is scheme or not (scheme.named or other.named):
            continue
        if other.openapi() != scheme.openapi():
            raise ValueError(
                f"{where}: security scheme {scheme!r} is named {scheme.scheme_name!r}, which"
                f" {other!r} already uses for another scheme in /openapi.json; give one of"
                " them another scheme_name=, or share one instance between the routes"
            )


def _authorization(req: Request) -> tuple[str, str] | None:
    """Split ``Authorization: <scheme> <credentials>``; the scheme is case-insensitive."""
    header = req.headers.get("Authorization", "")
    scheme, _, credentials = header.strip().partition(" ")
    if not scheme:
        return None
    return scheme.lower(), credentials.strip()


class HTTPBearer(SecurityScheme):
    """Read ``Authorization: Bearer <token>``; the dependency's value is the token ``str``.

    :param bearer_format: a hint for clients, e.g. ``"JWT"`` (OpenAPI ``bearerFormat``).
    :param scheme: the authorization scheme the header names (case-insensitive), e.g.
        ``"Token"`` for ``Authorization: Token <token>`` (RealWorld, Django REST
        framework); the 401's challenge names it too. OpenAPI's ``http`` type knows only
        registered schemes, so another scheme is documented as an API key in the
        ``Authorization`` header, which Swagger UI sends as typed (``Token <token>``).
    """

    def __init__(
        self,
        *,
        bearer_format: str | None = None,
        scheme: str = "Bearer",
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        if not isinstance(scheme, str) or not _TOKEN.fullmatch(scheme):
            raise ValueError(
                f"HTTPBearer(scheme=...) must be an authorization scheme name such as"
                f" 'Bearer' or 'Token' (letters, digits and !#$%&'*+.^_`|~-), got {scheme!r}"
            )
        super().__init__(scheme_name=scheme_name, description=description, auto_error=auto_error)
        self.bearer_format = bearer_format
        self.scheme = scheme
        self.challenge = scheme
        self._scheme = scheme.lower()

    def openapi(self) -> dict[str, Any]:
        if self._scheme != "bearer":
            entry: dict[str, Any] = {"type": "apiKey", "in": "header", "name": "Authorization"}
            if not self.description:
                entry["description"] = f"Send `Authorization: {self.scheme} <token>`."
            return self._document(entry)
        entry = {"type": "http", "scheme": "bearer"}
        if self.bearer_format:
            entry["bearerFormat"] = self.bearer_format
        return self._document(entry)

    def __call__(self, req: Request) -> str | None:
        found = _authorization(req)
        if found is None:
            self._refuse("Not authenticated")
            return None
        scheme, token = found
        if scheme != self._scheme or not token:
            self._refuse("Invalid authentication credentials")
            return None
        return token


class HTTPBasic(SecurityScheme):
    """Read ``Authorization: Basic <base64>``; the value is :class:`HTTPBasicCredentials`.

    :param realm: sent in the challenge (``WWW-Authenticate: Basic realm="..."``), which
        is what makes a browser show its login dialog.
    """

    def __init__(
        self,
        *,
        realm: str | None = None,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(scheme_name=scheme_name, description=description, auto_error=auto_error)
        self.realm = realm
        if realm is not None:
            quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
            self.challenge = f'Basic realm="{quoted}"'
        else:
            self.challenge = "Basic"

    def openapi(self) -> dict[str, Any]:
        return self._document({"type": "http", "scheme": "basic"})

    def __call__(self, req: Request) -> HTTPBasicCredentials | None:
        found = _authorization(req)
        if found is None:
            self._refuse("Not authenticated")
            return None
        scheme, encoded = found
        if scheme != "basic":
            self._refuse("Invalid authentication credentials")
            return None
        try:
            # NOTE: RFC 7617 leaves the charset to the server; UTF-8 is what browsers send.
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            self._refuse("Invalid authentication credentials")
            return None
        username, colon, password = decoded.partition(":")
        if not colon:
            self._refuse("Invalid authentication credentials")
            return None
        return HTTPBasicCredentials(username, password)


class _APIKey(SecurityScheme):
    """A key sent under a name the API chooses, in a header, the query or a cookie."""

    #: Where the key is: OpenAPI's ``in``.
    location = ""
    # NOTE: RFC 9110 requires a challenge on every 401; "APIKey" is what FastAPI sends.
    challenge = "APIKey"

    def __init__(
        self,
        *,
        name: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"{type(self).__name__}(name=...) must be the non-empty name of the"
                f" {self.location} that carries the key, got {name!r}"
            )
        super().__init__(scheme_name=scheme_name, description=description, auto_error=auto_error)
        self.name = name

    def openapi(self) -> dict[str, Any]:
        return self._document({"type": "apiKey", "in": self.location, "name": self.name})

    def _read(self, req: Request) -> str | None:
        raise NotImplementedError

    def __call__(self, req: Request) -> str | None:
        key = self._read(req)
        if not key:
            self._refuse("Not authenticated")
            return None
        return key


class APIKeyHeader(_APIKey):
    """Read an API key from a request header, e.g. ``APIKeyHeader(name="X-API-Key")``."""

    location = "header"

    def _read(self, req: Request) -> str | None:
        return req.headers.get(self.name)


class APIKeyQuery(_APIKey):
    """Read an API key from a query parameter, e.g. ``APIKeyQuery(name="api_key")``."""

    location = "query"

    def _read(self, req: Request) -> str | None:
        return req.args.get(self.name)


class APIKeyCookie(_APIKey):
    """Read an API key from a cookie, e.g. ``APIKeyCookie(name="session")``."""

    location = "cookie"

    def _read(self, req: Request) -> str | None:
        return req.cookies.get(self.name)


def schemes_of(endpoint: Route) -> list[SecurityScheme]:
    """The security schemes an endpoint's dependency plan reaches, each once."""
    providers = endpoint.registry.providers
    schemes: list[SecurityScheme] = []
    for step in endpoint.current_plan().steps:
        target = step.key
        if isinstance(target, str) and target in providers:
            target = providers[target].factory
        if isinstance(target, SecurityScheme) and target not in schemes:
            schemes.append(target)
    return schemes
