"""Settings: an app's configuration, with its defaults and checks declared once, frozen."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .pool import PoolSettings
from .tracing import check_mode

if TYPE_CHECKING:
    from .backends import Backend

Check = Callable[[str, Any], None]


def _non_negative_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")


def _url_path(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a path such as '/docs', or None, got {value!r}")
    if not value.startswith("/"):
        raise ValueError(f"{name} must start with '/' (or be None to turn it off), got {value!r}")


def _callable_or_none(name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise TypeError(
            f"{name} must be a function such as fn(obj) -> a JSON-ready value, or None,"
            f" got {value!r}"
        )


def setting(default: Any, check: Check | None = None) -> Any:
    """Declare a setting: its default and the check its value must pass."""
    return dataclasses.field(default=default, metadata={"check": check})


@dataclasses.dataclass(frozen=True)
class Settings(Mapping[str, Any]):
    """An app's settings, checked once in ``App(**settings)`` and read-only afterwards.

    Also a read-only mapping (``app.settings["debug"]``), so code written against the old
    dict keeps working. Adding a setting is one line here: a name, a default and a check.
    """

    debug: bool = setting(False)
    max_body_size: int = setting(1024 * 1024, _non_negative_int)
    background_workers: int = setting(4, _positive_int)
    background_queue_size: int = setting(1024, _positive_int)
    background_slow_warning: float = setting(30.0, _seconds)
    background_shutdown_timeout: float = setting(25.0, _seconds)
    background_submit_timeout: float = setting(10.0, _seconds)
    #: How many recent tasks ``app.background.status()`` and ``tasks()`` remember (0: none).
    background_status_size: int = setting(10000, _non_negative_int)
    #: Each task's OpenTelemetry span: ``"child"`` of its request's span (and linked to
    #: it), ``"link"`` (a new trace, linked) or ``"off"`` (see funapi_sync.tracing).
    task_tracing: str = setting("child", check_mode)
    #: ``"thread"``, ``"inline"``, ``"record"`` or a backend object; once the app is made,
    #: the backend object itself (``App`` resolves the name, see funapi_sync.backends).
    #: NOTE: ``setting()`` returns a ``dataclasses.field``, as for the fields above; ruff
    #: only cannot tell that a ``str | Backend`` default is safe to share.
    background_backend: str | Backend = setting("thread")  # noqa: RUF009
    openapi_url: str | None = setting("/openapi.json", _url_path)
    docs_url: str | None = setting("/docs", _url_path)
    #: ``fn(obj)`` for what JSON cannot encode, tried before the built-in encodings (like
    #: ``json.dumps(default=)``; a ``TypeError`` it raises falls back to them).
    json_default: Callable[[Any], Any] | None = setting(None, _callable_or_none)  # noqa: RUF009

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check = field.metadata["check"]
            if check is not None:
                check(field.name, getattr(self, field.name))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Settings:
        """Build from ``App()``'s keyword arguments; an unknown name is a ``TypeError``."""
        known = cls.names()
        unknown = set(options) - set(known)
        if unknown:
            raise TypeError(
                f"App() got unknown settings {sorted(unknown)}; known settings are {sorted(known)}"
            )
        return cls(**options)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    @property
    def pool(self) -> PoolSettings:
        """The part the process's background pool is sized by."""
        return PoolSettings(
            workers=self.background_workers,
            queue_size=self.background_queue_size,
            slow_warning=float(self.background_slow_warning),
            shutdown_timeout=float(self.background_shutdown_timeout),
            submit_timeout=float(self.background_submit_timeout),
            status_size=self.background_status_size,
            task_tracing=self.task_tracing,
        )

    def with_backend(self, backend: Backend) -> Settings:
        """A copy whose ``background_backend`` is the resolved backend object."""
        return dataclasses.replace(self, background_backend=backend)

    # -- the read-only mapping -------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        if name not in self.names():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __setitem__(self, name: str, value: Any) -> None:
        raise TypeError(
            f"app.settings is read-only: settings are checked once, when the app is made;"
            f" pass {name}={value!r} to App(...) instead"
        )

    def __delitem__(self, name: str) -> None:
        raise TypeError(
            f"app.settings is read-only; leave {name!r} out of App(...) to use its default"
        )
