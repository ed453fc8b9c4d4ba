"""Process-wide state's one home: what a forked child resets, and the exit path.

Internal. The background pool, the fan-out executor and the lifecycle each keep state
that belongs to one process (threads, locks, "started" flags). ``os.register_at_fork``
is called once, here, and so is the interpreter-exit hook; each module registers what it
needs with :func:`at_fork_in_child` and :func:`at_exit`. Nothing here imports them, so the
subsystems depend on this module and never the reverse.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("funapi_sync")

#: ``drain(timeout) -> tasks still running``, then ``shutdown()``, in registration order.
ExitStep = tuple[Callable[[float | None], int], Callable[[], None]]

_resets: list[Callable[[], None]] = []
_exit_steps: list[ExitStep] = []
_shutdown_done = False
_sigterm_checked = False
#: Servers that run Python inside their own C or Rust loop: they handle SIGTERM themselves,
#: and a Python-level handler would only run once the main thread runs Python again (never).
_EMBEDDING = ("uwsgi", "mod_wsgi")
#: The server kills this process this many seconds after its stop signal (gunicorn's
#: --graceful-timeout less a margin), and when that signal came; None when unbounded.
_drain_limit: float | None = None
_stopping_since: float | None = None


def at_fork_in_child(reset: Callable[[], None]) -> None:
    """Call ``reset()`` in every child forked from this process, in registration order."""
    _resets.append(reset)


def at_exit(
    drain: Callable[[float | None], int], shutdown: Callable[[], None], *, first: bool = False
) -> None:
    """At process exit, call every ``drain(timeout)`` first, then every ``shutdown()``.

    A drain returns how many tasks are still running once its timeout passed. With
    ``first``, this step goes before those registered so far (a durable backend stops
    taking new work before the pool drains what it has).
    """
    if first:
        _exit_steps.insert(0, (drain, shutdown))
    else:
        _exit_steps.append((drain, shutdown))


def shutdown_process(timeout: float | None = None) -> None:
    """Drain, then shut down, once per process.

    NOTE: a task still running after the drain timeout (named at ERROR by the pool)
    would keep the process alive for ever: the executor's threads are joined at exit.
    The process then leaves at once, through :func:`exit_now`, after the shutdowns.
    """
    global _shutdown_done
    if _shutdown_done:
        return
    _shutdown_done = True
    running = sum(drain(timeout) for drain, _shutdown in _exit_steps)
    for _drain, shutdown in _exit_steps:
        try:
            shutdown()
        except Exception:
            logger.exception("shutting down %s failed; the rest still shuts down", shutdown)
    if running:
        logger.error(
            "process %d exits with %d background task(s) still running (named above);"
            " they are abandoned",
            os.getpid(),
            running,
        )
        exit_now(1)


def exit_now(code: int) -> None:
    """Flush the logs and standard streams, then end the process without joining threads."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream
            stream.flush()
    os._exit(code)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into the same clean exit as Ctrl-C where nothing else handles it.

    Only from the main thread, only while SIGTERM still has Python's default action (which
    ends the process at once, skipping the drain), and never under a server that handles
    signals outside Python. The handler raises ``SystemExit(0)`` in the main thread, so the
    server's loop unwinds and the interpreter-exit hook drains the pool. A server that sets
    its own handler later replaces this one, which is right: it has its own graceful stop.
    """
    global _sigterm_checked
    if _sigterm_checked or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_checked = True
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    if any(name in sys.modules for name in _EMBEDDING):
        return
    signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, frame: object) -> None:
    # NOTE: SystemExit, not KeyboardInterrupt: waitress, cheroot and werkzeug stop cleanly
    # on both, but a plain serve_forever() script would print a KeyboardInterrupt traceback,
    # and exit status 0 is a clean stop to systemd and to gunicorn-style supervisors.
    raise SystemExit(0)


def limit_drain(seconds: float) -> None:
    """Bound the exit's drain: the server kills the process ``seconds`` after its stop signal."""
    global _drain_limit
    _drain_limit = seconds


def note_stop_signal() -> None:
    """Note that the server's stop signal arrived now (the drain's limit counts from it)."""
    global _stopping_since
    if _stopping_since is None:
        _stopping_since = time.monotonic()


def drain_budget() -> float | None:
    """Seconds the exit's drain may still take before the server kills us; None if unbounded."""
    if _drain_limit is None:
        return None
    since = time.monotonic() if _stopping_since is None else _stopping_since
    return max(0.0, _drain_limit - (time.monotonic() - since))


def _reset_in_child() -> None:
    global _shutdown_done, _drain_limit, _stopping_since
    _shutdown_done = False
    _drain_limit = _stopping_since = None
    for reset in _resets:
        try:
            reset()
        except Exception:  # pragma: no cover - a reset is a few assignments
            logger.exception("resetting %s after fork failed", reset)


def _at_interpreter_exit() -> None:
    try:
        shutdown_process()
    except Exception:
        logger.exception("shutting down at interpreter exit failed")


os.register_at_fork(after_in_child=_reset_in_child)

# NOTE: threading's own exit hooks run before atexit, so the drain can time out and name
# what it skips; atexit would run too late. It is a private hook, present since 3.9; fall
# back to atexit where it is missing.
_register = getattr(threading, "_register_atexit", None)


def exit_before_executors() -> None:
    """Have the exit's drain run before ``concurrent.futures`` joins its executors' threads.

    Call it once ``concurrent.futures.thread`` is imported (the pool imports it when it is
    first made, not at ``import funapi_sync``). threading runs its exit hooks last
    registered first, and the executors' hook joins every pool thread, which only the
    drain's sentinels let go: registered after it, the drain runs first. Running twice is
    harmless (:func:`shutdown_process` runs once).
    """
    if _register is not None:
        with contextlib.suppress(RuntimeError):  # the interpreter is already exiting
            _register(_at_interpreter_exit)


if _register is not None:
    _register(_at_interpreter_exit)
else:  # pragma: no cover
    import atexit

    atexit.register(_at_interpreter_exit)
