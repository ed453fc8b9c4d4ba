"""Background tasks still run behind every built-in middleware and werkzeug's ProxyFix.

Each middleware must hand the server an iterable whose ``close()`` reaches the app's own
(PEP 3333): that close() is what submits the request's background tasks. The test client
closes the iterable it gets like a server does, and gunicorn is the real thing. A broken
middleware (one that drops close()) is the control: with it, the task never runs.
"""

from __future__ import annotations

import gzip
import http.client
import importlib.util
import json
import time
from pathlib import Path

import pytest
from _helpers import run_gunicorn

pytestmark = pytest.mark.server


#: The app is the in-process tests' own (tests/middleware/close_chain_app.py), served here.
HERE = Path(__file__).resolve().parents[2] / "middleware"
_spec = importlib.util.spec_from_file_location("close_chain_app", HERE / "close_chain_app.py")
assert _spec is not None
assert _spec.loader is not None
close_chain_app = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(close_chain_app)
HEADERS, STACKS = close_chain_app.HEADERS, close_chain_app.STACKS


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


@pytest.mark.server
@pytest.mark.timeout(60)
def test_tasks_run_behind_every_stack_under_gunicorn(tmp_path: Path) -> None:
    log = tmp_path / "tasks.log"
    expected: set[str] = set()
    env = {"CLOSE_CHAIN_LOG": str(log)}
    with run_gunicorn("close_chain_app:app", tmp_path=tmp_path, env=env, cwd=HERE) as server:
        for stack in sorted(STACKS):
            for kind in ("big", "stream"):
                token = f"{kind}-{stack}"
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                try:
                    connection.request("GET", f"/{stack}/{kind}/{token}", headers=HEADERS)
                    response = connection.getresponse()
                    data = body_of(response.read(), response.headers)
                finally:
                    connection.close()
                if kind == "big":
                    assert json.loads(data)["token"] == token
                    remote = "203.0.113.7" if stack in ("proxy_fix", "all") else "127.0.0.1"
                    check_active(stack, response.status, response.headers, remote)
                    expected.add(f"{stack} big {token} {remote}")
                else:
                    assert data.startswith(b"chunk 0 ")
                    expected.add(f"{stack} stream {token}")
        deadline = time.monotonic() + 15
        lines: set[str] = set()
        while time.monotonic() < deadline:
            lines = set(log.read_text().splitlines()) if log.exists() else set()
            if lines >= expected:
                break
            time.sleep(0.02)
        assert lines == expected, f"missing {expected - lines}\n{server.log()}"
