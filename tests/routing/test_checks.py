"""Routes that could never work as meant are refused at decoration, with the fix named."""

from __future__ import annotations

import logging
import re

import pytest
from marshmallow import fields

from funapi_sync import App, Router, Schema

User = Schema.define("User", name=fields.String(required=True))


def test_one_path_under_other_parameter_names_is_refused(app):
    @app.get("/p/<x>")
    def first(input):
        return input.path

    message = (
        "second() at GET /p/{y} matches the same URLs as first() already registered for"
        " GET /p/<x> (only the parameter names differ), so it could never be reached;"
        " give both one path, or tell them apart with a converter such as <int:...> or a"
        " static segment"
    )
    with pytest.raises(ValueError, match=re.escape(message)):

        @app.get("/p/{y}")
        def second(input):
            return input.path


def test_other_converters_methods_and_prefixes_are_not_duplicates(app):
    @app.get("/p/<x>")
    def by_name(input):
        return {"name": input.path["x"]}

    @app.get("/p/<int:y>")
    def by_number(input):
        return {"number": input.path["y"]}

    @app.delete("/p/{z}")
    def remove(input):
        return None, 204

    client = app.test_client()
    assert client.get("/p/7").json == {"number": 7}
    assert client.get("/p/seven").json == {"name": "seven"}
    assert client.delete("/p/x").status_code == 204


def test_a_router_path_under_other_names_is_refused_at_include_router(app):
    @app.get("/users/<user_id>")
    def get_user(input):
        return {}

    users = Router("/users")

    @users.get("/{id}")
    def read_user(input):
        return {}

    with pytest.raises(ValueError, match=r"read_user\(\) at GET /users/\{id\} matches the same"):
        app.include_router(users)


def test_a_positional_parameter_named_like_a_path_parameter_is_refused(app):
    message = (
        "get_item() at GET /items/<int:item_id>: positional parameter 'item_id' is named"
        " like the path parameter, but a handler's positional parameters are input, req and"
        " task (in that order), so it would receive the whole input; take input and read"
        " input.path['item_id']: def get_item(input): item_id = input.path['item_id']"
    )
    with pytest.raises(TypeError, match=re.escape(message)):

        @app.get("/items/<int:item_id>")
        def get_item(item_id):
            return {"id": item_id}


def test_a_keyword_only_parameter_named_like_a_path_parameter_points_to_input_path(app):
    message = (
        "get_item() at GET /items/{item_id} declares keyword-only parameter 'item_id', named"
        " like the path parameter; path values are not injected by name, they are read"
        " from input.path: take input and write input.path['item_id']"
    )
    with pytest.raises(TypeError, match=re.escape(message)):

        @app.get("/items/{item_id}")
        def get_item(*, item_id):
            return {"id": item_id}


@pytest.mark.parametrize(
    ("option", "ours"),
    [
        ("response_model", "response_schema="),
        ("status", "status_code="),
        ("dependencies", "depends="),
        ("response_class", "media_type="),
    ],
)
def test_fastapi_option_names_are_pointed_to_ours(app, option, ours):
    message = (
        f"route('/users') got unknown route options ['{option}']"
        f" (funapi_sync says {ours} for {option}=); known options are ["
    )
    with pytest.raises(TypeError, match=re.escape(message)):
        app.get("/users", **{option: None})
    with pytest.raises(TypeError, match=re.escape(message)):
        Router().route("/users", ["GET"], **{option: None})


def test_an_unknown_option_is_named_without_a_hint(app):
    message = "route('/users') got unknown route options ['colour']; known options are ["
    with pytest.raises(TypeError, match=re.escape(message)):
        app.get("/users", colour="red")


def test_a_path_schema_field_not_in_the_path_is_refused(app):
    PathSchema = Schema.define("ItemPath", item_id=fields.Integer(), slug=fields.String())
    message = (
        "get_item() at GET /items/<int:item_id>: path_schema= field 'slug' is not a"
        " parameter of the path (its parameters: 'item_id'), so it would never be validated;"
        " rename the field or the path parameter, or move the field to query= or body="
    )
    with pytest.raises(ValueError, match=re.escape(message)):

        @app.get("/items/<int:item_id>", path_schema=PathSchema)
        def get_item(input):
            return {}


def test_a_path_schema_field_with_a_data_key_in_the_path_is_accepted(app):
    PathSchema = Schema.define("ItemPath", identifier=fields.Integer(data_key="item_id"))

    @app.get("/items/<int:item_id>", path_schema=PathSchema)
    def get_item(input):
        return input.path

    assert app.test_client().get("/items/3").json == {"identifier": 3}


def test_a_list_returned_under_a_one_object_response_schema_says_use_a_list(app, caplog):
    @app.get("/users", response_schema=User)
    def users():
        return [{"name": "Ada"}]

    caplog.set_level(logging.ERROR, logger="funapi_sync")
    response = app.test_client().get("/users")
    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    assert (
        "the handler returned a list, but response_schema=User describes one object;"
        " use response_schema=[User] for a list"
    ) in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"body": User, "body_media_type": "text/csv"},
            "body_media_type= must be one of application/json,"
            " application/x-www-form-urlencoded, multipart/form-data, got 'text/csv'",
        ),
        ({"body_media_type": "multipart/form-data"}, "body_media_type= needs a body= schema"),
        ({"media_type": "html"}, "media_type= must be a media type such as 'text/html'"),
        (
            {"media_type": "text/html", "response_schema": User},
            "response_schema= describes a JSON body, but media_type='text/html'; drop one",
        ),
    ],
)
def test_media_type_options_are_checked(app, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):

        @app.post("/things", **options)
        def things():
            return {}


def test_a_file_body_cannot_be_documented_as_json(app):
    from funapi_sync import File

    Upload = Schema.define("Upload", file=File())
    with pytest.raises(ValueError, match="body= has a File field, which only multipart/form-data"):

        @app.post("/uploads", body=Upload, body_media_type="application/json")
        def upload(input):
            return {}


def test_the_checks_keep_the_app_usable():
    app = App()

    @app.get("/items/<int:item_id>")
    def get_item(input):
        return {"id": input.path["item_id"]}

    assert app.test_client().get("/items/2").json == {"id": 2}


def test_a_value_the_converter_refuses_is_a_404_for_every_method(app):
    @app.get("/p/<int(max=10):i>")
    def read(input):
        return {}

    @app.delete("/p/<int(max=10):i>")
    def remove(input):
        return None, 204

    @app.put("/q/<int(max=10):i>")
    def put(input):
        return {}

    client = app.test_client()
    # werkzeug alone answers DELETE /p/11 with a 405 naming GET, though GET /p/11 is a 404.
    assert client.delete("/p/11").status_code == 404
    assert client.get("/p/11").status_code == 404
    wrong_method = client.post("/p/3")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS"
    assert client.get("/q/11").status_code == 404


@pytest.mark.parametrize("list_of", [False, True], ids=["nested", "list-of-nested"])
def test_a_nested_field_in_query_fails_at_decoration(app, list_of):
    Point = Schema.define("Point", x=fields.Integer(), y=fields.Integer())
    nested = fields.Nested(Point)
    query = Schema.define(near=fields.List(nested) if list_of else nested)

    with pytest.raises(TypeError) as info:
        app.get("/places", query=query)(lambda input: {})

    assert str(info.value) == (
        "<lambda>() at GET /places: query= field 'near' is a Nested field, but a query string"
        " carries only strings, so no request could satisfy it; declare its parts as"
        " top-level fields (?near_x=...), or move it to body="
    )
