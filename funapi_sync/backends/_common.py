"""Internal: what every backend shares, apart from the protocol and the name lookup."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..batch import Batch

logger = logging.getLogger("funapi_sync.background")

#: ``check(fn, args, kwargs)``: raise TypeError for a task the backend cannot run.
TaskCheck = Callable[[Any, tuple[Any, ...], dict[str, Any]], None]


def finish(batch: Batch) -> None:
    """Run the batch's cleanup here (logged, never raised) and mark it finished."""
    if batch.after is not None:
        try:
            batch.after()
        except Exception:
            logger.exception("cleanup after the tasks of %s failed", batch.label)
    batch.finished = True
