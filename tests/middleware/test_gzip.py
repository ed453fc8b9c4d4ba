"""Gzip: negotiation, what is and is not compressed, and streaming without buffering."""

from __future__ import annotations

import gzip
import itertools
import os
import sys
import zlib

import pytest
from werkzeug.middleware.lint import LintMiddleware
from werkzeug.wrappers import Response

from funapi_sync import App
from funapi_sync.middleware.gzip import GZipMiddleware, accepts_gzip, is_compressible

BIG = {"items": [f"item {n}" for n in range(200)]}  # ~2.5 kB of JSON


def make_client(lint: bool = True, **options):
    app = App()

    @app.get("/big")
    def big():
        return BIG

    @app.get("/small")
    def small():
        return {"ok": True}

    @app.get("/png")
    def png():
        return Response(b"\x89PNG" + b"\x00" * 2000, mimetype="image/png")

    @app.get("/encoded")
    def encoded():
        return Response(
            gzip.compress(b"x" * 2000), mimetype="text/plain", headers={"Content-Encoding": "gzip"}
        )

    @app.get("/no-transform")
    def no_transform():
        return Response(
            "x" * 2000, mimetype="text/plain", headers={"Cache-Control": "no-transform"}
        )

    @app.get("/stream")
    def stream(input):
        size = int(input.query.get("n", "100"))
        return Response((b"line %d\n" % n for n in range(size)), mimetype="text/plain")

    @app.get("/etag")
    def etag():
        return Response("e" * 2000, mimetype="text/html", headers={"ETag": '"v1"'})

    @app.get("/empty")
    def empty():
        return None, 204

    if lint:
        app.use(LintMiddleware)
    app.add_gzip(**options)
    return app.test_client()


def gz(encoding: str = "gzip") -> dict[str, str]:
    return {"Accept-Encoding": encoding}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("gzip;q=0.001", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("gzip;q=0, *", False),
        ("*", True),
        ("*;q=0", False),
        ("identity", False),
        ("identity, deflate", False),
        ("br", False),
        ("", False),
        ("gzip;q=abc", False),
    ],
)
def test_accept_encoding_negotiation(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("text/html; charset=utf-8", True),
        ("text/css", True),
        ("application/problem+json", True),
        ("application/atom+xml", True),
        ("image/svg+xml", True),
        ("text/event-stream", False),
        ("image/png", False),
        ("application/octet-stream", False),
        ("", False),
    ],
)
def test_compressible_types(content_type: str, expected: bool) -> None:
    assert is_compressible(content_type) is expected


def test_big_json_is_compressed_with_vary_and_no_stale_length() -> None:
    client = make_client()
    response = client.get("/big", headers=gz())
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert "Content-Length" not in response.headers
    plain = client.get("/big").data
    assert len(response.data) < len(plain) / 3
    assert gzip.decompress(response.data) == plain


@pytest.mark.parametrize("header", ["identity", "gzip;q=0", "br", "*;q=0", None])
def test_not_compressed_when_the_client_does_not_accept_gzip(header) -> None:
    client = make_client()
    response = client.get("/big", headers=gz(header) if header else {})
    assert "Content-Encoding" not in response.headers
    assert response.headers["Vary"] == "Accept-Encoding"  # caches must still keep both
    assert response.json == BIG


def test_small_body_is_sent_as_is() -> None:
    response = make_client().get("/small", headers=gz())
    assert "Content-Encoding" not in response.headers
    assert response.data == b'{"ok":true}'


def test_minimum_size_is_configurable() -> None:
    response = make_client(minimum_size=5).get("/small", headers=gz())
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.data) == b'{"ok":true}'


@pytest.mark.parametrize("path", ["/png", "/encoded", "/no-transform"])
def test_incompressible_or_already_encoded_responses_are_untouched(path: str) -> None:
    client = make_client()
    response = client.get(path, headers=gz())
    assert response.data == client.get(path).data
    if path == "/encoded":
        assert response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(response.data) == b"x" * 2000  # not compressed twice
    else:
        assert "Content-Encoding" not in response.headers
    assert "Vary" not in response.headers


def test_head_and_204_are_not_compressed() -> None:
    client = make_client(lint=False)
    head = client.head("/big", headers=gz())
    assert "Content-Encoding" not in head.headers
    assert head.data == b""
    empty = client.get("/empty", headers=gz())
    assert empty.status_code == 204
    assert "Content-Encoding" not in empty.headers


def test_strong_etag_is_weakened_when_compressed() -> None:
    client = make_client()
    assert client.get("/etag", headers=gz()).headers["ETag"] == 'W/"v1"'
    assert client.get("/etag").headers["ETag"] == '"v1"'


def test_streamed_body_is_compressed_when_it_reaches_minimum_size() -> None:
    client = make_client()
    response = client.get("/stream?n=1000", headers=gz())
    assert response.headers["Content-Encoding"] == "gzip"
    expected = b"".join(b"line %d\n" % n for n in range(1000))
    assert gzip.decompress(response.data) == expected


def test_short_stream_is_sent_as_is_with_its_length() -> None:
    response = make_client().get("/stream?n=3", headers=gz())
    assert "Content-Encoding" not in response.headers
    assert response.data == b"line 0\nline 1\nline 2\n"
    assert response.headers["Content-Length"] == str(len(response.data))


def test_unbounded_stream_is_compressed_chunk_by_chunk_without_buffering() -> None:
    pulled = 0

    def endless():
        nonlocal pulled
        for n in itertools.count():
            pulled += 1
            yield b"%08d " % n + os.urandom(1200).hex().encode()  # ~2.4 kB of fresh text

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return endless()

    headers_sent = []
    wrapped = GZipMiddleware(app)
    body = wrapped(
        {"REQUEST_METHOD": "GET", "HTTP_ACCEPT_ENCODING": "gzip"},
        lambda status, headers, exc_info=None: headers_sent.append(headers),
    )
    decompressor = zlib.decompressobj(31)
    out = b""
    for chunk in itertools.islice(body, 5):
        out += decompressor.decompress(chunk)
    body.close()
    assert ("Content-Encoding", "gzip") in headers_sent[0]
    assert out.startswith(b"00000000 ")
    # an endless body yet output came out (a buffering gzip would never return), and
    # only a bounded number of chunks was pulled for it
    assert pulled < 500


def test_lazy_start_response_is_supported() -> None:
    def app(environ, start_response):
        def body():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"y" * 1000

        return body()

    sent = []
    body = GZipMiddleware(app)(
        {"REQUEST_METHOD": "GET", "HTTP_ACCEPT_ENCODING": "gzip"},
        lambda status, headers, exc_info=None: sent.append((status, headers)),
    )
    data = b"".join(body)
    assert sent[0][0] == "200 OK"
    assert gzip.decompress(data) == b"y" * 1000


def test_bad_settings_fail_at_registration() -> None:
    with pytest.raises(ValueError, match=r"minimum_size must be a non-negative int of bytes"):
        App().add_gzip(minimum_size=-1)
    with pytest.raises(ValueError, match=r"compresslevel must be 1 to 9, got 0"):
        App().add_gzip(compresslevel=0)


def test_error_start_response_before_any_byte_replaces_the_held_headers() -> None:
    # PEP 3333: an app may call start_response again, with exc_info, until the first
    # byte went out; here it does so while its body is being read ahead.
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            try:
                raise RuntimeError("failed before the body")
            except RuntimeError:
                headers = [("Content-Type", "image/png")]
                start_response("500 Internal Server Error", headers, sys.exc_info())
            yield b"\x89PNG" * 300

        return body()

    sent = []
    body = GZipMiddleware(app)(
        {"REQUEST_METHOD": "GET", "HTTP_ACCEPT_ENCODING": "gzip"},
        lambda status, headers, exc_info=None: sent.append((status, headers)),
    )
    assert b"".join(body) == b"\x89PNG" * 300
    assert sent == [("500 Internal Server Error", [("Content-Type", "image/png")])]
