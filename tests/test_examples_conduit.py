"""examples/conduit.py: nested routers, Token auth, and one error envelope everywhere."""

from __future__ import annotations

import importlib

import pytest
from openapi_spec_validator import validate as validate_spec


@pytest.fixture
def conduit():
    import examples.conduit

    return importlib.reload(examples.conduit)  # a fresh in-memory store per test


@pytest.fixture
def client(conduit):
    return conduit.app.test_client()


def register(client, name="ada"):
    user = {"username": name, "email": f"{name}@example.com", "password": "secret1"}
    response = client.post("/api/users", json={"user": user})
    assert response.status_code == 201
    return {"Authorization": f"Token {response.json['user']['token']}"}


def test_nested_routers_serve_an_article_and_its_comments(client):
    auth = register(client)
    article = {"title": "Hello World", "description": "d", "body": "b"}
    created = client.post("/api/articles", json={"article": article}, headers=auth)
    assert created.status_code == 201
    assert created.json["article"]["slug"] == "hello-world"

    comment = client.post(
        "/api/articles/hello-world/comments", json={"comment": {"body": "hi"}}, headers=auth
    )
    assert comment.status_code == 201
    listed = client.get("/api/articles/hello-world/comments").json
    assert listed == {"comments": [{"id": 1, "author": "ada", "body": "hi"}]}
    assert client.get("/api/user", headers=auth).json["user"]["username"] == "ada"


def test_404_405_422_401_and_403_share_one_envelope(client):
    auth = register(client)
    client.post(
        "/api/articles",
        json={"article": {"title": "T", "description": "d", "body": "b"}},
        headers=auth,
    )
    other = register(client, "bob")

    unknown = client.get("/api/nowhere")
    assert (unknown.status_code, unknown.json) == (404, {"errors": {"body": ["Not Found"]}})
    missing = client.get("/api/articles/none")
    assert (missing.status_code, missing.json) == (404, {"errors": {"body": ["No article 'none'"]}})

    wrong_method = client.put("/api/articles/t")
    assert wrong_method.status_code == 405
    assert wrong_method.json == {"errors": {"body": ["Method Not Allowed"]}}
    assert wrong_method.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS"

    invalid = client.post("/api/users", json={"user": {"username": "", "email": "x"}})
    assert invalid.status_code == 422
    assert invalid.json == {
        "errors": {
            "user.username": ["Must not be empty."],
            "user.email": ["Not a valid email address."],
            "user.password": ["Missing data for required field."],
        }
    }

    anonymous = client.get("/api/user")
    assert (anonymous.status_code, anonymous.json) == (
        401,
        {"errors": {"body": ["Not authenticated"]}},
    )
    assert anonymous.headers["WWW-Authenticate"] == "Token"
    forged = client.get("/api/user", headers={"Authorization": "Token forged"})
    assert forged.json == {"errors": {"body": ["Invalid token"]}}

    not_author = client.delete("/api/articles/t", headers=other)
    assert not_author.status_code == 403
    assert not_author.json == {"errors": {"body": ["Only the author may delete an article"]}}


def test_the_document_declares_the_envelope_once_for_every_error(client):
    document = client.get("/openapi.json").json
    validate_spec(document)
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    post = document["paths"]["/api/articles/{slug}/comments"]["post"]
    errors = {status: r for status, r in post["responses"].items() if status.startswith("4")}
    assert {"401", "404", "422"} <= set(errors)
    for status, response in errors.items():
        assert response["content"]["application/json"]["schema"] == envelope, status
    assert post["tags"] == ["conduit"]
    assert post["security"] == [{"HTTPBearer": []}]
    scheme = document["components"]["securitySchemes"]["HTTPBearer"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert not {"HTTPError", "HTTPValidationError"} & set(document["components"]["schemas"])
