"""OpenAPI: the app's ``/openapi.json`` and its Swagger UI ``/docs``, served offline.

The document (``_document``, built with apispec when first asked for) is generated from
the compiled endpoints (``app.routes.endpoints``), so it describes exactly what the request
path validates. Swagger UI's assets come from the ``swagger-ui-bundle-v2`` package (imported
as ``swagger_ui_bundle``), so ``/docs`` works on a machine with no internet.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from ._protocols import Documented as Documented
from ._protocols import ErrorShapes as ErrorShapes
from ._protocols import RouteSource as RouteSource

_NOT_WORD = re.compile(r"\W")


def build_document(app: Documented) -> dict[str, Any]:
    """Build the OpenAPI document of ``app``'s routes (those with ``include_in_schema``).

    Every value in it is JSON, and an apispec warning is logged rather than raised, so
    no field marshmallow accepts can make it fail.
    """
    from ._document import build_document as build

    return build(app)


_URL_IGNORED = {ord("\t"): None, ord("\n"): None, ord("\r"): None}


def local_root(script_root: str) -> str:
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
        root = local_root(req.script_root)
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
