"""Serve an app under granian (a Rust HTTP server, WSGI interface): ``granian.start(app)``.

Each worker process runs the apps' startup hooks once, after fork and before it serves;
when granian stops it (SIGTERM or SIGINT to the server, or to the worker), the worker
returns from granian's serve loop and drains the background pool, naming every task that
did not finish within ``background_shutdown_timeout``, then runs the shutdown hooks: the
same ``_process.shutdown_process()`` path as gunicorn's ``worker_exit``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from .. import _process, lifecycle, logconfig

#: granian's WSGI server starts up to this many requests per worker by default; we run
#: ``threads`` at a time, like a gunicorn worker, so it does not spawn hundreds of threads.
DEFAULT_THREADS = 1


def start(
    app: Callable[..., Any],
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int | None = None,
    threads: int | None = None,
    backlog: int = 1024,
    **options: Any,
) -> None:
    """Serve ``app`` with granian until the process is stopped.

    :param workers: worker processes (default: ``$WEB_CONCURRENCY``, else 1).
    :param threads: Python threads per worker that run requests (granian's
        ``blocking_threads``; default 1).
    :param backlog: the listening socket's backlog (granian raises it to at least 128).
    :param options: any other ``granian.server.MPServer`` argument, e.g.
        ``workers_kill_timeout=30`` (keep it above ``background_shutdown_timeout``).
    """
    from granian.constants import Interfaces
    from granian.server.mp import MPServer

    if workers is None:
        workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    server = MPServer(
        target=_describe(app),
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads or DEFAULT_THREADS,
        backlog=backlog,
        **{"websockets": False, **options},
    )
    logconfig.install()
    # NOTE: the app was loaded here; each worker inherits it through fork (granian's
    # start method on Linux), so the loader hands it over instead of importing it again.
    server.serve(
        spawn_target=_serve_worker,
        target_loader=partial(_start_in_worker, app),
        wrap_loader=False,
    )


def _describe(app: Callable[..., Any]) -> str:
    module = getattr(app, "__module__", None) or type(app).__module__
    return f"{module}:{type(app).__name__}"


def _start_in_worker(app: Callable[..., Any]) -> Callable[..., Any]:
    """Granian's ``callback_loader``, called in the worker before it serves."""
    logconfig.install()
    lifecycle.start_all()
    return app


def _serve_worker(*args: Any) -> None:
    """Granian's WSGI worker, then the drain and shutdown hooks once it stopped serving."""
    from granian.server.mp import MPServer

    try:
        MPServer._spawn_wsgi_worker(*args)
    finally:
        _process.shutdown_process()


def parse_options(argv: Sequence[str], default_workers: int) -> tuple[dict[str, Any], list[str]]:
    """Parse ``funapi-sync run --server granian``'s options; return them and the positionals.

    ``--bind HOST:PORT`` defaults to ``127.0.0.1:8000``, or ``0.0.0.0:$PORT``, as with gunicorn.
    """
    parser = argparse.ArgumentParser(
        prog="funapi-sync run --server granian",
        usage="%(prog)s [-b HOST:PORT] [-w N] [--threads N] [--backlog N] APP",
    )
    parser.add_argument("app", nargs="*", metavar="APP")
    port = os.environ.get("PORT")
    parser.add_argument(
        "-b",
        "--bind",
        default=f"0.0.0.0:{port}" if port else "127.0.0.1:8000",
        help="HOST:PORT to listen on (default 127.0.0.1:8000, or 0.0.0.0:$PORT)",
    )
    parser.add_argument("-w", "--workers", type=int, default=default_workers)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="per worker")
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument(
        "--workers-kill-timeout",
        type=int,
        default=None,
        help="seconds a stopping worker may take (drain included) before it is killed"
        " (default: no limit; the drain is bounded by background_shutdown_timeout)",
    )
    args = parser.parse_args(list(argv))
    host, _, port_text = args.bind.rpartition(":")
    if not host or not port_text.isdigit():
        parser.error(f"--bind takes HOST:PORT, got {args.bind!r}; e.g. --bind 0.0.0.0:8000")
    options: dict[str, Any] = {
        "host": host.strip("[]"),
        "port": int(port_text),
        "workers": args.workers,
        "threads": args.threads,
        "backlog": args.backlog,
    }
    if args.workers_kill_timeout is not None:
        options["workers_kill_timeout"] = args.workers_kill_timeout
    return options, list(args.app)
