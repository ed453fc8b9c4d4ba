"""Serve background_app through ``funapi_sync.server.gunicorn.start()``, as a script."""

from __future__ import annotations

from background_app import app

from funapi_sync.server import gunicorn

if __name__ == "__main__":
    gunicorn.start(app, host="127.0.0.1", port=0, workers=1, control_socket_disable=True)
