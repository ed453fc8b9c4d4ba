"""TestClient: werkzeug's Client, returning only after the request's background work ran."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.test import Client

from . import pool as pool_module
from .after_close import BATCHES_KEY, RAISE_TASK_ERRORS_KEY

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .pool import Batch


class TestClient(Client):
    """A werkzeug ``Client`` for an :class:`~funapi_sync.App`.

    Each request's body is read and its iterable closed inside the call (as a server
    would), so the background tasks are submitted to the real pool; the call then waits
    for that request's batch (tasks, then dependency cleanup), so a test can assert their
    effects at once.

    With ``raise_task_errors=True`` the tasks run in the calling thread instead (as with
    ``app.testing``), and a task's exception is raised from the call.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, *args: Any, raise_task_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raise_task_errors = raise_task_errors

    def run_wsgi_app(self, environ: WSGIEnvironment, buffered: bool = False) -> Any:
        # NOTE: werkzeug calls the app with a shallow *copy* of environ, and middleware
        # may copy it again; every copy shares this list, which the app appends to.
        batches: list[Batch] = []
        environ[BATCHES_KEY] = batches
        if self.raise_task_errors:
            environ[RAISE_TASK_ERRORS_KEY] = True
        result = super().run_wsgi_app(environ, buffered=True)
        pool = pool_module.current_pool()
        if pool is not None:
            for batch in batches:
                pool.wait(batch)
        return result
