"""Trusted host: the allowed-hosts table, the 400 answer, and registration errors."""

from __future__ import annotations

import re

import pytest
from werkzeug.middleware.lint import LintMiddleware

from funapi_sync import App
from funapi_sync.middleware.trusted_host import TrustedHostMiddleware

ALLOWED = ["example.com", "*.example.org", re.compile(r"api-\d+\.internal"), "127.0.0.1", "[::1]"]


@pytest.fixture
def client_and_calls():
    app = App()
    calls: list[str] = []

    @app.get("/")
    def home():
        calls.append("home")
        return {"ok": True}

    app.use(LintMiddleware)
    app.add_trusted_host(allowed_hosts=ALLOWED)
    return app.test_client(), calls


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("example.com", True),
        ("EXAMPLE.com", True),
        ("example.com:8000", True),
        ("example.com.", True),
        ("www.example.com", False),
        ("example.com.evil.net", False),
        ("evilexample.com", False),
        ("example.org", False),
        ("shop.example.org", True),
        ("a.b.example.org:443", True),
        ("shopexample.org", False),
        ("api-12.internal", True),
        ("api-12.internal:9000", True),
        ("api-x.internal", False),
        ("xapi-12.internal", False),
        ("127.0.0.1", True),
        ("127.0.0.1:5000", True),
        ("[::1]:8000", True),
        ("[::2]", False),
        ("evil.com/.example.org", False),
        ("user@example.com", False),
        ("example.com:abc", False),
        ("", False),
    ],
)
def test_allowed_hosts_table(client_and_calls, host: str, allowed: bool) -> None:
    client, calls = client_and_calls
    response = client.get("/", headers={"Host": host})
    if allowed:
        assert response.status_code == 200, host
        assert calls == ["home"]
    else:
        assert response.status_code == 400, host
        assert response.json == {"detail": "Invalid host header"}
        assert response.headers["Content-Type"] == "application/json"
        assert calls == []


def test_star_allows_any_host() -> None:
    app = App()

    @app.get("/")
    def home():
        return {}

    app.add_trusted_host(allowed_hosts=["*"])
    assert app.test_client().get("/", headers={"Host": "anything.test"}).status_code == 200


def test_server_name_is_used_without_a_host_header() -> None:
    app = App()

    @app.get("/")
    def home():
        return {}

    app.use(TrustedHostMiddleware, allowed_hosts=["example.com"])
    ok = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "example.com"}, _start)
    assert b"".join(ok) == b"{}"
    refused = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "other"}, _start)
    assert b"".join(refused) == b'{"detail":"Invalid host header"}'


def _start(status, headers, exc_info=None):
    return lambda data: None


@pytest.mark.parametrize(
    ("hosts", "error", "message"),
    [
        ([], ValueError, r"got no allowed_hosts, so every request would be refused; pass"),
        ("example.com", TypeError, r"is a single value; pass a list, e.g. allowed_hosts=\["),
        (["exa*mple.com"], ValueError, r"'exa\*mple.com' is not a host name: use an exact name"),
        (["*example.com"], ValueError, r"'\*example.com' is not a host name"),
        (["example.com:8000"], ValueError, r"exact name without port \('example.com'\)"),
        ([None], TypeError, r"allowed_hosts holds None; use strings or compiled regexes"),
    ],
)
def test_bad_allowed_hosts_fail_at_registration(hosts, error, message) -> None:
    with pytest.raises(error, match=message):
        App().add_trusted_host(allowed_hosts=hosts)
