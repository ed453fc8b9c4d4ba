"""tests/server/: every test that starts a process (a server, redis-server, a browser, a CLI).

This directory is on ``sys.path`` (pytest's rootdir-relative import of this conftest), so its
modules import the helpers as ``from _helpers import run_gunicorn`` and
``from redis_server import redis_server``.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test here ``server``, even one whose module forgot ``pytestmark``."""
    here = str(__file__).rsplit("/", 1)[0] + "/"
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.server)
