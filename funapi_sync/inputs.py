"""Input: the handler's validated view of a request, and the body reading rules behind it."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import marshmallow
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

from .exceptions import HTTPException, ValidationError
from .schema import to_detail

if TYPE_CHECKING:
    from .endpoint import Endpoint

_KEYS = ("path", "query", "body", "headers")
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class Input(Mapping[str, Any]):
    """A read-only mapping of ``path``, ``query``, ``body`` and ``headers``.

    Each is also an attribute: ``input.body`` is ``input["body"]``.
    """

    __slots__ = ("body", "headers", "path", "query")

    def __init__(self, path: Any, query: Any, body: Any, headers: Any) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "query", query)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "headers", headers)

    def __getitem__(self, key: str) -> Any:
        if key in _KEYS:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return 4

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Input is read-only")

    def __repr__(self) -> str:
        return f"Input(path={self.path!r}, query={self.query!r}, body={self.body!r})"


def build_input(request: Request, endpoint: Endpoint, path_values: dict[str, Any]) -> Input:
    """Validate path, query and body against the endpoint's schemas; raise on bad input."""
    path: Any = path_values
    if endpoint.path_schema is not None:
        path = _load(endpoint.path_schema, path_values, "path")
    query: Any = request.args
    if endpoint.query_schema is not None:
        query = _load(endpoint.query_schema, _flatten(request.args, endpoint, "query"), "query")
    body = read_body(request, endpoint)
    return Input(path, query, body, request.headers)


def _load(schema: marshmallow.Schema, data: Any, where: str) -> Any:
    try:
        return schema.load(data)
    except marshmallow.ValidationError as exc:
        raise ValidationError(to_detail(exc.messages, where, schema)) from None


def _flatten(multi: MultiDict[str, Any], endpoint: Endpoint, where: str) -> dict[str, Any]:
    """Turn a MultiDict into the dict a schema loads: lists for list fields, else one value."""
    lists = endpoint.query_lists if where == "query" else endpoint.body_lists
    data: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for key, values in multi.lists():
        if key in lists:
            data[key] = values
        elif len(values) == 1:
            data[key] = values[0]
        else:
            problems.append(
                {
                    "loc": [where, key],
                    "msg": f"Expected one value, got {len(values)}; declare the field as"
                    " fields.List to accept several.",
                    "type": "value_error",
                }
            )
    if problems:
        raise ValidationError(problems)
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _invalid_json(msg: str) -> ValidationError:
    return ValidationError([{"loc": ["body"], "msg": msg, "type": "json_invalid"}])


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range for a float")
    return value


# A \uD800-\uDFFF escape: half of a surrogate pair, or a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(data: bytes) -> Any:
    """Parse strict JSON (no NaN/Infinity); any failure is a 422 ``json_invalid``."""
    try:
        payload = json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
        if _SURROGATE_ESCAPE.search(data):
            # NOTE: json accepts a lone "\ud800", which no UTF-8 response can carry; a
            # request must not be able to turn its own echo into a 500.
            json.dumps(payload, ensure_ascii=False).encode()
        return payload
    except RecursionError:
        return_msg = "JSON is nested too deeply"
    except UnicodeEncodeError:
        return_msg = "JSON string holds a lone surrogate escape"
    except UnicodeDecodeError:
        return_msg = "JSON body is not valid UTF-8"
    except ValueError as exc:
        return_msg = f"JSON decode error: {exc}"
    raise _invalid_json(return_msg)


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def _read_unsized(request: Request) -> None:
    """Read a body sent without ``Content-Length`` (chunked), refusing one over the limit.

    NOTE: werkzeug caps such a stream at ``max_content_length`` but stops there silently,
    so a longer body would arrive truncated (a misleading 422); one more byte tells.
    """
    data = request.get_data(cache=True)
    limit = request.max_content_length
    environ = request.environ
    if (
        limit is not None
        and len(data) >= limit
        and "wsgi.input_terminated" in environ
        and environ["wsgi.input"].read(1)
    ):
        raise RequestEntityTooLarge()


def read_body(request: Request, endpoint: Endpoint) -> Any:
    """Read, size-check and parse the body; validate it when the endpoint has a schema."""
    schema = endpoint.body_schema
    mimetype = request.mimetype
    try:
        if request.content_length is None:
            _read_unsized(request)
        if mimetype in _FORM_TYPES:
            form = request.form
            if request.files:
                form = form.copy()
                form.update(request.files)
            if schema is None:
                return form.to_dict() if form else None
            return _load(schema, _flatten(form, endpoint, "body"), "body")
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        limit = request.max_content_length
        raise HTTPException(413, f"Request body is larger than the {limit}-byte limit") from None
    if not data:
        if schema is None:
            return None
        raise ValidationError([{"loc": ["body"], "msg": "Field required", "type": "missing"}])
    if not mimetype or _is_json(mimetype):
        payload = parse_json(data)
    elif schema is None:
        return None
    else:
        raise HTTPException(
            415,
            f"Unsupported content type {mimetype!r}; send application/json or a form",
        )
    if schema is None:
        return payload
    return _load(schema, payload, "body")
