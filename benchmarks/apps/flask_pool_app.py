"""Flask 3 with funapi_sync's guarantee: the body's close() hands the task to a thread pool.

The same app as ``flask_app`` (whose close() runs the task inline, the floor), but the task
goes to a stock ``ThreadPoolExecutor`` the way a user of the framework would write it for
the same guarantee: the client never waits for the task, and the worker is never held by it.
"""

from __future__ import annotations

from flask import Flask

from .common import TaskPool
from .flask_app import create_app as _create_app

#: The process's task pool (each gunicorn or granian worker imports the module itself).
POOL = TaskPool()


def create_app(task_seconds: float = 0.0) -> Flask:
    return _create_app(task_seconds, handoff=POOL.submit)


app = create_app()
