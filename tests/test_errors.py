"""Errors: HTTPException, ValidationError, exception handlers, 500s, debug, App settings."""

from __future__ import annotations

import pytest
from marshmallow import fields
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Request, Response

from funapi_sync import App, HTTPException, Schema, ValidationError


def error_records(caplog):
    return [r for r in caplog.records if r.name == "funapi_sync" and r.levelname == "ERROR"]


# -- HTTPException ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(400, "Bad Request"), (401, "Unauthorized"), (404, "Not Found"), (418, "I'm a Teapot")],
)
def test_http_exception_default_detail_is_the_reason_phrase(app, client, status, phrase):
    @app.get("/")
    def handler():
        raise HTTPException(status)

    response = client.get("/")
    assert response.status_code == status
    assert response.json == {"detail": phrase}


def test_http_exception_detail_may_be_any_json(app, client):
    @app.get("/")
    def handler():
        raise HTTPException(409, detail={"reason": "taken", "field": "email"})

    response = client.get("/")
    assert response.status_code == 409
    assert response.json == {"detail": {"reason": "taken", "field": "email"}}


def test_http_exception_headers_are_sent(app, client):
    @app.get("/")
    def handler():
        raise HTTPException(401, "Token expired", headers={"WWW-Authenticate": "Bearer"})

    response = client.get("/")
    assert response.status_code == 401
    assert response.json == {"detail": "Token expired"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["Content-Length"] == str(len(response.get_data()))


def test_http_exception_rejects_an_unknown_status():
    with pytest.raises(ValueError, match="must be a known HTTP status, got 999"):
        HTTPException(999)


def test_http_exception_attributes():
    exc = HTTPException(404)
    assert (exc.status_code, exc.detail, exc.headers) == (404, "Not Found", {})
    assert repr(exc) == "HTTPException(status_code=404, detail='Not Found')"


def test_werkzeug_http_exception_becomes_a_json_error(app, client):
    @app.get("/")
    def handler():
        raise Forbidden()

    response = client.get("/")
    assert response.status_code == 403
    assert response.json == {"detail": "Forbidden"}


# -- ValidationError ----------------------------------------------------------------------


def test_validation_error_is_a_422_in_fastapis_shape(app, client):
    errors = [{"loc": ["body", "email"], "msg": "Already registered.", "type": "value_error"}]

    @app.post("/signup")
    def signup():
        raise ValidationError(errors)

    response = client.post("/signup")
    assert response.status_code == 422
    assert response.json == {"detail": errors}


def test_request_validation_error_has_the_same_shape(app, client):
    User = Schema.define("User", email=fields.String(required=True))

    @app.post("/signup", body=User)
    def signup(input):
        return input.body

    response = client.post("/signup", json={})
    assert response.json == {
        "detail": [
            {"loc": ["body", "email"], "msg": "Missing data for required field.", "type": "missing"}
        ]
    }


# -- exception handlers --------------------------------------------------------------------


class PaymentError(Exception):
    pass


class CardDeclined(PaymentError):
    pass


def raising(exc):
    def handler():
        raise exc

    return handler


def test_exception_handler_answers_its_exception(app, client):
    @app.exception_handler(PaymentError)
    def payment_failed(req, exc):
        assert isinstance(req, Request)
        return {"detail": f"payment failed at {req.path}"}, 402

    @app.post("/pay")
    def pay():
        raise PaymentError()

    response = client.post("/pay")
    assert response.status_code == 402
    assert response.json == {"detail": "payment failed at /pay"}


def test_handler_for_a_base_class_catches_a_subclass(app, client):
    caught = []

    @app.exception_handler(PaymentError)
    def payment_failed(req, exc):
        caught.append(type(exc))
        return {"detail": "payment failed"}, 402

    @app.post("/pay")
    def pay():
        raise CardDeclined()

    assert client.post("/pay").status_code == 402
    assert caught == [CardDeclined]


def test_most_specific_exception_handler_wins(app, client):
    @app.exception_handler(Exception)
    def anything(req, exc):
        return "anything", 500

    @app.exception_handler(PaymentError)
    def payment(req, exc):
        return "payment", 402

    @app.exception_handler(CardDeclined)
    def declined(req, exc):
        return "declined", 402

    app.post("/declined")(raising(CardDeclined()))
    app.post("/payment")(raising(PaymentError()))
    app.post("/other")(raising(KeyError("k")))

    assert client.post("/declined").json == "declined"
    assert client.post("/payment").json == "payment"
    assert client.post("/other").json == "anything"


@pytest.mark.parametrize(
    ("returned", "status", "body", "header"),
    [
        ({"detail": "x"}, 200, b'{"detail":"x"}', None),
        (({"detail": "x"}, 409), 409, b'{"detail":"x"}', None),
        (({"detail": "x"}, 409, {"Retry-After": "5"}), 409, b'{"detail":"x"}', "5"),
        (Response("plain", status=503, headers={"Retry-After": "5"}), 503, b"plain", "5"),
    ],
    ids=["payload", "payload-status", "payload-status-headers", "response"],
)
def test_exception_handler_may_return_any_handler_return_value(
    app, client, returned, status, body, header
):
    app.exception_handler(PaymentError)(lambda req, exc: returned)

    @app.post("/pay")
    def pay():
        raise PaymentError()

    response = client.post("/pay")
    assert response.status_code == status
    assert response.get_data() == body
    assert response.headers.get("Retry-After") == header


def test_exception_handler_can_replace_the_http_exception_body(app, client):
    @app.exception_handler(HTTPException)
    def problem(req, exc):
        return {"title": exc.detail, "status": exc.status_code}, exc.status_code

    @app.get("/")
    def handler():
        raise HTTPException(404)

    response = client.get("/")
    assert response.status_code == 404
    assert response.json == {"title": "Not Found", "status": 404}


def test_exception_handler_can_reshape_request_validation_errors(app, client):
    @app.exception_handler(ValidationError)
    def invalid(req, exc):
        return {"errors": [".".join(map(str, e["loc"])) for e in exc.errors]}, 400

    @app.get("/search", query=Schema.define(q=fields.String(required=True)))
    def search(input):
        return input.query

    response = client.get("/search")
    assert response.status_code == 400
    assert response.json == {"errors": ["query.q"]}


def test_failing_exception_handler_is_a_logged_500(app, client, caplog_funapi):
    @app.exception_handler(PaymentError)
    def broken(req, exc):
        raise RuntimeError("handler bug with secret")

    @app.post("/pay")
    def pay():
        raise PaymentError()

    response = client.post("/pay")

    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    (record,) = error_records(caplog_funapi)
    assert record.getMessage() == (
        "exception handler test_failing_exception_handler_is_a_logged_500.<locals>.broken"
        " failed on POST /pay"
    )
    assert isinstance(record.exc_info[1], RuntimeError)


def test_exception_handler_returning_a_bad_value_is_a_logged_500(app, client, caplog_funapi):
    app.exception_handler(PaymentError)(lambda req, exc: ("x", 200, {}, "extra"))

    @app.post("/pay")
    def pay():
        raise PaymentError()

    response = client.post("/pay")
    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    assert len(error_records(caplog_funapi)) == 1


def test_exception_handler_takes_an_exception_class(app):
    with pytest.raises(TypeError, match="exception_handler\\(\\) takes an exception class"):
        app.exception_handler("ValueError")


# -- 500 ---------------------------------------------------------------------------------


def test_unhandled_exception_is_a_500_with_a_fixed_body(app, client, caplog_funapi):
    @app.get("/boom")
    def boom():
        raise RuntimeError("database password is hunter2")

    response = client.get("/boom")

    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    assert b"hunter2" not in response.get_data()
    assert b"Traceback" not in response.get_data()
    (record,) = error_records(caplog_funapi)
    assert record.getMessage() == "Exception on GET /boom"
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "hunter2" in caplog_funapi.text
    assert "Traceback (most recent call last)" in caplog_funapi.text


def test_debug_mode_sends_the_traceback(caplog_funapi):
    app = App(debug=True)

    @app.get("/boom")
    def boom():
        raise RuntimeError("visible in debug")

    response = app.test_client().get("/boom")

    assert response.status_code == 500
    detail = response.json["detail"]
    assert detail["error"] == "RuntimeError('visible in debug')"
    assert detail["traceback"][0] == "Traceback (most recent call last):\n"
    assert any("in boom" in line for line in detail["traceback"])
    assert detail["traceback"][-1] == "RuntimeError: visible in debug\n"
    assert len(error_records(caplog_funapi)) == 1


def test_the_server_keeps_serving_after_a_500(app, client, caplog_funapi):
    @app.get("/boom")
    def boom():
        raise RuntimeError("once")

    @app.get("/fine")
    def fine():
        return "fine"

    assert client.get("/boom").status_code == 500
    assert client.get("/fine").json == "fine"


# -- App settings ----------------------------------------------------------------------------


def test_unknown_app_setting_is_a_type_error():
    with pytest.raises(TypeError) as info:
        App(max_body=10)

    assert str(info.value).startswith("App() got unknown settings ['max_body']; known settings")
    assert "'max_body_size'" in str(info.value)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"max_body_size": -1}, "max_body_size must be a non-negative int, got -1"),
        ({"max_body_size": "1MB"}, "max_body_size must be a non-negative int, got '1MB'"),
        ({"background_workers": 0}, "background_workers must be a positive int, got 0"),
        ({"background_queue_size": 0}, "background_queue_size must be a positive int, got 0"),
        # NOTE: bool is an int subclass; True is a typo for a count, not 1 worker.
        ({"background_workers": True}, "background_workers must be a positive int, got True"),
        ({"max_body_size": False}, "max_body_size must be a non-negative int, got False"),
    ],
)
def test_bad_app_setting_value_is_a_value_error(setting, message):
    with pytest.raises(ValueError, match=message):
        App(**setting)


def test_app_metadata_defaults():
    app = App()
    assert (app.title, app.version, app.description) == ("FunApi Application", "1.0.0", "")
    assert app.debug is False
    assert app.settings["max_body_size"] == 1024 * 1024


# -- response splitting: CR, LF or NUL in a header never reaches the wire ------------


def header_app() -> App:
    app = App()

    @app.get("/tuple")
    def from_tuple(input):
        return {"ok": True}, 200, {"X-Echo": input.query.get("v", "")}

    @app.get("/name")
    def from_name(input):
        return {"ok": True}, 200, [(f"X-{input.query.get('v', '')}", "1")]

    @app.get("/raise")
    def from_exception(input):
        raise HTTPException(401, headers={"WWW-Authenticate": input.query.get("v", "")})

    @app.get("/response")
    def from_response(input):
        response = Response("moved", status=302)
        response.headers.add(f"X-{input.query.get('v', '')}", "1")
        return response

    @app.get("/location")
    def from_location(input):
        response = Response("moved", status=302)
        response.headers["Location"] = "/next?" + input.query.get("v", "")
        return response

    @app.exception_handler(LookupError)
    def lookup(req, exc):
        return {"detail": "gone"}, 404, {"X-Why": req.args.get("v", "")}

    @app.get("/handled")
    def handled(input):
        raise LookupError

    return app


SPLITTING = "a\r\nSet-Cookie: session=attacker"


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        ("/tuple", SPLITTING, "value"),
        ("/tuple", "a\nX-Injected: 1", "value"),
        ("/tuple", "a\x00b", "value"),
        ("/name", "A\r\nSet-Cookie: session=attacker\r\nX-B", "name"),
        ("/raise", SPLITTING, "value"),
        ("/response", "A\r\nSet-Cookie: session=attacker\r\nX-B", "name"),
        ("/location", "a\x00b", "value"),
        ("/handled", SPLITTING, "value"),
    ],
    ids=[
        "tuple-crlf",
        "tuple-lf",
        "tuple-nul",
        "tuple-name",
        "http-exception",
        "response-name",
        "location-nul",
        "exception-handler",
    ],
)
def test_a_header_with_cr_lf_or_nul_is_a_logged_500(caplog_funapi, path, value, where):
    from urllib.parse import quote

    response = header_app().test_client().get(f"{path}?v={quote(value)}")

    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    assert "Set-Cookie" not in response.headers
    errors = [r.getMessage() for r in caplog_funapi.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert f"has a CR, LF or NUL character in its {where} (response splitting)" in errors[0]
    assert errors[0].startswith(f"refused to send the response to GET {path}: header ")


def test_a_response_refused_for_a_split_header_runs_only_its_add_task_always_tasks(
    caplog_funapi,
):
    # A refused response is a failed request (SPEC §5): the client got a 500, so the
    # handler's plain add_task work (a welcome email) must not go out.
    app = App(background_backend="record")

    def notify(what):
        pass

    @app.get("/x")
    def echo(input, *, background):
        background.add_task(notify, "dropped")
        background.add_task_always(notify, "audit")
        return {}, 200, {"X": input.query["v"]}

    response = app.test_client().get("/x?v=a%0d%0aSet-Cookie:1")

    assert response.status_code == 500
    assert app.background.recorded == [(notify, ("audit",), {})]
    errors = [r.getMessage() for r in caplog_funapi.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "(response splitting)" in errors[0]


def test_the_dev_server_never_writes_a_split_response(caplog_funapi):
    # werkzeug's own server writes header lines as given; the framework must refuse first.
    import socket
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, header_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(
                b"GET /tuple?v=a%0d%0aSet-Cookie:%20session=attacker HTTP/1.1\r\n"
                b"Host: localhost\r\nConnection: close\r\n\r\n"
            )
            received = b""
            while chunk := client.recv(65536):
                received += chunk
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 ")
    assert b"Set-Cookie" not in received
    assert body == b'{"detail":"Internal Server Error"}'


def raw_header_app() -> tuple[App, list[str]]:
    app = App(background_backend="record")
    ran: list[str] = []

    @app.get("/name")
    def from_name(input, *, background):
        background.add_task(ran.append, "dropped")
        return {}, 200, [(input.query["v"], "1")]

    @app.get("/value")
    def from_value(input, *, background):
        background.add_task(ran.append, "dropped")
        return {}, 200, {"X-Value": input.query["v"]}

    return app, ran


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("/name", "Set-Cookie: evil=1; x"),
        ("/name", "X A"),
        ("/name", ""),
        ("/name", "X-Caf\u00e9"),
    ],
    ids=["set-cookie-smuggled", "space", "empty", "non-ascii"],
)
def test_a_header_name_that_is_not_a_token_is_a_logged_500(caplog_funapi, path, sent):
    from urllib.parse import quote

    app, _ = raw_header_app()
    response = app.test_client().get(f"{path}?v={quote(sent)}")

    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    assert "Set-Cookie" not in response.headers
    assert app.background.recorded == []  # a refused response is a failed request
    (error,) = [r.getMessage() for r in caplog_funapi.records if r.levelname == "ERROR"]
    assert f"header {sent!r} has a name that is not an RFC 9110 token" in error


def test_a_header_value_that_is_not_latin1_is_a_logged_500_whose_tasks_are_dropped(
    caplog_funapi,
):
    app, _ = raw_header_app()
    response = app.test_client().get("/value?v=%E2%9C%93")

    assert response.status_code == 500
    assert app.background.recorded == []
    (error,) = [r.getMessage() for r in caplog_funapi.records if r.levelname == "ERROR"]
    assert "header 'X-Value' has a value that is not latin-1 (PEP 3333)" in error


def test_a_latin1_value_and_a_token_name_are_sent():
    app, _ = raw_header_app()
    response = app.test_client().get("/value?v=caf%C3%A9")
    assert response.status_code == 200
    assert response.headers["X-Value"].encode("latin-1") == "café".encode("latin-1")
    response = app.test_client().get("/name?v=X-Odd!%23$%25%26'*%2B.^_`|~9")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "query", ["/name?v=Set-Cookie:%20evil=1;%20x", "/name?v=X%20A", "/value?v=%E2%9C%93"]
)
def test_the_dev_server_sends_a_500_for_a_bad_header_name_or_value(caplog_funapi, query):
    # werkzeug's server wrote such names as given, and sent nothing for a non-latin-1
    # value while the request's tasks ran.
    import socket
    import threading

    from werkzeug.serving import make_server

    app, _ = raw_header_app()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(
                f"GET {query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
            )
            received = b""
            while chunk := client.recv(65536):
                received += chunk
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 ")
    assert b"evil" not in head
    assert body == b'{"detail":"Internal Server Error"}'
    assert app.background.recorded == []


def test_a_refused_response_still_runs_its_close_callbacks(caplog_funapi):
    app = App()
    closed = []

    @app.get("/r")
    def r():
        response = Response("x")
        response.headers.add("X-A", "a\x00b")
        response.call_on_close(lambda: closed.append(True))
        return response

    assert app.test_client().get("/r").status_code == 500
    assert closed == [True]
