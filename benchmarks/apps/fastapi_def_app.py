"""FastAPI with ``def`` endpoints (run in FastAPI's thread pool), served by uvicorn.

The same app as ``fastapi_app``: a user porting a synchronous codebase writes ``def``.
"""

from __future__ import annotations

from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException

from .common import HELLO, MAX_USER_ID, record_signup, signup_payload, user_payload
from .fastapi_app import Signup


def create_app(task_seconds: float = 0.0) -> FastAPI:
    app = FastAPI(title="Benchmark API")

    @app.get("/hello")
    def hello() -> Any:
        return HELLO

    @app.get("/users/{user_id}")
    def user(user_id: int, verbose: bool = False) -> Any:
        if user_id > MAX_USER_ID:
            raise HTTPException(404, "Not Found")
        return user_payload(user_id, verbose)

    @app.post("/signup", status_code=201)
    def signup(body: Signup, background_tasks: BackgroundTasks) -> Any:
        background_tasks.add_task(record_signup, body.email, task_seconds)
        return signup_payload(body.model_dump())

    return app


app = create_app()
