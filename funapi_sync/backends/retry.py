"""Retry: how many times a durable backend reruns a failed task, and how long it waits."""

from __future__ import annotations

from collections.abc import Sequence


class Retry:
    """Rerun a failed task up to ``max`` times, waiting ``interval`` seconds before each.

    RQ's names: ``interval`` is seconds before every retry (an int or float), or a list
    whose n-th item is the wait before the n-th retry (its last item repeats), e.g.
    ``Retry(max=3, interval=[10, 30, 60])``. ``interval=0`` (the default) retries at once.
    A backend also takes a plain int: ``retry=3`` is ``Retry(max=3)``.
    """

    __slots__ = ("intervals", "max")

    def __init__(self, max: int, interval: float | Sequence[float] = 0) -> None:
        if not isinstance(max, int) or isinstance(max, bool) or max < 1:
            raise ValueError(f"Retry(max={max!r}): max is the number of retries, an int >= 1")
        intervals = [interval] if isinstance(interval, (int, float)) else list(interval)
        if not intervals or any(
            isinstance(i, bool) or not isinstance(i, (int, float)) or i < 0 for i in intervals
        ):
            raise ValueError(
                f"Retry(interval={interval!r}): give seconds >= 0, or a non-empty list of them"
            )
        self.max = max
        self.intervals = [float(i) for i in intervals]

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        return self.intervals[min(retry, len(self.intervals)) - 1]

    def __repr__(self) -> str:
        return f"Retry(max={self.max}, interval={self.intervals})"

    @classmethod
    def of(cls, retry: Retry | int | None, owner: str) -> Retry | None:
        """``retry=`` as a backend takes it: None, an int (that many retries at once), a Retry."""
        if retry is None or isinstance(retry, Retry):
            return retry
        if isinstance(retry, int) and not isinstance(retry, bool):
            return cls(max=retry)
        raise TypeError(
            f"{owner}(retry={retry!r}): pass funapi_sync.backends.Retry(max=3,"
            " interval=[10, 30, 60]) or an int (that many retries at once)"
        )
