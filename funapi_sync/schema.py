"""Schema: marshmallow with FastAPI's defaults, and marshmallow errors in FastAPI's shape."""

from __future__ import annotations

import decimal
import re
from collections.abc import Iterator, Mapping
from typing import Any

import marshmallow
from marshmallow import EXCLUDE, fields

SchemaSpec = Any  # a Schema class, a Schema instance, or a one-element list of either


class Schema(marshmallow.Schema):
    """A marshmallow ``Schema`` that drops unknown fields instead of rejecting them.

    Any plain marshmallow schema works wherever a ``Schema`` does; this subclass changes
    two defaults, as a FastAPI user expects: unknown fields are excluded (``EXCLUDE``, like
    pydantic and dry-schema), and a ``fields.Integer`` refuses a number with a fraction
    (``12.5`` is a 422, where marshmallow truncates it to ``12``; ``12.0`` and ``"12"``
    still load, as in pydantic's lax mode). ``fields.Integer(strict=True)`` and plain
    marshmallow schemas keep marshmallow's behaviour.
    """

    class Meta:
        unknown = EXCLUDE

    def on_bind_field(self, field_name: str, field_obj: fields.Field[Any]) -> None:
        # NOTE: the schema's own deep copy of the declared field is changed, never the
        # field object the user declared (which other, plain schemas may share).
        _whole_integers(field_obj)

    @classmethod
    def define(cls, title: str | None = None, /, **declared: fields.Field[Any]) -> type[Schema]:
        """Build a schema class from fields; ``title`` names it (and its OpenAPI component).

        .. code-block:: python

            UserSchema = Schema.define("User", name=fields.String(required=True))
        """
        if title is not None and not isinstance(title, str):
            raise TypeError(f"Schema.define() title must be a str, got {type(title).__name__}")
        for key, field in declared.items():
            if not isinstance(field, fields.Field):
                raise TypeError(
                    f"Schema.define() field {key!r} must be a marshmallow field instance,"
                    f" got {field!r}; write {key}=fields.String() rather than fields.String"
                )
        name = title or "DefinedSchema"
        return type(name, (cls,), dict(declared))

    @staticmethod
    def filled(value: Any) -> None:
        """Validate that a value is present and not empty (dry-schema's ``filled``).

        NOTE: it raises rather than returning False, because marshmallow 4 ignores a
        validator's return value.
        """
        if value is None or (hasattr(value, "__len__") and len(value) == 0):
            raise marshmallow.ValidationError("Must not be empty.")


class _WholeInteger(fields.Integer):
    """``fields.Integer`` that refuses a number with a fractional part instead of truncating."""

    def _validated(self, value: Any) -> int:
        if (isinstance(value, float) and not value.is_integer()) or (
            isinstance(value, decimal.Decimal)
            and not (value.is_finite() and value == value.to_integral_value())
        ):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


# NOTE: messages (and the OpenAPI log) name the field as the user declared it.
_WholeInteger.__name__ = _WholeInteger.__qualname__ = "Integer"


def _whole_integers(field: fields.Field[Any]) -> None:
    if type(field) is fields.Integer and not field.strict:
        field.__class__ = _WholeInteger
    elif isinstance(field, fields.List):
        _whole_integers(field.inner)
    elif isinstance(field, fields.Tuple):
        for inner in field.tuple_fields:
            _whole_integers(inner)
    elif isinstance(field, fields.Dict) and field.value_field is not None:
        _whole_integers(field.value_field)


def is_schema_spec(spec: Any) -> bool:
    """Tell whether ``spec`` is a schema class, instance, or a one-element list of one."""
    if isinstance(spec, list):
        return len(spec) == 1 and is_schema_spec(spec[0])
    return isinstance(spec, marshmallow.Schema) or (
        isinstance(spec, type) and issubclass(spec, marshmallow.Schema)
    )


def as_schema(spec: SchemaSpec, *, what: str) -> marshmallow.Schema:
    """Instantiate a schema spec once; ``[S]`` becomes ``S(many=True)``."""
    if not is_schema_spec(spec):
        raise TypeError(
            f"{what} must be a marshmallow Schema class or instance, or a one-element list"
            f" of one such as [UserSchema]; got {spec!r}"
        )
    many = isinstance(spec, list)
    inner = spec[0] if many else spec
    if isinstance(inner, type):
        instance: marshmallow.Schema = inner(many=many)
        return instance
    if many and not inner.many:
        # NOTE: a configured instance keeps its options (only, exclude, context...).
        clone: marshmallow.Schema = type(inner)(
            many=True,
            only=inner.only,
            exclude=inner.exclude,
            partial=inner.partial,
            unknown=inner.unknown,
        )
        return clone
    schema: marshmallow.Schema = inner
    return schema


# Marshmallow reports messages, not kinds; the kind is recovered from which of the
# field's error_messages produced the message. Field classes are checked in MRO order.
_PARSING_KIND: dict[type[fields.Field[Any]], str] = {
    fields.Boolean: "bool_parsing",
    fields.Integer: "int_parsing",
    fields.Decimal: "decimal_parsing",
    fields.Float: "float_parsing",
    fields.Number: "float_parsing",
    fields.AwareDateTime: "datetime_parsing",
    fields.NaiveDateTime: "datetime_parsing",
    fields.DateTime: "datetime_parsing",
    fields.Date: "date_parsing",
    fields.Time: "time_parsing",
    fields.TimeDelta: "timedelta_parsing",
    fields.UUID: "uuid_parsing",
    fields.Email: "value_error",
    fields.URL: "url_parsing",
    fields.String: "string_type",
    fields.List: "list_type",
    fields.Tuple: "tuple_type",
    fields.Dict: "dict_type",
    fields.Mapping: "dict_type",
    fields.Nested: "dict_type",
    fields.Enum: "enum",
}


def _formats_to(template: Any, message: str) -> bool:
    # NOTE: some templates are formatted when raised ("Not a valid {obj_type}.").
    if not isinstance(template, str) or "{" not in template:
        return False
    pattern = re.sub(r"\\\{\w+\\\}", ".*", re.escape(template))
    return re.fullmatch(pattern, message, re.DOTALL) is not None


def _kind_for(field: fields.Field[Any] | None, message: str) -> str:
    if field is None:
        return "value_error"
    for key, template in field.error_messages.items():
        if template != message and not _formats_to(template, message):
            continue
        if key == "required":
            return "missing"
        if key == "null":
            return "null_forbidden"
        if key in ("invalid", "type", "format", "invalid_utf8", "not_a_list", "unknown"):
            for cls in type(field).__mro__:
                if cls in _PARSING_KIND:
                    return _PARSING_KIND[cls]
        break
    return "value_error"


def _fields_by_key(schema: marshmallow.Schema) -> dict[str, fields.Field[Any]]:
    return {field.data_key or name: field for name, field in schema.load_fields.items()}


def _walk(
    messages: Any,
    loc: list[Any],
    schema: marshmallow.Schema | None,
    field: fields.Field[Any] | None,
    many: bool,
) -> Iterator[dict[str, Any]]:
    if isinstance(messages, str):
        yield {"loc": loc, "msg": messages, "type": _kind_for(field, messages)}
        return
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, (dict, list)):
                yield from _walk(message, loc, schema, field, many)
            else:
                yield {"loc": loc, "msg": str(message), "type": _kind_for(field, str(message))}
        return
    if not isinstance(messages, Mapping):
        yield {"loc": loc, "msg": str(messages), "type": "value_error"}
        return
    for key, sub in messages.items():
        if key == "_schema":
            if schema is not None and sub == [schema.error_messages.get("type")]:
                kind = "list_type" if many else "dict_type"
                yield {"loc": loc, "msg": str(sub[0]), "type": kind}
            else:
                yield from _walk(sub, loc, None, None, False)
            continue
        child_loc = [*loc, key]
        if many and isinstance(key, int):
            # An item of a many=True schema: same schema, one object.
            yield from _walk(sub, child_loc, schema, None, False)
        elif schema is not None:
            child = _fields_by_key(schema).get(key)
            yield from _walk_field(sub, child_loc, child)
        elif isinstance(field, (fields.List, fields.Tuple)):
            inner = (
                field.inner
                if isinstance(field, fields.List)
                else field.tuple_fields[key]
                if isinstance(key, int) and key < len(field.tuple_fields)
                else None
            )
            yield from _walk_field(sub, child_loc, inner)
        elif isinstance(field, fields.Mapping):
            # {"key": {"key": [...], "value": [...]}}
            yield from _walk_mapping_entry(sub, child_loc, field)
        else:
            yield from _walk(sub, child_loc, None, None, False)


def _walk_mapping_entry(
    sub: Any, loc: list[Any], field: fields.Mapping[Any]
) -> Iterator[dict[str, Any]]:
    if isinstance(sub, Mapping):
        for part in ("key", "value"):
            if part in sub:
                inner = field.key_field if part == "key" else field.value_field
                yield from _walk_field(sub[part], loc, inner)
    else:
        yield from _walk(sub, loc, None, None, False)


def _walk_field(
    sub: Any, loc: list[Any], field: fields.Field[Any] | None
) -> Iterator[dict[str, Any]]:
    if isinstance(field, fields.Nested) and isinstance(sub, Mapping):
        nested = field.schema
        yield from _walk(sub, loc, nested, None, bool(nested.many or field.many))
    elif isinstance(field, fields.Pluck) and isinstance(sub, Mapping):
        yield from _walk(sub, loc, None, field, False)
    else:
        yield from _walk(sub, loc, None, field, False)


def to_detail(
    messages: Any, where: str, schema: marshmallow.Schema | None = None
) -> list[dict[str, Any]]:
    """Flatten marshmallow's nested error messages into FastAPI's list of problems.

    ``where`` is the first ``loc`` element: ``body``, ``query``, ``path`` or ``header``.
    List indices stay integers, so ``["body", "items", 0, "name"]`` points at one value.
    """
    many = bool(schema is not None and schema.many)
    return list(_walk(messages, [where], schema, None, many))
