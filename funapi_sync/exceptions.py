"""The two exceptions a handler raises on purpose."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any


class HTTPException(Exception):
    """Stop handling the request and answer ``status_code`` with ``{"detail": detail}``.

    :param status_code: an HTTP status code from 400 to 599 (lower codes are accepted
        for redirects sent as errors, e.g. 307 with a ``Location`` header).
    :param detail: any JSON-serialisable value; defaults to the standard reason phrase.
    :param headers: extra response headers, e.g. ``{"WWW-Authenticate": "Bearer"}``.
    """

    def __init__(
        self,
        status_code: int,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        try:
            phrase = HTTPStatus(status_code).phrase
        except ValueError:
            raise ValueError(
                f"HTTPException status_code must be a known HTTP status, got {status_code!r}"
            ) from None
        self.status_code = status_code
        self.detail = phrase if detail is None else detail
        self.headers = dict(headers) if headers else {}
        super().__init__(status_code, self.detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class ValidationError(Exception):
    """Answer 422 with ``{"detail": errors}``, FastAPI's validation error shape.

    :param errors: a list of ``{"loc": [...], "msg": str, "type": str}`` entries.
    """

    status_code = 422

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        self.errors = [dict(error) for error in errors]
        super().__init__(self.errors)
