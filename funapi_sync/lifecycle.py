"""Lifecycle: startup hooks once per process (after fork), shutdown after the pool drained."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from . import _process
from . import pool as pool_module
from ._callables import callable_name
from .dependencies import Registry

logger = logging.getLogger("funapi_sync")

Hook = Callable[[], Any]


class Lifecycle:
    """One app's hooks, and how far its startup got in this process.

    Policy (STYLE rule 8): a failing startup hook fails fast, since a process that could
    not start must not serve; a failing shutdown hook or cleanup is logged and the rest
    still run, since the process is leaving anyway and each may release something.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.started = False
        self._next_hook = 0
        self._lock = threading.Lock()
        _lifecycles.add(self)
        # NOTE: an app is usually made at import, on the main thread: the one place a
        # signal handler can be set (the gthread worker's requests run elsewhere).
        _process.exit_on_sigterm()
        _attach_server()

    def add_startup(self, hook: Hook) -> None:
        """Append a startup hook; refuse once this process has started serving."""
        if self.started:
            raise RuntimeError(
                f"on_startup({callable_name(hook)}) was called after the app started serving in"
                " this process, so the hook would never run; register startup hooks before"
                " the first request (e.g. at import time, next to the routes)"
            )
        self.startup_hooks.append(hook)

    def add_shutdown(self, hook: Hook) -> None:
        """Append a shutdown hook (allowed at any time before shutdown)."""
        self.shutdown_hooks.append(hook)

    def ensure_started(self) -> None:
        """Run the startup hooks in registration order, once per process.

        A hook that raises is logged at CRITICAL and its exception re-raised: this
        process does not serve. Hooks that already succeeded are not run again; the
        failed one is retried by the next call (the next request, outside gunicorn).
        """
        if self.started:
            return
        with self._lock:
            if self.started:
                return
            hooks = self.startup_hooks
            while self._next_hook < len(hooks):
                hook = hooks[self._next_hook]
                try:
                    hook()
                except Exception:
                    logger.critical(
                        "startup hook %s failed in process %d; this process serves no"
                        " request until its startup hooks succeed",
                        callable_name(hook),
                        os.getpid(),
                        exc_info=True,
                    )
                    raise
                self._next_hook += 1
            self.started = True
        _process.exit_on_sigterm()
        _attach_server()

    def shutdown(self) -> None:
        """Clean up app-scoped values (newest first), then run the shutdown hooks.

        NOTE: app-scoped values are made after startup, on first use, so they are
        released first, like an ``ExitStack``: a shutdown hook may remove what they used.
        Only a process that started runs its shutdown hooks (as with Starlette's lifespan).
        """
        if not self.started:
            return
        self.started = False
        self._next_hook = 0
        self.registry.close_app_values()
        for hook in self.shutdown_hooks:
            try:
                hook()
            except Exception:
                logger.error("shutdown hook %s failed", callable_name(hook), exc_info=True)

    def forget(self) -> None:
        """Reset to "not started" without running anything (a forked child)."""
        self.started = False
        self._next_hook = 0
        self._lock = threading.Lock()
        self.registry.forget_app_values()


_lifecycles: weakref.WeakSet[Lifecycle] = weakref.WeakSet()


def start_all() -> None:
    """Run every app's startup hooks in this process (gunicorn's post_worker_init)."""
    for lifecycle in list(_lifecycles):
        lifecycle.ensure_started()


def _drain_pool(timeout: float | None) -> int:
    pool = pool_module.current_pool()
    if pool is None:
        return 0
    budget = _process.drain_budget()
    if timeout is None and budget is not None:
        # NOTE: the server kills the process at its own graceful timeout: drain within it,
        # so what cannot finish is named at ERROR before the SIGKILL, not lost silently.
        timeout = min(budget, pool.shutdown_timeout())
    pool.shutdown(timeout)
    return pool.still_running()


def _shut_apps_down() -> None:
    for lifecycle in list(_lifecycles):
        try:
            lifecycle.shutdown()
        except Exception:
            logger.exception("shutting an app down failed; the other apps still shut down")


def _attach_server() -> None:
    # Plain `gunicorn module:app` has none of our hooks: find its worker ourselves.
    global _server_attached
    if _server_attached:
        return
    _server_attached = True
    from .server import uwsgi, worker

    worker.attach_running_worker()
    uwsgi.warn_if_sigterm_kills()


_server_attached = False


def _forget_in_child() -> None:
    # NOTE: startup ran in the parent (gunicorn --preload); each worker runs it again
    # and owns its own app-scoped values, which were made for the parent.
    global _server_attached
    _server_attached = False
    for lifecycle in list(_lifecycles):
        lifecycle.forget()


_process.at_exit(_drain_pool, _shut_apps_down)
_process.at_fork_in_child(_forget_in_child)
