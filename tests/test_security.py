"""Security schemes read credentials or answer 401, and put themselves in /openapi.json."""

from __future__ import annotations

import base64
import io
import secrets

import pytest
from openapi_spec_validator import validate as validate_spec

from funapi_sync import App, Depends, HTTPException, Router
from funapi_sync.security import (
    APIKeyCookie,
    APIKeyHeader,
    APIKeyQuery,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def document(app: App) -> dict:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    validate_spec(response.json)
    return response.json


# -- HTTPBearer -----------------------------------------------------------------------


def test_bearer_returns_the_token(app, client):
    @app.get("/me", depends={"token": HTTPBearer()})
    def me(*, token):
        return {"token": token}

    response = client.get("/me", headers={"Authorization": "Bearer abc.def"})
    assert response.status_code == 200
    assert response.json == {"token": "abc.def"}
    # The scheme is case-insensitive (RFC 9110 §11.1).
    assert client.get("/me", headers={"Authorization": "bearer xyz"}).json == {"token": "xyz"}


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Not authenticated"),
        ({"Authorization": ""}, "Not authenticated"),
        ({"Authorization": "Bearer"}, "Invalid authentication credentials"),
        ({"Authorization": "Bearer   "}, "Invalid authentication credentials"),
        ({"Authorization": "Basic YTpi"}, "Invalid authentication credentials"),
        ({"Authorization": "Token abc"}, "Invalid authentication credentials"),
    ],
)
def test_bearer_without_a_token_is_a_401_with_a_bearer_challenge(app, client, headers, detail):
    ran = []

    @app.get("/me", depends={"token": HTTPBearer()})
    def me(*, token, background):
        background.add_task(ran.append, token)
        return {"token": token}

    response = client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json == {"detail": detail}
    assert ran == []


def test_auto_error_false_returns_none_for_anonymous_requests(app, client):
    @app.get("/greeting", depends={"token": HTTPBearer(auto_error=False)})
    def greeting(*, token):
        return {"signed_in": token is not None}

    assert client.get("/greeting").json == {"signed_in": False}
    assert client.get("/greeting", headers={"Authorization": "Basic x"}).json == {
        "signed_in": False
    }
    bearer = {"Authorization": "Bearer t"}
    assert client.get("/greeting", headers=bearer).json == {"signed_in": True}


# -- HTTPBasic ------------------------------------------------------------------------


def test_basic_returns_a_named_username_password_pair(app, client):
    @app.get("/whoami", depends={"credentials": HTTPBasic(realm="staff")})
    def whoami(*, credentials):
        _username, password = credentials
        assert isinstance(credentials, HTTPBasicCredentials)
        return {"username": credentials.username, "same": password == credentials.password}

    response = client.get("/whoami", headers=basic("grace", "pa:ss wörd"))
    assert response.status_code == 200
    assert response.json == {"username": "grace", "same": True}
    assert client.get("/whoami", headers=basic("", "")).json == {"username": "", "same": True}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic",
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Bearer abc",
    ],
)
def test_basic_without_valid_credentials_is_a_401_with_the_realm(app, client, authorization):
    @app.get("/whoami", depends={"credentials": HTTPBasic(realm='the "staff" area')})
    def whoami(*, credentials):
        return {}

    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/whoami", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="the \\"staff\\" area"'


def test_basic_checked_in_constant_time_by_a_dependency(app, client):
    security = HTTPBasic()

    def current_user(credentials=Depends(security)):
        good_user = secrets.compare_digest(credentials.username.encode(), b"admin")
        good_password = secrets.compare_digest(credentials.password.encode(), b"s3cret")
        if not (good_user and good_password):
            raise HTTPException(401, "Wrong username or password", {"WWW-Authenticate": "Basic"})
        return credentials.username

    @app.get("/admin", depends={"user": Depends(current_user)})
    def admin(*, user):
        return {"user": user}

    assert client.get("/admin", headers=basic("admin", "s3cret")).json == {"user": "admin"}
    wrong = client.get("/admin", headers=basic("admin", "guess"))
    assert wrong.status_code == 401
    assert wrong.json == {"detail": "Wrong username or password"}
    # The sub-dependency's scheme is documented on the route that uses it.
    operation = document(app)["paths"]["/admin"]["get"]
    assert operation["security"] == [{"HTTPBasic": []}]


# -- API keys -------------------------------------------------------------------------


def test_api_keys_are_read_from_a_header_the_query_or_a_cookie(app, client):
    @app.get(
        "/keys",
        depends={
            "header": APIKeyHeader(name="X-API-Key", auto_error=False),
            "query": APIKeyQuery(name="api_key", auto_error=False),
            "cookie": APIKeyCookie(name="session", auto_error=False),
        },
    )
    def keys(*, header, query, cookie):
        return {"header": header, "query": query, "cookie": cookie}

    client.set_cookie("session", "c-1")
    response = client.get("/keys?api_key=q-1", headers={"X-API-Key": "h-1"})
    assert response.json == {"header": "h-1", "query": "q-1", "cookie": "c-1"}


@pytest.mark.parametrize(
    "scheme",
    [APIKeyHeader(name="X-API-Key"), APIKeyQuery(name="api_key"), APIKeyCookie(name="session")],
    ids=["header", "query", "cookie"],
)
def test_a_missing_api_key_is_a_401_with_an_apikey_challenge(app, client, scheme):
    @app.get("/reports", depends={"key": scheme})
    def reports(*, key):
        return {}

    response = client.get("/reports?api_key=")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "APIKey"
    assert response.json == {"detail": "Not authenticated"}


def test_an_api_key_needs_a_name():
    with pytest.raises(TypeError, match=r"APIKeyHeader\(name=...\) must be the non-empty name"):
        APIKeyHeader(name="")


# -- OpenAPI --------------------------------------------------------------------------


def test_each_scheme_is_a_security_scheme_and_the_operation_requires_it(app):
    bearer = HTTPBearer(bearer_format="JWT", description="A token from /login")

    @app.get("/me", depends={"token": bearer})
    def me(*, token):
        return {}

    @app.get("/reports", depends={"key": APIKeyHeader(name="X-API-Key")})
    def reports(*, key):
        return {}

    @app.get("/public")
    def public():
        return {}

    spec = document(app)
    assert spec["components"]["securitySchemes"] == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A token from /login",
        },
        "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    me_op = spec["paths"]["/me"]["get"]
    assert me_op["security"] == [{"HTTPBearer": []}]
    assert me_op["responses"]["401"] == {
        "description": "Not authenticated",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}},
    }
    assert spec["paths"]["/reports"]["get"]["security"] == [{"APIKeyHeader": []}]
    assert "security" not in spec["paths"]["/public"]["get"]
    assert "401" not in spec["paths"]["/public"]["get"]["responses"]


def test_an_optional_scheme_documents_anonymous_access_too(app):
    @app.get("/greeting", depends={"token": HTTPBearer(auto_error=False)})
    def greeting(*, token):
        return {}

    operation = document(app)["paths"]["/greeting"]["get"]
    assert operation["security"] == [{"HTTPBearer": []}, {}]
    assert "401" not in operation["responses"]


def test_a_router_guard_documents_every_route_of_the_router(app):
    admin = Router("/admin", depends={"token": HTTPBearer()})

    @admin.get("/users")
    def users():
        return []

    @admin.delete("/users/<int:user_id>")
    def remove(input):
        return None, 204

    app.include_router(admin)
    paths = document(app)["paths"]
    assert paths["/admin/users"]["get"]["security"] == [{"HTTPBearer": []}]
    assert paths["/admin/users/{user_id}"]["delete"]["security"] == [{"HTTPBearer": []}]
    client = app.test_client()
    assert client.get("/admin/users").status_code == 401
    assert client.get("/admin/users", headers={"Authorization": "Bearer t"}).json == []


def test_a_registered_scheme_is_documented(app):
    app.register("token", HTTPBearer())

    @app.get("/me", depends=["token"])
    def me(*, token):
        return {"token": token}

    assert document(app)["paths"]["/me"]["get"]["security"] == [{"HTTPBearer": []}]
    response = app.test_client().get("/me", headers={"Authorization": "Bearer t"})
    assert response.json == {"token": "t"}


def test_two_schemes_of_one_class_get_two_names(app):
    @app.get("/a", depends={"key": APIKeyHeader(name="X-A-Key")})
    def a(*, key):
        return {}

    @app.get("/b", depends={"key": APIKeyHeader(name="X-B-Key")})
    def b(*, key):
        return {}

    @app.get("/c", depends={"key": APIKeyHeader(name="X-C-Key", scheme_name="partner")})
    def c(*, key):
        return {}

    spec = document(app)
    assert spec["components"]["securitySchemes"] == {
        "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-A-Key"},
        "APIKeyHeader2": {"type": "apiKey", "in": "header", "name": "X-B-Key"},
        "partner": {"type": "apiKey", "in": "header", "name": "X-C-Key"},
    }
    assert spec["paths"]["/b"]["get"]["security"] == [{"APIKeyHeader2": []}]


def test_an_overridden_scheme_stays_documented_and_the_override_answers(app):
    bearer = HTTPBearer()

    @app.get("/me", depends={"token": bearer})
    def me(*, token):
        return {"token": token}

    app.dependency_overrides[bearer] = lambda: "test-token"
    assert app.test_client().get("/me").json == {"token": "test-token"}
    assert document(app)["paths"]["/me"]["get"]["security"] == [{"HTTPBearer": []}]


# -- credentials come before the body ---------------------------------------------------


def test_missing_credentials_are_a_401_before_the_body_is_read(app, client):
    from marshmallow import fields

    from funapi_sync import File, Schema

    Upload = Schema.define("Upload", file=File(required=True), name=fields.String(required=True))
    bearer = HTTPBearer()
    checked = []

    def current_user(token=Depends(bearer)):
        checked.append(token)
        if not secrets.compare_digest(token, "good"):
            raise HTTPException(401, "Invalid token", {"WWW-Authenticate": "Bearer"})
        return "admin"

    @app.post("/uploads", body=Upload, depends={"user": Depends(current_user)})
    def upload(input, *, user):
        return {"user": user, "name": input.body["name"]}

    # An invalid body (no file, no name): still a 401 without credentials or with bad ones.
    assert client.post("/uploads", json={"bad": 1}).status_code == 401
    assert (
        client.post(
            "/uploads", json={"bad": 1}, headers={"Authorization": "Bearer bad"}
        ).status_code
        == 401
    )
    # With good credentials the body is read and validated.
    good = {"Authorization": "Bearer good"}
    assert client.post("/uploads", json={"bad": 1}, headers=good).status_code == 422
    response = client.post(
        "/uploads", data={"file": (io.BytesIO(b"x"), "x.txt"), "name": "n"}, headers=good
    )
    assert response.json == {"user": "admin", "name": "n"}
    assert checked == ["bad", "good", "good"]


def test_a_guard_that_needs_the_input_runs_after_the_body(app, client):
    from marshmallow import fields

    from funapi_sync import Schema

    Body = Schema.define("Body", owner=fields.String(required=True))

    bearer = HTTPBearer()

    def owner_only(input, token=Depends(bearer)):
        if input.body["owner"] != token:
            raise HTTPException(403, "Not yours")

    @app.post("/things", body=Body, depends={"check": Depends(owner_only)})
    def things(input):
        return input.body

    # owner_only needs the validated body, so a bad body is the 422 it cannot check.
    assert client.post("/things", json={}, headers={"Authorization": "Bearer a"}).status_code == 422
    assert (
        client.post(
            "/things", json={"owner": "b"}, headers={"Authorization": "Bearer a"}
        ).status_code
        == 403
    )
    # The scheme alone is a guard still: no credentials is a 401 before the body.
    assert client.post("/things", json={}).status_code == 401


def test_a_failing_guard_still_cleans_up_what_it_made(app, client):
    events = []

    def session():
        events.append("open")
        try:
            yield "session"
        finally:
            events.append("close")

    bearer = HTTPBearer()

    def current_user(db=Depends(session), token=Depends(bearer)):
        raise HTTPException(401, "Unknown token", {"WWW-Authenticate": "Bearer"})

    @app.get("/me", depends={"user": Depends(current_user)})
    def me(*, user):
        return {}

    response = client.get("/me", headers={"Authorization": "Bearer x"})
    assert response.status_code == 401
    assert events == ["open", "close"]


@pytest.mark.parametrize(
    ("scheme", "headers"),
    [
        (HTTPBasic(auto_error=False), {}),
        (HTTPBasic(auto_error=False), {"Authorization": "Bearer x"}),
        (HTTPBasic(auto_error=False), {"Authorization": "Basic !!"}),
        (HTTPBasic(auto_error=False), {"Authorization": "Basic bm9jb2xvbg=="}),
        (APIKeyHeader(name="X-Key", auto_error=False), {}),
        (APIKeyQuery(name="key", auto_error=False), {}),
        (APIKeyCookie(name="key", auto_error=False), {}),
    ],
)
def test_every_scheme_returns_none_for_bad_credentials_with_auto_error_false(
    app, client, scheme, headers
):
    @app.get("/maybe", depends={"credentials": scheme})
    def maybe(*, credentials):
        return {"credentials": credentials}

    assert client.get("/maybe", headers=headers).json == {"credentials": None}


def test_a_scheme_name_must_be_a_non_empty_str():
    with pytest.raises(TypeError, match=r"HTTPBearer\(scheme_name=...\) must be a non-empty str"):
        HTTPBearer(scheme_name="")


# -- HTTPBearer(scheme=...) and names the app chose ------------------------------------------


def test_bearer_with_another_scheme_reads_it_and_challenges_with_it(app):
    @app.get("/me", depends={"token": HTTPBearer(scheme="Token")})
    def me(*, token):
        return {"token": token}

    client = app.test_client()
    assert client.get("/me", headers={"Authorization": "token abc"}).json == {"token": "abc"}
    for headers in ({}, {"Authorization": "Bearer abc"}):
        refused = client.get("/me", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Token"
    spec = document(app)
    assert spec["components"]["securitySchemes"] == {
        "HTTPBearer": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Send `Authorization: Token <token>`.",
        }
    }


def test_bearer_scheme_must_be_a_scheme_name():
    with pytest.raises(ValueError, match="authorization scheme name") as caught:
        HTTPBearer(scheme="Token abc")
    assert str(caught.value) == (
        "HTTPBearer(scheme=...) must be an authorization scheme name such as 'Bearer' or"
        " 'Token' (letters, digits and !#$%&'*+.^_`|~-), got 'Token abc'"
    )


def test_a_chosen_scheme_name_that_clashes_is_refused_at_registration(app):
    @app.get("/a", depends={"token": HTTPBearer(scheme="Token", scheme_name="Token")})
    def a(*, token):
        return {}

    with pytest.raises(ValueError, match="is named 'Token'") as caught:

        @app.get("/b", depends={"key": APIKeyHeader(name="X-Key", scheme_name="Token")})
        def b(*, key):
            return {}

    assert str(caught.value) == (
        "b() at GET /b: security scheme APIKeyHeader(scheme_name='Token') is named 'Token',"
        " which HTTPBearer(scheme_name='Token') already uses for another scheme in"
        " /openapi.json; give one of them another scheme_name=, or share one instance"
        " between the routes"
    )
    assert [e.path for e in app.routes.endpoints] == ["/a"]


def test_two_equal_schemes_may_share_a_chosen_name(app):
    for path in ("/a", "/b"):
        app.get(path, depends={"token": HTTPBearer(scheme_name="jwt")})(lambda *, token: {})
    assert list(document(app)["components"]["securitySchemes"]) == ["jwt"]
