"""The raw requests of the hostile-input matrix.

Each case is (id, the bytes on the wire, the expected status, bytes that must not be in
the response). The server runs with ``--limit-request-line 8190`` (gunicorn's maximum),
so a 5000-digit number in a path or query reaches the app.
"""

from __future__ import annotations

BIG = b"9" * 5000


def request(
    target: bytes,
    body: bytes = b"",
    *,
    method: bytes = b"POST",
    headers: tuple[bytes, ...] = (),
    length: bool = True,
    content_type: bytes = b"application/json",
) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    if body or method == b"POST":
        lines.append(b"Content-Type: " + content_type)
    if length and (body or method == b"POST"):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines += headers
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(target: bytes, framing: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        request(
            target,
            method=b"POST",
            length=False,
            content_type=content_type,
            headers=(b"Transfer-Encoding: chunked",),
        )
        + framing
    )


def truncated(target: bytes, sent: bytes, declared: int, content_type: bytes) -> bytes:
    head = request(target, sent, content_type=content_type, length=False)
    return head.replace(
        b"\r\n\r\n", b"\r\nContent-Length: " + str(declared).encode() + b"\r\n\r\n", 1
    )


CASES: list[tuple[str, bytes, int, bytes | None]] = [
    # Content-Length
    (
        "content-length-not-a-number",
        request(b"/echo", headers=(b"Content-Length: ten",), length=False),
        400,
        None,
    ),
    (
        "content-length-negative",
        request(b"/echo", headers=(b"Content-Length: -1",), length=False),
        400,
        None,
    ),
    (
        "content-length-twice-different",
        request(b"/echo", b'{"qty": 1}', headers=(b"Content-Length: 3",)),
        400,
        None,
    ),
    (
        "content-length-and-chunked",
        request(b"/echo", b'{"qty": 1}', headers=(b"Transfer-Encoding: chunked",)),
        400,
        None,
    ),
    (
        "content-length-over-the-body-limit",
        request(b"/echo", headers=(b"Content-Length: 2000000",), length=False),
        413,
        None,
    ),
    # chunked framing
    ("chunk-size-not-hex", chunked(b"/echo", b"zz\r\n{}\r\n0\r\n\r\n"), 400, None),
    ("chunk-longer-than-its-size", chunked(b"/echo", b'2\r\n{"qty": 1}\r\n0\r\n\r\n'), 400, None),
    ("chunked-body-cut-short", chunked(b"/echo", b'20\r\n{"qty": 1'), 400, None),
    ("chunked-without-last-chunk", chunked(b"/echo", b'a\r\n{"qty": 1}\r\n'), 400, None),
    (
        "chunked-form-bad-size",
        chunked(b"/echo", b"zz\r\nqty=1\r\n0\r\n\r\n", b"application/x-www-form-urlencoded"),
        400,
        None,
    ),
    ("chunked-well-formed", chunked(b"/echo", b'a\r\n{"qty": 1}\r\n0\r\n\r\n'), 200, None),
    # truncated bodies
    ("json-cut-short", truncated(b"/echo", b'{"qty": 10', 12, b"application/json"), 400, None),
    (
        "json-complete-prefix",
        truncated(b"/echo", b'{"qty": 10}', 40, b"application/json"),
        400,
        None,
    ),
    (
        "form-qty-1000-cut-to-qty-10",
        truncated(b"/echo", b"qty=10", 8, b"application/x-www-form-urlencoded"),
        400,
        None,
    ),
    # invalid UTF-8
    ("path-invalid-utf8-escaped", request(b"/items/%ff", method=b"GET"), 404, None),
    # gunicorn refuses raw non-ASCII bytes in the request line itself
    ("path-invalid-utf8-raw", request(b"/items/\xff\xfe", method=b"GET"), 400, None),
    ("query-invalid-utf8", request(b"/search?qty=%ff", method=b"GET"), 422, None),
    ("body-invalid-utf8", request(b"/echo", b'{"qty": "\xff"}'), 422, None),
    (
        "form-invalid-utf8",
        request(b"/echo", b"qty=%ff", content_type=b"application/x-www-form-urlencoded"),
        422,
        None,
    ),
    # numbers
    ("json-integer-5000-digits", request(b"/echo", b'{"qty": ' + BIG + b"}"), 422, None),
    ("query-integer-5000-digits", request(b"/search?qty=" + BIG, method=b"GET"), 422, None),
    ("path-integer-5000-digits", request(b"/items/" + BIG, method=b"GET"), 404, None),
    # Three converters in one segment, 4000 '-' without the '.json': werkzeug's regex for
    # the segment backtracked for about 95 s; it must be answered within the 10 s timeout.
    (
        "path-in-segment-converters-4000",
        request(b"/reports/" + b"-" * 4000, method=b"GET"),
        404,
        None,
    ),
    (
        "path-in-segment-converters-4000-other-method",
        request(b"/reports/" + b"-" * 4000 + b".json", method=b"DELETE"),
        405,
        None,
    ),
    ("request-line-over-the-limit", request(b"/items/" + BIG * 2, method=b"GET"), 414, None),
    ("json-nan", request(b"/echo-raw", b'{"qty": NaN}'), 422, None),
    ("json-infinity", request(b"/echo-raw", b"[Infinity, -Infinity]"), 422, None),
    ("json-float-overflow", request(b"/echo-raw", b"[1e999]"), 422, None),
    # structure
    ("json-duplicate-keys-last-wins", request(b"/echo", b'{"qty": 1, "qty": 2}'), 200, None),
    ("json-nested-10000-deep", request(b"/echo-raw", b"[" * 10000 + b"]" * 10000), 422, None),
    # The depth scan once retried a failing string match from every quote: minutes for
    # this body, which must be answered well inside the client's 10 s timeout.
    (
        "json-depth-scan-unterminated-string-1mib",
        request(b"/echo-raw", b"[" * 300 + b'"' + b'\\"' * 500_000),
        422,
        None,
    ),
    ("json-lone-surrogate", request(b"/echo-raw", b'["\\ud800"]'), 422, None),
    ("json-not-an-object", request(b"/echo", b"[1, 2]"), 422, None),
    ("json-malformed", request(b"/echo", b'{"qty": '), 422, None),
    ("unsupported-content-type", request(b"/echo", b"qty", content_type=b"text/plain"), 415, None),
    # headers
    (
        "request-header-with-bare-cr",
        request(b"/health", method=b"GET", headers=(b"X-A: a\rb",)),
        400,
        None,
    ),
    (
        "request-header-name-with-space",
        request(b"/health", method=b"GET", headers=(b"X A: b",)),
        400,
        None,
    ),
    (
        "response-header-from-input-with-crlf",
        request(b"/header?v=a%0d%0aSet-Cookie:%20x=1", method=b"GET"),
        500,
        b"Set-Cookie",
    ),
    ("response-header-from-input-with-nul", request(b"/header?v=a%00b", method=b"GET"), 500, None),
    # targets and hosts
    ("absolute-form-target", request(b"http://evil.example/health", method=b"GET"), 200, None),
    (
        "x-forwarded-host-without-proxyfix",
        request(b"/whoami", method=b"GET", headers=(b"X-Forwarded-Host: evil.example",)),
        200,
        b"evil.example",
    ),
    ("unknown-method", request(b"/health", method=b"BREW"), 405, None),
    ("path-traversal", request(b"/../../etc/passwd", method=b"GET"), 404, None),
]
