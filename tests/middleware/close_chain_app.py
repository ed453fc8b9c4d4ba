"""Apps behind each built-in middleware (and ProxyFix), alone and stacked, for close-chain tests.

``STACKS[name]`` builds a fresh App wrapped in that stack. Its routes add a background task
that records the request's token; ``/big`` is a JSON body large enough to be gzipped and
``/stream`` a streamed one. Under gunicorn, ``app`` serves every stack, chosen by the first
path segment (``/cors/big/<token>``), and tasks append a line to ``$CLOSE_CHAIN_LOG``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from funapi_sync import App

HEADERS = {
    "Origin": "https://app.example.com",
    "Accept-Encoding": "gzip",
    "Host": "api.example.com",
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
}


def cors(app: App) -> None:
    app.add_cors(allow_origins=["https://app.example.com"], allow_methods=["GET"])


def trusted_host(app: App) -> None:
    app.add_trusted_host(allowed_hosts=["api.example.com", "127.0.0.1"])


def request_logger(app: App) -> None:
    app.add_request_logger()


def gzip(app: App) -> None:
    app.add_gzip(minimum_size=100)


def proxy_fix(app: App) -> None:
    app.use(ProxyFix, x_for=1, x_proto=1)


def everything(app: App) -> None:
    for add in (gzip, request_logger, cors, trusted_host, proxy_fix):
        add(app)


STACKS: dict[str, Callable[[App], None]] = {
    "cors": cors,
    "trusted_host": trusted_host,
    "request_logger": request_logger,
    "gzip": gzip,
    "proxy_fix": proxy_fix,
    "all": everything,
}


def build(stack: str, record: Callable[[str], None]) -> App:
    app = App(title=f"close chain behind {stack}")

    @app.get("/big/<token>")
    def big(input, req, *, background):
        background.add_task(record, f"{stack} big {input.path['token']} {req.remote_addr}")
        return {"token": input.path["token"], "padding": ["x" * 40] * 50}

    @app.get("/stream/<token>")
    def stream(input, *, background):
        background.add_task(record, f"{stack} stream {input.path['token']}")
        chunks = (b"chunk %d " % n * 10 for n in range(50))
        return Response(chunks, mimetype="text/plain")

    STACKS[stack](app)
    return app


def record_to_file(line: str) -> None:
    fd = os.open(os.environ["CLOSE_CHAIN_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


if "CLOSE_CHAIN_LOG" in os.environ:
    _apps = {name: build(name, record_to_file) for name in STACKS}

    def app(environ, start_response):
        """Pick the stack by the first path segment; hand back its iterable untouched."""
        _, stack, rest = environ["PATH_INFO"].split("/", 2)
        environ["PATH_INFO"] = "/" + rest
        return _apps[stack](environ, start_response)
