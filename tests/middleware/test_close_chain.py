"""Background tasks still run behind every built-in middleware and werkzeug's ProxyFix.

Each middleware must hand the server an iterable whose ``close()`` reaches the app's own
(PEP 3333): that close() is what submits the request's background tasks. The test client
closes the iterable it gets like a server does, and gunicorn is the real thing. A broken
middleware (one that drops close()) is the control: with it, the task never runs.
"""

from __future__ import annotations

import gzip
import json

import pytest
from close_chain_app import HEADERS, STACKS, build
from werkzeug.middleware.lint import LintMiddleware


def body_of(data: bytes, headers) -> bytes:
    return gzip.decompress(data) if headers.get("Content-Encoding") == "gzip" else data


def check_active(stack: str, status: int, headers, remote: str | None) -> None:
    """The middleware did its job on this response, so the path under test was its real one."""
    assert status == 200
    if stack in ("cors", "all"):
        assert headers["Access-Control-Allow-Origin"] == HEADERS["Origin"]
    if stack in ("request_logger", "all"):
        assert headers["X-Request-ID"]
    if stack in ("gzip", "all"):
        assert headers["Content-Encoding"] == "gzip"
    if stack in ("proxy_fix", "all"):
        assert remote == "203.0.113.7"


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_tasks_run_behind_the_stack_with_the_test_client(stack: str) -> None:
    recorded: list[str] = []
    app = build(stack, recorded.append)
    app.wsgi_app = LintMiddleware(app.wsgi_app)  # outermost: checks what the server gets
    client = app.test_client()

    response = client.get("/big/t1", headers=HEADERS)
    payload = json.loads(body_of(response.data, response.headers))
    assert payload["token"] == "t1"
    remote = recorded[0].rsplit(" ", 1)[1] if recorded else None
    check_active(stack, response.status_code, response.headers, remote)

    streamed = client.get("/stream/t2", headers=HEADERS)
    assert body_of(streamed.data, streamed.headers) == b"".join(
        b"chunk %d " % n * 10 for n in range(50)
    )
    assert recorded == [f"{stack} big t1 {remote}", f"{stack} stream t2"]


def test_control_a_middleware_that_drops_close_loses_the_tasks() -> None:
    recorded: list[str] = []
    app = build("cors", recorded.append)

    def drops_close(wsgi_app):
        def middleware(environ, start_response):
            return iter(list(wsgi_app(environ, start_response)))  # body kept, close() lost

        return middleware

    app.use(drops_close)
    response = app.test_client().get("/big/t1", headers=HEADERS)
    assert response.status_code == 200
    assert recorded == []
