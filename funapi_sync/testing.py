"""TestClient: werkzeug's Client, returning only after the request's background work ran."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.test import Client

from . import pool as pool_module

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


class TestClient(Client):
    """A werkzeug ``Client`` for an :class:`~funapi_sync.App`.

    Each request's body is read and its iterable closed inside the call (as a server
    would), so the background tasks are submitted to the real pool; the call then waits
    for that request's batch, so a test can assert the tasks' effects at once.
    """

    __test__ = False  # not a pytest test class

    def run_wsgi_app(self, environ: WSGIEnvironment, buffered: bool = False) -> Any:
        from .app import BATCH_KEY

        result = super().run_wsgi_app(environ, buffered=True)
        batch = environ.get(BATCH_KEY)
        pool = pool_module.current_pool()
        if batch is not None and pool is not None:
            pool.wait(batch)
        return result
