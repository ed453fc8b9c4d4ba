"""The gunicorn worker this process runs in: heartbeat and abort wiring for the pool.

Internal. A gunicorn sync worker proves it is alive by calling ``worker.notify()`` from
its loop; a ``close()`` blocked on a full background queue is outside that loop, so the
pool calls it instead. When the arbiter times a worker out it sends SIGABRT, gunicorn's
handler calls the ``worker_abort`` hook and raises ``SystemExit``, and a second later the
worker is SIGKILLed: :func:`on_abort` names every unfinished task at ERROR before that.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

from .. import _process, pool

logger = logging.getLogger("funapi_sync")

#: Seconds kept between the end of the drain and the arbiter's SIGKILL, for the shutdown
#: hooks and the log lines (half the graceful timeout when that is under two seconds).
EXIT_MARGIN = 1.0
#: The worker already wired in this process (reset in a forked child).
_attached: list[Any] = []


def attach(worker: Any) -> None:
    """Heart-beat ``worker`` from a ``close()`` blocked on a full queue (once per process)."""
    if _attached and _attached[0] is worker:
        return
    _attached[:] = [worker]
    timeout = getattr(worker, "timeout", 0) or 0
    # NOTE: the arbiter aborts a worker silent for `timeout` seconds; notify well within.
    interval = min(1.0, max(0.05, timeout / 4)) if timeout else 1.0
    pool.set_heartbeat(worker.notify, interval)
    fit_drain_in_graceful_timeout(worker)


def fit_drain_in_graceful_timeout(worker: Any) -> None:
    """Bound the exit's drain by ``--graceful-timeout``, and warn if it is the shorter.

    After its SIGTERM the arbiter SIGKILLs a worker still alive ``graceful_timeout``
    seconds later: the drain ends a margin before that, naming what is left at ERROR.
    """
    graceful = getattr(getattr(worker, "cfg", None), "graceful_timeout", None)
    if not isinstance(graceful, int | float) or graceful <= 0:
        return
    budget = graceful - min(EXIT_MARGIN, graceful / 2)
    _process.limit_drain(budget)
    longest = pool.longest_shutdown_timeout()
    if longest > budget:
        logger.warning(
            "gunicorn's --graceful-timeout is %g s but background_shutdown_timeout is %g s:"
            " at SIGTERM this worker drains its background tasks for %g s only and names"
            " what is left at ERROR before gunicorn kills it; raise --graceful-timeout to at"
            " least %g or lower background_shutdown_timeout to %g",
            graceful,
            longest,
            budget,
            longest + min(EXIT_MARGIN, graceful / 2),
            budget,
        )
    if threading.current_thread() is threading.main_thread():
        _note_sigterm()


def _note_sigterm() -> None:
    # NOTE: the arbiter's clock starts at its SIGTERM, not when the worker gets to exit
    # (a sync worker first finishes its request): the drain's limit counts from it too.
    handler: Any = signal.getsignal(signal.SIGTERM)
    if not callable(handler) or getattr(handler, "_notes_stop", False):
        return

    def noting_exit(signum: int, frame: Any) -> None:
        _process.note_stop_signal()
        handler(signum, frame)

    noting_exit._notes_stop = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, noting_exit)


def on_abort(worker: Any = None) -> None:
    """Name every queued and running background task at ERROR (gunicorn ``worker_abort``)."""
    pid = getattr(worker, "pid", None)
    pool.abort(f"gunicorn aborted worker {pid} (worker timeout; SIGKILL follows)")


def attach_running_worker() -> None:
    """Wire the gunicorn worker this process is, if any, even without the config hooks.

    Plain ``gunicorn module:app`` installs no hook of ours, but its worker's SIGABRT
    handler is a bound method of the worker: that gives the heartbeat, and (from the main
    thread, where signal handlers are set) a handler that names the tasks first.
    """
    if "gunicorn.workers.base" not in sys.modules:
        return
    handler = signal.getsignal(signal.SIGABRT)
    worker = getattr(handler, "__self__", None)
    base = sys.modules["gunicorn.workers.base"]
    if not isinstance(worker, base.Worker):
        return
    attach(worker)
    if threading.current_thread() is not threading.main_thread():
        return
    gunicorn_handler: Any = handler

    def naming_abort(signum: int, frame: Any) -> None:
        on_abort(worker)
        gunicorn_handler(signum, frame)

    signal.signal(signal.SIGABRT, naming_abort)


def _forget_in_child() -> None:
    _attached.clear()


_process.at_fork_in_child(_forget_in_child)
