"""current_task(): the id and attempt of the background task running in this thread."""

from __future__ import annotations

import contextvars
from typing import NamedTuple


class CurrentTask(NamedTuple):
    """The running task: its id (the backend's, as in its status) and its attempt (1 first)."""

    id: str
    attempt: int


#: Set by a durable backend's runner around each task; a task's context is its own.
_current: contextvars.ContextVar[CurrentTask | None] = contextvars.ContextVar(
    "funapi_sync_current_task", default=None
)


def current_task() -> CurrentTask | None:
    """The task this code runs in (``id``, ``attempt``), or None outside a durable task.

    A task may run twice when the process running it died mid-run (its lease expired):
    key what it does by ``current_task().id`` to make it idempotent.
    """
    return _current.get()


def set_current(task: CurrentTask | None) -> contextvars.Token[CurrentTask | None]:
    """Make ``task`` current in this context (the runner's side)."""
    return _current.set(task)
