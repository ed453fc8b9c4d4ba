"""Responses: return-value shapes, JSON encoding, Content-Length, and response_schema."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from http import HTTPStatus

import pytest
from marshmallow import fields
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

from funapi_sync import Schema
from funapi_sync.responses import ResponseSchemaError


def assert_content_length(response):
    assert response.headers["Content-Length"] == str(len(response.get_data()))


def error_records(caplog):
    return [r for r in caplog.records if r.name == "funapi_sync" and r.levelname == "ERROR"]


# -- return-value shapes ---------------------------------------------------------------


def test_payload_is_200_json(app, client):
    @app.get("/")
    def handler():
        return {"hello": "world"}

    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json == {"hello": "world"}
    assert_content_length(response)


def test_payload_uses_the_route_status_code(app, client):
    @app.post("/items", status_code=201)
    def create():
        return {"id": 1}

    response = client.post("/items")
    assert response.status_code == 201
    assert response.json == {"id": 1}


def test_payload_and_status_tuple(app, client):
    @app.post("/items", status_code=201)
    def create():
        return {"queued": True}, 202

    response = client.post("/items")
    assert response.status_code == 202
    assert response.json == {"queued": True}


def test_status_may_be_an_http_status(app, client):
    @app.post("/items")
    def create():
        return "created", HTTPStatus.CREATED

    assert client.post("/items").status_code == 201


@pytest.mark.parametrize(
    "headers",
    [{"X-Request-Id": "abc"}, [("X-Request-Id", "abc")], Headers({"X-Request-Id": "abc"})],
    ids=["dict", "pairs", "werkzeug-headers"],
)
def test_payload_status_and_headers_tuple(app, client, headers):
    @app.get("/")
    def handler():
        return {"ok": True}, 201, headers

    response = client.get("/")
    assert response.status_code == 201
    assert response.headers["X-Request-Id"] == "abc"
    assert response.json == {"ok": True}
    assert_content_length(response)


def test_header_values_are_stringified(app, client):
    @app.get("/")
    def handler():
        return "ok", 200, {"X-Count": 3}

    assert client.get("/").headers["X-Count"] == "3"


def test_handler_content_type_replaces_the_json_default(app, client):
    @app.get("/problem")
    def problem():
        return {"title": "Bad"}, 400, {"Content-Type": "application/problem+json"}

    response = client.get("/problem")
    assert response.headers.getlist("Content-Type") == ["application/problem+json"]
    assert json.loads(response.get_data()) == {"title": "Bad"}


def test_handler_content_length_is_ignored_for_the_real_one(app, client):
    @app.get("/")
    def handler():
        return {"a": 1}, 200, {"Content-Length": "999"}

    response = client.get("/")
    assert response.headers.getlist("Content-Length") == [str(len(b'{"a":1}'))]


def test_werkzeug_response_is_sent_as_is(app, client):
    @app.get("/text")
    def text():
        return Response("plain", status=203, mimetype="text/plain", headers={"X-A": "1"})

    response = client.get("/text")
    assert response.status_code == 203
    assert response.mimetype == "text/plain"
    assert response.headers["X-A"] == "1"
    assert response.get_data() == b"plain"


def test_werkzeug_response_in_a_tuple_takes_the_status_and_headers(app, client):
    @app.get("/text")
    def text():
        return Response("plain", mimetype="text/plain"), 202, {"X-B": "2"}

    response = client.get("/text")
    assert response.status_code == 202
    assert response.headers["X-B"] == "2"
    assert response.get_data() == b"plain"


def test_werkzeug_response_still_runs_its_background_tasks(app, client):
    ran = []

    @app.get("/file")
    def file(*, background):
        background.add_task(ran.append, "task")
        return Response(b"\x00\x01", mimetype="application/octet-stream")

    assert client.get("/file").get_data() == b"\x00\x01"
    assert ran == ["task"]


def test_a_list_is_a_payload_not_a_tuple(app, client):
    @app.get("/")
    def handler():
        return [{"a": 1}, 201]

    response = client.get("/")
    assert response.status_code == 200
    assert response.json == [{"a": 1}, 201]


# -- JSON encoding ----------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"a": [1, 2]}, b'{"a":[1,2]}'),
        ([1, "two", None], b'[1,"two",null]'),
        ("text", b'"text"'),
        (42, b"42"),
        (1.5, b"1.5"),
        (True, b"true"),
        (None, b"null"),
        ("crème brûlée", '"crème brûlée"'.encode()),
        (datetime.datetime(2024, 5, 6, 7, 8, 9), b'"2024-05-06T07:08:09"'),
        (
            datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC),
            b'"2024-05-06T07:08:09+00:00"',
        ),
        (datetime.date(2024, 5, 6), b'"2024-05-06"'),
        (datetime.time(7, 8), b'"07:08:00"'),
        (uuid.UUID(int=1), b'"00000000-0000-0000-0000-000000000001"'),
        (decimal.Decimal("10.10"), b'"10.10"'),
        (Point(1, 2), b'{"x":1,"y":2}'),
        (Colour.RED, b'"red"'),
        (Level.HIGH, b"3"),
        ({"when": datetime.date(2024, 1, 2), "points": [Point(0, 0)]}, None),
    ],
    ids=lambda value: type(value).__name__,
)
def test_payload_types_are_encoded_as_json(app, client, payload, expected):
    @app.get("/")
    def handler():
        return payload

    response = client.get("/")
    assert response.status_code == 200
    if expected is None:
        assert response.json == {"when": "2024-01-02", "points": [{"x": 0, "y": 0}]}
    else:
        assert response.get_data() == expected
    assert_content_length(response)


_ENCODER_TABLE = [
    {"a": [1, 2], "b": {"c": None}},
    [1, "two", None, True, False],
    "text",
    '\x00\x1f"\\ \u2028 \u00e9 \U0001f600',
    42,
    3**80,
    -0.0,
    1.5,
    1e16,
    1e-7,
    {1: "int key", 2.5: "float key", None: "none key", False: "bool key"},
    [Point(1, 2), Colour.RED, Level.HIGH, {1, 2}, datetime.timedelta(seconds=90)],
    (1, 2),
    [],
    {},
]


@pytest.mark.parametrize("payload", _ENCODER_TABLE, ids=repr)
def test_encoding_gives_the_bytes_json_encoder_gives(payload):
    from funapi_sync._json import _encoder, encode_json

    assert encode_json(payload) == _encoder.encode(payload).encode()


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (float("nan"), ValueError),
        ({"x": object()}, TypeError),
        ({(1, 2): 3}, TypeError),
        ("\ud800", UnicodeEncodeError),
    ],
    ids=["nan", "unknown-type", "tuple-key", "lone-surrogate"],
)
def test_encoding_fails_as_json_encoder_fails_and_the_next_call_still_works(payload, error):
    from funapi_sync._json import _encoder, encode_json

    with pytest.raises(error):
        _encoder.encode(payload).encode()
    with pytest.raises(error):
        encode_json({"nested": [payload]})
    assert encode_json({"nested": [1]}) == b'{"nested":[1]}'


def test_a_circular_payload_is_refused_and_does_not_poison_later_calls():
    from funapi_sync._json import encode_json

    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        encode_json({"loop": loop})
    # The markers left by the failure must be gone: the same objects encode fine now.
    loop.clear()
    assert encode_json({"loop": loop}) == b'{"loop":[]}'


def test_two_threads_may_encode_one_shared_payload_at_once():
    # NOTE: a cycle check shared between threads would take the other thread's
    # in-progress container for a cycle. The first encode is held inside the shared
    # list (while the list is on its cycle markers) until the second one has finished.
    import threading

    from funapi_sync._json import encode_json

    inside, release = threading.Event(), threading.Event()

    class HoldingSet(set):
        held = False

        def __iter__(self):
            if not HoldingSet.held:
                HoldingSet.held = True
                inside.set()
                release.wait(10)
            return super().__iter__()

    shared = [HoldingSet({1})]
    results: list[bytes] = []
    first = threading.Thread(target=lambda: results.append(encode_json(shared)))
    first.start()
    try:
        assert inside.wait(10)
        assert encode_json(shared) == b"[[1]]"
    finally:
        release.set()
        first.join(10)
    assert results == [b"[[1]]"]


def test_non_ascii_json_has_a_byte_content_length(app, client):
    @app.get("/")
    def handler():
        return {"emoji": "😀", "text": "zoë"}

    response = client.get("/")
    assert response.json == {"emoji": "😀", "text": "zoë"}
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    assert int(response.headers["Content-Length"]) > len(response.get_data(as_text=True))


def test_status_204_sends_no_body(app):
    @app.delete("/items/<int:item_id>", status_code=204)
    def remove(input):
        return {"ignored": True}

    @app.delete("/other")
    def other():
        return None, 204

    client = app.test_client()
    for path in ("/items/1", "/other"):
        response = client.delete(path)
        assert response.status_code == 204
        assert response.get_data() == b""
        assert "Content-Length" not in response.headers
        assert "Content-Type" not in response.headers


# -- response_schema ---------------------------------------------------------------------

PublicUser = Schema.define(
    "PublicUser",
    id=fields.Integer(required=True),
    name=fields.String(required=True),
)


def test_response_schema_filters_undeclared_fields(app, client):
    @app.get("/me", response_schema=PublicUser)
    def me():
        return {"id": 1, "name": "Ada", "password": "hunter2", "email": "a@example.com"}

    response = client.get("/me")
    assert response.json == {"id": 1, "name": "Ada"}
    assert b"hunter2" not in response.get_data()
    assert_content_length(response)


def test_response_schema_dumps_objects(app, client):
    @dataclasses.dataclass
    class User:
        id: int
        name: str
        password: str

    @app.get("/me", response_schema=PublicUser)
    def me():
        return User(1, "Ada", "secret"), 200, {"X-Kind": "object"}

    response = client.get("/me")
    assert response.json == {"id": 1, "name": "Ada"}
    assert response.headers["X-Kind"] == "object"


def test_list_response_schema_filters_every_item(app, client):
    @app.get("/users", response_schema=[PublicUser])
    def users():
        return [
            {"id": 1, "name": "Ada", "password": "a"},
            {"id": 2, "name": "Alan", "password": "b"},
        ]

    assert client.get("/users").json == [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Alan"}]


def test_payload_not_satisfying_the_response_schema_is_a_logged_500(app, client, caplog_funapi):
    @app.get("/me", response_schema=PublicUser)
    def me():
        return {"name": "Ada", "password": "hunter2"}

    response = client.get("/me")

    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    assert b"hunter2" not in response.get_data()
    (record,) = error_records(caplog_funapi)
    assert record.getMessage() == "Exception on GET /me"
    assert isinstance(record.exc_info[1], ResponseSchemaError)
    assert "PublicUser" in str(record.exc_info[1])


def test_error_status_is_not_dumped_through_the_response_schema(app, client):
    @app.get("/me", response_schema=PublicUser)
    def me():
        return {"detail": "Not logged in"}, 401

    response = client.get("/me")
    assert response.status_code == 401
    assert response.json == {"detail": "Not logged in"}


# -- bad return values are the handler's bug: a logged 500 --------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            ("a", 200, {}, "extra"),
            "a handler returned a tuple of 4 items; return payload, (payload, status) or"
            " (payload, status, headers)",
        ),
        (
            ("a", 999),
            "a handler returned status 999; the second item must be a known HTTP status code"
            " such as 201",
        ),
        (
            ("a", "201"),
            "a handler returned status '201'; the second item must be a known HTTP status"
            " code such as 201",
        ),
        (
            b"raw bytes",
            "bytes is not JSON serializable; JSON has no bytes type. Return a werkzeug"
            " Response(data, mimetype=...) to send raw bytes",
        ),
        (
            object(),
            "an object of type object is not JSON serializable; convert it to a dict, list,"
            " str or number, or pass App(json_default=fn) with fn(obj) returning something"
            " JSON can encode (see docs/validation.md)",
        ),
        (float("nan"), "Out of range float values are not JSON compliant"),
        (
            ("a", 200, "X-Total: 3"),
            "response headers must be a dict such as {'X-Total': '3'} or a list of (name,"
            " value) pairs, got str 'X-Total: 3'",
        ),
        (
            ("a", 200, [("X-Total", "3", "extra")]),
            "response headers must be a dict such as {'X-Total': '3'} or a list of (name,"
            " value) pairs, got an item ('X-Total', '3', 'extra')",
        ),
    ],
    ids=[
        "4-tuple",
        "unknown-status",
        "str-status",
        "bytes",
        "object",
        "nan",
        "str-headers",
        "triple",
    ],
)
def test_bad_return_value_is_a_logged_500(app, client, caplog_funapi, value, message):
    @app.get("/bad")
    def bad():
        return value

    response = client.get("/bad")

    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    assert_content_length(response)
    (record,) = error_records(caplog_funapi)
    assert str(record.exc_info[1]) == message
    assert message not in response.get_data(as_text=True)


# -- App(json_default=...) -----------------------------------------------------------------


def test_json_default_encodes_what_the_defaults_do_not(tmp_path):
    import sqlite3

    from funapi_sync import App, HTTPException

    db = sqlite3.connect(tmp_path / "app.db")
    db.row_factory = sqlite3.Row
    db.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    db.execute("INSERT INTO users VALUES (1, 'ada')")

    def encode(obj):
        if isinstance(obj, sqlite3.Row):
            return dict(obj)
        raise TypeError(type(obj).__name__)

    app = App(json_default=encode)

    @app.get("/user")
    def user():
        # A datetime still gets the default encoding: encode() raised TypeError for it.
        row = db.execute("SELECT * FROM users").fetchone()
        return {"user": row, "at": datetime.date(2026, 1, 2)}

    @app.get("/error")
    def error():
        raise HTTPException(409, detail=db.execute("SELECT * FROM users").fetchone())

    client = app.test_client()
    assert client.get("/user").json == {"user": {"id": 1, "name": "ada"}, "at": "2026-01-02"}
    # Error bodies go through the same encoder.
    assert client.get("/error").json == {"detail": {"id": 1, "name": "ada"}}
    db.close()


def test_json_default_can_encode_a_default_type_another_way():
    from funapi_sync import App

    def epoch(obj):
        if isinstance(obj, datetime.datetime):
            return int(obj.timestamp())
        raise TypeError

    app = App(json_default=epoch)

    @app.get("/now")
    def now():
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        return {"at": when, "id": uuid.UUID(int=1)}

    assert app.test_client().get("/now").json == {
        "at": 1767225600,
        "id": "00000000-0000-0000-0000-000000000001",
    }


def test_json_default_must_be_callable():
    from funapi_sync import App

    with pytest.raises(TypeError, match=r"json_default must be a function such as fn\(obj\)"):
        App(json_default="str")


def test_an_unencodable_return_value_is_logged_with_its_type_route_and_fix(caplog):
    from pathlib import PurePosixPath

    from funapi_sync import App

    app = App()

    @app.get("/file")
    def file():
        return {"path": PurePosixPath("/tmp/x"), "note": "€"}

    response = app.test_client().get("/file")

    assert (response.status_code, response.json) == (500, {"detail": "Internal Server Error"})
    (record,) = error_records(caplog)
    assert record.getMessage() == (
        "file() at GET /file returned an object of type PurePosixPath on GET /file; convert"
        " it to a dict, list, str or number, or pass App(json_default=fn) with fn(obj)"
        " returning something JSON can encode (see docs/validation.md)"
    )


def test_a_json_default_that_gives_up_is_named_in_the_error(caplog):
    from funapi_sync import App

    def rows_only(obj):
        raise TypeError("not a row")

    app = App(json_default=rows_only)

    @app.get("/thing")
    def thing():
        return {"thing": object()}

    assert app.test_client().get("/thing").status_code == 500
    (record,) = error_records(caplog)
    assert "App(json_default=test_a_json_default_that_gives_up_is_named_in_the_error.<locals>" in (
        record.getMessage()
    )
    assert "raised TypeError for it too" in record.getMessage()
