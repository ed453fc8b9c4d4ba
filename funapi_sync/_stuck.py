"""Pool threads stuck in one task: found, and each reported once with its stack.

Internal. A task that never returns (a socket read without a timeout, a lock never
released) keeps its pool thread for good. Once every thread is stuck, a full pool would
hold each submitting ``close()`` for ``background_submit_timeout``: the pool asks here
instead, and names the new request's tasks at once.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .batch import Batch

logger = logging.getLogger("funapi_sync.background")


class StuckThreads:
    """Which pool threads run a task longer than its ``background_slow_warning``.

    ``on_thread`` maps a pool thread's ident to the batch it runs; the pool thread sets
    and clears its own entry, this class only reads it.
    """

    __slots__ = ("on_thread", "warned")

    def __init__(self) -> None:
        self.on_thread: dict[int, Batch] = {}
        #: The (batch, task index) last reported per thread: one WARNING per stuck task.
        self.warned: dict[int, tuple[Batch, int]] = {}

    def count(self) -> int:
        """How many threads are stuck now; a WARNING with its stack for each newly stuck."""
        now = time.monotonic()
        stuck = 0
        # PERF: tuple() copies without releasing the GIL; no lock needed (as unfinished()).
        for ident, batch in tuple(self.on_thread.items()):
            current = batch.current
            if current < 0 or now - batch.since <= batch.slow_warning:
                continue
            stuck += 1
            if self.warned.get(ident) != (batch, current):
                self.warned[ident] = (batch, current)
                _warn(ident, batch, current, now - batch.since)
        return stuck


def _warn(ident: int, batch: Batch, index: int, running: float) -> None:
    frame = sys._current_frames().get(ident)
    stack = "".join(traceback.format_stack(frame)) if frame is not None else "(gone)\n"
    logger.warning(
        "background task %s of %s has held its pool thread for %.1f s"
        " (background_slow_warning=%s); it is still running here:\n%s",
        batch.tasks[index].name,
        batch.label,
        running,
        batch.slow_warning,
        stack.rstrip("\n"),
    )
