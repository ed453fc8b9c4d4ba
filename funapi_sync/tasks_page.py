"""The tasks page: a router that shows an app's background tasks as HTML, behind its guards.

``app.include_router(tasks_router(depends={"admin": HTTPBasic()}), prefix="/_tasks")``
serves, under the prefix (see docs/task-status.md, "The tasks page"):

- ``GET /`` the tasks, newest first, with counts per status (``?status=FAILED`` filters);
- ``GET /<task_id>`` one task's detail; both answer JSON to ``Accept: application/json``;
- ``POST /<task_id>/retry`` and ``POST /<task_id>/forget``, offered only where the app's
  backend has ``retry()`` / ``forget()``, answered with a 303 back to the list;
- ``GET /tasks.css``, its stylesheet: the page loads nothing from any other host.

Jinja2 is imported when the page is first rendered, not when this module is imported.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from werkzeug.wrappers import Response

from .exceptions import HTTPException, ValidationError
from .openapi import local_root
from .routing.router import Router
from .status import FAILED, FINISHED, STATUSES, TaskStatus, store_of

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from .inputs import Input
    from .templating import Templates

#: The page's templates and stylesheet, shipped as package data.
FILES = Path(__file__).parent / "templates" / "tasks_page"

#: NOTE: task names and errors come from user code and are escaped by Jinja; the policy
#: is a second wall: no script runs, nothing loads from elsewhere, no other site frames
#: the page (its buttons), and the forms post only to this origin.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Vary": "Accept",
}
_JSON_HEADERS = {"Cache-Control": "no-store", "Vary": "Accept", "X-Content-Type-Options": "nosniff"}


def tasks_router(*, depends: Any = None, limit: int = 100) -> Router:
    """A :class:`~funapi_sync.Router` serving the tasks page of the app that includes it.

    Include it once per app, under a prefix:
    ``app.include_router(tasks_router(depends={"admin": HTTPBasic()}), prefix="/_tasks")``.
    Its routes are left out of ``/openapi.json``.

    :param depends: guards for every route of the page, as ``Router(depends=...)``: a
        request they refuse gets their answer (401 with ``WWW-Authenticate`` for
        ``HTTPBasic``). Without one, anyone who reaches the app sees its tasks.
    :param limit: how many tasks the list shows (and counts, per status) at most.
    :raises ValueError: ``limit`` is not a positive int.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"tasks_router(limit={limit!r}): limit must be a positive int")
    page = TasksPage(limit)
    router = Router(depends=depends)
    router.on_include.append(page.bind)
    hidden = {"include_in_schema": False}
    router.get("/", **hidden)(page.list_page)
    router.get("/tasks.css", **hidden)(page.stylesheet)
    router.get("/<task_id>", **hidden)(page.detail_page)
    router.post("/<task_id>/retry", **hidden)(page.retry)
    router.post("/<task_id>/forget", **hidden)(page.forget)
    return router


class TasksPage:
    """The handlers of one :func:`tasks_router`, and the backend of the app serving it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.backend: Any = None
        self.can_retry = False
        self.can_forget = False
        #: True for an in-process backend: the page shows this process's tasks only.
        self.per_process = False

    def bind(self, app: Any) -> None:
        """Serve ``app``'s tasks (``Router.on_include``); decide what the page offers."""
        backend = app.background
        if self.backend is not None and self.backend is not backend:
            raise ValueError(
                "this tasks_router() already serves another app's tasks; call"
                " tasks_router() once for each app that includes it"
            )
        self.backend = backend
        self.can_retry = callable(getattr(backend, "retry", None))
        self.can_forget = callable(getattr(backend, "forget", None))
        self.per_process = store_of(backend) is not None

    # -- pages --------------------------------------------------------------------

    def list_page(self, input: Input, req: Request) -> Any:
        status = _status_query(input.query)
        shown = self.backend.tasks(status, self.limit)
        counts = {name: len(self.backend.tasks(name, self.limit)) for name in STATUSES}
        if _wants_json(req):
            payload = {"status": status, "counts": counts, "tasks": [_json(t) for t in shown]}
            return payload, 200, _JSON_HEADERS
        return self._html(
            "list.html",
            req,
            "",
            tasks=shown,
            counts=counts,
            current=status,
            back=f"?status={status}" if status else "",
        )

    def detail_page(self, input: Input, req: Request) -> Any:
        task_id = input.path["task_id"]
        task = self._task(task_id)
        if _wants_json(req):
            return _json(task), 200, _JSON_HEADERS
        return self._html("detail.html", req, f"/{task_id}", task=task, back="")

    def stylesheet(self, input: Input, req: Request) -> Response:
        response = Response(_stylesheet(), mimetype="text/css")
        # NOTE: private: the stylesheet is behind the page's guards like the page.
        response.cache_control.private = True
        response.cache_control.max_age = 3600
        response.add_etag()
        return response.make_conditional(req)

    def _html(self, name: str, req: Request, suffix: str, **context: Any) -> Response:
        base = _mount_path(req, suffix)
        return _templates().response(
            name,
            headers=_PAGE_HEADERS,
            base=base,
            home=base or "/",
            statuses=STATUSES,
            finished=FINISHED,
            limit=self.limit,
            can_retry=self.can_retry,
            can_forget=self.can_forget,
            per_process=self.per_process,
            **context,
        )

    # -- actions ------------------------------------------------------------------

    def retry(self, input: Input, req: Request) -> Response:
        refuse_cross_site(req)
        task_id = input.path["task_id"]
        if not self.can_retry:
            # NOTE: RFC 9110: an empty Allow says the resource allows no method here.
            raise HTTPException(
                405,
                detail="this app's background backend cannot retry a task (it has no"
                " retry()); a durable backend such as 'sqlite' can",
                headers={"Allow": ""},
            )
        task = self._task(task_id)
        if task.status != FAILED or not self.backend.retry(task_id):
            raise HTTPException(409, detail="only a FAILED task can be retried")
        return _back_to_list(req, f"/{task_id}/retry")

    def forget(self, input: Input, req: Request) -> Response:
        refuse_cross_site(req)
        task_id = input.path["task_id"]
        if not self.can_forget:
            raise HTTPException(
                405,
                detail="this app's background backend cannot forget a task (it has no forget())",
                headers={"Allow": ""},
            )
        task = self._task(task_id)
        if task.status not in FINISHED or not self.backend.forget(task_id):
            raise HTTPException(
                409, detail="only a finished task (SUCCESSFUL, FAILED, DROPPED) can be forgotten"
            )
        return _back_to_list(req, f"/{task_id}/forget")

    def _task(self, task_id: str) -> TaskStatus:
        task: TaskStatus | None = self.backend.status(task_id)
        if task is None:
            raise HTTPException(404, detail="no such task")
        return task


def refuse_cross_site(req: Request) -> None:
    """Answer 403 unless the POST came from a page of this origin (CSRF).

    NOTE: HTTP Basic credentials (and cookies) are sent by the browser with a form that
    another site posts here. Browsers say where a request comes from in headers a page
    cannot set: ``Sec-Fetch-Site`` (every current browser, on HTTPS and localhost), else
    ``Origin`` (sent with every cross-origin POST), else ``Referer``. A request with none
    of them is refused too: a script can send ``Origin`` itself.
    """
    site = req.headers.get("Sec-Fetch-Site")
    if site is not None:
        allowed = site == "same-origin"
    else:
        sent = req.headers.get("Origin") or req.headers.get("Referer") or ""
        allowed = _host_port(urlsplit(sent).netloc) == _host_port(req.host) != ("", None)
    if not allowed:
        raise HTTPException(
            403,
            detail="a POST to the tasks page must come from the page itself: its"
            " Sec-Fetch-Site, Origin or Referer header must name this host",
        )


def _host_port(netloc: str) -> tuple[str, int | None]:
    """``("example.com", None)`` for ``example.com``, ``:80`` or ``:443`` (a TLS proxy in
    front of the app sees ``http`` where the browser says ``https``); ``("", None)`` for
    what is no host (``Origin: null``)."""
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "", None
    return host, None if port in (80, 443) else port


def _status_query(query: Mapping[str, Any]) -> str | None:
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationError(
            [
                {
                    "loc": ["query", "status"],
                    "msg": f"Must be one of: {', '.join(STATUSES)}.",
                    "type": "enum",
                }
            ]
        )
    return status


def _wants_json(req: Request) -> bool:
    # NOTE: a browser and `curl` (*/*) get the page; only a client asking for JSON gets it.
    best = req.accept_mimetypes.best_match(("text/html", "application/json"))
    return best == "application/json"


def _json(task: TaskStatus) -> dict[str, Any]:
    return task._asdict()


def _mount_path(req: Request, suffix: str) -> str:
    """Where the page is mounted, as a path on this host: ``/_tasks`` (``""`` at the root)."""
    path = req.path.rstrip("/")
    if suffix and path.endswith(suffix):
        path = path[: -len(suffix)]
    return quote(local_root(req.script_root) + path, safe="/")


def _back_to_list(req: Request, suffix: str) -> Response:
    """303 to the list, keeping its ``?status=`` filter (a known status only)."""
    base = _mount_path(req, suffix) or "/"
    status = req.args.get("status")
    location = f"{base}?status={status}" if status in STATUSES else base
    return Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _url_part(value: str) -> str:
    return quote(value, safe="")


@functools.cache
def _templates() -> Templates:
    from .templating import Templates

    templates = Templates(FILES, layout="layout.html")
    templates.env.filters["when"] = _when
    templates.env.filters["url_part"] = _url_part
    return templates


@functools.cache
def _stylesheet() -> bytes:
    return (FILES / "tasks.css").read_bytes()
