"""funapi_sync, lean: each handler declares only what it uses; a body schema, ``add_task``.

``funapi_seed_app`` is the same app in the seed's ``(input, req, task, *, background)`` shape.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from funapi_sync import App, HTTPException, Schema

from .common import HELLO, MAX_USER_ID, record_signup, signup_payload, user_payload

SignupSchema = Schema.define(
    "Signup",
    name=fields.String(required=True, validate=Schema.filled),
    email=fields.String(required=True, validate=Schema.filled),
)


def create_app(task_seconds: float = 0.0) -> App:
    app = App(title="Benchmark API")

    @app.get("/hello")
    def hello() -> Any:
        return HELLO

    @app.get("/users/<int:id>")
    def user(input: Any) -> Any:
        user_id = input.path["id"]
        if user_id > MAX_USER_ID:
            raise HTTPException(404)
        return user_payload(user_id, input.query.get("verbose") == "1")

    @app.post("/signup", body=SignupSchema, status_code=201)
    def signup(input: Any, *, background: Any) -> Any:
        background.add_task(record_signup, input.body["email"], task_seconds)
        return signup_payload(input.body)

    return app


app = create_app()
