"""Log output with no configuration: gunicorn's error log under gunicorn, stderr otherwise.

The unit tests drive :mod:`funapi_sync.logconfig` in this process with the root logger's
handlers (pytest's among them) taken away for the test; the system tests start a real
gunicorn with no logging flags and read its log.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from _helpers import ROOT, Server, run_gunicorn, run_server

pytestmark = pytest.mark.server


# gunicorn's error-log line: "[2026-01-01 10:00:00 +0000] [1234] [INFO] message"
GUNICORN_LINE = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(?P<pid>\d+)\] \[{level}\] "


def gunicorn_line(level: str, message: str) -> str:
    return GUNICORN_LINE.replace("{level}", level) + message


def post_json(server: Server, path: str, payload: object, headers=None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(
            "POST",
            path,
            body=json.dumps(payload),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# NOTE: PYTHONUNBUFFERED="" turns off what tests/server.py sets, so the log is what a user
# sees from a plain `gunicorn examples.signup:app` (stdout block-buffered, stderr not).
PLAIN = {"PYTHONUNBUFFERED": ""}


@pytest.mark.server
@pytest.mark.timeout(60)
def test_plain_gunicorn_shows_the_signup_examples_three_task_lines(tmp_path):
    env = {**PLAIN, "SIGNUP_DB": str(tmp_path / "signup.sqlite3")}
    with run_gunicorn("examples.signup:app", tmp_path=tmp_path, cwd=ROOT, env=env) as server:
        status, body = post_json(server, "/signup", {"name": "Grace", "email": "grace@example.com"})
        assert status == 201
        user_id = json.loads(body)["user"]["id"]
        for message in (
            "Sending welcome email to grace@example.com",
            f"Logging signup for user {user_id}",
            "Notifying admin about new user: Grace",
        ):
            match = server.wait_for_log(gunicorn_line("INFO", re.escape(message)))
            assert int(match["pid"]) in server.worker_pids
        assert server.stop() == 0


LOGGING_APP = """
    import logging

    from funapi_sync import App

    app = App(title="Logging API")
    app.add_request_logger()
    log = logging.getLogger("logging_app")


    def explode(name):
        raise RuntimeError(f"task {name} exploded")


    @app.post("/fail/<name>")
    def fail(input, *, background):
        log.info("handling %s", input.path["name"])
        background.add_task(explode, input.path["name"])
        return {"ok": True}
"""


def write_app(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")


@pytest.mark.server
@pytest.mark.timeout(60)
def test_plain_gunicorn_logs_access_lines_app_lines_and_task_failures_with_the_request(
    tmp_path,
):
    write_app(tmp_path, "logging_app", LOGGING_APP)
    with run_gunicorn("logging_app:app", tmp_path=tmp_path, env=PLAIN) as server:
        headers = {"X-Request-ID": "req-42"}
        assert post_json(server, "/fail/one", {}, headers)[0] == 200
        server.wait_for_log(gunicorn_line("INFO", "handling one"))
        server.wait_for_log(gunicorn_line("INFO", r"POST /fail/one 200 [\d.]+ms request_id=req-42"))
        server.wait_for_log(
            gunicorn_line(
                "WARNING",
                r"background task logging_app\.explode of POST /fail/one request_id=req-42"
                r" failed \[task [0-9a-f-]+\]\nTraceback \(most recent call last\):\n(.*\n)+?"
                r"RuntimeError: task one exploded",
            )
        )
        assert server.stop() == 0
    # Nothing went through Python's bare last-resort output.
    assert "\ntask one exploded" not in server.log()


@pytest.mark.server
@pytest.mark.timeout(60)
def test_plain_gunicorn_leaves_the_programs_own_logging_alone(tmp_path):
    source = textwrap.dedent(LOGGING_APP) + (
        "logging.basicConfig(\n"
        '    level=logging.INFO, format="MINE %(levelname)s %(name)s %(message)s"\n'
        ")\n"
    )
    write_app(tmp_path, "logging_app", source)
    with run_gunicorn("logging_app:app", tmp_path=tmp_path, env=PLAIN) as server:
        assert post_json(server, "/fail/two", {}, {"X-Request-ID": "r2"})[0] == 200
        server.wait_for_log(r"MINE INFO logging_app handling two")
        server.wait_for_log(r"MINE INFO funapi_sync\.access POST /fail/two 200")
        server.wait_for_log(r"MINE WARNING funapi_sync\.background background task")
        assert server.stop() == 0
    assert not re.search(gunicorn_line("INFO", "handling"), server.log())


GUNICORN_START_SCRIPT = """
    import logging

    from funapi_sync import App
    from funapi_sync.server import gunicorn

    app = App(title="Started")
    log = logging.getLogger("started")


    @app.on_startup
    def hello():
        log.info("startup hook ran")


    @app.get("/")
    def index():
        log.info("index served")
        return {}


    if __name__ == "__main__":
        from gunicorn.config import Config

        # Parallel test servers must not share gunicorn's control socket (gunicorn 25.1+).
        options = {}
        if "control_socket_disable" in Config().settings:
            options["control_socket_disable"] = True
        gunicorn.start(app, port=0, workers=1, **options)
"""


@pytest.mark.server
@pytest.mark.timeout(60)
def test_gunicorn_start_sends_app_lines_to_gunicorns_error_log(tmp_path):
    write_app(tmp_path, "started", GUNICORN_START_SCRIPT)
    with run_server(
        [sys.executable, "started.py"], log_path=tmp_path / "start.log", cwd=tmp_path, env=PLAIN
    ) as server:
        server.wait_for_log(gunicorn_line("INFO", "startup hook ran"))
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request("GET", "/")
            assert connection.getresponse().status == 200
        finally:
            connection.close()
        server.wait_for_log(gunicorn_line("INFO", "index served"))
        assert server.stop() == 0
