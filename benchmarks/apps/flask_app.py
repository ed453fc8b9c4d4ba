"""Flask 3: view functions, dict returns, and ``response.call_on_close`` for the task."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, make_response, request
from marshmallow import ValidationError

from .common import HELLO, MAX_USER_ID, SignupSchema, record_signup, signup_payload, user_payload


def create_app(task_seconds: float = 0.0, handoff: Callable[..., Any] | None = None) -> Flask:
    """The app; ``handoff(fn, *args)`` (``flask_pool``) is called in close() instead of ``fn``."""
    app = Flask(__name__)
    schema = SignupSchema()

    @app.get("/hello")
    def hello() -> Any:
        return HELLO

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> Any:
        if user_id > MAX_USER_ID:
            return {"detail": "Not Found"}, 404
        return user_payload(user_id, request.args.get("verbose") == "1")

    @app.post("/signup")
    def signup() -> Any:
        try:
            data = schema.load(request.get_json())
        except ValidationError as exc:
            return {"detail": exc.messages}, 422
        response = make_response(signup_payload(data), 201)
        if handoff is None:
            task = functools.partial(record_signup, data["email"], task_seconds)
        else:
            task = functools.partial(handoff, record_signup, data["email"], task_seconds)
        response.call_on_close(task)
        return response

    return app


app = create_app()
