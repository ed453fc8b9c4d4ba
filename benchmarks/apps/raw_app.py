"""The floor: a hand-written WSGI callable doing the same work with nothing in between."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from marshmallow import ValidationError

from .common import (
    HELLO,
    MAX_USER_ID,
    ClosingBody,
    SignupSchema,
    record_signup,
    signup_payload,
    user_payload,
)

_STATUS = {200: "200 OK", 201: "201 Created", 404: "404 Not Found", 422: "422 Unprocessable Entity"}
_NOT_FOUND = {"detail": "Not Found"}


def _json(start_response: Callable[..., Any], status: int, payload: Any) -> tuple[int, bytes]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    start_response(
        _STATUS[status],
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return status, body


def create_app(
    task_seconds: float = 0.0, handoff: Callable[..., Any] | None = None
) -> Callable[..., Iterable[bytes]]:
    """The app; ``handoff(fn, *args)`` (``raw_pool``) is called in close() instead of ``fn``."""
    schema = SignupSchema()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "/")
        if path == "/hello" and method == "GET":
            return [_json(start_response, 200, HELLO)[1]]
        if path.startswith("/users/") and method == "GET":
            tail = path[7:]
            if tail.isascii() and tail.isdigit():
                user_id = int(tail)
                if user_id > MAX_USER_ID:
                    return [_json(start_response, 404, _NOT_FOUND)[1]]
                query = parse_qs(environ.get("QUERY_STRING", ""))
                verbose = query.get("verbose") == ["1"]
                return [_json(start_response, 200, user_payload(user_id, verbose))[1]]
        if path == "/signup" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                data = schema.load(json.loads(environ["wsgi.input"].read(length)))
            except ValidationError as exc:
                return [_json(start_response, 422, {"detail": exc.messages})[1]]
            except ValueError:
                return [_json(start_response, 422, {"detail": "invalid JSON"})[1]]
            _, body = _json(start_response, 201, signup_payload(data))
            if handoff is None:
                task = functools.partial(record_signup, data["email"], task_seconds)
            else:
                task = functools.partial(handoff, record_signup, data["email"], task_seconds)
            return ClosingBody(body, task)
        return [_json(start_response, 404, _NOT_FOUND)[1]]

    return app


app = create_app()
