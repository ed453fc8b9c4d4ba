"""Receive signed webhooks, answer 202 at once, process each event durably.

The sender signs the raw body with a shared secret (``X-Signature: sha256=<hex>``, as
GitHub and Stripe do); the handler checks it over the exact bytes received, stores the
processing task in an SQLite file **before** answering (``persist="before_response"``:
a 202 means the event will be processed, even if this worker is SIGKILLed a moment
later), and a gunicorn worker processes it after the response, retrying on failure.

    WEBHOOK_SECRET=change-me gunicorn examples.webhooks:app --workers 4

    body='{"id": "evt_1", "type": "payment.succeeded", "amount": 1200}'
    sig=$(printf %s "$body" | openssl dgst -sha256 -hmac change-me -hex | cut -d' ' -f2)
    curl -X POST localhost:8000/webhooks -H "X-Signature: sha256=$sig" -d "$body"
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sqlite3
from contextlib import closing
from typing import Any

from funapi_sync import App, HTTPException, current_task
from funapi_sync.backends import Retry
from funapi_sync.backends.sqlite import SQLiteBackend

logger = logging.getLogger("examples.webhooks")

SECRET = os.environ.get("WEBHOOK_SECRET", "change-me").encode()
TASKS_DB = os.environ.get("WEBHOOKS_TASKS_DB", "webhooks_tasks.sqlite3")
EVENTS_DB = os.environ.get("WEBHOOKS_EVENTS_DB", "webhooks_events.sqlite3")

app = App(
    title="Webhooks",
    background_backend=SQLiteBackend(
        TASKS_DB, retry=Retry(max=3, interval=[5, 30, 120]), persist="before_response"
    ),
)


def process_event(event_id: str, kind: str, payload: dict[str, Any]) -> str:
    """Record the event once: a retry, or a rerun after a crash, finds it done."""
    task = current_task()
    with closing(sqlite3.connect(EVENTS_DB, timeout=10)) as conn, conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS events"
            " (id TEXT PRIMARY KEY, kind TEXT, payload TEXT, task TEXT)"
        )
        # NOTE: keyed by the sender's event id: a sender that retries its delivery, and
        # a task run twice after its process died, both insert nothing the second time.
        conn.execute(
            "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)",
            (event_id, kind, json.dumps(payload), task.id if task else None),
        )
    return event_id


def verified_event(raw: bytes, signature: str | None) -> dict[str, Any]:
    """The JSON event in ``raw`` if ``signature`` signs it; 401 otherwise, 400 if not JSON."""
    expected = "sha256=" + hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
    # NOTE: compare_digest takes as long whatever the guess, so timing tells nothing.
    if signature is None or not hmac.compare_digest(signature.encode(), expected.encode()):
        raise HTTPException(401, "Bad signature")
    try:
        event = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "The body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise HTTPException(400, 'An event is a JSON object with a string "id"')
    return event


@app.post("/webhooks", status_code=202)
def receive(input: Any, req: Any, *, background: Any) -> dict[str, Any]:
    """Verify the signature over the raw body, store the event's task, answer 202."""
    event = verified_event(req.get_data(), req.headers.get("X-Signature"))
    handle = background.add_task(process_event, event["id"], str(event.get("type", "")), event)
    # The id is known before the response: the sender can poll GET /webhooks/tasks/<id>.
    return {"accepted": event["id"], "task": handle.id}


@app.get("/webhooks/tasks/<task_id>")
def task_status(input: Any) -> dict[str, Any]:
    """The stored task's status, from whichever worker answers (the SQLite file is shared)."""
    status = app.background.status(input.path["task_id"])
    if status is None:
        raise HTTPException(404, "No such task")
    return {"id": status.id, "status": status.status, "attempts": status.attempts}
