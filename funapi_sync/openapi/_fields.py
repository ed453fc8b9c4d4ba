"""Internal: marshmallow fields to JSON schema through apispec, in a way that cannot fail.

A field marshmallow accepts must never turn ``/openapi.json`` into a 500: every value that
reaches the document is made JSON (defaults, validator bounds, enum choices), ``Decimal``
is documented as the string it is sent as, and an attribute apispec cannot compute for a
field is left out with a WARNING rather than taking the whole document down.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import logging
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import marshmallow
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.field_converter import DEFAULT_FIELD_MAPPING

from .._json import json_default
from ..schema import Schema
from ..uploads import File

logger = logging.getLogger("funapi_sync")

#: Keywords whose value JSON Schema requires to be a number.
_NUMERIC_KEYWORDS = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
)
#: Keywords whose value is a non-negative integer.
_COUNT_KEYWORDS = frozenset(
    {"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"}
)


def configure(plugin: MarshmallowPlugin) -> None:
    """Teach ``plugin``'s converter our fields and guard every attribute function.

    Call after the ``APISpec`` is made (that is when the plugin makes its converter).
    """
    converter: Any = plugin.converter
    # NOTE: a copy on the instance: map_to_openapi_type would write into apispec's
    # module-wide DEFAULT_FIELD_MAPPING, which other apispec users in the process share.
    converter.field_mapping = {
        **DEFAULT_FIELD_MAPPING,
        # NOTE: responses encode a Decimal as a string (every digit kept), so that is
        # what the document promises; a JSON number would be parsed as a float.
        marshmallow.fields.Decimal: ("string", "decimal"),
        File: ("string", "binary"),
    }
    converter.add_attribute_function(_filled)
    converter.add_attribute_function(_decimal)
    converter.add_attribute_function(_naive_default)
    converter.attribute_functions = [_guarded(func) for func in converter.attribute_functions]


def _guarded(func: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    @functools.wraps(func)
    def attribute(field: marshmallow.fields.Field[Any], **kwargs: Any) -> dict[str, Any]:
        try:
            return func(field, **kwargs)
        except Exception as exc:
            logger.warning(
                "OpenAPI: %s of field %r (%s) could not be documented and is left out: %r",
                getattr(func, "__name__", func),
                field.name,
                type(field).__name__,
                exc,
            )
            return {}

    return attribute


def _filled(_converter: Any, field: marshmallow.fields.Field[Any], **_: Any) -> dict[str, Any]:
    """Say what ``Schema.filled`` enforces, so generated clients and fuzzers know it.

    apispec binds attribute functions to its field converter, hence ``_converter``.
    """
    if Schema.filled not in field.validators:
        return {}
    if isinstance(field, marshmallow.fields.String):
        return {"minLength": 1}
    if isinstance(field, (marshmallow.fields.List, marshmallow.fields.Tuple)):
        return {"minItems": 1}
    if isinstance(field, (marshmallow.fields.Dict, marshmallow.fields.Nested)):
        return {"minProperties": 1}
    return {}


def _decimal(_converter: Any, field: marshmallow.fields.Field[Any], **_: Any) -> dict[str, Any]:
    """A ``Decimal`` is a string of digits: give its pattern and an example."""
    if not isinstance(field, marshmallow.fields.Decimal):
        return {}
    low = None
    for validator in field.validators:
        if isinstance(validator, marshmallow.validate.Range) and validator.min is not None:
            low = validator.min
    sign = "" if low is not None and low >= 0 else "-?"
    places = field.places
    example = "1.5"
    if places is not None:
        digits = -int(places.as_tuple().exponent)
        example = format(decimal.Decimal("1.5").quantize(places), "f") if digits else "1"
    if low is not None and decimal.Decimal(str(low)) > decimal.Decimal(example):
        example = format(decimal.Decimal(str(low)), "f")
    return {"pattern": rf"^{sign}\d+(\.\d+)?$", "example": example}


def _naive_default(
    _converter: Any, field: marshmallow.fields.Field[Any], ret: dict[str, Any], **_: Any
) -> dict[str, Any]:
    """Move a naive datetime default out of ``default``, which must be RFC 3339.

    NOTE: it mutates ``ret``: apispec merges what attribute functions return, so this
    is the only way to take a key out of what an earlier one put in.
    """
    load_default = field.load_default
    if (
        ret.get("format") == "date-time"
        and isinstance(load_default, datetime.datetime)
        and load_default.tzinfo is None
        and "default" in ret
    ):
        return {"x-default": ret.pop("default")}
    return {}


def jsonable(value: Any, key: str | None = None) -> Any:
    """Return ``value`` (a built document, or part of one) with only JSON types in it.

    Numeric keywords get numbers (a ``Decimal`` bound becomes an int or float); every
    other value goes through the responses' JSON rules, so a default or an enum choice
    is documented as the response would send it (``Decimal`` as a string, dates in ISO
    8601, enums by value). A numeric keyword that cannot be a number, and an infinite or
    NaN float anywhere, is dropped.
    """
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for name, item in value.items():
            name = str(name)
            converted = jsonable(item, name)
            if converted is not _DROP:
                result[name] = converted
        return result
    if key in _NUMERIC_KEYWORDS or key in _COUNT_KEYWORDS:
        return _number(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [item for item in map(jsonable, value) if item is not _DROP]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        # NOTE: JSON has no inf or NaN; a default or choice of one is left out.
        return value if math.isfinite(value) else _DROP
    try:
        return jsonable(json_default(value))
    except TypeError:
        return str(value)


class _Drop:
    pass


_DROP: Any = _Drop()


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, datetime.timedelta):
            return value.total_seconds()
        return _DROP
    if isinstance(value, int):
        return value
    number = float(value)
    if not math.isfinite(number):
        return _DROP
    return int(number) if number.is_integer() and isinstance(value, decimal.Decimal) else number
