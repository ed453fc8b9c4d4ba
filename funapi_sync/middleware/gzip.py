"""GZipMiddleware: compress compressible responses for clients that accept gzip, as a stream."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from . import add_vary, closing

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: Media types worth compressing besides ``text/*`` and the ``+json``/``+xml`` suffixes.
COMPRESSIBLE = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "application/xhtml+xml",
        "application/wasm",
        "image/svg+xml",
    }
)
#: Never compressed: an event stream must reach the client event by event.
NOT_COMPRESSIBLE = frozenset({"text/event-stream"})


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value admits gzip (RFC 9110 §12.5.3).

    ``gzip`` (or its alias ``x-gzip``) with q > 0 admits it and ``gzip;q=0`` refuses it,
    whatever ``*`` says; otherwise ``*`` with q > 0 admits it. ``identity`` alone does not.
    """
    wildcard = None
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding in ("gzip", "x-gzip"):
            return quality > 0
        if coding == "*":
            wildcard = quality > 0
    return bool(wildcard)


def is_compressible(content_type: str) -> bool:
    """Whether a ``Content-Type`` names text-like data that gzip shrinks."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in NOT_COMPRESSIBLE:
        return False
    return media.startswith("text/") or media in COMPRESSIBLE or media.endswith(("+json", "+xml"))


class GZipMiddleware:
    """Send compressible responses gzip-encoded to clients that accept gzip.

    A response is compressed when the client accepts gzip (q-values honoured), the
    request is not ``HEAD``, the status can carry a body (not 1xx/204/304, not a 206
    range), the type is text-like (:func:`is_compressible`), it has no
    ``Content-Encoding`` yet and no ``Cache-Control: no-transform``, and it is at least
    ``minimum_size`` bytes: by ``Content-Length``, or, for a streamed body, by reading
    ahead at most ``minimum_size`` bytes. Compressible responses get
    ``Vary: Accept-Encoding`` whether compressed or not, so caches keep both versions.

    The body is compressed chunk by chunk as it is iterated, never buffered whole. The
    app's iterable is wrapped with :func:`~funapi_sync.middleware.closing`, so its
    ``close()`` (the background tasks) still runs when the server closes the response.

    :param minimum_size: smaller bodies are sent as they are (gzip would grow them).
    :param compresslevel: 1 (fastest) to 9 (smallest); 6 is zlib's default trade-off.
    """

    def __init__(
        self, app: WSGIApplication, minimum_size: int = 500, compresslevel: int = 6
    ) -> None:
        if not isinstance(minimum_size, int) or minimum_size < 0:
            raise ValueError(
                f"minimum_size must be a non-negative int of bytes, got {minimum_size!r}"
            )
        if compresslevel not in range(1, 10):
            raise ValueError(f"compresslevel must be 1 to 9, got {compresslevel!r}")
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        accepted = environ["REQUEST_METHOD"] != "HEAD" and accepts_gzip(
            environ.get("HTTP_ACCEPT_ENCODING", "")
        )
        responder = _Responder(self, start_response, accepted)
        iterable = self.app(environ, responder.start_response)
        if responder.mode == _PASS:
            return iterable
        body = responder.body(iterable)
        inner_close = getattr(iterable, "close", None)
        return closing(body, inner_close) if inner_close is not None else closing(body)


_PASS, _GZIP, _PEEK = "pass", "gzip", "peek"


class _Responder:
    """One response's state: headers held back until it is known whether to compress."""

    def __init__(self, middleware: GZipMiddleware, start_response: StartResponse, accepted: bool):
        self.middleware = middleware
        self.real_start_response = start_response
        self.accepted = accepted
        self.mode: str | None = None
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.exc_info: Any = None
        self.write: Callable[[bytes], object] | None = None
        self.compressor: Any = None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        if self.mode in (_GZIP, _PEEK) and self.write is None:
            # NOTE: a second call (an error before any byte went out) replaces the
            # held-back headers and decides again, as PEP 3333 allows.
            self.mode = None
        if self.mode is not None:
            return self.real_start_response(status, headers, exc_info)
        headers = list(headers)
        fields = {name.lower(): value for name, value in headers}
        code = int(status.split(" ", 1)[0])
        compressible = (
            is_compressible(fields.get("content-type", ""))
            and "content-encoding" not in fields
            and "no-transform" not in fields.get("cache-control", "").lower()
        )
        if compressible:
            add_vary(headers, "Accept-Encoding")
        length = fields.get("content-length")
        if (
            not compressible
            or not self.accepted
            or code < 200
            or code in (204, 206, 304)
            or (
                length is not None
                and length.isdigit()
                and int(length) < self.middleware.minimum_size
            )
        ):
            self.mode = _PASS
            return self.real_start_response(status, headers, exc_info)
        self.mode = _PEEK if length is None else _GZIP
        self.status, self.headers, self.exc_info = status, headers, exc_info
        return self._write

    def _send_headers(self, compressed: bool) -> None:
        headers = self.headers
        if compressed:
            headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
            headers = [(n, _weak_etag(v) if n.lower() == "etag" else v) for n, v in headers]
            headers.append(("Content-Encoding", "gzip"))
            self.compressor = zlib.compressobj(self.middleware.compresslevel, zlib.DEFLATED, 31)
        self.write = self.real_start_response(self.status, headers, self.exc_info)

    def _write(self, data: bytes) -> None:
        # NOTE: the legacy write() callable (PEP 3333) is rare; it commits to compressing.
        if self.write is None:
            self.mode = _GZIP
            self._send_headers(compressed=True)
        assert self.write is not None
        self.write(self.compressor.compress(data) if self.compressor else data)

    def body(self, iterable: Iterable[bytes]) -> Iterator[bytes]:
        iterator = iter(iterable)
        head: list[bytes] = []
        if self.mode is None:
            # The app calls start_response lazily, before its first chunk (PEP 3333).
            for chunk in iterator:
                head.append(chunk)
                if self.mode is not None:
                    break
            if self.mode is None:
                return  # no start_response and no body: nothing to send
            if self.mode == _PASS:
                yield from head
                yield from iterator
                return
        if self.write is None and self.mode == _PEEK:
            size = sum(map(len, head))
            if size < self.middleware.minimum_size:
                for chunk in iterator:
                    head.append(chunk)
                    size += len(chunk)
                    if size >= self.middleware.minimum_size:
                        break
            if size < self.middleware.minimum_size:
                self.headers.append(("Content-Length", str(size)))
                self._send_headers(compressed=False)
                yield b"".join(head)
                return
        if self.mode == _PASS:
            # A second start_response (with exc_info) chose to send the error as it is.
            yield from head
            yield from iterator
            return
        if self.write is None:
            self._send_headers(compressed=True)
        if self.compressor is None:
            yield from head
            yield from iterator
            return
        compress = self.compressor.compress
        for chunk in head:
            data = compress(chunk)
            if data:
                yield data
        for chunk in iterator:
            data = compress(chunk)
            if data:
                yield data
        yield self.compressor.flush()


def _weak_etag(value: str) -> str:
    # NOTE: the compressed bytes differ from the identity ones, so a strong validator
    # would be a lie (RFC 9110 §8.8.1); nginx weakens it the same way.
    return value if value.startswith("W/") else f"W/{value}"
