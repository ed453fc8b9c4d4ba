"""Internal: what the OpenAPI document is built from, as protocols (``App`` is one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..route import Route


class RouteSource(Protocol):
    """What the document is built from: the compiled endpoints (an app's ``routes``)."""

    @property
    def endpoints(self) -> Sequence[Route]: ...


class Documented(Protocol):
    """The app's info and routes; ``App`` is one (this module never imports it)."""

    @property
    def title(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def routes(self) -> RouteSource: ...
