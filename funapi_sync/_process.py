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
import sys
import threading
from collections.abc import Callable

logger = logging.getLogger("funapi_sync")

#: ``drain(timeout) -> tasks still running``, then ``shutdown()``, in registration order.
ExitStep = tuple[Callable[[float | None], int], Callable[[], None]]

_resets: list[Callable[[], None]] = []
_exit_steps: list[ExitStep] = []
_shutdown_done = False


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


def _reset_in_child() -> None:
    global _shutdown_done
    _shutdown_done = False
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

# NOTE: threading's own exit hooks run before the executor joins its threads (and before
# atexit), so the drain can time out and name what it skips; atexit would run too late.
# It is a private hook, present since 3.9; fall back to atexit where it is missing.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_at_interpreter_exit)
else:  # pragma: no cover
    import atexit

    atexit.register(_at_interpreter_exit)
