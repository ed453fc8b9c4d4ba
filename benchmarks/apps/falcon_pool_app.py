"""Falcon 4 with funapi_sync's guarantee: the body's close() hands the task to a thread pool.

The same app as ``falcon_app`` (whose close() runs the task inline, the floor), but the task
goes to a stock ``ThreadPoolExecutor`` the way a user of the framework would write it for
the same guarantee: the client never waits for the task, and the worker is never held by it.
"""

from __future__ import annotations

import falcon

from .common import TaskPool
from .falcon_app import create_app as _create_app

#: The process's task pool (each gunicorn or granian worker imports the module itself).
POOL = TaskPool()


def create_app(task_seconds: float = 0.0) -> falcon.App:
    return _create_app(task_seconds, handoff=POOL.submit)


app = create_app()
