"""Inline: a request's after-close work run in the calling thread, for ``app.testing``.

Internal. werkzeug's own ``Client`` leaves the response iterable open until the test
closes its ``TestResponse``, which most tests never do. With ``app.testing = True`` the
work therefore also starts when the body has been read to the end, which covers the
three ways the ``Client`` reads a body: ``r = c.post(...)`` reads it when the test asks
for ``r.json`` or ``r.data``; ``buffered=True`` reads it (and closes) inside the call;
``with c.post(...) as r`` closes it at the end of the block.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .background import BackgroundTask

logger = logging.getLogger("funapi_sync.background")


class InlineIterable:
    """A response body whose ``on_close`` runs once: at the end of the body or at close().

    Unlike :class:`~funapi_sync.middleware.ClosingIterable`, an exception from
    ``on_close`` is not logged and swallowed: it raises in the test that read the body,
    so a failing task fails the test.
    """

    __slots__ = ("_iterable", "_on_close", "_unclosed")

    def __init__(
        self,
        iterable: Iterable[bytes],
        on_close: Callable[[], Any],
        unclosed: Callable[[], Any] | None = None,
    ) -> None:
        self._iterable = iterable
        self._on_close: Callable[[], Any] | None = on_close
        self._unclosed = unclosed

    def __iter__(self) -> Iterator[bytes]:
        yield from self._iterable
        self.close()

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        self._unclosed = None
        if on_close is None:
            return
        inner_close = getattr(self._iterable, "close", None)
        try:
            if inner_close is not None:
                inner_close()
        finally:
            on_close()

    def __del__(self) -> None:
        # NOTE: neither read to the end nor closed: the tasks can never run now.
        unclosed = self._unclosed
        if unclosed is not None and self._on_close is not None:
            self._unclosed = None
            with contextlib.suppress(Exception):
                unclosed()


def run_inline(
    tasks: list[BackgroundTask] | tuple[()],
    label: str,
    before: Callable[[], None] | None,
    after: Callable[[], None] | None,
) -> None:
    """Run ``before``, the tasks in order, then ``after``; raise the first task's failure.

    Every task runs, as on the pool (a later failure is logged at WARNING); the first
    failure is raised once ``after`` (the ``after_tasks`` cleanups) has run.
    """
    first: Exception | None = None
    try:
        if before is not None:
            before()
        for task in tasks:
            try:
                task.run()
            except Exception as exc:
                if first is None:
                    first = exc
                else:
                    logger.warning(
                        "background task %s of %s failed", task.name, label, exc_info=True
                    )
    finally:
        if after is not None:
            after()
    if first is not None:
        raise first
