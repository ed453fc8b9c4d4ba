"""CORS: preflights answered by the middleware, simple requests decorated, bad settings refused."""

from __future__ import annotations

import re

import pytest
from werkzeug.middleware.lint import LintMiddleware

from funapi_sync import App
from funapi_sync.middleware.cors import CORSMiddleware

ORIGIN = "https://app.example.com"


def make_client(lint=True, **options):
    app = App()
    seen: list[str] = []

    @app.route("/items", methods=["GET", "POST", "DELETE"])
    def items(input, req):
        seen.append(req.method)
        return {"ok": True}, 200, {"X-Total": "3"}

    if lint:
        app.use(LintMiddleware)
    app.add_cors(**options)
    return app.test_client(), seen


def preflight(client, origin=ORIGIN, method="POST", headers=None):
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        request_headers["Access-Control-Request-Headers"] = headers
    return client.options("/items", headers=request_headers)


def test_preflight_is_answered_by_the_middleware_with_204_and_the_policy() -> None:
    client, seen = make_client(
        allow_origins=[ORIGIN], allow_methods=["GET", "POST"], allow_headers=["X-Token"]
    )
    response = preflight(client, headers="Content-Type, X-Token")
    assert response.status_code == 204
    assert response.data == b""
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert response.headers["Access-Control-Allow-Headers"] == "content-type, x-token"
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert response.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert seen == []  # the app never saw the preflight


@pytest.mark.parametrize(
    ("origin", "method", "headers", "detail"),
    [
        ("https://evil.example", "POST", None, "Disallowed CORS origin"),
        (ORIGIN, "DELETE", None, "Disallowed CORS method"),
        (ORIGIN, "POST", "X-Other", "Disallowed CORS headers"),
        ("https://evil.example", "PUT", "X-Other", "Disallowed CORS origin, method, headers"),
    ],
)
def test_disallowed_preflight_is_a_400_naming_what_failed(origin, method, headers, detail) -> None:
    client, seen = make_client(allow_origins=[ORIGIN], allow_methods=["GET", "POST"])
    response = preflight(client, origin, method, headers)
    assert response.status_code == 400
    assert response.json == {"detail": detail}
    assert "Access-Control-Allow-Origin" not in response.headers
    assert seen == []


def test_simple_request_from_an_allowed_origin_gets_the_headers() -> None:
    client, seen = make_client(
        allow_origins=[ORIGIN], expose_headers=["X-Total"], allow_credentials=True
    )
    response = client.get("/items", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.json == {"ok": True}
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Expose-Headers"] == "X-Total"
    assert response.headers["Vary"] == "Origin"
    assert seen == ["GET"]


def test_simple_request_from_another_origin_runs_but_gets_no_allow_origin() -> None:
    # NOTE: CORS is enforced by the browser; the server only withholds the permission.
    client, seen = make_client(allow_origins=[ORIGIN], allow_credentials=True)
    response = client.get("/items", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.headers["Vary"] == "Origin"
    assert seen == ["GET"]


def test_request_without_origin_still_varies_on_origin_for_caches() -> None:
    client, _ = make_client(allow_origins=[ORIGIN])
    response = client.get("/items")
    assert response.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_any_origin_answers_star_and_does_not_vary() -> None:
    client, _ = make_client(allow_origins="*", allow_methods="*", allow_headers="*")
    response = client.get("/items", headers={"Origin": "https://anyone.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in response.headers
    response = preflight(client, "https://anyone.example", "PATCH", "X-Anything, Authorization")
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Headers"] == "x-anything, authorization"
    assert response.headers["Access-Control-Allow-Methods"] == (
        "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
    )
    assert "Vary" not in response.headers


def test_regex_origins_match_the_whole_origin() -> None:
    pattern = re.compile(r"https://[a-z0-9-]+\.example\.com")
    client, _ = make_client(allow_origins=pattern)
    ok = client.get("/items", headers={"Origin": "https://shop.example.com"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    for origin in [
        "https://shop.example.com.evil.net",
        "http://shop.example.com",
        "https://example.com",
    ]:
        refused = client.get("/items", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in refused.headers, origin


def test_a_list_may_mix_exact_origins_and_regexes() -> None:
    client, _ = make_client(allow_origins=[ORIGIN, re.compile(r"http://localhost:\d+")])
    for origin in [ORIGIN, "http://localhost:5173"]:
        assert (
            client.get("/items", headers={"Origin": origin}).headers["Access-Control-Allow-Origin"]
            == origin
        )


def test_credentials_and_max_age_in_preflight() -> None:
    client, _ = make_client(allow_origins=[ORIGIN], allow_credentials=True, max_age=60)
    response = preflight(client, method="GET")
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Max-Age"] == "60"
    assert "Access-Control-Allow-Headers" not in response.headers


def test_safelisted_headers_are_always_allowed() -> None:
    client, _ = make_client(allow_origins=[ORIGIN], allow_methods=["POST"])
    response = preflight(client, headers="Accept, Content-Type, Accept-Language, Content-Language")
    assert response.status_code == 204


def test_options_without_request_method_is_not_a_preflight() -> None:
    # NOTE: no LintMiddleware: it wants "Content-Length: 0" on a 204, which RFC 9110
    # §8.6 forbids, and the app's own OPTIONS answer rightly sends none.
    client, _ = make_client(lint=False, allow_origins=[ORIGIN])
    response = client.options("/items", headers={"Origin": ORIGIN})
    assert response.status_code == 204  # the app's own OPTIONS answer, with Allow
    assert "GET" in response.headers["Allow"]
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_existing_vary_is_merged_not_replaced() -> None:
    app = App()

    @app.get("/v")
    def v():
        return {}, 200, {"Vary": "Accept-Language"}

    app.add_cors(allow_origins=[ORIGIN])
    response = app.test_client().get("/v", headers={"Origin": ORIGIN})
    assert response.headers.getlist("Vary") == ["Accept-Language, Origin"]


def test_expose_headers_star_without_credentials() -> None:
    client, _ = make_client(allow_origins=[ORIGIN], expose_headers="*")
    assert (
        client.get("/items", headers={"Origin": ORIGIN}).headers["Access-Control-Expose-Headers"]
        == "*"
    )


def test_usable_with_app_use_directly() -> None:
    app = App()

    @app.get("/x")
    def x():
        return {}

    app.use(CORSMiddleware, allow_origins=[ORIGIN])
    response = app.test_client().get("/x", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"allow_origins": "*", "allow_credentials": True},
            ValueError,
            r"would let every website send requests with the user's cookies; list the trusted",
        ),
        ({}, ValueError, r"add_cors\(\) allows no origin; pass allow_origins="),
        (
            {"allow_origins": ["https://*.example.com"]},
            ValueError,
            r"has a wildcard, but entries match exactly; use allow_origins='\*' alone, or a"
            r" compiled regex",
        ),
        (
            {"allow_origins": ["https://a.example/"]},
            ValueError,
            r"ends with '/', but a browser's Origin header never does; use 'https://a.example'",
        ),
        (
            {"allow_origins": ORIGIN},
            TypeError,
            r"is a single string; pass a list \(allow_origins=\['https://app.example.com'\]\)",
        ),
        ({"allow_origins": [42]}, TypeError, r"allow_origins holds 42; use strings or compiled"),
        (
            {"allow_origins": [ORIGIN], "allow_methods": "GET"},
            TypeError,
            r"allow_methods='GET' is a single string; pass a list, or '\*' for all",
        ),
        (
            {"allow_origins": [ORIGIN], "expose_headers": "*", "allow_credentials": True},
            ValueError,
            r"expose_headers='\*' means no header at all to a browser when credentials",
        ),
        (
            {"allow_origins": [ORIGIN], "max_age": -1},
            ValueError,
            r"max_age must be a non-negative int of seconds, got -1",
        ),
    ],
)
def test_bad_settings_fail_at_registration_with_the_fix(options, error, message) -> None:
    app = App()
    with pytest.raises(error, match=message):
        app.add_cors(**options)


def handler_cors_client(**options):
    app = App()

    @app.get("/open")
    def wide_open():
        # A handler that tries to set its own, wider, policy.
        headers = {
            "Access-Control-Allow-Origin": "*",
            "access-control-allow-credentials": "true",
            "Access-Control-Expose-Headers": "X-Secret",
            "X-Secret": "s",
        }
        return {"ok": True}, 200, headers

    app.use(LintMiddleware)
    app.add_cors(**options)
    return app.test_client()


def cors_headers(response) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in response.headers.items():
        if name.lower().startswith("access-control-"):
            found.setdefault(name.lower(), []).append(value)
    return found


@pytest.mark.parametrize(
    ("options", "origin", "expected"),
    [
        ({"allow_origins": [ORIGIN], "allow_credentials": True}, "https://evil.example", {}),
        ({"allow_origins": [ORIGIN]}, None, {}),
        (
            {"allow_origins": [ORIGIN]},
            ORIGIN,
            {"access-control-allow-origin": [ORIGIN]},
        ),
        (
            {"allow_origins": [ORIGIN], "allow_credentials": True},
            ORIGIN,
            {
                "access-control-allow-origin": [ORIGIN],
                "access-control-allow-credentials": ["true"],
            },
        ),
        ({"allow_origins": "*"}, "https://evil.example", {"access-control-allow-origin": ["*"]}),
        ({"allow_origins": "*"}, None, {}),
    ],
    ids=[
        "refused-origin",
        "no-origin",
        "allowed-origin",
        "allowed-origin-with-credentials",
        "any-origin",
        "any-origin-no-origin-header",
    ],
)
def test_the_middleware_owns_the_cors_headers_whatever_the_handler_sets(
    options, origin, expected
) -> None:
    client = handler_cors_client(**options)

    response = client.get("/open", headers={"Origin": origin} if origin else {})

    assert response.status_code == 200
    assert cors_headers(response) == expected
    assert response.headers["X-Secret"] == "s"


@pytest.mark.parametrize("spelling", [["*"], ("*",), ["*", ORIGIN]], ids=["list", "tuple", "mixed"])
def test_a_list_holding_star_means_any_origin_as_in_starlette(spelling) -> None:
    client, seen = make_client(allow_origins=spelling, allow_methods=["GET", "POST"])

    simple = client.get("/items", headers={"Origin": "https://anywhere.example"})
    allowed = preflight(client, origin="https://anywhere.example")

    assert simple.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in simple.headers
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "*"
    assert seen == ["GET"]


def test_a_list_holding_star_with_credentials_is_refused_like_the_string() -> None:
    with pytest.raises(ValueError, match=r"add_cors\(allow_origins=\['\*'\], allow_credentials"):
        App().add_cors(allow_origins=["*"], allow_credentials=True)
