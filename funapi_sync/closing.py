"""ClosingIterable: a wrapped response iterable that forwards ``close()``, then runs callbacks.

``close()`` is the core's "after the response" hook: PEP 3333 requires a server to call
it on the iterable once it has sent the body (or given up), and the request's batch is
submitted from there (:class:`funapi_sync.after_close.AfterClose`, which follows the same
rules). :mod:`funapi_sync.middleware` re-exports :func:`closing` for wrappers, which must
forward ``close()`` or the tasks behind them never run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

logger = logging.getLogger("funapi_sync")


class ClosingIterable:
    """Wrap a WSGI response iterable, forwarding ``close()`` and then running callbacks.

    Unlike werkzeug's ``ClosingIterator``, each step runs in its own ``try``: a failing
    inner ``close()`` or callback is logged and never stops the ones after it (the
    background tasks among them). ``close()`` is idempotent.

    :param unclosed: called if the iterable is garbage-collected while its callbacks
        never ran (nobody called ``close()``), to report what is lost.
    """

    __slots__ = ("_callbacks", "_iterable", "_unclosed")

    def __init__(
        self,
        iterable: Iterable[bytes],
        *callbacks: Callable[[], Any],
        unclosed: Callable[[], Any] | None = None,
    ) -> None:
        self._iterable = iterable
        self._callbacks = callbacks
        self._unclosed = unclosed

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._iterable)

    def close(self) -> None:
        callbacks, self._callbacks = self._callbacks, ()
        self._unclosed = None
        if not callbacks and self._iterable is None:
            return
        iterable, self._iterable = self._iterable, ()
        inner_close = getattr(iterable, "close", None)
        if inner_close is not None:
            try:
                inner_close()
            except Exception:
                logger.exception("closing the response iterable failed")
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("a response close callback failed")

    def __del__(self) -> None:
        # NOTE: a middleware that dropped close(), or a client that never closed the
        # response: its callbacks can never run now, so say what is lost.
        unclosed = self._unclosed
        if unclosed is not None and self._callbacks:
            self._unclosed = None
            # NOTE: an exception in __del__ would only be printed to stderr.
            with contextlib.suppress(Exception):
                unclosed()


def closing(iterable: Iterable[bytes], *callbacks: Callable[[], Any]) -> ClosingIterable:
    """Return ``iterable`` wrapped so that ``close()`` reaches it and then each callback."""
    return ClosingIterable(iterable, *callbacks)
