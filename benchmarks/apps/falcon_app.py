"""Falcon 4: resources, ``resp.media``, and a closing stream for the background task.

NOTE: Falcon 4 has no WSGI ``schedule()``; a ``resp.stream`` without ``read()`` is handed to
the server as the response iterable, so its ``close()`` is the after-response hook.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import falcon
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


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = HELLO


class User:
    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: int) -> None:
        if user_id > MAX_USER_ID:
            raise falcon.HTTPNotFound()
        resp.media = user_payload(user_id, req.get_param_as_bool("verbose", default=False))


class Signup:
    def __init__(self, task_seconds: float, handoff: Callable[..., Any] | None) -> None:
        self.schema = SignupSchema()
        self.task_seconds = task_seconds
        self.handoff = handoff

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            data = self.schema.load(req.get_media())
        except ValidationError as exc:
            raise falcon.HTTPUnprocessableEntity(description=json.dumps(exc.messages))
        body = json.dumps(signup_payload(data), separators=(",", ":")).encode()
        resp.status = falcon.HTTP_201
        resp.content_type = falcon.MEDIA_JSON
        resp.content_length = len(body)
        if self.handoff is None:
            task = functools.partial(record_signup, data["email"], self.task_seconds)
        else:
            task = functools.partial(self.handoff, record_signup, data["email"], self.task_seconds)
        resp.stream = ClosingBody(body, task)


def create_app(task_seconds: float = 0.0, handoff: Callable[..., Any] | None = None) -> falcon.App:
    """The app; ``handoff(fn, *args)`` (``falcon_pool``) is called in close() instead of ``fn``."""
    app = falcon.App()
    app.add_route("/hello", Hello())
    app.add_route("/users/{user_id:int}", User())
    app.add_route("/signup", Signup(task_seconds, handoff))
    return app


app = create_app()
