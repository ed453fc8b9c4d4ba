"""The OpenAPI document says exactly what the request path validates; /docs works offline."""

from __future__ import annotations

import copy
import datetime
import decimal
import enum
import importlib
import ipaddress
import json
import logging
import re
import uuid
from http import HTTPStatus
from pathlib import Path

import pytest
from marshmallow import fields, validate
from openapi_spec_validator import validate as validate_spec
from werkzeug.wrappers import Response

from funapi_sync import App, File, Router, Schema
from funapi_sync.openapi import build_document

ROOT = Path(__file__).resolve().parents[2]

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


@pytest.mark.parametrize(
    ("script_name", "root"),
    [
        ("//evil.test", "/evil.test"),
        ("/\\evil.test", "/evil.test"),
        ("/\t/evil.test", "/evil.test"),
        ("///", ""),
    ],
    ids=["double-slash", "backslash", "tab", "only-slashes"],
)
def test_docs_page_never_loads_from_another_host_whatever_the_script_name(script_name, root):
    # gunicorn trusts SCRIPT_NAME from 127.0.0.1: //evil.test made a protocol-relative URL.
    app = App()
    page = app.test_client().get("/docs", environ_overrides={"SCRIPT_NAME": script_name}).text
    assert f'src="{root}/docs/swagger-ui-bundle.js"' in page
    assert f'url: "{root}/openapi.json"' in page
    assert "//evil" not in page


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
    assert "examples.store:app" in names
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


# -- every field marshmallow accepts ------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Money(decimal.Decimal):
    pass


Inner = Schema.define("Inner", value=fields.Integer())
D = decimal.Decimal

FIELDS = {
    "string": fields.String(load_default="x", validate=[validate.Length(min=1, max=5)]),
    "string-regexps": fields.String(
        validate=[validate.Regexp(r"^a"), validate.Regexp(r"b$")]  # apispec warns: 2 regexps
    ),
    "integer": fields.Integer(load_default=3, validate=validate.Range(min=1, max=D("10"))),
    "float": fields.Float(load_default=D("0.5"), validate=validate.Range(min=D("0.1"))),
    "float-oneof": fields.Float(validate=validate.OneOf([D("0.5"), 1.5])),
    "integer-decimal-bounds": fields.Integer(validate=validate.Range(max=D("1e3"))),
    "decimal": fields.Decimal(),
    "decimal-range-default": fields.Decimal(
        places=2,
        load_default=D("9.99"),
        validate=[validate.Range(min=D("0.01"), max=D("1000"))],
    ),
    "decimal-as-string": fields.Decimal(as_string=True, load_default=Money("1.5")),
    "decimal-oneof": fields.Decimal(validate=validate.OneOf([D("1.5"), D("2.5")])),
    "decimal-equal": fields.Decimal(validate=validate.Equal(D("1"))),
    "boolean": fields.Boolean(load_default=False),
    "datetime": fields.DateTime(
        load_default=datetime.datetime(2024, 1, 1, 12, 0),
        validate=validate.Range(min=datetime.datetime(2000, 1, 1)),
    ),
    "naive-datetime": fields.NaiveDateTime(),
    "aware-datetime": fields.AwareDateTime(),
    "datetime-callable-default": fields.DateTime(load_default=datetime.datetime.now),
    "date": fields.Date(
        load_default=datetime.date(2024, 1, 1),
        validate=validate.OneOf([datetime.date(2024, 1, 1), datetime.date(2025, 1, 1)]),
    ),
    "time": fields.Time(load_default=datetime.time(9, 30)),
    "timedelta": fields.TimeDelta(
        load_default=datetime.timedelta(hours=1),
        validate=validate.Range(min=datetime.timedelta(0)),
    ),
    "uuid": fields.UUID(load_default=uuid.UUID(int=1)),
    "email": fields.Email(validate=validate.Length(max=254)),
    "url": fields.URL(load_default="https://example.com"),
    "ip": fields.IP(load_default=ipaddress.ip_address("127.0.0.1")),
    "ipv4": fields.IPv4(),
    "ipv6": fields.IPv6(),
    "ip-interface": fields.IPInterface(load_default=ipaddress.ip_interface("10.0.0.1/8")),
    "enum-by-name": fields.Enum(Colour, load_default=Colour.RED),
    "enum-by-value": fields.Enum(Colour, by_value=True),
    "enum-decimal-values": fields.Enum(
        enum.Enum("Size", {"S": D("1.5"), "M": D("2.5")}), by_value=fields.Decimal()
    ),
    "list": fields.List(fields.Decimal(), load_default=[D("1.5")], validate=validate.Length(min=1)),
    "list-contains-only": fields.List(fields.String(), validate=validate.ContainsOnly(["a", "b"])),
    "tuple": fields.Tuple((fields.String(), fields.Decimal()), load_default=("a", D("1"))),
    "dict": fields.Dict(keys=fields.String(), values=fields.Decimal(), load_default={"a": D(1)}),
    "nested": fields.Nested(Inner, load_default=lambda: {"value": 1}),
    "nested-many": fields.Nested(Inner, many=True),
    "nested-list": fields.List(fields.Nested(Inner)),
    "pluck": fields.Pluck(Inner, "value"),
    "raw": fields.Raw(load_default={"any": D("1.5"), "when": datetime.date(2024, 1, 1)}),
    "raw-object-default": fields.Raw(load_default=frozenset({1})),
    "constant": fields.Constant(D("1.5")),
    "function": fields.Function(lambda obj: D(1)),
    "method": fields.Method("price"),
    "none-of": fields.String(validate=validate.NoneOf(["root"])),
    "allow-none": fields.Decimal(allow_none=True, validate=validate.OneOf([D("1")])),
    "dump-default": fields.Decimal(dump_default=D("0.00")),
    "bad-default": fields.Integer(load_default="not a number"),
    "metadata": fields.Decimal(metadata={"description": "Price", "example": D("3.50")}),
    "file": File(),
    "filled-list": fields.List(fields.String(), validate=Schema.filled),
    "filled-dict": fields.Dict(validate=Schema.filled),
    "filled-nested": fields.Nested(Inner, validate=Schema.filled),
    "filled-integer": fields.Integer(validate=Schema.filled),
    "float-infinite-default": fields.Float(load_default=float("inf"), allow_nan=True),
    "raw-range": fields.Raw(validate=validate.Range(min=D("1.5"), max=datetime.timedelta(1))),
    "string-number-bound": fields.String(validate=validate.Length(min=D("2"))),
}


@pytest.mark.parametrize("field", list(FIELDS.values()), ids=list(FIELDS))
@pytest.mark.parametrize("where", ["body", "response", "query"])
def test_openapi_is_valid_for_every_field_type(app, field, where):
    if where == "query" and isinstance(field, (fields.Nested, fields.Pluck, File)):
        pytest.skip("a query parameter holds no objects or files")
    if where == "response" and isinstance(field, File):
        pytest.skip("a File in a response schema is refused at decoration (test_uploads)")
    declared = {"value": copy.deepcopy(field)}
    if isinstance(field, fields.Method):
        declared["price"] = lambda self, obj: D(1)  # the Method field's method
    schema = type("Thing", (Schema,), declared)
    options = {"body": schema} if where == "body" else {}
    if where == "response":
        options["response_schema"] = schema
    if where == "query":
        options["query"] = schema

    @app.post("/things", **options)
    def make():
        return {}

    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    document = json.loads(response.data)  # plain JSON: no Decimal, no date, no enum
    validate_spec(document)
    assert "/things" in document["paths"]


def decimal_property(field) -> dict:
    @(app := App()).post("/things", body=Schema.define("Thing", value=field))
    def make():
        return {}

    return build_document(app)["components"]["schemas"]["Thing"]["properties"]["value"]


def test_a_decimal_is_documented_as_the_string_it_is_sent_as():
    assert decimal_property(fields.Decimal()) == {
        "type": "string",
        "format": "decimal",
        "pattern": r"^-?\d+(\.\d+)?$",
        "example": "1.5",
    }
    money = decimal_property(
        fields.Decimal(places=2, load_default=D("9.99"), validate=validate.Range(min=D("0.01")))
    )
    assert money == {
        "type": "string",
        "format": "decimal",
        "default": "9.99",
        "x-minimum": "0.01",
        "pattern": r"^\d+(\.\d+)?$",
        "example": "1.50",
    }
    assert decimal_property(fields.Decimal(validate=validate.OneOf([D("1.5"), D("2")])))[
        "enum"
    ] == ["1.5", "2"]


def test_the_decimal_documented_is_the_decimal_sent(app):
    Price = Schema.define("Price", amount=fields.Decimal(places=2, required=True))

    @app.post("/prices", body=Price, response_schema=Price)
    def echo(input):
        return input.body

    client = app.test_client()
    sent = client.post("/prices", json={"amount": "12.5"}).json
    assert sent == {"amount": "12.50"}
    documented = build_document(app)["components"]["schemas"]["Price"]["properties"]["amount"]
    assert documented["type"] == "string"
    assert re.fullmatch(documented["pattern"], sent["amount"])


def test_numeric_bounds_become_json_numbers():
    @(app := App()).get(
        "/things",
        query=Schema.define(
            "Query",
            ratio=fields.Float(validate=validate.Range(min=D("0.25"), max=D("4"))),
        ),
    )
    def things():
        return []

    (parameter,) = build_document(app)["paths"]["/things"]["get"]["parameters"]
    assert parameter["schema"] == {"type": "number", "minimum": 0.25, "maximum": 4.0}


def test_a_field_apispec_cannot_describe_is_logged_and_the_rest_is_documented(app, caplog):
    Thing = Schema.define("Thing", count=fields.Integer(load_default="many"), name=fields.String())

    @app.post("/things", body=Thing)
    def make():
        return {}

    caplog.set_level(logging.WARNING, logger="funapi_sync")
    document = build_document(app)
    validate_spec(document)
    assert document["components"]["schemas"]["Thing"]["properties"] == {
        "count": {"type": "integer"},
        "name": {"type": "string"},
    }
    assert "field2default of field 'count' (Integer) could not be documented" in caplog.text


# -- media types --------------------------------------------------------------------------


def test_a_body_with_a_file_is_multipart_with_a_binary_property(app):
    Upload = Schema.define("Upload", file=File(required=True), note=fields.String())

    @app.post("/uploads", body=Upload)
    def upload(input):
        return {}

    document = spec_of(app)
    assert document["paths"]["/uploads"]["post"]["requestBody"] == {
        "required": True,
        "content": {"multipart/form-data": {"schema": ref("Upload")}},
    }
    assert document["components"]["schemas"]["Upload"]["properties"] == {
        "file": {"type": "string", "format": "binary"},
        "note": {"type": "string"},
    }


def test_body_media_type_documents_a_form(app):
    Login = Schema.define("Login", username=fields.String(required=True))

    @app.post("/login", body=Login, body_media_type="application/x-www-form-urlencoded")
    def login(input):
        return {}

    body = spec_of(app)["paths"]["/login"]["post"]["requestBody"]
    assert body["content"] == {"application/x-www-form-urlencoded": {"schema": ref("Login")}}
    assert app.test_client().post("/login", data={"username": "ada"}).status_code == 200


def test_media_type_documents_a_non_json_response(app):
    @app.get("/page", media_type="text/html")
    def page():
        return Response("<p>hi</p>", mimetype="text/html")

    @app.get("/export", media_type="application/octet-stream")
    def export():
        return Response(iter([b"a", b"b"]), mimetype="application/octet-stream")

    @app.get("/events", media_type="application/x-ndjson")
    def events():
        return Response('{"a": 1}\n', mimetype="application/x-ndjson")

    paths = spec_of(app)["paths"]
    assert paths["/page"]["get"]["responses"]["200"]["content"] == {
        "text/html": {"schema": {"type": "string"}}
    }
    assert paths["/export"]["get"]["responses"]["200"]["content"] == {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    }
    assert paths["/events"]["get"]["responses"]["200"]["content"] == {
        "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}}
    }


# -- statuses a handler returns -----------------------------------------------------------


def test_returning_none_204_documents_204_without_content(app):
    @app.delete("/items/<int:item_id>")
    def delete_item(input):
        return None, 204

    responses = spec_of(app)["paths"]["/items/{item_id}"]["delete"]["responses"]
    assert responses["204"] == {"description": "No Content"}
    assert "200" not in responses
    assert app.test_client().delete("/items/1").status_code == 204


def test_every_literal_status_a_handler_returns_is_documented(app):
    @app.post("/items", response_schema=User)
    def upsert(input):
        if input.query.get("new"):
            return {"name": "a", "email": "a@example.com"}, HTTPStatus.CREATED
        if input.query.get("gone"):
            return {"detail": "Gone"}, 410
        return {"name": "a", "email": "a@example.com"}

    responses = spec_of(app)["paths"]["/items"]["post"]["responses"]
    assert responses["200"]["content"] == {"application/json": {"schema": ref("User")}}
    assert responses["201"]["content"] == {"application/json": {"schema": ref("User")}}
    assert responses["410"] == {
        "description": "Gone",
        "content": {"application/json": {"schema": {}}},
    }


def test_a_handler_that_may_fall_off_its_end_keeps_the_default_status(app):
    @app.post("/maybe")
    def maybe(input):
        if input.query.get("created"):
            return {}, 201

    responses = spec_of(app)["paths"]["/maybe"]["post"]["responses"]
    assert {"200", "201"} <= set(responses)
    assert app.test_client().post("/maybe").status_code == 200


def test_an_explicit_status_code_is_always_documented(app):
    @app.post("/jobs", status_code=202)
    def start():
        return None, 204

    responses = spec_of(app)["paths"]["/jobs"]["post"]["responses"]
    assert {"202", "204"} <= set(responses)
