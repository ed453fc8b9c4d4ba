"""OpenAPI: the app's OpenAPI 3 document, built with apispec, and the Swagger UI served offline.

The document is generated from the compiled endpoints (``app.routes.endpoints``), so it
describes exactly what the request path validates: werkzeug converters become typed path
parameters, query schemas become query parameters, body schemas become request bodies.
Swagger UI's assets come from the ``swagger-ui-bundle-v2`` package (imported as
``swagger_ui_bundle``), so ``/docs`` works on a machine with no internet.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

import marshmallow
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import make_schema_key, resolve_schema_instance
from werkzeug.routing.rules import parse_converter_args
from werkzeug.wrappers import Request, Response

from ..responses import BODYLESS
from ..routing import checks as route_checks
from ..security import SecurityScheme
from . import _fields
from ._statuses import returned_statuses

if TYPE_CHECKING:
    from ..route import Route

logger = logging.getLogger("funapi_sync")

OPENAPI_VERSION = "3.0.3"
_KNOWN_STATUSES = frozenset(status.value for status in HTTPStatus)
_RULE_VARIABLE = re.compile(r"<(?:([A-Za-z_]\w*)(?:\((.*?)\))?:)?([A-Za-z_]\w*)>")
_NOT_WORD = re.compile(r"\W")

#: FastAPI's error model, so clients generated for FastAPI services read ours too.
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


def _json_content(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str, component: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": _json_content({"$ref": f"#/components/schemas/{component}"}),
    }


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
    if parameters:
        operation["parameters"] = parameters
    responses = operation["responses"]
    requirements, required = security.requirements(endpoint)
    if requirements:
        operation["security"] = requirements
    if required:
        responses["401"] = _error("Not authenticated", "HTTPError")
    if parameters and parameters[0]["in"] == "path":
        responses["404"] = _error("Not Found", "HTTPError")
    if endpoint.body_schema is not None:
        operation["requestBody"] = _request_body(endpoint)
        responses["413"] = _error("Request body too large", "HTTPError")
        responses["415"] = _error("Unsupported content type", "HTTPError")
    if endpoint.needs_input or endpoint.current_plan().needs_input:
        responses["422"] = _error("Validation Error", "HTTPValidationError")
    for code, described in endpoint.responses.items():
        if isinstance(described, str):
            # An HTTPException's body: {"detail": "..."}.
            responses[str(code)] = _error(described, "HTTPError")
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
        for scheme in _schemes_of(endpoint):
            (required if scheme.auto_error else optional)[self.name(scheme)] = []
        if required:
            return [required], True
        if optional:
            alternatives: list[dict[str, list[str]]] = [{name: []} for name in optional]
            return [*alternatives, {}], False
        return [], False


def _schemes_of(endpoint: Route) -> list[SecurityScheme]:
    providers = endpoint.registry.providers
    schemes: list[SecurityScheme] = []
    for step in endpoint.current_plan().steps:
        target = step.key
        if isinstance(target, str) and target in providers:
            target = providers[target].factory
        if isinstance(target, SecurityScheme) and target not in schemes:
            schemes.append(target)
    return schemes


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
    for endpoint in app.routes.endpoints:
        if not endpoint.include_in_schema:
            continue
        template = _template(endpoint)
        operations = {
            method.lower(): _operation(endpoint, method, template, plugin, security)
            for method in endpoint.methods
        }
        spec.path(path=template, operations=operations)
    for name, schema in _ERROR_COMPONENTS.items():
        spec.components.schema(name, schema)
    for name, entry in security.entries.items():
        spec.components.security_scheme(name, entry)
    return spec.to_dict()


_URL_IGNORED = {ord("\t"): None, ord("\n"): None, ord("\r"): None}


def _local_root(script_root: str) -> str:
    """``script_root`` as a path on this host: never ``//host`` or ``/\\host``.

    NOTE: gunicorn trusts ``SCRIPT_NAME`` from 127.0.0.1 by default; ``//evil.test`` would
    make ``//evil.test/docs/swagger-ui-bundle.js`` a protocol-relative URL, loading the
    page's script from another host. Browsers drop tabs and newlines from a URL, so
    ``/\t/evil.test`` is the same; they go first.
    """
    stripped = script_root.translate(_URL_IGNORED).lstrip("/\\")
    return "/" + stripped if stripped else ""


class OpenAPI:
    """An app's ``/openapi.json`` and ``/docs`` handlers; the document is built once.

    The app adds :meth:`routes` when it is made (replaceable by a user route on the same
    path); the cache is keyed by the number of routes, which are fixed once it serves.
    """

    def __init__(self, app: Documented, openapi_url: str, docs_url: str | None) -> None:
        self.app = app
        self.openapi_url = openapi_url
        self.docs_url = docs_url
        self._cached: tuple[int, bytes] = (-1, b"")
        self._assets: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def document(self) -> bytes:
        """The JSON document, rebuilt only when routes were added since the last build."""
        count, body = self._cached
        if count != len(self.app.routes.endpoints):
            with self._lock:
                count, body = self._cached
                if count != len(self.app.routes.endpoints):
                    count = len(self.app.routes.endpoints)
                    document = build_document(self.app)
                    body = json.dumps(document, ensure_ascii=False).encode()
                    self._cached = (count, body)
        return body

    def openapi_json(self) -> Response:
        return Response(self.document(), mimetype="application/json")

    def docs_page(self, input: Any, req: Request) -> Response:
        root = _local_root(req.script_root)
        # NOTE: json.dumps plus escaping "<" keeps a URL from closing the <script> element.
        spec_url = json.dumps(root + self.openapi_url).replace("<", "\\u003c")
        assets = html.escape(f"{root}{self.docs_url}", quote=True)
        page = _PAGE.format(title=html.escape(self.app.title), assets=assets, spec_url=spec_url)
        return Response(page, mimetype="text/html")

    def asset(self, name: str, mimetype: str) -> Any:
        def serve(input: Any, req: Request) -> Response:
            data = self._assets.get(name)
            if data is None:
                from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

                data = self._assets[name] = ((swagger_ui_path / name).read_bytes(), mimetype)
            response = Response(data[0], mimetype=data[1])
            response.cache_control.public = True
            response.cache_control.max_age = 86400
            response.add_etag()
            return response.make_conditional(req)

        serve.__name__ = f"swagger_ui_{_NOT_WORD.sub('_', name)}"
        return serve

    def routes(self) -> list[tuple[str, Callable[..., Any]]]:
        """The ``(path, handler)`` of each GET route to serve: the document, the docs page."""
        routes: list[tuple[str, Callable[..., Any]]] = [(self.openapi_url, self.openapi_json)]
        if self.docs_url is not None:
            routes.append((self.docs_url, self.docs_page))
            for name, mimetype in _ASSETS:
                routes.append((f"{self.docs_url}/{name}", self.asset(name, mimetype)))
        return routes


_ASSETS = (
    ("swagger-ui.css", "text/css"),
    ("swagger-ui-bundle.js", "text/javascript"),
    ("favicon-32x32.png", "image/png"),
)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: {spec_url},
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  validatorUrl: null
}});
</script>
</body>
</html>
"""
