"""No body that carries a request's work is a ``list``: granian never calls close() on one.

granian (like other servers' fast paths) joins a ``list`` body (or a list subclass) into
one buffer and never calls its ``close()``, so a body of that type would lose every task
of its request silently. Every path of the framework is called here like a server calls
it, and a body is checked whenever the request added a task: plain returns, Response
objects, streams, HEAD, errors raised after ``add_task``, each built-in middleware
stack, and the testing twin (errors through ``add_task_always``, since a failed request drops
plain tasks). The fake server then closes the body like gunicorn, and the
task must have run: the checked body is the one that carried it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from funapi_sync import App, HTTPException

sys.path.insert(0, str(Path(__file__).resolve().parent / "middleware"))
from close_chain_app import HEADERS, STACKS, build


def serve_once(wsgi_app, app: App, method: str, path: str, headers=None) -> object:
    """Call ``wsgi_app`` as a server does (iterate, then close) and return its body."""
    environ = EnvironBuilder(path=path, method=method, headers=headers).get_environ()
    body = wsgi_app(environ, lambda status, headers, exc_info=None: None)
    try:
        for _chunk in body:
            pass
    finally:
        if hasattr(body, "close"):
            body.close()
    app.background.drain()
    return body


def tasked_app(ran: list[str]) -> App:
    app = App(title="bodies")

    @app.get("/plain")
    def plain(input, *, background):
        background.add_task(ran.append, "plain")
        return {"ok": True}

    @app.post("/created")
    def created(input, *, background):
        background.add_task(ran.append, "created")
        return {"ok": True}, 201, {"X-Extra": "1"}

    @app.get("/empty")
    def empty(input, *, background):
        background.add_task(ran.append, "empty")
        return None, 204

    @app.get("/response")
    def response(input, *, background):
        background.add_task(ran.append, "response")
        return Response(b"raw", mimetype="text/plain")

    @app.get("/stream")
    def stream(input, *, background):
        background.add_task(ran.append, "stream")
        return Response((b"chunk" for _ in range(3)), mimetype="text/plain")

    @app.get("/http-error")
    def http_error(input, *, background):
        background.add_task_always(ran.append, "http-error")
        raise HTTPException(409, "taken")

    @app.get("/crash")
    def crash(input, *, background):
        background.add_task_always(ran.append, "crash")
        raise RuntimeError("boom")

    return app


CASES = [
    ("GET", "/plain"),
    ("HEAD", "/plain"),
    ("POST", "/created"),
    ("GET", "/empty"),
    ("GET", "/response"),
    ("HEAD", "/response"),
    ("GET", "/stream"),
    ("GET", "/http-error"),
    ("GET", "/crash"),
]


@pytest.mark.parametrize("testing", [False, True], ids=["server", "testing-twin"])
@pytest.mark.parametrize(("method", "path"), CASES)
def test_a_body_that_carries_tasks_is_never_a_list(method, path, testing, caplog):
    ran: list[str] = []
    app = tasked_app(ran)
    app.testing = testing
    try:
        body = serve_once(app, app, method, path)
    except RuntimeError:
        # The testing twin re-raises the handler's error; the body never reached a server.
        assert testing
        assert path == "/crash"
        return
    if testing and isinstance(body, list):
        # The testing twin did the work inside the app call for a whole body: the list
        # it returns carries no task any more.
        assert ran == [path.strip("/")]
        return
    assert not isinstance(body, list), (method, path, type(body))
    # The checked body carried the task (add_task_always on the error paths, which
    # drop plain add_task tasks): close() is what ran it.
    assert ran == [path.strip("/")]


@pytest.mark.parametrize("stack", sorted(STACKS))
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/big/t"), ("HEAD", "/big/t"), ("GET", "/stream/t")]
)
def test_behind_each_middleware_stack_the_body_is_never_a_list(stack, method, path):
    ran: list[str] = []
    app = build(stack, ran.append)
    body = serve_once(app, app, method, path, headers=HEADERS)
    assert not isinstance(body, list), (stack, method, path, type(body))
    assert len(ran) == 1, ran


def test_control_a_list_body_never_closed_loses_its_task():
    # What granian does with a list: join it, never close it. A wrapper that turns the
    # body into a list (the bug this file guards against) loses the task.
    ran: list[str] = []
    app = tasked_app(ran)

    def listing(wsgi_app):
        def wrapped(environ, start_response):
            body = wsgi_app(environ, start_response)
            return list(body)  # drops close()

        return wrapped

    body = serve_once(listing(app), app, "GET", "/plain")
    assert isinstance(body, list)
    assert ran == []
