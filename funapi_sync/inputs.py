"""Input: the handler's validated view of a request, and the body reading rules behind it."""

from __future__ import annotations

import io
import json
import math
import re
import sys
from collections.abc import Iterator, Mapping
from io import BytesIO
from itertools import accumulate
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import marshmallow
from werkzeug.datastructures import EnvironHeaders, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wrappers import Request

from .exceptions import HTTPException, ValidationError
from .schema import to_detail

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .route import Route

_KEYS = ("path", "query", "body", "headers")
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class Input(Mapping[str, Any]):
    """A read-only mapping of ``path``, ``query``, ``body`` and ``headers``.

    Each is also an attribute: ``input.body`` is ``input["body"]``. Without a query
    schema, ``query`` is a werkzeug ``MultiDict`` parsed on first use; ``headers`` is a
    werkzeug ``EnvironHeaders`` view, also made on first use.
    """

    # NOTE: properties without setters make the public names read-only; the slots behind
    # them are set once, in __init__.
    __slots__ = ("_body", "_environ", "_headers", "_path", "_query")

    def __init__(self, path: Any, query: Any, body: Any, environ: WSGIEnvironment) -> None:
        self._path = path
        self._query = query
        self._body = body
        self._environ = environ
        self._headers: EnvironHeaders | None = None

    @property
    def path(self) -> Any:
        return self._path

    @property
    def body(self) -> Any:
        return self._body

    @property
    def query(self) -> Any:
        query = self._query
        if query is None:
            query = self._query = parse_query(self._environ.get("QUERY_STRING", ""))
        return query

    @property
    def headers(self) -> EnvironHeaders:
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


# -- reading the body: every byte its framing promised, or a 400 ----------------------


class BodyError(HTTPException):
    """The request body cannot be read as framed: cut short, or broken chunked encoding."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail)


def _short_body(received: int, expected: int) -> BodyError:
    return BodyError(
        f"Request body is shorter than its Content-Length ({received} of {expected} bytes);"
        " the request was cut short"
    )


def _unreadable_body(chunked: bool) -> BodyError:
    # NOTE: the server's own parser raised (gunicorn's InvalidChunkSize,
    # ChunkMissingTerminator, NoMoreData...); its text is the server's business.
    if chunked:
        return BodyError("Request body has malformed chunked encoding")
    return BodyError("Request body could not be read")


class BodyInput(io.RawIOBase):
    """``wsgi.input`` that refuses a body shorter than its ``Content-Length``.

    NOTE: gunicorn sets ``wsgi.input_terminated``, so werkzeug reads its input up to
    EOF and a client that stops early leaves a shorter body that parses as a complete
    one (``qty=1000`` arrives as ``qty=10``). An error the server's own reader raises
    (broken chunked framing) becomes the same 400 instead of escaping as a 500.
    """

    def __init__(self, stream: IO[bytes], expected: int | None) -> None:
        self._stream = stream
        self._expected = expected
        self._received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        if self._expected is not None:
            wanted = min(wanted, self._expected - self._received)
            if wanted <= 0:
                return 0
        try:
            data = self._stream.read(wanted)
        except Exception:
            raise _unreadable_body(self._expected is None) from None
        if not data:
            if self._expected is not None:
                raise _short_body(self._received, self._expected)
            return 0
        size = len(data)
        buffer[:size] = data
        self._received += size
        return size


def _content_length(environ: WSGIEnvironment) -> int | None:
    try:
        return int(environ["CONTENT_LENGTH"])
    except (KeyError, ValueError):
        return None


def read_exactly(stream: IO[bytes], length: int) -> bytes:
    """Read ``length`` bytes from a WSGI input; :class:`BodyError` if it ends sooner."""
    try:
        data = stream.read(length)
        # NOTE: PEP 3333 lets read(n) return less before EOF; only b"" means the end.
        while len(data) < length:
            more = stream.read(length - len(data))
            if not more:
                raise _short_body(len(data), length)
            data += more
    except BodyError:
        raise
    except Exception:
        raise _unreadable_body(False) from None
    return data


class BodyRequest(Request):
    """A werkzeug ``Request`` whose :attr:`stream` reads through :class:`BodyInput`.

    Every read of the body (forms, ``get_data()``, a dependency's ``req.form``) then
    gets the same 400 for a cut-short or badly framed body.
    """

    @cached_property
    def stream(self) -> IO[bytes]:
        environ = self.environ
        raw = environ["wsgi.input"]
        if not isinstance(raw, BodyInput):
            environ["wsgi.input"] = BodyInput(raw, _content_length(environ))
        # NOTE: werkzeug's own stream (its Content-Length and max_content_length limits),
        # over the guarded input.
        return Request.stream.fget(self)  # type: ignore[attr-defined,no-any-return]


def build_input(
    environ: WSGIEnvironment,
    endpoint: Route,
    path_values: dict[str, Any],
    request: Request | None,
    request_class: type[Request],
) -> tuple[Input, Request | None]:
    """Validate path, query and body against the endpoint's schemas; raise on bad input.

    Returns the input and the werkzeug ``Request``: the one given, or one made here when
    the body needed werkzeug's parsers (forms, chunked bodies); None when neither did.
    """
    path: Any = path_values
    if endpoint.path_schema is not None:
        path = _load(endpoint.path_schema, path_values, "path")
    query: Any = None
    if endpoint.query_schema is not None:
        args = parse_query(environ.get("QUERY_STRING", ""))
        query = _load(endpoint.query_schema, _flatten(args, endpoint, "query"), "query")
    body, request = read_body(environ, endpoint, request, request_class)
    return Input(path, query, body, environ), request


def _load(schema: marshmallow.Schema, data: Any, where: str) -> Any:
    try:
        return schema.load(data)
    except marshmallow.ValidationError as exc:
        raise ValidationError(to_detail(exc.messages, where, schema)) from None


def _flatten(multi: MultiDict[str, Any], endpoint: Route, where: str) -> dict[str, Any]:
    """Turn a MultiDict into the dict a schema loads: lists for list fields, else one value."""
    lists = endpoint.query_lists if where == "query" else endpoint.body_lists
    data: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for key, values in multi.lists():
        if key in lists:
            data[key] = values
        elif len(values) == 1:
            data[key] = values[0]
        else:
            problems.append(
                {
                    "loc": [where, key],
                    "msg": f"Expected one value, got {len(values)}; declare the field as"
                    " fields.List to accept several.",
                    "type": "value_error",
                }
            )
    if problems:
        raise ValidationError(problems)
    return data


def _load_form(
    schema: marshmallow.Schema, form: MultiDict[str, Any], endpoint: Route, request: Request
) -> Any:
    try:
        return _load(schema, _flatten(form, endpoint, "body"), "body")
    except ValidationError:
        # NOTE: the request is dropped with the error, so its uploads (spooled to
        # temporary files) are closed here rather than left to the garbage collector.
        if request.__dict__.get("files"):
            request.close()
        raise


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _invalid_json(msg: str) -> ValidationError:
    return ValidationError([{"loc": ["body"], "msg": msg, "type": "json_invalid"}])


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range for a float")
    return value


# A \uD800-\uDFFF escape: half of a surrogate pair, or a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


# PERF: one decoder for the process; json.loads with options builds one per call.
# NOTE: strict UTF-8 (RFC 8259 §8.1), no NaN/Infinity, no float that overflows to inf.
_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


#: The deepest nesting of arrays and objects a request body may have.
MAX_JSON_DEPTH = 256
# NOTE: possessive, and a closing quote that may be missing, so that every '"' starts a
# match that never fails: a failing match retried from each quote of an unterminated
# string was quadratic in the body's size.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")
_DEPTH_STEP = tuple(1 if byte in b"[{" else -1 for byte in range(256))


def _too_deep(data: bytes) -> bool:
    # NOTE: a fixed limit, because the recursion limit the parser (and later the encoder
    # echoing the body) hits depends on how deep the server's stack already is. Only a
    # body with that many brackets at all pays for the scan, which is linear in its size.
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:
        return False
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH


def parse_json(data: bytes) -> Any:
    """Parse strict JSON (no NaN/Infinity); any failure is a 422 ``json_invalid``."""
    try:
        if _too_deep(data):
            raise RecursionError
        payload = _decoder.decode(data.decode("utf-8"))
        if _SURROGATE_ESCAPE.search(data):
            # NOTE: json accepts a lone "\ud800", which no UTF-8 response can carry; a
            # request must not be able to turn its own echo into a 500.
            json.dumps(payload, ensure_ascii=False).encode()
        return payload
    except RecursionError:
        return_msg = "JSON is nested too deeply"
    except UnicodeEncodeError:
        return_msg = "JSON string holds a lone surrogate escape"
    except UnicodeDecodeError:
        return_msg = "JSON body is not valid UTF-8"
    except ValueError as exc:
        return_msg = _too_many_digits(exc) or f"JSON decode error: {exc}"
    raise _invalid_json(return_msg)


def _too_many_digits(exc: ValueError) -> str | None:
    # NOTE: Python refuses to parse an integer literal over sys.get_int_max_str_digits()
    # (CVE-2020-10735) with advice for the server's programmer, not for the client.
    if "integer string conversion" not in str(exc):
        return None
    return f"JSON number has more than {sys.get_int_max_str_digits()} digits"


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def _read_unsized(request: Request) -> bytes:
    """Read a body sent without ``Content-Length`` (chunked), refusing one over the limit.

    NOTE: werkzeug caps such a stream at ``max_content_length`` but stops there silently,
    so a longer body would arrive truncated (a misleading 422); one more byte tells.
    """
    data = request.get_data(cache=True)
    limit = request.max_content_length
    environ = request.environ
    if (
        limit is not None
        and len(data) >= limit
        and "wsgi.input_terminated" in environ
        and environ["wsgi.input"].read(1)
    ):
        raise RequestEntityTooLarge()
    return data


def _too_large(limit: int | None) -> HTTPException:
    return HTTPException(413, f"Request body is larger than the {limit}-byte limit")


def _mimetype(environ: WSGIEnvironment) -> str:
    content_type: str = environ.get("CONTENT_TYPE", "")
    if not content_type:
        return ""
    return content_type.partition(";")[0].strip().lower()


def read_body(
    environ: WSGIEnvironment,
    endpoint: Route,
    request: Request | None,
    request_class: type[Request],
) -> tuple[Any, Request | None]:
    """Read, size-check and parse the body; validate it when the endpoint has a schema.

    PERF: a JSON body with a ``Content-Length`` is read straight from ``wsgi.input``
    (and put back as a BytesIO, so ``req.get_data()`` still sees it); forms and chunked
    bodies go through werkzeug's parsers, which enforce the same limit while reading.
    """
    schema = endpoint.body_schema
    length_header = environ.get("CONTENT_LENGTH")
    if (
        schema is None
        and not length_header
        and "HTTP_TRANSFER_ENCODING" not in environ
        and not environ.get("CONTENT_TYPE")
    ):
        # PERF: a GET (or any request) with no body framing, no Content-Type and no body
        # schema has no body to read, check or parse. (With a form Content-Type, werkzeug
        # may still read a form from a server that marks its input terminated.)
        return None, request
    mimetype = _mimetype(environ)
    # NOTE: a request without Content-Length has a body only when it is chunked (RFC 9112
    # §6.3); wsgi.input_terminated says how to read one, not that there is one, and
    # gunicorn sets it on every request.
    chunked = not length_header and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    data = b""
    if mimetype in _FORM_TYPES or chunked:
        if request is None:
            request = request_class(environ)
        try:
            if chunked:
                data = _read_unsized(request)
            if mimetype in _FORM_TYPES:
                form: MultiDict[str, Any] = request.form
                if request.files:
                    form = form.copy()
                    form.update(request.files)
                if schema is None:
                    return (form.to_dict() if form else None), request
                return _load_form(schema, form, endpoint, request), request
        except RequestEntityTooLarge:
            raise _too_large(request.max_content_length) from None
    elif length_header:
        try:
            length = int(length_header)
        except ValueError:
            raise HTTPException(400, "Content-Length is not a number") from None
        limit = request_class.max_content_length
        if length < 0:
            raise HTTPException(400, "Content-Length is negative")
        if limit is not None and length > limit:
            raise _too_large(limit)
        if length:
            data = read_exactly(environ["wsgi.input"], length)
            environ["wsgi.input"] = BytesIO(data)
    if not data:
        if schema is None:
            return None, request
        raise ValidationError([{"loc": ["body"], "msg": "Field required", "type": "missing"}])
    if not mimetype or _is_json(mimetype):
        payload = parse_json(data)
    elif schema is None:
        return None, request
    else:
        raise HTTPException(
            415,
            f"Unsupported content type {mimetype!r}; send application/json or a form",
        )
    if schema is None:
        return payload, request
    return _load(schema, payload, "body"), request
