"""Gunicorn worker hooks for funapi_sync apps, usable from the gunicorn command line.

.. code-block:: console

    gunicorn -c python:funapi_sync.server.gunicorn_conf examples.signup:app

Each worker runs the apps' startup hooks after fork (a failing hook fails the worker's
boot), and at exit drains the background pool before running the shutdown hooks; on a
worker timeout (``worker_abort``) it names every queued and running task at ERROR before
the arbiter's SIGKILL. Plain ``gunicorn module:app`` still runs and drains tasks (at
interpreter exit) and wires the heartbeat and, for a sync worker, the abort naming when
the app is created; this module adds startup before the first request is accepted, a drain
inside gunicorn's own exit path, and abort naming for every worker class. Both send the
framework's and the app's log records to gunicorn's error log when the program configured
no logging itself.
"""

from __future__ import annotations

from typing import Any

from funapi_sync import _process, lifecycle
from funapi_sync import logconfig as _logconfig  # NOTE: `logconfig` is a gunicorn setting
from funapi_sync.server import worker as worker_wiring


def post_worker_init(worker: Any) -> None:
    """Run every app's startup hooks in this worker before it accepts a request.

    First, unless the program configured logging, log records reach gunicorn's error log
    at its ``--log-level`` (see :mod:`funapi_sync.logconfig`), so a failing hook is seen.
    """
    _logconfig.install_under_gunicorn()
    worker_wiring.attach(worker)
    lifecycle.start_all()


def worker_abort(worker: Any) -> None:
    """Name every queued and running background task at ERROR: SIGKILL comes next."""
    worker_wiring.on_abort(worker)


def worker_exit(server: Any, worker: Any) -> None:
    """Drain the background pool (bounded by ``background_shutdown_timeout``), then shut down."""
    _process.shutdown_process()
