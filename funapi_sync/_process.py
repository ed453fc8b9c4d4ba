"""Process-wide state's one at-fork reset: what a forked child must not inherit.

Internal. The background pool, the fan-out executor and the lifecycle each keep state
that belongs to one process (threads, locks, "started" flags). ``os.register_at_fork``
is called once, here; each module registers its reset with :func:`at_fork_in_child`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

logger = logging.getLogger("funapi_sync")

_resets: list[Callable[[], None]] = []


def at_fork_in_child(reset: Callable[[], None]) -> None:
    """Call ``reset()`` in every child forked from this process, in registration order."""
    _resets.append(reset)


def _reset_in_child() -> None:
    for reset in _resets:
        try:
            reset()
        except Exception:  # pragma: no cover - a reset is a few assignments
            logger.exception("resetting %s after fork failed", reset)


os.register_at_fork(after_in_child=_reset_in_child)
