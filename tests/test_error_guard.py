"""The error guard: answering an error can fail too, and is still a logged 500; cleanup runs."""

from __future__ import annotations

import logging

import pytest
from marshmallow import fields
from werkzeug.exceptions import HTTPException as WerkzeugHTTPException
from werkzeug.test import Client

from funapi_sync import App, HTTPException, Router, Schema

FINALIZING = "Request finalizing failed with an error while handling an error"


class Code599(WerkzeugHTTPException):
    code = 599
    description = "a code outside http.HTTPStatus"


def _app_with_generator_dependency(cleaned: list[str]) -> App:
    app = App()

    def db():
        try:
            yield "db"
        finally:
            cleaned.append("db closed")

    app.register("db", db)
    return app


def test_an_unencodable_http_exception_detail_is_a_logged_500_and_cleanup_runs(caplog):
    cleaned: list[str] = []
    app = _app_with_generator_dependency(cleaned)

    @app.get("/bytes", depends=["db"])
    def detail_bytes(*, db):
        raise HTTPException(400, detail=b"x")

    with caplog.at_level(logging.ERROR, logger="funapi_sync"):
        response = app.test_client().get("/bytes")
    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    assert FINALIZING in caplog.text
    assert cleaned == ["db closed"]


def test_a_werkzeug_exception_with_an_unknown_code_is_answered_with_that_code(caplog):
    cleaned: list[str] = []
    app = _app_with_generator_dependency(cleaned)

    @app.get("/599", depends=["db"])
    def odd(*, db):
        raise Code599()

    response = Client(app).get("/599")
    assert response.status == "599 Unknown"
    assert response.json == {"detail": "Unknown"}
    response.close()
    assert app.background.drain(timeout=10)
    assert cleaned == ["db closed"]


def test_an_exception_handler_that_raises_is_a_logged_500_and_cleanup_runs(caplog):
    cleaned: list[str] = []
    app = _app_with_generator_dependency(cleaned)

    @app.exception_handler(KeyError)
    def broken(req, exc):
        raise RuntimeError("the handler itself failed")

    @app.get("/key", depends=["db"])
    def key(*, db):
        raise KeyError("k")

    with caplog.at_level(logging.ERROR, logger="funapi_sync"):
        response = app.test_client().get("/key")
    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    assert "exception handler" in caplog.text
    assert "broken" in caplog.text
    assert "the handler itself failed" not in response.text
    assert cleaned == ["db closed"]


def test_an_exception_handler_returning_an_unencodable_detail_is_a_logged_500(caplog):
    app = App()

    @app.exception_handler(KeyError)
    def unusable(req, exc):
        return HTTPException(418, detail=b"\x00")

    @app.get("/key")
    def key():
        raise KeyError("k")

    with caplog.at_level(logging.ERROR, logger="funapi_sync"):
        response = app.test_client().get("/key")
    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}


def test_a_failing_response_schema_dump_is_a_logged_500_and_cleanup_runs(caplog):
    cleaned: list[str] = []
    app = _app_with_generator_dependency(cleaned)
    User = Schema.define("User", id=fields.Integer(required=True))

    @app.get("/user", response_schema=User, depends=["db"])
    def user(*, db):
        return {"id": "not a number"}

    with caplog.at_level(logging.ERROR, logger="funapi_sync"):
        response = app.test_client().get("/user")
    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    assert "Exception on GET /user" in caplog.text
    assert cleaned == ["db closed"]


def test_a_broken_repr_in_debug_mode_still_answers_500(caplog):
    class Unprintable(Exception):
        def __repr__(self) -> str:
            raise ValueError("no repr")

    app = App(debug=True)

    @app.get("/odd")
    def odd():
        raise Unprintable()

    with caplog.at_level(logging.ERROR, logger="funapi_sync"):
        response = app.test_client().get("/odd")
    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    assert FINALIZING in caplog.text


def test_cleanup_runs_and_dropped_tasks_are_logged_when_start_response_raises(caplog):
    cleaned: list[str] = []
    app = _app_with_generator_dependency(cleaned)

    def never_sent():
        cleaned.append("task ran")

    @app.get("/", depends=["db"])
    def index(*, db, background):
        background.add_task(never_sent)
        return {"ok": True}

    def start_response(status, headers, exc_info=None):
        raise OSError("client went away")

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    with (
        caplog.at_level(logging.ERROR, logger="funapi_sync"),
        pytest.raises(OSError, match="client went away"),
    ):
        app(environ, start_response)
    assert cleaned == ["db closed"]
    assert "not running the background tasks ['" in caplog.text
    assert "never_sent" in caplog.text


# -- the freeze ---------------------------------------------------------------------------


def _served() -> App:
    app = App()
    app.get("/")(lambda: "ok")
    assert app.test_client().get("/").json == "ok"
    return app


@pytest.mark.parametrize(
    ("late", "message"),
    [
        (
            lambda app: app.use(lambda wsgi: wsgi),
            "use(.*) was called after the app started serving",
        ),
        (lambda app: app.add_gzip(), r"use\('GZipMiddleware'\) was called after the app started"),
        (
            lambda app: app.exception_handler(KeyError)(lambda req, exc: None),
            r"exception_handler\(KeyError\) was called after the app started serving;"
            " register exception handlers before the first request",
        ),
        (lambda app: app.on_startup(lambda: None), "was called after the app started serving"),
    ],
)
def test_setup_after_the_app_served_is_refused_with_the_fix(late, message):
    app = _served()
    with pytest.raises(RuntimeError, match=message):
        late(app)


def test_routes_and_routers_added_after_serving_are_refused_with_the_fix():
    app = _served()
    with pytest.raises(RuntimeError) as info:
        app.get("/late")(lambda: "late")
    assert str(info.value) == (
        "route('/late') was called after the app started serving; add routes before the"
        " first request (e.g. at import time)"
    )
    router = Router("/r")
    router.get("/x")(lambda: "x")
    with pytest.raises(RuntimeError, match=r"include_router\('/r'\) was called after"):
        app.include_router(router)
    client = app.test_client()
    assert client.get("/late").status_code == 404
    assert client.get("/r/x").status_code == 404


def test_names_overrides_and_shutdown_hooks_stay_open_after_serving():
    app = _served()
    app.register("late_name", lambda: "value")
    app.dependency_overrides["late_name"] = lambda: "swapped"
    app.on_shutdown(lambda: None)


def test_setup_is_frozen_by_startup_before_the_first_request():
    app = App()
    app.lifecycle.ensure_started()  # what gunicorn's worker init and App.run() do
    with pytest.raises(RuntimeError, match="after the app started serving"):
        app.get("/x")(lambda: "x")


def test_an_unknown_route_option_fails_at_decoration_naming_the_known_ones():
    app = App()
    with pytest.raises(TypeError) as info:
        app.get("/x", bodyy=None)
    assert str(info.value).startswith("route('/x') got unknown route options ['bodyy']")
    assert "'body'" in str(info.value)
