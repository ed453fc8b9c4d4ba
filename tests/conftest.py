from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator

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


# -- the fast loop starts no process --------------------------------------------------------

#: What starts a process: subprocess (and asyncio's), multiprocessing and os.fork all end in one
#: of these.
_PROCESS_STARTERS = [
    (subprocess.Popen, "__init__"),
    (os, "fork"),
    (os, "forkpty"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
    (os, "system"),
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Fail a test that starts a process without the ``server`` marker (tests/server/).

    Wrapped around setup, call and teardown, so a module-scoped fixture that starts a
    server is caught too: ``pytest -m "not server"`` starting no process is enforced.
    """
    if item.get_closest_marker("server") is not None:
        yield
        return
    originals = [(owner, name, getattr(owner, name)) for owner, name in _PROCESS_STARTERS]

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(
            f"{item.nodeid} starts a process but is not marked `server`;"
            " move it under tests/server/ (pytestmark = pytest.mark.server)",
            pytrace=True,
        )

    for owner, name, _ in originals:
        setattr(owner, name, refuse)
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
