"""Templates: Jinja2 pages with autoescaping and layouts, rendered into HTML responses."""

from __future__ import annotations

import copy
import difflib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, Environment, TemplateNotFound, nodes
from markupsafe import Markup
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

from .exceptions import HTTPException

logger = logging.getLogger("funapi_sync")

HTML_CONTENT_TYPE = "text/html; charset=utf-8"
#: Files under the directory checked when ``Templates`` is created (others load on use).
TEMPLATE_SUFFIXES = frozenset(
    {".html", ".htm", ".xhtml", ".xml", ".svg", ".txt", ".j2", ".jinja", ".jinja2"}
)


class TemplateResponseError(HTTPException):
    """:meth:`Templates.response` could not find or was refused its template: a 500.

    The reason is logged once, in one line, on ``funapi_sync``; the client gets the
    fixed 500 body. ``name`` is the template name and ``str(exc)`` the reason.
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(500)
        self.name = name
        self.message = message

    def __str__(self) -> str:
        return self.message


class _DirectoryLoader(BaseLoader):
    """Load templates from one directory, refusing any name that would leave it.

    ``..`` segments, absolute paths, backslashes and NUL bytes are refused outright; the
    resolved path (symlinks followed) must still lie inside the directory.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = self.path_of(template)
        try:
            source = path.read_text(encoding="utf-8")
            mtime = path.stat().st_mtime
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise TemplateNotFound(
                template, f"template {template!r} not found in {self.directory}"
            ) from None

        def uptodate() -> bool:
            try:
                return path.stat().st_mtime == mtime
            except OSError:
                return False

        return source, str(path), uptodate

    def path_of(self, template: str) -> Path:
        """The file for ``template``; :class:`TemplateNotFound` if it would leave the directory."""
        parts = template.split("/")
        if (
            not template
            or "\\" in template
            or "\x00" in template
            or os.path.isabs(template)
            or ".." in parts
        ):
            raise TemplateNotFound(
                template,
                f"template name {template!r} points outside the templates directory"
                f" {self.directory}; use a relative path inside it, such as 'pages/home.html'",
            )
        path = self.directory.joinpath(*parts).resolve()
        if not path.is_relative_to(self.directory):
            raise TemplateNotFound(
                template,
                f"template {template!r} resolves to {path}, outside the templates directory"
                f" {self.directory} (through a symlink); move the file into the directory",
            )
        return path


class Templates:
    """Render Jinja2 templates from ``directory`` into HTML responses.

    Autoescaping is on for every template: a value from the user is HTML-escaped unless
    it is :class:`markupsafe.Markup`. Partials are plain Jinja ``{% include %}``; a
    template name never leaves ``directory`` (``../x``, absolute paths and symlinks out
    are refused with :class:`jinja2.TemplateNotFound`).

    A *layout* wraps a page: it is rendered with the same context plus ``content``, the
    page's rendered HTML (already safe), e.g. ``<main>{{ content }}</main>``. The layout
    is checked when set (here and in :meth:`with_layout`), so a typo fails at startup.

    :param directory: the templates' root directory.
    :param layout: the default layout's template name, or ``None`` for none.
    :raises ValueError: ``directory`` is not a directory.

    The Jinja :attr:`env` is there for filters and globals:
    ``templates.env.filters["money"] = ...``.
    """

    def __init__(self, directory: str | os.PathLike[str], layout: str | None = None) -> None:
        root = Path(directory).resolve()
        if not root.is_dir():
            raise ValueError(
                f"Templates directory {root} does not exist or is not a directory; create"
                " it or pass the directory that holds your .html files"
            )
        self.directory = root
        self.loader = _DirectoryLoader(root)
        self.env = Environment(loader=self.loader, autoescape=True)
        self.layout: str | None = None
        self._check_directory()
        self._set_layout(layout)

    def _check_directory(self) -> None:
        # NOTE: every template is parsed now, so a syntax error or an include/extends/
        # import of a missing file fails when the app is built, not on some request.
        for name in self.names():
            try:
                source, filename, _ = self.loader.get_source(self.env, name)
            except TemplateNotFound:
                continue  # a symlink out of the directory: refused whenever it is used
            tree = self.env.parse(source, name, filename)
            for reference in _static_references(tree):
                path = self.loader.path_of(reference)
                if not path.is_file():
                    raise TemplateNotFound(
                        reference,
                        f"template {reference!r} not found in {self.directory} (used by"
                        f" {name!r}){self._did_you_mean(reference)}",
                    )

    def names(self) -> list[str]:
        """The template names under the directory, such as ``"partials/item.html"``."""
        found = []
        for path in sorted(self.directory.rglob("*")):
            relative = path.relative_to(self.directory)
            if any(part.startswith(".") for part in relative.parts):
                continue
            if path.suffix in TEMPLATE_SUFFIXES and path.is_file():
                found.append(relative.as_posix())
        return found

    def _did_you_mean(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        return f"; did you mean {close[0]!r}?" if close else ""

    def _set_layout(self, layout: str | bool | None) -> None:
        if layout is False or layout is None:
            self.layout = None
            return
        if not isinstance(layout, str):
            raise TypeError(f"layout must be a template name, None or False, got {layout!r}")
        self.env.get_template(layout)
        self.layout = layout

    def with_layout(self, layout: str | None) -> Templates:
        """A copy (sharing the Jinja environment) whose default layout is ``layout``."""
        clone = copy.copy(self)
        clone._set_layout(layout)
        return clone

    def render(self, name: str, /, *, layout: Any = ..., **context: Any) -> str:
        """Render ``name`` (in its layout, unless ``layout`` says otherwise) to a string.

        :param layout: ``...`` for the default layout, a template name, or ``False`` /
            ``None`` for none.
        :raises ValueError: a layout applies and the context has a ``content`` variable,
            which the layout's ``content`` (the page) would hide.
        """
        chosen = self.layout if layout is ... else (layout or None)
        page = self.env.get_template(name).render(context)
        if chosen is None:
            return page
        if "content" in context:
            raise ValueError(
                f"rendering {name!r} in layout {chosen!r}: the context variable 'content'"
                " would be hidden by the layout's content (the rendered page); rename it,"
                " or pass layout=False"
            )
        return self.env.get_template(chosen).render(context, content=Markup(page))

    def response(
        self,
        name: str,
        /,
        *,
        status: int = 200,
        layout: Any = ...,
        headers: Mapping[str, str] | list[tuple[str, str]] | Headers | None = None,
        **context: Any,
    ) -> Response:
        """Render ``name`` into a ``text/html; charset=utf-8`` werkzeug ``Response``.

        ``name`` is positional-only, so a context variable may be called ``name``.
        The response has a ``Content-Length``; return it from a handler as it is.
        """
        try:
            page = self.render(name, layout=layout, **context)
        except TemplateNotFound as exc:
            # NOTE: a name computed at request time can only be checked here; one line
            # says which and why, and the client gets a plain 500 (no traceback logged).
            message = str(exc.message or exc.name)
            if "not found" in message:
                message += self._did_you_mean(str(exc.name))
            if exc.name != name:
                message = f"cannot render template {name!r}: {message}"
            logger.error("%s", message)
            raise TemplateResponseError(str(exc.name), message) from None
        body = page.encode("utf-8")
        return Response(body, status=status, headers=headers, content_type=HTML_CONTENT_TYPE)


def _static_references(tree: nodes.Template) -> Iterator[str]:
    """The template names an AST extends, includes or imports by a literal string."""
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        if not isinstance(node, (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            continue  # NOTE: find_all is typed as yielding any node; this narrows it
        if isinstance(node, nodes.Include) and node.ignore_missing:
            continue
        target = node.template
        if isinstance(target, nodes.Const) and isinstance(target.value, str):
            yield target.value
