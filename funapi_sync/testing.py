"""TestClient: werkzeug's Client, returning only after the request's background work ran."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.test import Client

from . import pool as pool_module

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: The environ key under which the client learns which environ the app was called with.
_SEEN_KEY = "funapi_sync.testing.seen"


class TestClient(Client):
    """A werkzeug ``Client`` for an :class:`~funapi_sync.App`.

    Each request's body is read and its iterable closed inside the call (as a server
    would), so the background tasks are submitted to the real pool; the call then waits
    for that request's batch, so a test can assert the tasks' effects at once.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, application: WSGIApplication, *args: Any, **kwargs: Any) -> None:
        super().__init__(_exposing_environ(application), *args, **kwargs)

    def run_wsgi_app(self, environ: WSGIEnvironment, buffered: bool = False) -> Any:
        from .app import BATCH_KEY

        # NOTE: werkzeug's run_wsgi_app calls the app with a *copy* of environ, so the
        # batch the app leaves in its environ is found through this shared list.
        seen: list[WSGIEnvironment] = []
        environ[_SEEN_KEY] = seen
        result = super().run_wsgi_app(environ, buffered=True)
        pool = pool_module.current_pool()
        for app_environ in seen:
            batch = app_environ.get(BATCH_KEY)
            if batch is not None and pool is not None:
                pool.wait(batch)
        return result


def _exposing_environ(app: WSGIApplication) -> WSGIApplication:
    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen = environ.get(_SEEN_KEY)
        if seen is not None:
            seen.append(environ)
        return app(environ, start_response)

    return application
