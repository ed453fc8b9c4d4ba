"""FastAPI with ``async def`` endpoints, served by uvicorn: the peer users would pick instead.

Written the way FastAPI's docs write it: path and query parameters from the signature,
a pydantic model for the body, ``BackgroundTasks`` for the task (Starlette runs a plain
``def`` task in its thread pool after the response is sent). ``fastapi_def_app`` is the
same app with ``def`` endpoints, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException
from pydantic import BaseModel, Field

from .common import HELLO, MAX_USER_ID, record_signup, signup_payload, user_payload


class Signup(BaseModel):
    name: str = Field(min_length=1)
    email: str = Field(min_length=1)


def create_app(task_seconds: float = 0.0) -> FastAPI:
    app = FastAPI(title="Benchmark API")

    @app.get("/hello")
    async def hello() -> Any:
        return HELLO

    @app.get("/users/{user_id}")
    async def user(user_id: int, verbose: bool = False) -> Any:
        if user_id > MAX_USER_ID:
            raise HTTPException(404, "Not Found")
        return user_payload(user_id, verbose)

    @app.post("/signup", status_code=201)
    async def signup(body: Signup, background_tasks: BackgroundTasks) -> Any:
        background_tasks.add_task(record_signup, body.email, task_seconds)
        return signup_payload(body.model_dump())

    return app


app = create_app()
