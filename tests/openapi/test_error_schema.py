"""One error envelope, declared once: every 401/404/405/422 uses it, and /openapi.json says so."""

from __future__ import annotations

from marshmallow import fields
from openapi_spec_validator import validate as validate_spec

from funapi_sync import App, HTTPException, Schema, ValidationError
from funapi_sync.security import HTTPBearer

Envelope = Schema.define(
    "ErrorEnvelope",
    errors=fields.Dict(keys=fields.String(), values=fields.List(fields.String()), required=True),
)
Article = Schema.define("Article", title=fields.String(required=True))


def make_app() -> App:
    """A RealWorld-style API: `{"errors": {"body": [...]}}` for every error."""
    app = App(title="Conduit")

    @app.exception_handler(HTTPException, schema=Envelope)
    def http_error(req, exc):
        return {"errors": {"body": [str(exc.detail)]}}, exc.status_code, exc.headers

    @app.exception_handler(ValidationError, schema=Envelope)
    def invalid(req, exc):
        body = {".".join(map(str, error["loc"][1:])): [error["msg"]] for error in exc.errors}
        return {"errors": body}, 422

    @app.post(
        "/articles/<slug>/comments",
        body=Article,
        depends={"token": HTTPBearer(scheme="Token")},
        responses={403: "Not the author"},
    )
    def comment(input, *, token):
        return {"slug": input.path["slug"], **input.body}, 201

    return app


def test_every_error_status_answers_with_the_one_envelope():
    client = make_app().test_client()
    auth = {"Authorization": "Token jwt.here"}

    missing = client.get("/nowhere")
    assert (missing.status_code, missing.json) == (404, {"errors": {"body": ["Not Found"]}})

    wrong = client.delete("/articles/a/comments", headers=auth)
    assert wrong.status_code == 405
    assert wrong.json == {"errors": {"body": ["Method Not Allowed"]}}
    assert wrong.headers["Allow"] == "OPTIONS, POST"

    anonymous = client.post("/articles/a/comments", json={"title": "x"})
    assert anonymous.status_code == 401
    assert anonymous.json == {"errors": {"body": ["Not authenticated"]}}
    assert anonymous.headers["WWW-Authenticate"] == "Token"

    invalid = client.post("/articles/a/comments", json={}, headers=auth)
    assert invalid.status_code == 422
    assert invalid.json == {"errors": {"title": ["Missing data for required field."]}}

    ok = client.post("/articles/a/comments", json={"title": "x"}, headers=auth)
    assert (ok.status_code, ok.json) == (201, {"slug": "a", "title": "x"})


def test_the_document_gives_every_error_status_the_declared_envelope():
    client = make_app().test_client()
    document = client.get("/openapi.json").json
    validate_spec(document)

    responses = document["paths"]["/articles/{slug}/comments"]["post"]["responses"]
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    errors = {status: r for status, r in responses.items() if status.startswith("4")}
    assert sorted(errors) == ["401", "403", "404", "413", "415", "422"]
    for status, response in errors.items():
        assert response["content"]["application/json"]["schema"] == envelope, status
    assert errors["403"]["description"] == "Not the author"
    schemas = document["components"]["schemas"]
    assert "ErrorEnvelope" in schemas
    # The default shapes are gone, since no response refers to them any more.
    assert not {"HTTPError", "HTTPValidationError", "ValidationError"} & set(schemas)


def test_without_a_declared_schema_the_default_shapes_stay():
    app = App()

    @app.exception_handler(HTTPException)
    def http_error(req, exc):
        return {"message": exc.detail}, exc.status_code

    @app.get("/items/<int:item_id>")
    def item(input):
        return {}

    document = app.test_client().get("/openapi.json").json
    validate_spec(document)
    responses = document["paths"]["/items/{item_id}"]["get"]["responses"]
    assert responses["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPError"
    }


def test_a_catch_all_schema_documents_both_kinds_of_error():
    app = App()

    @app.exception_handler(Exception, schema=Envelope)
    def anything(req, exc):
        return {"errors": {"body": ["nope"]}}, 400

    @app.post("/articles", body=Article)
    def create(input):
        return input.body

    document = app.test_client().get("/openapi.json").json
    validate_spec(document)
    responses = document["paths"]["/articles"]["post"]["responses"]
    for status in ("413", "415", "422"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorEnvelope"
        }
