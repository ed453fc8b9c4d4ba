"""Startup and shutdown hooks: test client, in-process shutdown, and real gunicorn workers."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from funapi_sync import App

# -- through the test client ------------------------------------------------------------


def test_startup_hooks_run_once_on_the_first_request_in_registration_order(app, client):
    events: list[str] = []

    @app.on_startup
    def open_db():
        events.append("open db")

    app.on_startup(lambda: events.append("warm cache"))

    @app.get("/")
    def index():
        events.append("request")
        return {}

    assert events == []
    client.get("/")
    client.get("/")
    assert events == ["open db", "warm cache", "request", "request"]


def test_on_startup_returns_the_function_so_it_stays_callable(app):
    def hook():
        return "ran"

    assert app.on_startup(hook) is hook
    assert app.on_shutdown(hook) is hook


def test_hooks_must_be_callable(app):
    with pytest.raises(TypeError, match="on_startup\\(\\) takes a callable, got 'x'"):
        app.on_startup("x")
    with pytest.raises(TypeError, match="on_shutdown\\(\\) takes a callable, got None"):
        app.on_shutdown(None)


def test_failing_startup_hook_fails_the_request_and_is_retried_on_the_next(
    app, client, caplog_funapi
):
    events: list[str] = []
    attempts: list[int] = []

    @app.on_startup
    def first():
        events.append("first")

    @app.on_startup
    def connect():
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("database unreachable")
        events.append("connected")

    @app.get("/")
    def index():
        events.append("request")
        return {"ok": True}

    # NOTE: the test client lets the app's exception through, as werkzeug's does: the
    # startup failure is what the test sees, not a 500 body.
    with pytest.raises(ConnectionError, match="database unreachable"):
        client.get("/")
    assert events == ["first"]
    [record] = [r for r in caplog_funapi.records if r.levelno == logging.CRITICAL]
    assert record.getMessage() == (
        f"startup hook test_failing_startup_hook_fails_the_request_and_is_retried_on_the_next"
        f".<locals>.connect failed in process {os.getpid()}; this process serves no request"
        " until its startup hooks succeed"
    )
    assert record.exc_info is not None

    # The next request retries the failed hook only; the ones that succeeded ran once.
    assert client.get("/").json == {"ok": True}
    assert events == ["first", "connected", "request"]
    assert len(attempts) == 2


def test_on_startup_after_the_app_started_is_refused(app, client):
    @app.get("/")
    def index():
        return {}

    client.get("/")

    def late():
        pass

    with pytest.raises(RuntimeError) as info:
        app.on_startup(late)
    assert str(info.value) == (
        "on_startup(test_on_startup_after_the_app_started_is_refused.<locals>.late) was"
        " called after the app started serving in this process, so the hook would never"
        " run; register startup hooks before the first request (e.g. at import time, next"
        " to the routes)"
    )


def test_shutdown_hook_may_be_added_after_start(app, client):
    events: list[str] = []

    @app.get("/")
    def index():
        return {}

    client.get("/")
    app.on_shutdown(lambda: events.append("bye"))
    app.lifecycle.shutdown()
    assert events == ["bye"]


def test_app_that_never_started_runs_no_shutdown_hooks():
    app = App()
    events: list[str] = []
    app.on_shutdown(lambda: events.append("bye"))
    app.lifecycle.shutdown()
    assert events == []


# -- shutdown in a process of its own ---------------------------------------------------
# NOTE: shutdown_process() shuts the process's pool down once and for all, so it runs
# in a fresh interpreter, never in the test process.


# -- under real gunicorn ------------------------------------------------------------------


def records(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [
        (event, int(pid))
        for event, pid in (line.split() for line in path.read_text().splitlines() if line)
    ]


def test_app_run_refuses_flasks_debug_before_any_startup_hook_runs():
    app = App()
    started = []
    app.on_startup(lambda: started.append("hook"))

    with pytest.raises(TypeError) as info:
        app.run(port=0, debug=True)

    message = str(info.value)
    assert message.startswith(
        "App.run() got options werkzeug's run_simple() does not take: ['debug']; for"
        " debug=True, pass App(debug=True) for tracebacks in 500 bodies and"
        " use_reloader=True to restart on changes; it takes ['use_reloader',"
    )
    assert started == []
    with pytest.raises(TypeError, match=r"does not take: \['workers'\]; it takes"):
        app.run(workers=4)
    assert started == []
