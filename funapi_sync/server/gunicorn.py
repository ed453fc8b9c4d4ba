"""Run an app under gunicorn from Python: ``gunicorn.start(app, port=8000)``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from .. import logconfig
from . import gunicorn_conf


class _Application(BaseApplication):  # type: ignore[misc]
    """Gunicorn's embedding API, fed an app object instead of a module path."""

    def __init__(self, app: Callable[..., Any], options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        settings = self.cfg.settings
        for key, value in self._options.items():
            if key not in settings:
                raise TypeError(
                    f"gunicorn.start() got unknown gunicorn setting {key!r}; see"
                    " `gunicorn --help` for the settings (use underscores, e.g. worker_class)"
                )
            self.cfg.set(key, value)
        _chain_hook(self.cfg, "post_worker_init", gunicorn_conf.post_worker_init)
        _chain_hook(self.cfg, "worker_exit", gunicorn_conf.worker_exit)
        _chain_hook(self.cfg, "worker_abort", gunicorn_conf.worker_abort)

    def load(self) -> Callable[..., Any]:
        return self._app


def _chain_hook(cfg: Any, name: str, ours: Callable[..., Any]) -> None:
    # NOTE: a hook the user passed still runs, after ours on startup and before ours at
    # exit, so theirs sees a started app and the pool is drained last.
    theirs = cfg.settings[name].get()
    default = cfg.settings[name].default
    if theirs is default or theirs is None:
        cfg.set(name, ours)
        return
    if name == "worker_exit":

        def chained_exit(server: Any, worker: Any) -> None:
            try:
                theirs(server, worker)
            finally:
                ours(server, worker)

        cfg.set(name, chained_exit)
    else:

        def chained_init(worker: Any) -> None:
            ours(worker)
            theirs(worker)

        cfg.set(name, chained_init)


def start(
    app: Callable[..., Any],
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int | None = None,
    threads: int | None = None,
    **options: Any,
) -> None:
    """Serve ``app`` with gunicorn until the process is stopped.

    :param workers: worker processes (default: ``$WEB_CONCURRENCY``, else 1).
    :param threads: threads per worker; more than one selects the ``gthread`` worker.
    :param options: any gunicorn setting by its Python name, e.g. ``timeout=60`` or
        ``preload_app=True``.
    """
    options["bind"] = options.get("bind") or f"{host}:{port}"
    if workers is not None:
        options["workers"] = workers
    elif "workers" not in options and "WEB_CONCURRENCY" not in os.environ:
        options["workers"] = 1
    if threads is not None:
        options["threads"] = threads
    # Unless the program configured logging: records go to gunicorn's error log once
    # gunicorn has set it up, and to stderr before that.
    logconfig.install()
    _Application(app, options).run()
