"""What the apps share: the signup schema, the background task, a closing body, a task pool."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

#: ``GET /users/<id>`` answers 404 above this id.
MAX_USER_ID = 1_000_000
HELLO = {"message": "Hello, World!"}


class SignupSchema(Schema):
    """``{"name", "email"}``, both non-empty; unknown fields dropped (as funapi_sync does)."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(min=1))
    email = fields.String(required=True, validate=validate.Length(min=1))


def user_payload(user_id: int, verbose: bool) -> dict[str, Any]:
    return {"id": user_id, "name": f"User {user_id}", "verbose": verbose}


def signup_payload(data: dict[str, Any]) -> dict[str, Any]:
    return {"user": {"id": 1, **data}}


class TaskCounter:
    """Counts finished background tasks, so the conformance check can see them run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


SIGNUP_TASKS = TaskCounter()


def record_signup(email: str, seconds: float = 0.0) -> None:
    """The signup's background task: trivial, or a ``seconds`` sleep (latency isolation)."""
    if seconds:
        time.sleep(seconds)
    SIGNUP_TASKS.add()


class ClosingBody:
    """A one-chunk WSGI body whose ``close()`` runs ``callback``.

    PEP 3333 servers call ``close()`` once they have sent the body, so this is the plain
    WSGI way to do work after the response (what the raw and Falcon apps use).
    """

    __slots__ = ("_body", "_callback")

    def __init__(self, body: bytes, callback: Callable[[], Any]) -> None:
        self._body = body
        self._callback = callback

    def __iter__(self) -> Iterator[bytes]:
        return iter((self._body,))

    def close(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()


class TaskPool:
    """A stock ``ThreadPoolExecutor`` behind ``submit``: the ``*_pool`` peers' hand-off.

    What a Falcon, Flask or raw WSGI user writes for funapi_sync's guarantee (the client
    never waits for the task, and the worker is not held by it either): the body's
    ``close()`` submits the task to a thread pool instead of running it. :meth:`drain`
    (the in-process benchmark's, like ``app.background.drain()``) waits for every task
    submitted so far; the next ``submit`` starts a new executor.
    """

    def __init__(self, workers: int = 4) -> None:
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        executor = self._executor
        if executor is None:
            executor = self._executor = ThreadPoolExecutor(self.workers, "bench-task")
        executor.submit(fn, *args)

    def drain(self, timeout: float | None = None) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
