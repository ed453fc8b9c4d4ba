"""Reading a request body: every byte its framing promised, within the size limit, or an error.

Internal. The 413 comes before reading when the ``Content-Length`` says too much; a body
cut short or badly chunked is a 400; a media type the route cannot parse is a 415. The raw
bytes are kept for ``req.get_data()`` whatever the content type and whoever read first: a
JSON body's are put back in ``wsgi.input`` (or cached on the ``Request``), a form's are
cached before werkzeug's parser reads them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Set
from io import BytesIO
from typing import IO, TYPE_CHECKING, Any, Protocol

import marshmallow
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.utils import cached_property
from werkzeug.wrappers import Request

from ._json import parse_json
from .exceptions import HTTPException, ValidationError
from .schema import to_detail

logger = logging.getLogger("funapi_sync")

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from werkzeug.formparser import t_parse_result

#: The media types werkzeug's form parser reads (through a ``Request``).
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class BodySpec(Protocol):
    """What reading a body needs of an endpoint (compiled at registration)."""

    @property
    def body_schema(self) -> marshmallow.Schema | None: ...

    @property
    def body_lists(self) -> Set[str]: ...


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


class FormParser(FormDataParser):
    """werkzeug's form parser, with an error that says what is wrong instead of silence.

    NOTE: werkzeug's parser is silent: an urlencoded body that is not UTF-8 became an
    empty form, and more than ``max_form_parts`` parts a 413 that read as "too large".
    The errors raised here are not ``ValueError``, so they pass its silence.
    """

    def _parse_urlencoded(
        self,
        stream: IO[bytes],
        mimetype: str,
        content_length: int | None,
        options: dict[str, str],
    ) -> t_parse_result:
        data = stream.read()
        try:
            data.decode()
        except UnicodeDecodeError as exc:
            raise BodyError(
                f"Form body is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset"
                f" {exc.start}); percent-encode non-ASCII text"
            ) from None
        return super()._parse_urlencoded(BytesIO(data), mimetype, content_length, options)

    def _parse_multipart(
        self,
        stream: IO[bytes],
        mimetype: str,
        content_length: int | None,
        options: dict[str, str],
    ) -> t_parse_result:
        try:
            return super()._parse_multipart(stream, mimetype, content_length, options)
        except RequestEntityTooLarge:
            # NOTE: parse() refused an oversized Content-Length before this, and the app
            # sets max_form_memory_size to the body limit, so no one field can pass it:
            # what is left is the parts count.
            raise HTTPException(
                413,
                f"Request body has more than {self.max_form_parts} form parts (fields and"
                " files); send fewer",
            ) from None


class BodyRequest(Request):
    """A werkzeug ``Request`` whose :attr:`stream` reads through :class:`BodyInput`.

    Every read of the body (forms, ``get_data()``, a dependency's ``req.form``) then
    gets the same 400 for a cut-short or badly framed body.
    """

    form_data_parser_class = FormParser

    @cached_property
    def stream(self) -> IO[bytes]:
        environ = self.environ
        raw = environ["wsgi.input"]
        if not isinstance(raw, BodyInput):
            environ["wsgi.input"] = BodyInput(raw, _content_length(environ))
        # NOTE: werkzeug's own stream (its Content-Length and max_content_length limits),
        # over the guarded input.
        return Request.stream.fget(self)  # type: ignore[attr-defined,no-any-return]

    def _load_form_data(self) -> None:
        # NOTE: werkzeug's form parser consumes the stream and keeps no copy, so a
        # signature check over req.get_data() would see b"". The raw bytes are kept
        # first (within max_content_length, the app's max_body_size) and the parser
        # reads them from memory (werkzeug's _get_stream_for_parsing).
        if "form" not in self.__dict__ and self.mimetype in FORM_TYPES:
            self.get_data(cache=True)
        super()._load_form_data()

    def get_data(  # type: ignore[override]
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> bytes | str:
        """The exact bytes the client sent, whoever read the body first.

        ``parse_form_data=True`` parses the form too, from the kept bytes.
        """
        if parse_form_data:
            self._load_form_data()
        return super().get_data(cache, as_text)  # type: ignore[call-overload,no-any-return]


def load(schema: marshmallow.Schema, data: Any, where: str) -> Any:
    """``schema.load(data)``; its errors become a 422 located at ``where``."""
    try:
        return schema.load(data)
    except marshmallow.ValidationError as exc:
        raise ValidationError(to_detail(exc.messages, where, schema)) from None


def flatten(multi: MultiDict[str, Any], lists: Set[str], where: str) -> dict[str, Any]:
    """Turn a MultiDict into the dict a schema loads: lists for ``lists`` fields, else one value."""
    data: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for key, values in multi.lists():
        if key in lists:
            data[key] = values
        elif len(values) == 1:
            data[key] = values[0]
        else:
            # NOTE: the client is told what is wrong in its terms; how to accept several
            # values is the programmer's business, so it goes to the log (at DEBUG: any
            # client can send this, and must not be able to fill the log).
            logger.debug(
                "%s parameter %r was sent %d times, but its field is not a fields.List; the"
                " request is a 422. Declare it as fields.List(...) to accept several values",
                where,
                key,
                len(values),
            )
            problems.append(
                {
                    "loc": [where, key],
                    "msg": f"Expected one value, got {len(values)}.",
                    "type": "value_error",
                }
            )
    if problems:
        raise ValidationError(problems)
    return data


def _load_form(
    schema: marshmallow.Schema, form: MultiDict[str, Any], spec: BodySpec, request: Request
) -> Any:
    try:
        return load(schema, flatten(form, spec.body_lists, "body"), "body")
    except ValidationError:
        # NOTE: the request is dropped with the error, so its uploads (spooled to
        # temporary files) are closed here rather than left to the garbage collector.
        if request.__dict__.get("files"):
            request.close()
        raise


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


def framing(environ: WSGIEnvironment) -> tuple[str, bool]:
    """The body's media type (lower case, no parameters) and whether it is chunked.

    With a form type, or chunked, werkzeug's parsers read the body: the caller makes the
    ``Request`` before :func:`read_body`, and hands the same one to the handler.
    """
    # NOTE: a request without Content-Length has a body only when it is chunked (RFC 9112
    # §6.3); wsgi.input_terminated says how to read one, not that there is one, and
    # gunicorn sets it on every request.
    chunked = (
        not environ.get("CONTENT_LENGTH")
        and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    )
    content_type: str = environ.get("CONTENT_TYPE", "")
    if not content_type:
        return "", chunked
    return content_type.partition(";")[0].strip().lower(), chunked


def read_body(
    environ: WSGIEnvironment,
    spec: BodySpec,
    request: Request | None,
    limit: int | None,
    mimetype: str,
    chunked: bool,
) -> Any:
    """Read, size-check and parse the body; validate it when ``spec`` has a body schema.

    :param request: required when :func:`framing` says werkzeug's parsers read the body.
    :param limit: the largest body accepted, in bytes (the request class's
        ``max_content_length``).

    PERF: a JSON body with a ``Content-Length`` is read straight from ``wsgi.input``
    (and put back as a BytesIO, so ``req.get_data()`` still sees it); forms and chunked
    bodies go through werkzeug's parsers, which enforce the same limit while reading.
    """
    if mimetype in FORM_TYPES or chunked:
        assert request is not None, "framing() said to make the Request first"
        if mimetype in FORM_TYPES:
            return _read_form(request, spec, chunked)
        data = _read_chunked(request)
    else:
        data = _read_sized(environ, limit, request)
    return _parse(data, mimetype, spec.body_schema)


def _read_form(request: Request, spec: BodySpec, chunked: bool) -> Any:
    """The form (uploads included), loaded into the body schema if there is one."""
    schema = spec.body_schema
    try:
        if chunked:
            _read_unsized(request)
        form: MultiDict[str, Any] = request.form
        if request.files:
            form = form.copy()
            form.update(request.files)
        if schema is None:
            return form.to_dict() if form else None
        return _load_form(schema, form, spec, request)
    except RequestEntityTooLarge:
        raise _too_large(request.max_content_length) from None


def _read_chunked(request: Request) -> bytes:
    try:
        return _read_unsized(request)
    except RequestEntityTooLarge:
        raise _too_large(request.max_content_length) from None


def _read_sized(environ: WSGIEnvironment, limit: int | None, request: Request | None) -> bytes:
    """The ``Content-Length`` bytes of ``wsgi.input``, refused before reading if too many.

    When a guard or dependency already read through the ``Request`` (``req.get_data()``),
    the bytes are taken from it, cached; otherwise from ``wsgi.input``, which is then
    swapped for the bytes read, so a later ``req.get_data()`` gets them too.
    """
    length_header = environ.get("CONTENT_LENGTH")
    if not length_header:
        return b""
    try:
        length = int(length_header)
    except ValueError:
        raise HTTPException(400, "Content-Length is not a number") from None
    if length < 0:
        raise HTTPException(400, "Content-Length is negative")
    if limit is not None and length > limit:
        raise _too_large(limit)
    if not length:
        return b""
    if request is not None and ("stream" in request.__dict__ or "_cached_data" in request.__dict__):
        # NOTE: only when something already read through the request (a guard's
        # req.get_data()): PERF: otherwise a `req` nobody reads stays unbuilt, and the
        # bytes reach a later req.get_data() through the wsgi.input swapped below.
        data: bytes = request.get_data(cache=True)
        if len(data) < length:
            # The stream was read another way first (req.stream): what is left is short.
            raise _short_body(len(data), length)
        return data
    data = read_exactly(environ["wsgi.input"], length)
    environ["wsgi.input"] = BytesIO(data)
    return data


def _parse(data: bytes, mimetype: str, schema: marshmallow.Schema | None) -> Any:
    """Decode a JSON body and load it into ``schema``; 415 for another type with a schema."""
    if not data:
        if schema is None:
            return None
        raise ValidationError([{"loc": ["body"], "msg": "Field required", "type": "missing"}])
    if not mimetype or _is_json(mimetype):
        payload = parse_json(data)
    elif schema is None:
        return None
    else:
        raise HTTPException(
            415,
            f"Unsupported content type {mimetype!r}; send application/json or a form",
        )
    if schema is None:
        return payload
    return load(schema, payload, "body")
