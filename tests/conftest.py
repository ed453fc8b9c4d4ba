from __future__ import annotations

import logging

import pytest
from werkzeug.middleware.lint import LintMiddleware

from funapi_sync import App
from funapi_sync.testing import TestClient


@pytest.fixture
def app() -> App:
    return App(title="Test API")


@pytest.fixture
def client(app: App) -> TestClient:
    """A test client whose app is wrapped in werkzeug's LintMiddleware (PEP 3333 checks)."""
    app.use(LintMiddleware)
    return app.test_client()


@pytest.fixture(autouse=True)
def _drain_background_pool():
    """Leave no task of one test running into the next, and no app's own pool behind it."""
    from funapi_sync import pool

    own_before = set(pool._own_pools)
    yield
    current = pool.current_pool()
    if current is not None:
        assert current.drain(timeout=30), "background tasks still running after the test"
    for view in set(pool._own_pools) - own_before:
        pool._own_pools.pop(view).shutdown(timeout=10)


@pytest.fixture
def caplog_funapi(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="funapi_sync")
    return caplog

