"""``import funapi_sync`` leaves out what an app may never use, in a fresh interpreter.

A subprocess each (the test process has imported everything already), so these are
server tests. Deferred is not dropped: each name still works on first use.
"""

from __future__ import annotations

import pytest
from _helpers import run_python

pytestmark = pytest.mark.server

#: What an app served by gunicorn or granian, without templates and before its first
#: /openapi.json, never needs: the dev server, Jinja2, apispec, the test client.
DEFERRED = ("jinja2", "apispec", "werkzeug.serving", "http.server", "werkzeug.test")
#: What only the first background task (the pool) or task.spawn (the fan-out) imports.
DEFERRED_UNTIL_A_TASK = ("concurrent.futures", "queue")


def test_import_funapi_sync_imports_none_of_the_deferred_modules():
    out = run_python(
        f"""
        import sys
        import funapi_sync
        deferred = {DEFERRED!r} + {DEFERRED_UNTIL_A_TASK!r}
        print(",".join(name for name in deferred if name in sys.modules))
        """
    )
    assert out == ""


def test_an_app_with_routes_served_as_wsgi_still_imports_none_of_them():
    out = run_python(
        f"""
        import sys
        from funapi_sync import App, Schema
        from marshmallow import fields

        class Signup(Schema):
            name = fields.String(required=True)

        app = App()

        @app.post("/signup", body=Signup)
        def signup(input, *, background):
            background.add_task(print, "task")
            return {{"name": input.body["name"]}}, 201

        data = b'{{"name":"a"}}'
        environ = {{
            "REQUEST_METHOD": "POST", "PATH_INFO": "/signup", "SERVER_NAME": "x",
            "SERVER_PORT": "80", "wsgi.url_scheme": "http", "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(data)), "wsgi.input": __import__("io").BytesIO(data),
        }}
        body = app(environ, lambda status, headers, exc_info=None: None)
        print(b"".join(body).decode())
        body.close()
        app.background.drain()
        print(",".join(name for name in {DEFERRED!r} if name in sys.modules))
        """
    )
    assert out.splitlines() == ['{"name":"a"}', "task"]


def test_an_app_with_the_tasks_page_imports_jinja2_when_the_page_is_first_rendered():
    out = run_python(
        """
        import sys
        from funapi_sync import App
        from funapi_sync.tasks_page import tasks_router

        app = App(openapi_url=None)
        app.include_router(tasks_router(), prefix="/_tasks")
        print("jinja2" in sys.modules)
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/_tasks", "SERVER_NAME": "x",
            "SERVER_PORT": "80", "wsgi.url_scheme": "http",
            "wsgi.input": __import__("io").BytesIO(b""),
        }
        body = app(environ, lambda status, headers, exc_info=None: None)
        print(b"Background tasks" in b"".join(body), "jinja2" in sys.modules)
        """
    )
    assert out.splitlines() == ["False", "True True"]


def test_each_deferred_name_works_on_first_use():
    out = run_python(
        """
        import funapi_sync
        import werkzeug
        from funapi_sync import App, Templates
        from funapi_sync.openapi import build_document
        from werkzeug import Client, Request

        app = App(title="t")

        @app.get("/hello")
        def hello():
            return {"message": "hi"}

        print(Templates.__module__, werkzeug.run_simple.__module__, Client.__module__)
        print(sorted(build_document(app)["paths"]))
        print(app.test_client().get("/openapi.json").json["info"]["title"])
        """
    )
    assert out.splitlines() == [
        "funapi_sync.templating werkzeug.serving werkzeug.test",
        "['/hello']",
        "t",
    ]


def test_a_submodule_the_package_init_imported_is_still_an_attribute():
    out = run_python(
        """
        import sys
        import funapi_sync
        import werkzeug
        print("werkzeug.serving" in sys.modules, werkzeug.serving.run_simple.__name__)
        print("werkzeug.test" in sys.modules, "__getattr__" in vars(werkzeug))
        """
    )
    # serving imported on demand, without the rest of the __init__ (werkzeug.test).
    assert out.splitlines() == ["False run_simple", "False True"]


def test_werkzeug_imported_first_is_left_as_it_is():
    out = run_python(
        """
        import sys
        import werkzeug
        import funapi_sync
        print("werkzeug.serving" in sys.modules, "__getattr__" in vars(werkzeug))
        """
    )
    assert out == "True False"
