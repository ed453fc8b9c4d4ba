"""Parameters: the query or header parameters a dependency declares, loaded for it per request.

``Depends(fn, query=PageQuery, headers=TokenHeaders)`` (or ``app.register(name, fn,
query=..., headers=...)``) compiles each schema into a :class:`Parameters` once, at
registration; per request only :meth:`Parameters.read` runs: it picks the schema's own
keys out of the query string or the WSGI environ, loads them, and raises a 422 located at
``["query", name]`` or ``["header", name]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import marshmallow
from marshmallow import fields

from .exceptions import ValidationError
from .inputs import parse_query
from .schema import as_schema, to_detail

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: The keywords that declare them, and the ``in`` (and ``loc[0]``) of each.
LOCATIONS = {"query": "query", "headers": "header"}
#: CGI names the two headers a WSGI environ keeps without the ``HTTP_`` prefix.
_UNPREFIXED = {"CONTENT_TYPE", "CONTENT_LENGTH"}


def header_name(attribute: str, field: fields.Field[Any]) -> str:
    """The header a field reads: its ``data_key``, else its name with ``_`` as ``-``.

    FastAPI's ``convert_underscores``: ``x_token`` reads ``X-Token``; servers drop or
    refuse header names with underscores, so the attribute name itself would never arrive.
    """
    return field.data_key or attribute.replace("_", "-")


def _environ_key(header: str) -> str:
    key = header.upper().replace("-", "_")
    return key if key in _UNPREFIXED else f"HTTP_{key}"


class Parameters:
    """One ``query=`` or ``headers=`` schema of a dependency, compiled at registration."""

    __slots__ = ("_lists", "_sources", "identity", "keyword", "location", "schema", "wire")

    def __init__(self, keyword: str, spec: Any, where: str) -> None:
        schema = as_schema(spec, what=f"{where}: {keyword}=")
        if schema.many:
            raise TypeError(f"{where}: {keyword}= cannot be a list schema")
        location = LOCATIONS[keyword]
        self.keyword = keyword
        self.location = location
        self.schema = schema
        loaded = schema.load_fields
        #: ``{attribute: name on the wire}``: the query key or the header name.
        self.wire: dict[str, str] = {
            attr: header_name(attr, field) if location == "header" else field.data_key or attr
            for attr, field in loaded.items()
        }
        # (name on the wire, key of the data the schema loads, where the environ keeps it)
        self._sources = tuple(
            (self.wire[attr], field.data_key or attr, _environ_key(self.wire[attr]))
            for attr, field in loaded.items()
        )
        self._lists = frozenset(
            field.data_key or attr
            for attr, field in loaded.items()
            if isinstance(field, (fields.List, fields.Tuple))
        )
        #: Two declarations are the same parameters when this is equal.
        self.identity = (
            location,
            type(schema),
            None if schema.only is None else frozenset(schema.only),
            frozenset(schema.exclude),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Parameters) and other.identity == self.identity

    def __hash__(self) -> int:
        return hash(self.identity)

    def __repr__(self) -> str:
        return f"{self.keyword}={type(self.schema).__name__}"

    def read(self, environ: WSGIEnvironment) -> dict[str, Any]:
        """The validated values, by attribute name; a 422 when one is missing or invalid.

        Only the schema's own keys are read: other query parameters and headers belong to
        the route or to other dependencies, and are no unknown fields here.
        """
        data: dict[str, Any] = {}
        if self.location == "query":
            args = parse_query(environ.get("QUERY_STRING", ""))
            for wire, key, _ in self._sources:
                values = args.getlist(wire)
                if not values:
                    continue
                if key in self._lists:
                    data[key] = values
                elif len(values) == 1:
                    data[key] = values[0]
                else:
                    raise ValidationError([_several(wire, len(values))])
        else:
            for _, key, environ_key in self._sources:
                value = environ.get(environ_key)
                if value is not None:
                    data[key] = value
        try:
            result: dict[str, Any] = self.schema.load(data)
        except marshmallow.ValidationError as exc:
            raise ValidationError(self._detail(exc.messages)) from None
        return result

    def _detail(self, messages: Any) -> list[dict[str, Any]]:
        detail = to_detail(messages, self.location, self.schema)
        if self.location == "header":
            # NOTE: to_detail names a field by its load key; a client knows the header.
            by_key = {key: wire for wire, key, _ in self._sources}
            for entry in detail:
                loc = entry["loc"]
                if len(loc) > 1 and loc[1] in by_key:
                    loc[1] = by_key[loc[1]]
        return detail


def _several(wire: str, count: int) -> dict[str, Any]:
    return {
        "loc": ["query", wire],
        "msg": f"Expected one value, got {count}; declare the field as fields.List to"
        " accept several.",
        "type": "value_error",
    }


def declare(query: Any, headers: Any, where: str) -> tuple[Parameters, ...]:
    """Compile ``query=`` and ``headers=`` (either may be None) into ``Parameters``."""
    declared = [
        Parameters(keyword, spec, where)
        for keyword, spec in (("query", query), ("headers", headers))
        if spec is not None
    ]
    if len(declared) == 2:
        both = sorted(set(declared[0].wire) & set(declared[1].wire))
        if both:
            raise ValueError(
                f"{where}: query= and headers= both declare {both[0]!r}; a parameter of the"
                " dependency gets one value, so rename the field in one of the schemas"
            )
    return tuple(declared)


class Load(NamedTuple):
    """A dependency's parameters bound to the callable that takes them."""

    parameters: Parameters
    #: The attributes the callable takes (the others are validated, not passed).
    taken: tuple[str, ...]
    #: ``{attribute: None}`` for each taken one that may be absent with no default anywhere.
    absent: dict[str, None]

    def __call__(self, environ: WSGIEnvironment) -> dict[str, Any]:
        loaded = self.parameters.read(environ)
        values: dict[str, Any] = dict(self.absent)
        for attr in self.taken:
            if attr in loaded:
                values[attr] = loaded[attr]
        return values


def bind(declared: tuple[Parameters, ...], defaults: Mapping[str, bool]) -> tuple[Load, ...]:
    """Bind ``declared`` to a callable whose parameters are ``{name: has a default}``.

    A parameter named after a field's attribute gets the field's value; an optional field
    sent without a value and with no ``load_default`` leaves the parameter its own
    default, else None.
    """
    loads = []
    for parameters in declared:
        taken = tuple(attr for attr in parameters.wire if attr in defaults)
        absent = {
            attr: None
            for attr in taken
            if not defaults[attr]
            and not parameters.schema.load_fields[attr].required
            and parameters.schema.load_fields[attr].load_default is marshmallow.missing
        }
        loads.append(Load(parameters, taken, absent))
    return tuple(loads)


def documented(declared: Iterable[tuple[str, Parameters]], where: str) -> tuple[Parameters, ...]:
    """Each distinct ``Parameters`` once, in order; refuse one name declared two ways.

    :param declared: ``(who declares it, parameters)``, e.g. ``("paginate()", ...)``.
    """
    seen: dict[tuple[str, str], tuple[str, Parameters]] = {}
    result: list[Parameters] = []
    for owner, parameters in declared:
        if parameters in result:
            continue
        for wire in parameters.wire.values():
            # NOTE: header names are case-insensitive; query keys are not.
            slot = (parameters.location, wire.lower() if parameters.location == "header" else wire)
            other = seen.get(slot)
            if other is not None and other[1] != parameters:
                raise ValueError(
                    f"{where}: {parameters.location} parameter {wire!r} is declared by"
                    f" {other[0]} ({other[1]!r}) and by {owner} ({parameters!r}); declare it in"
                    " one schema and share that schema, or rename one of them with data_key="
                )
            seen[slot] = (owner, parameters)
        result.append(parameters)
    return tuple(result)
