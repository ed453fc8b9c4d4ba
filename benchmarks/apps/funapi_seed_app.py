"""funapi_sync in the seed's handler shape: every handler is ``(input, req, task, *, background)``.

The same app as ``funapi_app`` (the lean shape, each handler declaring only what it uses),
written the way the README, the seed and the docs write handlers (issue #16): what a
handler declares but never reads must cost (next to) nothing.
"""

from __future__ import annotations

from typing import Any

from funapi_sync import App, HTTPException

from .common import HELLO, MAX_USER_ID, record_signup, signup_payload, user_payload
from .funapi_app import SignupSchema


def create_app(task_seconds: float = 0.0) -> App:
    app = App(title="Benchmark API")

    @app.get("/hello")
    def hello(input: Any, req: Any, task: Any, *, background: Any) -> Any:
        return HELLO

    @app.get("/users/<int:id>")
    def user(input: Any, req: Any, task: Any, *, background: Any) -> Any:
        user_id = input.path["id"]
        if user_id > MAX_USER_ID:
            raise HTTPException(404)
        return user_payload(user_id, input.query.get("verbose") == "1")

    @app.post("/signup", body=SignupSchema, status_code=201)
    def signup(input: Any, req: Any, task: Any, *, background: Any) -> Any:
        background.add_task(record_signup, input.body["email"], task_seconds)
        return signup_payload(input.body)

    return app


app = create_app()
