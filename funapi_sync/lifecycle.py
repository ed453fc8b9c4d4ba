"""Lifecycle: startup hooks once per process (after fork), shutdown after the pool drained."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from . import pool as pool_module
from .dependencies import Registry, close_exits, iter_app_exits

logger = logging.getLogger("funapi_sync")

Hook = Callable[[], Any]


class Lifecycle:
    """One app's hooks, and whether they ran in this process."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.started = False
        self._lock = threading.Lock()
        _lifecycles.add(self)

    def ensure_started(self) -> None:
        """Run the startup hooks once in this process; re-raise the first failure."""
        if self.started:
            return
        with self._lock:
            if self.started:
                return
            for hook in self.startup_hooks:
                try:
                    hook()
                except Exception:
                    logger.critical(
                        "startup hook %s failed; this process will not serve requests",
                        getattr(hook, "__qualname__", hook),
                        exc_info=True,
                    )
                    raise
            self.started = True

    def shutdown(self) -> None:
        """Run shutdown hooks, then close app-scoped dependencies; log each failure."""
        if not self.started:
            return
        self.started = False
        for hook in self.shutdown_hooks:
            try:
                hook()
            except Exception:
                logger.error(
                    "shutdown hook %s failed", getattr(hook, "__qualname__", hook), exc_info=True
                )
        exits = list(iter_app_exits(self.registry))
        self.registry._app_exits.clear()
        close_exits(exits, None)
        for provider in self.registry.providers.values():
            provider.has_value = False
            provider.value = None


_lifecycles: weakref.WeakSet[Lifecycle] = weakref.WeakSet()
_shutdown_done = False


def start_all() -> None:
    """Run every app's startup hooks in this process (gunicorn's post_worker_init)."""
    for lifecycle in list(_lifecycles):
        lifecycle.ensure_started()


def shutdown_process(timeout: float | None = None) -> None:
    """Drain the pool, then shut every started app down; once per process."""
    global _shutdown_done
    if _shutdown_done:
        return
    _shutdown_done = True
    pool = pool_module.current_pool()
    if pool is not None:
        pool.shutdown(timeout)
    for lifecycle in list(_lifecycles):
        lifecycle.shutdown()


def _reset_in_child() -> None:
    # NOTE: startup ran in the parent (gunicorn --preload); each worker runs it again
    # and owns its own app-scoped values, which were made for the parent.
    global _shutdown_done
    _shutdown_done = False
    for lifecycle in list(_lifecycles):
        lifecycle.started = False
        lifecycle._lock = threading.Lock()
        lifecycle.registry._app_exits.clear()
        for provider in lifecycle.registry.providers.values():
            provider.has_value = False
            provider.value = None
            provider.lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_in_child)


def _at_interpreter_exit() -> None:
    try:
        shutdown_process()
    except Exception:
        logger.exception("shutting down at interpreter exit failed")


# NOTE: threading's own exit hooks run before the executor joins its threads (and before
# atexit), so the drain can time out and name what it skips; atexit would run too late.
# It is a private hook, present since 3.9; fall back to atexit where it is missing.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_at_interpreter_exit)
else:  # pragma: no cover
    import atexit

    atexit.register(_at_interpreter_exit)
