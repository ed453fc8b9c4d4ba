"""The seed's signup with durable tasks: the welcome email survives a restart and is retried.

The handler is examples/signup.py's, word for word; one setting changes where its tasks go:
``background_backend=RQBackend(...)`` hands each request's tasks to RQ on Redis, and an
rq worker runs them, in order, retrying a failed one up to three times.

Run it (from the project root, with a Redis on $REDIS_URL, default redis://localhost:6379/0):

    pip install -e '.[rq]'                          # rq and redis-py, from the clone
    gunicorn examples.signup_rq:app                 # the web tier
    funapi-sync worker examples.signup_rq:app       # a worker (startup hooks, then rq)
    # or: rq worker --with-scheduler --url "$REDIS_URL" signup   (same cwd/PYTHONPATH)

The queue is ``signup``; ``--with-scheduler`` (built into ``funapi-sync worker``) is what
runs the retries below when they fall due.

Both read $SIGNUP_DB (default ./signup.sqlite3): users, outbox and signup_log tables.
"""

from __future__ import annotations

import os

from rq import Retry

from examples.signup import (
    UserSchema,
    connect,
    create_tables,
    log_signup,
    notify_admin,
    outbox,
    send_welcome_email,
)
from funapi_sync import App
from funapi_sync.backends.rq import RQBackend

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")

app = App(
    title="Signup API (durable tasks)",
    version="1.0.0",
    # NOTE: RQ runs a job again on failure (10 s, then 30 s, then 60 s later), resuming at
    # the task that failed: a welcome email already sent is not sent twice.
    background_backend=RQBackend(
        REDIS_URL, queue="signup", retry=Retry(max=3, interval=[10, 30, 60])
    ),
)
app.on_startup(create_tables)
app.get("/outbox")(outbox)


@app.post("/signup", body=UserSchema, status_code=201)
def signup(input, req, task, *, background):
    """Create a user; the welcome email, the log line and the admin note go to RQ."""
    with connect() as conn:
        cursor = conn.execute(
            "INSERT INTO users (name, email) VALUES (?, ?)",
            (input.body["name"], input.body["email"]),
        )
        user = {"id": cursor.lastrowid, **input.body}
    # The row is committed (autocommit) before the response, so the job always finds it.
    background.add_task(send_welcome_email, user["email"])
    background.add_task(log_signup, user["id"])
    background.add_task(notify_admin, user)
    return {"user": user, "message": "Check your email!"}, 201
