"""The benchmark's scenarios and apps, and the conformance check every app must pass."""

from __future__ import annotations

import importlib
import importlib.util
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from werkzeug.test import EnvironBuilder

from .apps.common import SIGNUP_TASKS

#: App name -> module under ``benchmarks.apps``; raw first, it is the floor. Each inline
#: peer (its task runs in close(), holding the worker) has a ``_pool`` twin that hands the
#: task to a thread pool in close(), funapi_sync's guarantee; FastAPI is the peer users
#: would pick instead (ASGI, served by uvicorn, with ``async def`` and ``def`` endpoints).
APPS = {
    "raw": "raw_app",
    "raw_pool": "raw_pool_app",
    "falcon": "falcon_app",
    "falcon_pool": "falcon_pool_app",
    "flask": "flask_app",
    "flask_pool": "flask_pool_app",
    "funapi_sync": "funapi_app",
    "funapi_sync_seed": "funapi_seed_app",
    "fastapi": "fastapi_app",
    "fastapi_def": "fastapi_def_app",
}
#: The ASGI apps: served by uvicorn over HTTP, never called in process as WSGI.
ASGI_APPS = frozenset({"fastapi", "fastapi_def"})
#: The distribution each peer needs (funapi_sync's own apps need nothing more).
REQUIRES = {
    "falcon": ("falcon",),
    "falcon_pool": ("falcon",),
    "flask": ("flask",),
    "flask_pool": ("flask",),
    "fastapi": ("fastapi",),
    "fastapi_def": ("fastapi",),
}
#: funapi_sync's two handler shapes: the lean one, and the seed's (input, req, task, ...).
FUNAPI_SHAPES = {
    "funapi_sync": "lean: (input, *, background) as needed",
    "funapi_sync_seed": "seed: (input, req, task, *, background)",
}

SIGNUP_BODY = json.dumps({"name": "Ada", "email": "ada@example.com"}).encode()


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    path: str
    query: str = ""
    body: bytes = b""
    status: int = 200
    #: The JSON every app must answer, or None when only the status must match.
    expected: Any = None

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


HELLO = Scenario("hello", "GET", "/hello", expected={"message": "Hello, World!"})
USERS = Scenario(
    "users",
    "GET",
    "/users/42",
    query="verbose=1",
    expected={"id": 42, "name": "User 42", "verbose": True},
)
SIGNUP = Scenario(
    "signup",
    "POST",
    "/signup",
    body=SIGNUP_BODY,
    status=201,
    expected={"user": {"id": 1, "name": "Ada", "email": "ada@example.com"}},
)
USER_404 = Scenario("users_404", "GET", "/users/1000001", query="verbose=1", status=404)

#: The timed scenarios; ``USER_404`` is only checked.
TIMED = (HELLO, USERS, SIGNUP)


def module_path(app_name: str) -> str:
    return f"benchmarks.apps.{APPS[app_name]}"


def installed(distribution: str) -> bool:
    return importlib.util.find_spec(distribution) is not None


def available(names: Iterable[str] = APPS) -> tuple[list[str], dict[str, str]]:
    """The apps whose framework is installed, and the reason each other one is skipped."""
    found, skipped = [], {}
    for name in names:
        missing = [d for d in REQUIRES.get(name, ()) if not installed(d)]
        if missing:
            skipped[name] = f"{', '.join(missing)} is not installed (benchmarks/requirements.txt)"
        else:
            found.append(name)
    return found, skipped


def wsgi_apps(names: Iterable[str]) -> list[str]:
    return [name for name in names if name not in ASGI_APPS]


def load_apps(names: Iterable[str] = APPS) -> dict[str, Callable[..., Any]]:
    return {name: importlib.import_module(module_path(name)).app for name in names}


def drain_of(name: str, app: Any) -> Callable[[], Any]:
    """What waits for the tasks ``app`` handed to another thread: its pool's drain, or nothing."""
    background = getattr(app, "background", None)
    drain = getattr(background, "drain", None)
    if drain is None:
        pool = getattr(importlib.import_module(module_path(name)), "POOL", None)
        drain = getattr(pool, "drain", None)
    if drain is None:
        return lambda: None
    return lambda: drain(timeout=30)


def base_environ(scenario: Scenario) -> dict[str, Any]:
    """A server-like environ for ``scenario``; copy it and give it a fresh input per call."""
    builder = EnvironBuilder(
        path=scenario.path,
        method=scenario.method,
        query_string=scenario.query,
        data=scenario.body or None,
        content_type="application/json" if scenario.body else None,
        base_url="http://127.0.0.1:8000",
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    environ["SERVER_PROTOCOL"] = "HTTP/1.1"
    return environ


def fresh_environ(base: dict[str, Any], body: bytes) -> dict[str, Any]:
    environ = dict(base)
    environ["wsgi.input"] = BytesIO(body)
    return environ


def call(
    app: Callable[..., Any], environ: dict[str, Any], before_close: Callable[[], Any] | None = None
) -> tuple[int, bytes]:
    """Call ``app`` like a server: start_response, iterate the body, then ``close()``."""
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(line)

    iterable = app(environ, start_response)
    try:
        body = b"".join(iterable)
        if before_close is not None:
            before_close()
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return int(status[-1].split(" ", 1)[0]), body


def check_conformance(apps: dict[str, Callable[..., Any]], timeout: float = 5.0) -> list[str]:
    """Return the problems found (empty when every app answers every scenario alike).

    Checks each happy path's status and JSON, the 404's status, and that the signup runs
    exactly one background task, none of it before the server closes the response.
    """
    problems = []
    for name, app in apps.items():
        for scenario in (*TIMED, USER_404):
            before = SIGNUP_TASKS.value
            early: list[int] = []
            environ = fresh_environ(base_environ(scenario), scenario.body)
            status, body = call(app, environ, lambda early=early: early.append(SIGNUP_TASKS.value))
            if early != [before]:
                problems.append(f"{name} {scenario.name}: a task ran before close()")
            if status != scenario.status:
                problems.append(f"{name} {scenario.name}: status {status}, not {scenario.status}")
                continue
            if scenario.expected is not None and json.loads(body) != scenario.expected:
                problems.append(f"{name} {scenario.name}: body {body!r}")
            expected_tasks = before + (scenario is SIGNUP)
            deadline = time.monotonic() + timeout
            while SIGNUP_TASKS.value < expected_tasks and time.monotonic() < deadline:
                time.sleep(0.001)
            if SIGNUP_TASKS.value != expected_tasks:
                done = SIGNUP_TASKS.value - before
                problems.append(
                    f"{name} {scenario.name}: {done} background tasks ran, not"
                    f" {expected_tasks - before}"
                )
    return problems
