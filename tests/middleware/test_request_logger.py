"""Request logger: one access line per request on funapi_sync.access, with a request id."""

from __future__ import annotations

import logging
import re

import pytest
from werkzeug.middleware.lint import LintMiddleware
from werkzeug.wrappers import Response

from funapi_sync import App
from funapi_sync.middleware.request_logger import ENVIRON_KEY, RequestLoggerMiddleware, request_id

LINE = re.compile(
    r"^(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}|-) (?P<ms>\d+\.\d)ms"
    r" request_id=(?P<id>\S+)$"
)


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="funapi_sync.access")
    return caplog


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "funapi_sync.access"]


def make_app(**options) -> tuple[App, list[tuple[str, str | None]]]:
    app = App()
    seen: list[tuple[str, str | None]] = []

    def remember(where: str) -> None:
        seen.append((where, request_id.get()))

    @app.get("/items/<int:id>")
    def item(input, req, *, background):
        remember("handler")
        background.add_task(remember, "task")
        return {"id": input.path["id"], "environ": req.environ[ENVIRON_KEY]}

    @app.post("/missing")
    def missing():
        return {"detail": "gone"}, 404

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    @app.get("/stream")
    def stream():
        return Response((f"{n}\n".encode() for n in range(3)), mimetype="text/plain")

    app.use(LintMiddleware)
    app.add_request_logger(**options)
    return app, seen


def test_one_line_with_method_path_status_duration_and_generated_id(access) -> None:
    app, seen = make_app()
    response = app.test_client().get("/items/7?token=secret")
    assert response.status_code == 200
    rid = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    [record] = access_records(access)
    assert record.levelno == logging.INFO
    match = LINE.match(record.getMessage())
    assert match, record.getMessage()
    assert match["method"] == "GET"
    assert match["path"] == "/items/7"  # the query string (tokens!) is left out
    assert match["status"] == "200"
    assert match["id"] == rid
    assert float(match["ms"]) >= 0
    assert (record.method, record.path, record.status, record.request_id) == (
        "GET",
        "/items/7",
        "200",
        rid,
    )
    assert isinstance(record.duration_ms, float)
    # the id reached the handler, the environ, and the background task's context
    assert response.json["environ"] == rid
    assert seen == [("handler", rid), ("task", rid)]


def test_incoming_request_id_is_kept_and_echoed(access) -> None:
    app, seen = make_app()
    response = app.test_client().get("/items/1", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    assert access_records(access)[0].request_id == "abc-123"
    assert seen == [("handler", "abc-123"), ("task", "abc-123")]


@pytest.mark.parametrize("bad", ["x" * 129, "has space", "line\nbreak", "<script>", ""])
def test_unsafe_incoming_id_is_replaced(access, bad: str) -> None:
    app, _ = make_app()
    environ_overrides = {"HTTP_X_REQUEST_ID": bad}
    response = app.test_client().get("/items/1", environ_overrides=environ_overrides)
    rid = response.headers["X-Request-ID"]
    assert rid != bad
    assert re.fullmatch(r"[0-9a-f]{32}", rid)


def test_each_request_gets_its_own_id_and_the_context_is_reset(access) -> None:
    app, _ = make_app()
    client = app.test_client()
    ids = {client.get("/items/1").headers["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3
    assert request_id.get() is None


def test_error_statuses_are_logged(access, caplog_funapi) -> None:
    app, _ = make_app()
    client = app.test_client()
    assert client.post("/missing").status_code == 404
    assert client.get("/boom").status_code == 500
    assert client.get("/nowhere").status_code == 404
    statuses = [(r.method, r.path, r.status) for r in access_records(access)]
    assert statuses == [
        ("POST", "/missing", "404"),
        ("GET", "/boom", "500"),
        ("GET", "/nowhere", "404"),
    ]


def test_streamed_body_is_logged_once_after_it_was_sent(access) -> None:
    app, _ = make_app()
    response = app.test_client().get("/stream")
    assert response.data == b"0\n1\n2\n"
    assert [r.status for r in access_records(access)] == ["200"]


def test_custom_header_and_level(access) -> None:
    access.set_level(logging.DEBUG, logger="funapi_sync.access")
    app, _ = make_app(header="X-Trace", level=logging.DEBUG)
    response = app.test_client().get("/items/1", headers={"X-Trace": "t-1"})
    assert response.headers["X-Trace"] == "t-1"
    assert "X-Request-ID" not in response.headers
    [record] = access_records(access)
    assert record.levelno == logging.DEBUG
    assert record.getMessage().endswith("request_id=t-1")


def test_exception_from_an_inner_middleware_is_logged_as_500_and_propagates(access) -> None:
    def broken(environ, start_response):
        raise RuntimeError("inner middleware bug")

    app = RequestLoggerMiddleware(broken)
    with pytest.raises(RuntimeError, match="inner middleware bug"):
        app({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, lambda *a: None)
    assert [(r.path, r.status) for r in access_records(access)] == [("/x", "500")]
    assert request_id.get() is None


def test_bad_header_name_fails_at_registration() -> None:
    with pytest.raises(ValueError, match=r"header must be a header name such as 'X-Request-ID'"):
        App().add_request_logger(header="X Request")
