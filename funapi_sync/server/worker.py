"""The gunicorn worker this process runs in: heartbeat and abort wiring for the pool.

Internal. A gunicorn sync worker proves it is alive by calling ``worker.notify()`` from
its loop; a ``close()`` blocked on a full background queue is outside that loop, so the
pool calls it instead. When the arbiter times a worker out it sends SIGABRT, gunicorn's
handler calls the ``worker_abort`` hook and raises ``SystemExit``, and a second later the
worker is SIGKILLed: :func:`on_abort` names every unfinished task at ERROR before that.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from .. import _process, pool

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
