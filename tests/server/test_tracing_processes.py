"""funapi_sync imports nothing of OpenTelemetry for an app that does not use it (fresh interpreter).

A subprocess each (the test process has imported OpenTelemetry already), so these are
server tests. OpenTelemetry is installed in the test environment (the ``test`` extra):
what is checked is that funapi_sync never imports it itself, whatever ``task_tracing`` says.
"""

from __future__ import annotations

import pytest
from _helpers import run_python

pytestmark = pytest.mark.server


@pytest.mark.parametrize("mode", ["child", "link", "off"])
def test_a_request_with_a_task_imports_nothing_of_opentelemetry(mode):
    out = run_python(
        f"""
        import importlib.util, sys
        from werkzeug.test import Client
        from funapi_sync import App

        assert importlib.util.find_spec("opentelemetry") is not None, "not installed"
        app = App(task_tracing={mode!r})
        ran = []

        @app.post("/signup")
        def signup(*, background):
            return {{"task": background.add_task(ran.append, "ada").id}}

        assert Client(app).post("/signup", buffered=True).status_code == 200
        assert app.background.drain(timeout=10)
        assert ran == ["ada"], ran
        print(",".join(name for name in sys.modules if name.startswith("opentelemetry")))
        """
    )
    assert out == ""
