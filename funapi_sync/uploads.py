"""Uploads: the ``File`` field, a marshmallow field whose value is werkzeug's ``FileStorage``.

A body schema with a ``File`` field is read from a ``multipart/form-data`` request (werkzeug
parses it, within ``App(max_body_size=...)``, spooling large parts to temporary files) and
documented as such in OpenAPI, with ``format: binary`` so Swagger UI shows a file picker.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import marshmallow
from marshmallow import fields
from werkzeug.datastructures import FileStorage

__all__ = ["File", "has_file_fields"]


class File(fields.Field[FileStorage]):
    """An uploaded file: the value is werkzeug's :class:`~werkzeug.datastructures.FileStorage`.

    Anything else in its place (a JSON string, a plain form value) is a 422, and so is a
    file part sent with no file chosen (an empty part with no file name, which is what a
    browser sends for an empty file input).

    :param max_size: the largest file accepted, in bytes (a 422 beyond it); the request as
        a whole is already capped by ``App(max_body_size=...)`` (a 413).
    :param content_types: accepted media types, e.g. ``["image/png", "image/jpeg"]``, or
        ``"image/*"`` patterns; as sent by the client, so a hint rather than a proof.
    """

    default_error_messages = {  # noqa: RUF012 (marshmallow merges it over the MRO)
        "invalid": "Not a file; send multipart/form-data with a file part here.",
        "empty": "No file was chosen.",
        "too_large": "File is larger than the {max_size}-byte limit.",
        "content_type": "File type {content_type!r} is not one of {allowed}.",
    }

    def __init__(
        self,
        *,
        max_size: int | None = None,
        content_types: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if max_size is not None and (type(max_size) is not int or max_size < 0):
            raise ValueError(f"File(max_size=...) must be a non-negative int, got {max_size!r}")
        if isinstance(content_types, str):
            raise TypeError(
                f"File(content_types=...) takes a list such as [{content_types!r}], not a str"
            )
        super().__init__(**kwargs)
        self.max_size = max_size
        self.content_types = tuple(content_types) if content_types is not None else None

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise self.make_error("invalid")
        if not value.filename and _size(value) == 0:
            raise self.make_error("empty")
        if self.max_size is not None and _size(value) > self.max_size:
            raise self.make_error("too_large", max_size=self.max_size)
        if self.content_types is not None and not _accepts(self.content_types, value.mimetype):
            raise self.make_error(
                "content_type",
                content_type=value.mimetype,
                allowed=", ".join(self.content_types),
            )
        return value

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        # NOTE: a file never goes back out as JSON; its name is what a response can echo.
        if isinstance(value, FileStorage):
            return value.filename
        return value


def _size(upload: FileStorage) -> int:
    """The upload's size in bytes, measured without reading it into memory."""
    stream = upload.stream
    try:
        position = stream.tell()
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        stream.seek(position)
    except (AttributeError, OSError, ValueError):
        # NOTE: werkzeug's parser always gives a seekable file; a FileStorage made by
        # hand may not, and then its declared length is all there is.
        return upload.content_length
    return size


def _accepts(patterns: tuple[str, ...], mimetype: str) -> bool:
    for pattern in patterns:
        if pattern.endswith("/*"):
            if mimetype.startswith(pattern[:-1]):
                return True
        elif mimetype == pattern:
            return True
    return False


def has_file_fields(schema: marshmallow.Schema) -> bool:
    """Tell whether ``schema`` takes an upload (a ``File`` or a list of them) at its top level."""
    for field in schema.load_fields.values():
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, File):
            return True
    return False
