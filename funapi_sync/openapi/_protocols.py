"""Internal: what the OpenAPI document is built from, as protocols (``App`` is one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import marshmallow

    from ..route import Route


class RouteSource(Protocol):
    """What the document is built from: the compiled endpoints (an app's ``routes``)."""

    @property
    def endpoints(self) -> Sequence[Route]: ...


class ErrorShapes(Protocol):
    """The shapes the app's exception handlers declared (an app's ``errors``)."""

    def schema_for(self, exc_type: type[BaseException], /) -> marshmallow.Schema | None: ...


class Documented(Protocol):
    """The app's info, routes and error shapes; ``App`` is one (this module never imports it)."""

    @property
    def errors(self) -> ErrorShapes: ...

    @property
    def title(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def routes(self) -> RouteSource: ...
