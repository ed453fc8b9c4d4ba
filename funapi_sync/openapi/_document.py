"""Internal: the OpenAPI document of an app's routes, built with apispec.

Imported when the document is first built (``/openapi.json``), so an app that never serves
it never imports apispec.
"""

from __future__ import annotations

import logging
import re
import warnings
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NamedTuple

import marshmallow
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import make_schema_key, resolve_schema_instance
from werkzeug.routing.rules import parse_converter_args

from ..exceptions import HTTPException, ValidationError
from ..responses import BODYLESS
from ..routing import checks as route_checks
from ..security import SecurityScheme, schemes_of
from . import _fields
from ._statuses import returned_statuses

if TYPE_CHECKING:
    from ..route import Route
    from ._protocols import Documented, ErrorShapes

logger = logging.getLogger("funapi_sync")

OPENAPI_VERSION = "3.0.3"
_KNOWN_STATUSES = frozenset(status.value for status in HTTPStatus)
_RULE_VARIABLE = re.compile(r"<(?:([A-Za-z_]\w*)(?:\((.*?)\))?:)?([A-Za-z_]\w*)>")
_NOT_WORD = re.compile(r"\W")

_ERROR_COMPONENTS: dict[str, dict[str, Any]] = {
    "ValidationError": {
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
    },
    "HTTPValidationError": {
        "type": "object",
        "required": ["detail"],
        "properties": {
            "detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}
        },
    },
    "HTTPError": {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string"}},
    },
}


class _ComponentNames:
    """Name schema components after their class (``Schema.define``'s title), never twice.

    NOTE: apispec only warns on a clash and renames; with warnings as errors that would
    break, and the rename would depend on the order apispec met the schemas anyway.
    """

    def __init__(self) -> None:
        self.taken: set[str] = set(_ERROR_COMPONENTS)
        self.by_key: dict[Any, str] = {}

    def __call__(self, schema: Any) -> str:
        key = make_schema_key(resolve_schema_instance(schema))
        name = self.by_key.get(key)
        if name is None:
            base = (schema if isinstance(schema, type) else type(schema)).__name__
            name, counter = base, 1
            while name in self.taken:
                counter += 1
                name = f"{base}{counter}"
            self.taken.add(name)
            self.by_key[key] = name
        return name


def _converter_schema(converter: str | None, args: str | None) -> dict[str, Any]:
    """The JSON schema of what a werkzeug converter accepts."""
    positional, options = parse_converter_args(args) if args else ((), {})
    if converter in ("int", "float"):
        schema: dict[str, Any] = {"type": "integer" if converter == "int" else "number"}
        # NOTE: werkzeug's numeric converters match no sign unless signed=True.
        low = options.get("min", None if options.get("signed") else 0)
        if low is not None:
            schema["minimum"] = low
        if options.get("max") is not None:
            schema["maximum"] = options["max"]
        return schema
    if converter == "uuid":
        return {"type": "string", "format": "uuid"}
    if converter == "any":
        return {"type": "string", "enum": list(positional)}
    if converter == "path":
        return {"type": "string", "minLength": 1}
    schema = {"type": "string", "pattern": "^[^/]+$"}
    for option, keyword in (("minlength", "minLength"), ("maxlength", "maxLength")):
        if options.get(option) is not None:
            schema[keyword] = options[option]
    if options.get("length") is not None:
        schema["minLength"] = schema["maxLength"] = options["length"]
    return schema


def _template(endpoint: Route) -> str:
    """``/users/<int:id>`` -> ``/users/{id}``."""
    return _RULE_VARIABLE.sub(lambda match: "{" + match.group(3) + "}", endpoint.rule)


def _path_parameters(endpoint: Route, plugin: MarshmallowPlugin) -> list[dict[str, Any]]:
    declared: dict[str, marshmallow.fields.Field[Any]] = {}
    if endpoint.path_schema is not None:
        declared = {
            field.data_key or name: field for name, field in endpoint.path_schema.fields.items()
        }
    parameters = []
    for converter, args, name in _RULE_VARIABLE.findall(endpoint.rule):
        schema = _converter_schema(converter or None, args or None)
        if name in declared:
            schema.update(plugin.converter.field2property(declared[name]))  # type: ignore[union-attr]
        parameters.append({"in": "path", "name": name, "required": True, "schema": schema})
    return parameters


def _dependency_parameters(endpoint: Route, plugin: MarshmallowPlugin) -> list[dict[str, Any]]:
    """The query and header parameters the route's dependencies declare, each once.

    A name the route's own ``query=`` documents is left to it (the plan refused one
    declared two ways); a header is named as it is read (``x_token`` is ``X-Token``).
    """
    skip: set[str] = set()
    if endpoint.query_schema is not None:
        skip = {field.data_key or name for name, field in endpoint.query_schema.fields.items()}
    result = []
    for declared in endpoint.current_plan().parameters:
        by_key = {
            field.data_key or attr: declared.wire[attr]
            for attr, field in declared.schema.load_fields.items()
        }
        converter = plugin.converter
        assert converter is not None  # set by APISpec(plugins=[plugin])
        for parameter in converter.schema2parameters(declared.schema, location=declared.location):
            if declared.location == "query" and parameter["name"] in skip:
                continue
            parameter["name"] = by_key.get(parameter["name"], parameter["name"])
            result.append(parameter)
    return result


def _json_content(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


class _Shapes(NamedTuple):
    """The body of each kind of error response: a default component's ``$ref`` or a schema."""

    #: An HTTPException's body (401, 404, 413, 415, ``responses=`` descriptions).
    http: Any
    #: A ValidationError's body (422).
    validation: Any

    @classmethod
    def of(cls, errors: ErrorShapes) -> _Shapes:
        http = errors.schema_for(HTTPException)
        validation = errors.schema_for(ValidationError)
        return cls(
            _ref("HTTPError") if http is None else http,
            _ref("HTTPValidationError") if validation is None else validation,
        )

    def defaults(self) -> dict[str, dict[str, Any]]:
        """The default components still referred to (a declared shape replaces its own)."""
        used: dict[str, dict[str, Any]] = {}
        if self.http == _ref("HTTPError"):
            used["HTTPError"] = _ERROR_COMPONENTS["HTTPError"]
        if self.validation == _ref("HTTPValidationError"):
            used["ValidationError"] = _ERROR_COMPONENTS["ValidationError"]
            used["HTTPValidationError"] = _ERROR_COMPONENTS["HTTPValidationError"]
        return used


def _ref(component: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component}"}


def _error(description: str, shape: Any) -> dict[str, Any]:
    return {"description": description, "content": _json_content(shape)}


def _success_content(endpoint: Route, status: int) -> dict[str, Any] | None:
    """What a success response carries: JSON (the response schema), or the route's media type."""
    if status in BODYLESS:
        return None
    media_type = endpoint.media_type
    if media_type is None or route_checks.is_json(media_type):
        schema = endpoint.response_schema if status < 400 else None
        return {media_type or "application/json": {"schema": {} if schema is None else schema}}
    if media_type.startswith("text/"):
        return {media_type: {"schema": {"type": "string"}}}
    return {media_type: {"schema": {"type": "string", "format": "binary"}}}


def _status_responses(endpoint: Route) -> dict[str, Any]:
    """The route's status, and each status its handler returns literally (see ``_statuses``)."""
    literal, plain = returned_statuses(endpoint.handler)
    statuses = list(literal)
    if plain or endpoint.status_code != 200 or not literal:
        statuses.insert(0, endpoint.status_code)
    responses: dict[str, Any] = {}
    for status in statuses:
        described: dict[str, Any] = {"description": _phrase(status)}
        content = _success_content(endpoint, status)
        if content is not None:
            described["content"] = content
        responses.setdefault(str(status), described)
    return responses


def _phrase(status: int) -> str:
    return HTTPStatus(status).phrase if status in _KNOWN_STATUSES else str(status)


def _request_body(endpoint: Route) -> dict[str, Any]:
    media_type = endpoint.body_media_type or "application/json"
    return {"required": True, "content": {media_type: {"schema": endpoint.body_schema}}}


def _operation(
    endpoint: Route,
    method: str,
    template: str,
    plugin: MarshmallowPlugin,
    security: _SecuritySchemes,
    shapes: _Shapes,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": _NOT_WORD.sub("_", f"{endpoint.name}{template}_{method.lower()}"),
        "summary": endpoint.summary or endpoint.name.replace("_", " ").title(),
        "responses": _status_responses(endpoint),
    }
    if endpoint.description and endpoint.description != endpoint.summary:
        operation["description"] = endpoint.description
    if endpoint.tags:
        operation["tags"] = list(endpoint.tags)
    parameters = _path_parameters(endpoint, plugin)
    if endpoint.query_schema is not None:
        parameters.append({"in": "query", "schema": endpoint.query_schema})
    parameters.extend(_dependency_parameters(endpoint, plugin))
    if parameters:
        operation["parameters"] = parameters
    responses = operation["responses"]
    requirements, required = security.requirements(endpoint)
    if requirements:
        operation["security"] = requirements
    if required:
        responses["401"] = _error("Not authenticated", shapes.http)
    if parameters and parameters[0]["in"] == "path":
        responses["404"] = _error("Not Found", shapes.http)
    if endpoint.body_schema is not None:
        operation["requestBody"] = _request_body(endpoint)
        responses["413"] = _error("Request body too large", shapes.http)
        responses["415"] = _error("Unsupported content type", shapes.http)
    plan = endpoint.current_plan()
    if endpoint.needs_input or plan.needs_input or plan.parameters:
        responses["422"] = _error("Validation Error", shapes.validation)
    for code, described in endpoint.responses.items():
        if isinstance(described, str):
            # An HTTPException's body: {"detail": "..."}.
            responses[str(code)] = _error(described, shapes.http)
        elif isinstance(described, marshmallow.Schema):
            responses[str(code)] = {
                "description": _phrase(code),
                "content": _json_content(described),
            }
        else:
            responses[str(code)] = dict(described)
    return operation


class _SecuritySchemes:
    """The security schemes the endpoints use, each named once in ``securitySchemes``.

    A scheme is found wherever the endpoint's dependency plan reaches it: in the route's
    or its router's ``depends=``, as a sub-dependency (``token=Depends(bearer)``) or as a
    registered name (``app.register("token", bearer)``).
    """

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self._names: dict[int, str] = {}

    def name(self, scheme: SecurityScheme) -> str:
        name = self._names.get(id(scheme))
        if name is not None:
            return name
        entry = scheme.openapi()
        base = name = scheme.scheme_name
        counter = 1
        while name in self.entries and self.entries[name] != entry:
            counter += 1
            name = f"{base}{counter}"
        self.entries[name] = entry
        self._names[id(scheme)] = name
        return name

    def requirements(self, endpoint: Route) -> tuple[list[dict[str, list[str]]], bool]:
        """The operation's ``security`` list, and whether a 401 is possible.

        Schemes with ``auto_error=True`` are all required together; when every scheme
        is optional (``auto_error=False``), each is one alternative and ``{}`` (anonymous)
        is the last.
        """
        required: dict[str, list[str]] = {}
        optional: dict[str, list[str]] = {}
        for scheme in schemes_of(endpoint):
            (required if scheme.auto_error else optional)[self.name(scheme)] = []
        if required:
            return [required], True
        if optional:
            alternatives: list[dict[str, list[str]]] = [{name: []} for name in optional]
            return [*alternatives, {}], False
        return [], False


def build_document(app: Documented) -> dict[str, Any]:
    """Build the OpenAPI document of ``app``'s routes (those with ``include_in_schema``).

    Every value in it is JSON (``_fields.jsonable``), and an apispec warning is
    logged rather than raised, so no field marshmallow accepts can make it fail.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        document = _build(app)
    for warning in caught:
        logger.warning("OpenAPI: %s", warning.message)
    result: dict[str, Any] = _fields.jsonable(document)
    return result


def _build(app: Documented) -> dict[str, Any]:
    plugin = MarshmallowPlugin(schema_name_resolver=_ComponentNames())
    info = {"description": app.description} if app.description else {}
    spec = APISpec(
        title=app.title,
        version=app.version,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info=info,
    )
    _fields.configure(plugin)
    security = _SecuritySchemes()
    shapes = _Shapes.of(app.errors)
    for endpoint in app.routes.endpoints:
        if not endpoint.include_in_schema:
            continue
        template = _template(endpoint)
        operations = {
            method.lower(): _operation(endpoint, method, template, plugin, security, shapes)
            for method in endpoint.methods
        }
        spec.path(path=template, operations=operations)
    for name, schema in shapes.defaults().items():
        spec.components.schema(name, schema)
    for name, entry in security.entries.items():
        spec.components.security_scheme(name, entry)
    return spec.to_dict()
