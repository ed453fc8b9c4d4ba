"""Schema: FastAPI-like defaults, define/filled, and marshmallow errors in FastAPI's 422 shape."""

from __future__ import annotations

import enum

import marshmallow
import pytest
from marshmallow import fields, validate

from funapi_sync import Schema
from funapi_sync.schema import as_schema, to_detail


def test_unknown_fields_are_dropped():
    class User(Schema):
        name = fields.String()

    assert User().load({"name": "Ada", "is_admin": True}) == {"name": "Ada"}


def test_plain_marshmallow_schema_keeps_its_own_unknown_policy(app, client):
    class Strict(marshmallow.Schema):
        name = fields.String()

    @app.post("/strict", body=Strict)
    def strict(input):
        return input.body

    response = client.post("/strict", json={"name": "Ada", "extra": 1})
    assert response.status_code == 422
    assert response.json == {
        "detail": [{"loc": ["body", "extra"], "msg": "Unknown field.", "type": "value_error"}]
    }


def test_define_builds_a_schema_class_named_by_its_title():
    User = Schema.define("User", name=fields.String(required=True))

    assert isinstance(User, type)
    assert issubclass(User, Schema)
    assert User.__name__ == "User"
    assert User().load({"name": "Ada", "other": 1}) == {"name": "Ada"}


def test_define_without_title_has_a_default_name():
    Anonymous = Schema.define(name=fields.String())

    assert Anonymous.__name__ == "DefinedSchema"
    assert set(Anonymous().fields) == {"name"}


def test_define_rejects_a_field_class_with_the_fix():
    with pytest.raises(TypeError) as info:
        Schema.define("User", name=fields.String)

    assert str(info.value) == (
        "Schema.define() field 'name' must be a marshmallow field instance, got"
        f" {fields.String!r}; write name=fields.String() rather than fields.String"
    )


def test_define_rejects_a_non_field_value():
    with pytest.raises(TypeError, match="field 'age' must be a marshmallow field instance"):
        Schema.define("User", age=int)


def test_define_rejects_a_non_string_title():
    with pytest.raises(TypeError, match="title must be a str, got int"):
        Schema.define(42, name=fields.String())


def test_defined_schemas_are_independent():
    A = Schema.define("A", a=fields.String())
    B = Schema.define("B", b=fields.String())

    assert set(A().fields) == {"a"}
    assert set(B().fields) == {"b"}


@pytest.mark.parametrize("value", [None, "", [], {}])
def test_filled_raises_on_empty_values(value):
    with pytest.raises(marshmallow.ValidationError, match=r"Must not be empty\."):
        Schema.filled(value)


@pytest.mark.parametrize("value", ["x", " ", [0], {"a": 1}, 0, False])
def test_filled_accepts_present_values(value):
    assert Schema.filled(value) is None


def test_filled_rejects_through_a_schema_because_it_raises():
    # NOTE: marshmallow 4 ignores a validator that returns False; filled must raise.
    Named = Schema.define("Named", name=fields.String(required=True, validate=Schema.filled))

    with pytest.raises(marshmallow.ValidationError) as info:
        Named().load({"name": ""})

    assert info.value.messages == {"name": ["Must not be empty."]}


def test_as_schema_turns_a_one_element_list_into_many():
    User = Schema.define("User", name=fields.String())

    assert as_schema([User], what="body=").many is True
    assert as_schema(User, what="body=").many is False
    instance = User()
    assert as_schema(instance, what="body=") is instance


# -- to_detail: marshmallow messages -> FastAPI's list of problems ----------------------

Address = Schema.define(
    "Address",
    city=fields.String(required=True),
    zip=fields.String(validate=validate.Length(equal=5)),
)
Item = Schema.define("Item", sku=fields.String(required=True), qty=fields.Integer(required=True))


class Colour(enum.Enum):
    RED = "red"


Order = Schema.define(
    "Order",
    email=fields.Email(required=True),
    address=fields.Nested(Address, required=True),
    items=fields.List(fields.Nested(Item), required=True),
    tags=fields.List(fields.String()),
    counts=fields.Dict(keys=fields.String(), values=fields.Integer()),
    when=fields.DateTime(),
    paid=fields.Boolean(),
    colour=fields.Enum(Colour),
    note=fields.String(allow_none=False),
)


def test_nested_object_body_errors_are_flattened_exactly(app, client):
    @app.post("/orders", body=Order)
    def create(input):
        return input.body

    response = client.post(
        "/orders",
        json={
            "email": "not an email",
            "address": {"zip": "1"},
            "items": [{"sku": "a", "qty": 1}, {"qty": "many"}, 5],
            "tags": "not a list",
            "counts": {"apples": "x"},
            "when": "yesterday",
            "paid": "maybe",
            "colour": "blue",
            "note": None,
        },
    )

    assert response.status_code == 422
    assert response.json == {
        "detail": [
            {"loc": ["body", "email"], "msg": "Not a valid email address.", "type": "value_error"},
            {
                "loc": ["body", "address", "city"],
                "msg": "Missing data for required field.",
                "type": "missing",
            },
            {"loc": ["body", "address", "zip"], "msg": "Length must be 5.", "type": "value_error"},
            {
                "loc": ["body", "items", 1, "sku"],
                "msg": "Missing data for required field.",
                "type": "missing",
            },
            {
                "loc": ["body", "items", 1, "qty"],
                "msg": "Not a valid integer.",
                "type": "int_parsing",
            },
            {"loc": ["body", "items", 2], "msg": "Invalid input type.", "type": "dict_type"},
            {"loc": ["body", "tags"], "msg": "Not a valid list.", "type": "list_type"},
            {
                "loc": ["body", "counts", "apples"],
                "msg": "Not a valid integer.",
                "type": "int_parsing",
            },
            {"loc": ["body", "when"], "msg": "Not a valid datetime.", "type": "datetime_parsing"},
            {"loc": ["body", "paid"], "msg": "Not a valid boolean.", "type": "bool_parsing"},
            {"loc": ["body", "colour"], "msg": "Must be one of: RED.", "type": "enum"},
            {"loc": ["body", "note"], "msg": "Field may not be null.", "type": "null_forbidden"},
        ]
    }


def test_wrong_container_types_are_dict_type_and_list_type(app, client):
    @app.post("/orders", body=Order)
    def create(input):
        return input.body

    response = client.post(
        "/orders",
        json={"email": "a@example.com", "address": "Main St", "items": {}, "tags": [1]},
    )

    assert response.json == {
        "detail": [
            {"loc": ["body", "address"], "msg": "Invalid input type.", "type": "dict_type"},
            {"loc": ["body", "items"], "msg": "Not a valid list.", "type": "list_type"},
            {"loc": ["body", "tags", 0], "msg": "Not a valid string.", "type": "string_type"},
        ]
    }


def test_list_body_errors_keep_int_indices(app, client):
    @app.post("/items", body=[Item])
    def create(input):
        return input.body

    response = client.post("/items", json=[{"sku": "a", "qty": 1}, {"sku": "b"}, "c"])

    assert response.status_code == 422
    assert response.json == {
        "detail": [
            {
                "loc": ["body", 1, "qty"],
                "msg": "Missing data for required field.",
                "type": "missing",
            },
            {"loc": ["body", 2], "msg": "Invalid input type.", "type": "dict_type"},
        ]
    }


def test_object_for_a_list_body_is_list_type(app, client):
    @app.post("/items", body=[Item])
    def create(input):
        return input.body

    response = client.post("/items", json={"sku": "a", "qty": 1})

    assert response.json == {
        "detail": [{"loc": ["body"], "msg": "Invalid input type.", "type": "list_type"}]
    }


def test_schema_level_validator_error_is_located_at_the_root():
    class Range(Schema):
        low = fields.Integer()
        high = fields.Integer()

        @marshmallow.validates_schema
        def check(self, data, **kwargs):
            if data["low"] > data["high"]:
                raise marshmallow.ValidationError("low must not exceed high")

    with pytest.raises(marshmallow.ValidationError) as info:
        Range().load({"low": 2, "high": 1})

    assert to_detail(info.value.messages, "body", Range()) == [
        {"loc": ["body"], "msg": "low must not exceed high", "type": "value_error"}
    ]


def test_data_key_is_the_location_the_client_sent():
    class Renamed(Schema):
        user_name = fields.String(required=True, data_key="userName")

    with pytest.raises(marshmallow.ValidationError) as info:
        Renamed().load({})

    assert to_detail(info.value.messages, "query", Renamed()) == [
        {"loc": ["query", "userName"], "msg": "Missing data for required field.", "type": "missing"}
    ]


def test_to_detail_without_a_schema_still_flattens():
    messages = {"a": {"b": ["bad"]}, "c": ["worse", "worst"]}

    assert to_detail(messages, "body") == [
        {"loc": ["body", "a", "b"], "msg": "bad", "type": "value_error"},
        {"loc": ["body", "c"], "msg": "worse", "type": "value_error"},
        {"loc": ["body", "c"], "msg": "worst", "type": "value_error"},
    ]


# -- fields.Integer in a Schema refuses a fraction ------------------------------------------


def test_schema_integer_refuses_a_fraction_where_marshmallow_truncates(app, client):

    Item = Schema.define("Item", qty=fields.Integer(), sizes=fields.List(fields.Integer()))

    @app.post("/items", body=Item, query=Schema.define(page=fields.Integer()))
    def create(input):
        return {"body": input.body, "query": input.query}

    refused = client.post("/items", json={"qty": 12.5, "sizes": [1, 2.5]})
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json["detail"]] == [["body", "qty"], ["body", "sizes", 1]]
    accepted = client.post("/items?page=2", json={"qty": 12.0, "sizes": ["3"]})
    assert accepted.json == {"body": {"qty": 12, "sizes": [3]}, "query": {"page": 2}}
    assert client.post("/items?page=2.5", json={}).status_code == 422

    class Plain(marshmallow.Schema):
        qty = fields.Integer()

    # A plain marshmallow schema keeps marshmallow's behaviour, even sharing the field.
    assert Plain().load({"qty": 12.5}) == {"qty": 12}
    shared = fields.Integer()
    assert Schema.define(qty=shared)().validate({"qty": 1.5}) == {"qty": ["Not a valid integer."]}
    assert type(shared) is fields.Integer
