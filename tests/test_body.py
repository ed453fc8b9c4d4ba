"""Reading the body: req.get_data() is the exact bytes the client sent, whoever read first."""

from __future__ import annotations

import hashlib
import hmac
import io
import json

import pytest
from marshmallow import fields
from werkzeug.test import Client

from funapi_sync import App, Depends, File, HTTPException, Router, Schema
from funapi_sync.security import APIKeyHeader

SECRET = b"webhook-secret"

Order = Schema.define("Order", item=fields.String(required=True), qty=fields.Integer())
Upload = Schema.define("Upload", note=fields.String(), file=File())


def sign(data: bytes) -> str:
    return hmac.new(SECRET, data, hashlib.sha256).hexdigest()


SIGNATURE = APIKeyHeader(name="X-Signature")


def verify_signature(req, signature=Depends(SIGNATURE)):
    """A guard built on a security scheme: it runs before the body is read."""
    if not hmac.compare_digest(sign(req.get_data()), signature):
        raise HTTPException(401, "Bad signature", headers={"WWW-Authenticate": "Signature"})


def signed_app() -> App:
    app = App()
    hooks = Router("/hooks", depends=[Depends(verify_signature)])

    @hooks.post("/json", body=Order)
    def json_hook(input, req):
        return {"body": input.body, "raw": req.get_data().decode()}

    @hooks.post("/form", body=Order)
    def form_hook(input, req):
        return {"body": input.body, "raw": req.get_data().decode()}

    @hooks.post("/upload", body=Upload)
    def upload_hook(input, req):
        return {"note": input.body["note"], "size": len(req.get_data())}

    app.include_router(hooks)
    return app


def _form(data: dict[str, str]) -> tuple[bytes, str]:
    from urllib.parse import urlencode

    return urlencode(data).encode(), "application/x-www-form-urlencoded"


def _multipart() -> tuple[bytes, str]:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nfile contents\r\n--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


DELIVERIES = {
    "/hooks/json": (json.dumps({"item": "tea", "qty": 2}).encode(), "application/json"),
    "/hooks/form": _form({"item": "tea", "qty": "2"}),
    "/hooks/upload": _multipart(),
}


@pytest.mark.parametrize("path", sorted(DELIVERIES))
def test_a_signature_guard_over_get_data_accepts_a_valid_delivery(path):
    data, content_type = DELIVERIES[path]
    response = (
        signed_app()
        .test_client()
        .post(path, data=data, content_type=content_type, headers={"X-Signature": sign(data)})
    )
    assert response.status_code == 200, response.json
    if path == "/hooks/upload":
        assert response.json == {"note": "hello", "size": len(data)}
    else:
        assert response.json["raw"] == data.decode()
        assert response.json["body"] == {"item": "tea", "qty": 2}


@pytest.mark.parametrize("path", sorted(DELIVERIES))
def test_a_signature_guard_refuses_a_tampered_delivery(path):
    data, content_type = DELIVERIES[path]
    tampered = data.replace(b"tea", b"gin").replace(b"hello", b"hullo")
    assert tampered != data
    response = (
        signed_app()
        .test_client()
        .post(path, data=tampered, content_type=content_type, headers={"X-Signature": sign(data)})
    )
    assert response.status_code == 401
    assert response.json == {"detail": "Bad signature"}


def test_get_data_after_the_form_was_parsed_is_the_raw_form(app):
    @app.post("/f")
    def handler(input, req):
        assert req.form["a"] == "1"
        return {"form": input.body, "raw": req.get_data(as_text=True)}

    response = app.test_client().post("/f", data={"a": "1", "b": "x y"})
    assert response.json == {"form": {"a": "1", "b": "x y"}, "raw": "a=1&b=x+y"}


def test_a_dependency_reading_the_form_first_leaves_the_raw_bytes(app):
    seen = []
    app.register("form_first", lambda req: seen.append(req.form.to_dict()))

    @app.post("/f", body=Order, depends=["form_first"])
    def handler(input, req, *, form_first):
        return {"raw": req.get_data(as_text=True), "qty": input.body["qty"]}

    response = app.test_client().post("/f", data={"item": "tea", "qty": "3"})
    assert response.json == {"raw": "item=tea&qty=3", "qty": 3}
    assert seen == [{"item": "tea", "qty": "3"}]


def test_get_data_with_parse_form_data_keeps_the_bytes_and_the_form(app):
    @app.post("/f")
    def handler(input, req):
        raw = req.get_data(parse_form_data=True)
        return {"raw": raw.decode(), "form": req.form.to_dict()}

    response = app.test_client().post("/f", data={"a": "1"})
    assert response.json == {"raw": "a=1", "form": {"a": "1"}}


def test_a_guard_reading_get_data_first_leaves_a_json_body_to_the_schema_under_a_real_stream():
    """werkzeug's Client hands a BytesIO; a server's stream cannot be read twice."""
    app = signed_app()
    data = json.dumps({"item": "tea"}).encode()

    class OneShot(io.RawIOBase):
        def __init__(self) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer):
            chunk = self._data.read(min(len(buffer), 3))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/hooks/json",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_X_SIGNATURE": sign(data),
        "wsgi.input": OneShot(),
    }
    from werkzeug.test import EnvironBuilder

    base = EnvironBuilder(method="POST").get_environ()
    base.update(environ)
    body, status, _headers = Client(app).run_wsgi_app(base)
    assert status.startswith("200"), b"".join(body)
    assert json.loads(b"".join(body))["body"] == {"item": "tea"}


def test_a_body_over_the_limit_is_413_before_a_guard_keeps_it():
    app = App(max_body_size=10)

    @app.post("/f")
    def handler(input, req):
        return len(req.get_data())

    response = app.test_client().post("/f", data={"a": "x" * 100})
    assert response.status_code == 413
