"""Input: the handler's validated, read-only view of a request's path, query, body and headers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Set
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_plus

import marshmallow
from werkzeug.datastructures import EnvironHeaders, MultiDict
from werkzeug.wrappers import Request

from ._body import FORM_TYPES, BodySpec, flatten, framing, load, read_body

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

_KEYS = ("path", "query", "body", "headers")


class Input(Mapping[str, Any]):
    """A read-only mapping of ``path``, ``query``, ``body`` and ``headers``.

    Each is also an attribute: ``input.body`` is ``input["body"]``. Without a query
    schema, ``query`` is a werkzeug ``MultiDict`` parsed on first use; ``headers`` is a
    werkzeug ``EnvironHeaders`` view, also made on first use.
    """

    # NOTE: properties without setters make the public names read-only; the slots behind
    # them are set once, in __init__.
    __slots__ = ("_body", "_environ", "_headers", "_path", "_query")

    def __init__(
        self,
        path: dict[str, Any],
        query: Mapping[str, Any] | None,
        body: Any,
        environ: WSGIEnvironment,
    ) -> None:
        self._path = path
        self._query: Mapping[str, Any] | None = query
        self._body = body
        self._environ = environ
        self._headers: EnvironHeaders | None = None

    @property
    def path(self) -> dict[str, Any]:
        """The path values, converted (``int`` for ``<int:id>``) or loaded by ``path_schema=``."""
        return self._path

    @property
    def body(self) -> Any:
        """The validated body (a dict, or a list with ``[Schema]``), else the parsed JSON,
        the form dict or None: its shape is the route's, so it is ``Any`` to a type checker.
        """
        return self._body

    @property
    def query(self) -> Mapping[str, Any]:
        """The dict a ``query=`` schema loaded, else the query string's werkzeug ``MultiDict``."""
        query = self._query
        if query is None:
            query = self._query = parse_query(self._environ.get("QUERY_STRING", ""))
        return query

    @property
    def headers(self) -> EnvironHeaders:
        """The request headers, case-insensitive (werkzeug's ``EnvironHeaders``)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = EnvironHeaders(self._environ)
        return headers

    def __getitem__(self, key: str) -> Any:
        if key in _KEYS:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return 4

    def as_sent(self) -> Input:
        """This input with the query string as sent (a ``MultiDict``), not as validated.

        What dependencies get: a route's ``query=`` schema is the handler's, and never
        hides from a guard a parameter the guard reads.
        """
        if self._query is None:
            return self
        return Input(self._path, None, self._body, self._environ)

    def __repr__(self) -> str:
        return f"Input(path={self.path!r}, query={self.query!r}, body={self.body!r})"


def parse_query(query_string: str) -> MultiDict[str, str]:
    """Parse a WSGI ``QUERY_STRING`` (latin-1 per PEP 3333, UTF-8 on the wire).

    PERF: the same pairs as ``parse_qsl(..., keep_blank_values=True)``, but percent-
    decoding only the pairs that need it, which halves the cost of a typical
    ``?verbose=1``. The values are collected in a plain dict of lists, the MultiDict's own
    storage (its constructor builds the same), and handed over in one ``dict.update``:
    ``MultiDict.add`` per pair costs a ``super()`` call each.
    """
    # PERF: not MultiDict[str, str](): calling the generic alias costs twice as much and
    # sets __orig_class__ on every instance.
    query: MultiDict[str, str] = MultiDict()
    if not query_string:
        return query
    if not query_string.isascii():
        query_string = query_string.encode("latin-1").decode("utf-8", "replace")
    lists: dict[str, list[str]] = {}
    for pair in query_string.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in pair or "+" in pair:
            name, value = unquote_plus(name), unquote_plus(value)
        values = lists.get(name)
        if values is None:
            lists[name] = [value]
        else:
            values.append(value)
    dict.update(query, lists)
    return query


class InputSpec(BodySpec, Protocol):
    """What :func:`build_input` needs of an endpoint (compiled at registration)."""

    @property
    def path_schema(self) -> marshmallow.Schema | None: ...

    @property
    def query_schema(self) -> marshmallow.Schema | None: ...

    @property
    def query_lists(self) -> Set[str]: ...


def build_input(
    environ: WSGIEnvironment,
    endpoint: InputSpec,
    path_values: dict[str, Any],
    request: Request | None,
    request_class: type[Request],
) -> tuple[Input, Request | None]:
    """Validate path, query and body against the endpoint's schemas; raise on bad input.

    Returns the input and the werkzeug ``Request``: the one given, or one made here when
    the body needed werkzeug's parsers (forms, chunked bodies); None when neither did.
    """
    path: dict[str, Any] = path_values
    if endpoint.path_schema is not None:
        path = load(endpoint.path_schema, path_values, "path")
    query: Any = None
    if endpoint.query_schema is not None:
        args = parse_query(environ.get("QUERY_STRING", ""))
        query = load(endpoint.query_schema, flatten(args, endpoint.query_lists, "query"), "query")
    body: Any = None
    # PERF: a request with no body framing, no Content-Type and no body schema (most
    # GETs) has no body to read, check or parse. (With a form Content-Type, werkzeug may
    # still read a form from a server that marks its input terminated.)
    if (
        endpoint.body_schema is not None
        or environ.get("CONTENT_LENGTH")
        or "HTTP_TRANSFER_ENCODING" in environ
        or environ.get("CONTENT_TYPE")
    ):
        mimetype, chunked = framing(environ)
        if request is None and (chunked or mimetype in FORM_TYPES):
            # NOTE: werkzeug's parsers read this body; the handler's req is this same
            # request, so the uploads it holds are closed with it.
            request = request_class(environ)
        limit = request_class.max_content_length
        body = read_body(environ, endpoint, request, limit, mimetype, chunked)
    return Input(path, query, body, environ), request
