"""Linux scheduling policies for the threads funapi_sync starts. Internal.

The background pool's threads run under ``SCHED_BATCH`` (see :func:`yield_on_wakeup`).
A thread or process inherits the policy of the thread that starts it, so threads that
may be started from a pool thread but serve requests too (the fan-out executor's) take
the main thread's policy back (:func:`as_main_thread`). Where the calls do not exist
(not Linux) or are refused (a sandbox), nothing changes.
"""

from __future__ import annotations

import contextlib
import os


def yield_on_wakeup() -> None:
    """Run the calling thread under ``SCHED_BATCH`` if it runs under the default policy.

    PERF: a pool thread woken by ``close()`` would otherwise preempt the request thread
    that woke it, which holds the GIL, so the CPU switches to a thread that cannot run
    yet; under gunicorn's gthread worker on one CPU that added 2.5-3 ms to the p99 of a
    request that adds a task. ``SCHED_BATCH`` only gives up that wake-up preemption: the
    thread keeps its nice value and its fair share of the CPU, so tasks are not starved
    (``sched(7)``; unprivileged). A policy the operator chose (``chrt --idle``, a
    real-time one) is left as it is.
    """
    # NOTE: AttributeError off Linux; OSError from a sandbox that refuses the call.
    with contextlib.suppress(AttributeError, OSError):
        if os.sched_getscheduler(0) == os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def as_main_thread() -> None:
    """Give the calling thread the main thread's policy, if it inherited another one."""
    with contextlib.suppress(AttributeError, OSError):
        # NOTE: on Linux the process id names the main thread.
        policy = os.sched_getscheduler(os.getpid())
        if os.sched_getscheduler(0) != policy:
            os.sched_setscheduler(0, policy, os.sched_getparam(os.getpid()))
