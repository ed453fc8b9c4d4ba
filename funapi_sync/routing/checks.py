"""Internal: registration checks for routes that could never work as their author meant.

Each catches a habit from FastAPI or a path that can never match, at decoration time,
with the fix in the message (STYLE rule 4). They are called from ``Route`` (one call
each), from ``RouteOptions`` (unknown options) and from the route table (duplicate shapes).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import marshmallow

from ..uploads import has_file_fields

#: ``<conv(args):name>`` or ``<name>`` in a werkzeug rule.
RULE_VARIABLE = re.compile(r"<(?:([A-Za-z_]\w*)(?:\((.*?)\))?:)?([A-Za-z_]\w*)>")

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
BODY_MEDIA_TYPES = (JSON, FORM, MULTIPART)

#: FastAPI's route options and ours.
_FASTAPI_OPTIONS = {
    "response_model": "response_schema=",
    "status": "status_code=",
    "dependencies": "depends=",
    "response_class": "media_type=",
    "name": "the handler's __name__ (or summary=)",
}


_BRACES = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_COLON = re.compile(r"(?<=/):([A-Za-z_][A-Za-z0-9_]*)")


def to_rule(path: str) -> str:
    """Turn ``/users/{id}`` and ``/users/:id`` into werkzeug's ``/users/<id>``."""
    if not isinstance(path, str):
        raise TypeError(f"route path must be a str, got {type(path).__name__}")
    if not path.startswith("/"):
        raise ValueError(f"route path must start with '/', got {path!r}")
    return _COLON.sub(r"<\1>", _BRACES.sub(r"<\1>", path))


def rule_variables(rule: str) -> list[str]:
    """The parameter names of a werkzeug rule, in order."""
    return [match[2] for match in RULE_VARIABLE.findall(rule)]


def rule_shape(rule: str) -> str:
    """The rule with its parameter names erased: two rules of one shape match the same URLs.

    ``/p/<x>`` and ``/p/<y>`` have one shape (``/p/<default>``); ``/p/<int:x>`` does not.
    """

    def erase(match: re.Match[str]) -> str:
        converter = match[1] or "default"
        return f"<{converter}({match[2]})>" if match[2] else f"<{converter}>"

    return RULE_VARIABLE.sub(erase, rule.rstrip("/") or "/")


def fastapi_hint(unknown: list[str]) -> str:
    """Point FastAPI's option names to ours: ``"; say response_schema= for response_model="``."""
    hints = [
        f"{_FASTAPI_OPTIONS[name]} for {name}=" for name in unknown if name in _FASTAPI_OPTIONS
    ]
    return f" (funapi_sync says {', '.join(hints)})" if hints else ""


def check_positional_names(handler: Callable[..., Any], rule: str, where: str) -> None:
    """Refuse ``def get_item(item_id)`` on ``/items/<item_id>``: positionals are input, req."""
    variables = rule_variables(rule)
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return  # the endpoint's own signature check says why
    for param in signature.parameters.values():
        if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            continue
        if param.name in variables:
            raise TypeError(
                f"{where}: positional parameter {param.name!r} is named like the path"
                f" parameter, but a handler's positional parameters are input, req and task"
                f" (in that order), so it would receive the whole input; take input and read"
                f" input.path[{param.name!r}]:"
                f" def {getattr(handler, '__name__', 'handler')}(input):"
                f" {param.name} = input.path[{param.name!r}]"
            )


def is_fastapi_background(param: inspect.Parameter) -> bool:
    """``background_tasks`` or ``x: BackgroundTasks`` as a positional: FastAPI's habit."""
    annotation = param.annotation
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return param.name == "background_tasks" or name.rpartition(".")[2] == "BackgroundTasks"


def keyword_hint(keyword: str, rule: str, where: str) -> str | None:
    """The message for a keyword-only parameter named like a path parameter, else None."""
    if keyword not in rule_variables(rule):
        return None
    return (
        f"{where} declares keyword-only parameter {keyword!r}, named like the path parameter;"
        f" path values are not injected by name, they are read from input.path: take input"
        f" and write input.path[{keyword!r}]"
    )


def check_query_schema(schema: marshmallow.Schema | None, where: str) -> None:
    """Refuse a ``Nested`` field in ``query=``: a query string carries no objects."""
    if schema is None:
        return
    for name, field in schema.load_fields.items():
        inner = field.inner if isinstance(field, marshmallow.fields.List) else field
        if isinstance(inner, marshmallow.fields.Nested):
            key = field.data_key or name
            raise TypeError(
                f"{where}: query= field {key!r} is a Nested field, but a query string"
                " carries only strings, so no request could satisfy it; declare its parts"
                f" as top-level fields (?{key}_x=...), or move it to body="
            )


def check_path_schema(schema: marshmallow.Schema | None, rule: str, where: str) -> None:
    """Refuse a ``path_schema=`` field that is not a parameter of the path (never validated)."""
    if schema is None:
        return
    variables = rule_variables(rule)
    for name, field in schema.load_fields.items():
        key = field.data_key or name
        if key not in variables:
            known = ", ".join(repr(v) for v in variables) or "none"
            raise ValueError(
                f"{where}: path_schema= field {key!r} is not a parameter of the path"
                f" (its parameters: {known}), so it would never be validated; rename the"
                f" field or the path parameter, or move the field to query= or body="
            )


def body_media_type(
    body_schema: marshmallow.Schema | None, declared: str | None, where: str
) -> str | None:
    """The request body's documented media type: declared, or multipart for a File field."""
    if declared is not None and declared not in BODY_MEDIA_TYPES:
        raise ValueError(
            f"{where}: body_media_type= must be one of {', '.join(BODY_MEDIA_TYPES)},"
            f" got {declared!r}"
        )
    if body_schema is None:
        if declared is not None:
            raise ValueError(f"{where}: body_media_type= needs a body= schema to describe")
        return None
    if has_file_fields(body_schema):
        if declared not in (None, MULTIPART):
            raise ValueError(
                f"{where}: body= has a File field, which only multipart/form-data can carry;"
                f" drop body_media_type={declared!r} or write body_media_type={MULTIPART!r}"
            )
        return MULTIPART
    return declared or JSON


def check_media_type(media_type: str | None, response_schema: Any, where: str) -> None:
    """Refuse ``media_type=`` that is not a media type, or one beside a JSON response schema."""
    if media_type is None:
        return
    if not isinstance(media_type, str) or "/" not in media_type:
        raise ValueError(
            f"{where}: media_type= must be a media type such as 'text/html', got {media_type!r}"
        )
    if response_schema is not None and not is_json(media_type):
        raise ValueError(
            f"{where}: response_schema= describes a JSON body, but media_type={media_type!r};"
            " drop one of them"
        )


def check_response_schema(schema: marshmallow.Schema | None, where: str) -> None:
    """Refuse a ``File`` field in a response schema: a JSON body cannot carry a file."""
    if schema is not None and has_file_fields(schema):
        raise TypeError(
            f"{where}: response_schema= has a File field, but a response body is JSON; send"
            " a file as a werkzeug Response (werkzeug.utils.send_file) with media_type= set"
        )


def is_json(media_type: str) -> bool:
    base = media_type.partition(";")[0].strip().lower()
    return base == JSON or base.endswith("+json")
