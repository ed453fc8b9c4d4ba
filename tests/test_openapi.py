"""The OpenAPI document says exactly what the request path validates; /docs works offline."""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path

import pytest
from marshmallow import fields, validate
from openapi_spec_validator import validate as validate_spec
from server import ROOT

from funapi_sync import App, Router, Schema
from funapi_sync.openapi import build_document

User = Schema.define(
    "User",
    name=fields.String(required=True, validate=Schema.filled),
    email=fields.Email(required=True),
    age=fields.Integer(validate=validate.Range(min=0)),
)


class SearchQuery(Schema):
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))
    tags = fields.List(fields.String())
    order = fields.String(required=True, validate=validate.OneOf(["asc", "desc"]))


def spec_of(app: App) -> dict:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    validate_spec(response.json)
    return response.json


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def error_response(description: str, component: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ref(component)}}}


def test_route_with_path_query_body_and_response_schemas(app):
    @app.put(
        "/teams/<int:team_id>/users/{name}",
        body=User,
        query=SearchQuery,
        response_schema=User,
        tags=["users"],
    )
    def replace_user(input):
        """Replace a user.

        The whole record is sent.
        """
        return input.body

    operation = spec_of(app)["paths"]["/teams/{team_id}/users/{name}"]["put"]
    assert operation == {
        "operationId": "replace_user_teams__team_id__users__name__put",
        "summary": "Replace a user.",
        "description": "Replace a user.\n\nThe whole record is sent.",
        "tags": ["users"],
        "parameters": [
            {
                "in": "path",
                "name": "team_id",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            },
            {
                "in": "path",
                "name": "name",
                "required": True,
                "schema": {"type": "string", "pattern": "^[^/]+$"},
            },
            {
                "in": "query",
                "name": "limit",
                "required": False,
                "schema": {"type": "integer", "default": 10, "minimum": 1, "maximum": 100},
            },
            {
                "in": "query",
                "name": "tags",
                "required": False,
                "schema": {"type": "array", "items": {"type": "string"}},
                "explode": True,
                "style": "form",
            },
            {
                "in": "query",
                "name": "order",
                "required": True,
                "schema": {"type": "string", "enum": ["asc", "desc"]},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ref("User")}},
        },
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": ref("User")}}},
            "404": error_response("Not Found", "HTTPError"),
            "413": error_response("Request body too large", "HTTPError"),
            "415": error_response("Unsupported content type", "HTTPError"),
            "422": error_response("Validation Error", "HTTPValidationError"),
        },
    }


def test_list_body_and_list_response_are_arrays_of_one_component(app):
    @app.post("/users/bulk", body=[User], response_schema=[User], status_code=201)
    def import_users(input):
        return input.body

    spec = spec_of(app)
    operation = spec["paths"]["/users/bulk"]["post"]
    array_of_users = {"type": "array", "items": ref("User")}
    assert operation["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": array_of_users}},
    }
    assert operation["responses"]["201"] == {
        "description": "Created",
        "content": {"application/json": {"schema": array_of_users}},
    }
    assert "parameters" not in operation
    assert "404" not in operation["responses"]
    assert spec["components"]["schemas"]["User"] == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "email": {"type": "string", "format": "email"},
            "age": {"type": "integer", "minimum": 0},
        },
        "required": ["email", "name"],
    }


def test_error_components_have_fastapis_validation_shape(app):
    @app.post("/users", body=User)
    def create(input):
        return input.body

    schemas = spec_of(app)["components"]["schemas"]
    assert schemas["HTTPValidationError"] == {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "array", "items": ref("ValidationError")}},
    }
    assert schemas["ValidationError"] == {
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
    }
    # The documented shape is the one the app sends.
    detail = app.test_client().post("/users", json={"name": ""}).json["detail"]
    assert {tuple(problem) for problem in detail} == {("loc", "msg", "type")}


def test_info_comes_from_the_app():
    app = App(title="Shop", version="2.1.0", description="Sells things.")
    spec = spec_of(app)
    assert spec["openapi"] == "3.0.3"
    assert spec["info"] == {"title": "Shop", "version": "2.1.0", "description": "Sells things."}
    assert spec["paths"] == {}
    assert spec_of(App())["info"] == {"title": "FunApi Application", "version": "1.0.0"}


@pytest.mark.parametrize(
    ("rule", "schema"),
    [
        ("/n/<int:n>", {"type": "integer", "minimum": 0}),
        ("/n/<int(signed=True):n>", {"type": "integer"}),
        ("/n/<int(min=1, max=9):n>", {"type": "integer", "minimum": 1, "maximum": 9}),
        ("/n/<float:n>", {"type": "number", "minimum": 0}),
        ("/n/<uuid:n>", {"type": "string", "format": "uuid"}),
        ("/n/<path:n>", {"type": "string", "minLength": 1}),
        ("/n/<any(red, green):n>", {"type": "string", "enum": ["red", "green"]}),
        (
            "/n/<string(length=2):n>",
            {"type": "string", "pattern": "^[^/]+$", "minLength": 2, "maxLength": 2},
        ),
        ("/n/:n", {"type": "string", "pattern": "^[^/]+$"}),
    ],
)
def test_werkzeug_converters_become_typed_path_parameters(app, rule, schema):
    app.get(rule)(lambda input: input.path)
    (path,) = spec_of(app)["paths"]
    assert path == "/n/{n}"
    (parameter,) = spec_of(app)["paths"][path]["get"]["parameters"]
    assert parameter == {"in": "path", "name": "n", "required": True, "schema": schema}


def test_a_path_schema_refines_the_converter(app):
    Ids = Schema.define(id=fields.Integer(validate=validate.Range(min=1)))

    @app.get("/items/<int:id>", path_schema=Ids)
    def item(input):
        return input.path

    (parameter,) = spec_of(app)["paths"]["/items/{id}"]["get"]["parameters"]
    assert parameter["schema"] == {"type": "integer", "minimum": 1}


def test_components_are_named_by_title_or_class_and_never_collide(app):
    class Address(Schema):
        city = fields.String()

    class Person(Schema):
        home = fields.Nested(Address)

    OtherUser = Schema.define("User", nickname=fields.String())
    Clash = Schema.define("ValidationError", field=fields.String())

    app.post("/people", body=Person)(lambda input: input.body)
    app.post("/users", body=User, response_schema=OtherUser)(lambda input: input.body)
    app.post("/clash", body=Clash)(lambda input: input.body)

    spec = spec_of(app)
    schemas = spec["components"]["schemas"]
    assert schemas["Person"]["properties"]["home"] == ref("Address")
    assert set(schemas["User"]["properties"]) == {"name", "email", "age"}
    assert schemas["User2"] == {"type": "object", "properties": {"nickname": {"type": "string"}}}
    assert schemas["ValidationError2"] == {
        "type": "object",
        "properties": {"field": {"type": "string"}},
    }
    responses = spec["paths"]["/users"]["post"]["responses"]
    assert responses["200"]["content"]["application/json"]["schema"] == ref("User2")
    assert spec["paths"]["/clash"]["post"]["requestBody"]["content"] == {
        "application/json": {"schema": ref("ValidationError2")}
    }


def test_summary_tags_and_methods(app):
    router = Router("/admin", tags=["admin"])

    @router.route("/things", ["GET", "POST"], summary="Things", tags=["things"])
    def things():
        return []

    @app.delete("/cache", status_code=204)
    def clear_cache():
        return None

    app.include_router(router)
    paths = spec_of(app)["paths"]
    for method in ("get", "post"):
        operation = paths["/admin/things"][method]
        assert operation["summary"] == "Things"
        assert operation["tags"] == ["admin", "things"]
        assert operation["operationId"] == f"things_admin_things_{method}"
        assert operation["responses"] == {
            "200": {"description": "OK", "content": {"application/json": {"schema": {}}}}
        }
    # No docstring: the summary is the handler's name; a 204 has no content.
    assert paths["/cache"]["delete"] == {
        "operationId": "clear_cache_cache_delete",
        "summary": "Clear Cache",
        "responses": {"204": {"description": "No Content"}},
    }


def test_422_is_documented_only_where_input_is_read(app):
    app.get("/plain")(lambda: "ok")
    app.get("/reads")(lambda input: dict(input.query))
    paths = spec_of(app)["paths"]
    assert "422" not in paths["/plain"]["get"]["responses"]
    assert "422" in paths["/reads"]["get"]["responses"]


def test_hidden_routes_and_the_docs_routes_are_not_in_the_document(app):
    app.get("/internal", include_in_schema=False)(lambda: "x")
    app.get("/public")(lambda: "x")
    assert list(spec_of(app)["paths"]) == ["/public"]
    assert app.test_client().get("/internal").status_code == 200


def test_the_document_is_built_once_and_routes_are_fixed_once_served(app):
    app.get("/a")(lambda: "a")
    client = app.test_client()
    first = client.get("/openapi.json")
    assert client.get("/openapi.json").data is first.data  # the cached bytes
    with pytest.raises(RuntimeError, match="after the app started serving"):
        app.get("/b")(lambda: "b")
    assert list(client.get("/openapi.json").json["paths"]) == ["/a"]


def test_docs_page_loads_only_local_assets(app):
    client = app.test_client()
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<title>Test API - Swagger UI</title>" in html
    assert 'url: "/openapi.json"' in html
    assert "validatorUrl: null" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources == [
        "/docs/swagger-ui.css",
        "/docs/favicon-32x32.png",
        "/docs/swagger-ui-bundle.js",
    ]
    assert "http://" not in html
    assert "https://" not in html
    for source, mimetype in zip(sources, ["text/css", "image/png", "text/javascript"], strict=True):
        asset = client.get(source)
        assert asset.status_code == 200
        assert asset.mimetype == mimetype
        assert len(asset.data) > 500
        assert (
            client.get(source, headers={"If-None-Match": asset.headers["ETag"]}).status_code == 304
        )
    bundle = client.get("/docs/swagger-ui-bundle.js").get_data(as_text=True)
    assert "SwaggerUIBundle" in bundle


def test_docs_page_follows_the_mount_point_and_escapes_the_title():
    app = App(title="<Tom & Jerry>", openapi_url="/api/spec.json", docs_url="/api/docs")
    html = app.test_client().get("/api/docs", environ_overrides={"SCRIPT_NAME": "/v1"}).text
    assert "<title>&lt;Tom &amp; Jerry&gt; - Swagger UI</title>" in html
    assert 'url: "/v1/api/spec.json"' in html
    assert 'href="/v1/api/docs/swagger-ui.css"' in html


def test_openapi_url_none_turns_off_the_document_and_the_docs():
    app = App(openapi_url=None)
    app.get("/x")(lambda: "x")
    client = app.test_client()
    assert client.get("/openapi.json").status_code == 404
    assert client.get("/docs").status_code == 404
    assert app.openapi is None
    assert [endpoint.path for endpoint in app.routes.endpoints] == ["/x"]


def test_docs_url_none_keeps_the_document():
    app = App(docs_url=None)
    client = app.test_client()
    assert client.get("/docs").status_code == 404
    assert client.get("/docs/swagger-ui-bundle.js").status_code == 404
    assert client.get("/openapi.json").status_code == 200


def test_the_docs_routes_are_part_of_setup_and_not_the_apps_own_routes(app):
    @app.get("/users")
    def users():
        return []

    assert [endpoint.path for endpoint in app.routes.endpoints] == ["/users"]
    defaults = [endpoint.path for endpoint in app.routes.defaults]
    assert defaults[:2] == ["/openapi.json", "/docs"]
    assert all(not endpoint.include_in_schema for endpoint in app.routes.defaults)
    app.test_client().get("/users")
    assert [endpoint.path for endpoint in app.routes.endpoints] == ["/users"]


def test_a_user_route_on_the_docs_path_wins_and_is_logged(app, caplog):
    @app.get("/docs")
    def my_docs():
        return {"mine": True}

    with caplog.at_level(logging.WARNING, logger="funapi_sync"):
        client = app.test_client()
        assert client.get("/docs").json == {"mine": True}
    assert client.get("/openapi.json").status_code == 200
    assert "not serving docs_page at /docs" in caplog.text
    assert "App(docs_url=...)" in caplog.text


def example_apps() -> list[tuple[str, App]]:
    """Every App instance defined at the top level of a module under examples/."""
    found = []
    for path in sorted((ROOT / "examples").rglob("*.py")):
        if path.name == "__init__.py" or "__pycache__" in path.parts:
            continue
        module_name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = importlib.import_module(module_name)
        found += [
            (f"{module_name}:{name}", value)
            for name, value in vars(module).items()
            if isinstance(value, App)
        ]
    return found


def test_every_example_app_has_a_valid_document(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    apps = example_apps()
    names = [name for name, _ in apps]
    assert "examples.signup:app" in names
    if Path(ROOT / "examples" / "dependencies.py").exists():
        assert "examples.dependencies:app" in names
    for name, example in apps:
        # NOTE: built directly, not served: serving would run the example's startup
        # hooks, which create its database files in the working directory.
        document = build_document(example)
        validate_spec(document)
        assert document["paths"], f"{name} documents no route"


def test_responses_option_documents_statuses_a_handler_raises(app):
    Conflict = Schema.define("Conflict", detail=fields.String(), holder=fields.String())

    @app.post(
        "/names",
        status_code=201,
        responses={
            409: Conflict,
            404: "No such team",
            429: {
                "description": "Slow down",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            },
        },
    )
    def claim():
        return {}

    responses = build_document(app)["paths"]["/names"]["post"]["responses"]
    assert responses["404"] == {
        "description": "No such team",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}},
    }
    assert responses["409"] == {
        "description": "Conflict",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Conflict"}}},
    }
    assert responses["429"] == {
        "description": "Slow down",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }
    validate_spec(build_document(app))
