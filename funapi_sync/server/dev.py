"""Serve an app on werkzeug's development server: what ``App.run()`` and ``funapi-sync dev`` do."""

from __future__ import annotations

import inspect
import signal
import threading
from typing import TYPE_CHECKING, Any

from .. import _process, logconfig

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from ..lifecycle import Lifecycle


def run(
    app: WSGIApplication,
    lifecycle: Lifecycle,
    host: str = "127.0.0.1",
    port: int = 8000,
    **options: Any,
) -> None:
    """Serve ``app`` on werkzeug's development server (use gunicorn in production).

    :param lifecycle: the app's hooks, run here in the process that serves.
    :param options: passed to :func:`werkzeug.serving.run_simple`, e.g.
        ``use_reloader=True``; ``threaded`` defaults to True.
    """
    from werkzeug.serving import is_running_from_reloader, run_simple

    _check_options(run_simple, options)
    options.setdefault("threaded", True)
    logconfig.install()
    # NOTE: with the reloader this process only watches files and restarts a child that
    # serves; the hooks belong to the child, which runs this function again.
    serves = not options.get("use_reloader") or is_running_from_reloader()
    if serves:
        lifecycle.ensure_started()
    if threading.current_thread() is threading.main_thread():
        # NOTE: SIGTERM would end the process without unwinding; turn it into the same
        # clean exit as Ctrl-C so queued background tasks are drained.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        if not serves:
            # NOTE: Ctrl-C reaches the serving child too. Interrupted, the watcher would
            # kill the child 0.25 s later (subprocess.call), cutting its drain and
            # shutdown hooks short; it waits for the child to exit instead.
            signal.signal(signal.SIGINT, _wait_for_child)
    try:
        run_simple(host, port, app, **options)
    finally:
        if serves:
            _process.shutdown_process()


def _check_options(run_simple: Any, options: dict[str, Any]) -> None:
    """Refuse an option ``run_simple`` does not take, before any startup hook runs."""
    known = [
        name
        for name in inspect.signature(run_simple).parameters
        if name not in ("hostname", "port", "application")
    ]
    unknown = sorted(set(options) - set(known))
    if not unknown:
        return
    hint = ""
    if "debug" in unknown:
        # NOTE: Flask's app.run(debug=True) habit: here the two halves are separate.
        hint = (
            "; for debug=True, pass App(debug=True) for tracebacks in 500 bodies and"
            " use_reloader=True to restart on changes"
        )
    raise TypeError(
        f"App.run() got options werkzeug's run_simple() does not take: {unknown}{hint};"
        f" it takes {known}"
    )


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _wait_for_child(signum: int, frame: Any) -> None:
    pass
