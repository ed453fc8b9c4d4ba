"""Hung tasks under a real gunicorn sync worker: the service keeps its normal latency.

Every pool thread hangs on an Event the test releases at the end; then requests that add
tasks keep coming. Each must be answered at once (its tasks queued while there is room,
then named at ERROR at once), never held for ``background_submit_timeout``; and every
task accepted is run after the release or named.
"""

from __future__ import annotations

import http.client
import re
import time
from pathlib import Path

import pytest
from _helpers import run_gunicorn

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

APP = """
import threading
from pathlib import Path

from funapi_sync import App

RELEASE = threading.Event()
RAN = Path(__file__).with_name("ran.txt")
app = App(
    background_workers=2,
    background_queue_size=4,
    background_slow_warning=0.2,
    background_submit_timeout=10.0,
)


def hang():
    RELEASE.wait(60)


def record(n):
    with RAN.open("a") as out:
        out.write(f"{n}\\n")


@app.post("/hang")
def hang_route(*, background):
    background.add_task(hang)
    return {}


@app.post("/task/<int:n>")
def task_route(input, *, background):
    background.add_task(record, input.path["n"])
    return {}


@app.post("/release")
def release():
    RELEASE.set()
    return {}
"""


def post(port: int, path: str) -> float:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body=b"")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    finally:
        connection.close()
    return time.monotonic() - started


def test_every_pool_thread_hung_keeps_requests_fast_and_names_what_cannot_queue(tmp_path: Path):
    (tmp_path / "hung_app.py").write_text(APP)
    requests = 30
    with run_gunicorn("hung_app:app", "--worker-class", "sync", tmp_path=tmp_path) as server:
        post(server.port, "/hang")
        post(server.port, "/hang")
        latencies = [post(server.port, f"/task/{n}") for n in range(requests)]
        post(server.port, "/release")
        server.stop()
        log = server.log()
    ran = {int(line) for line in (tmp_path / "ran.txt").read_text().split()}
    named = {int(n) for n in re.findall(r"record of POST /task/(\d+) was not queued", log)}
    stuck_warnings = re.findall(r"has held its pool thread for", log)
    print(
        f"\nhung pool: requests={requests} worst={max(latencies):.3f}s ran={len(ran)}"
        f" named={len(named)} stuck_warnings={len(stuck_warnings)}"
    )
    assert ran | named == set(range(requests)), "a task was neither run nor named"
    assert not ran & named
    assert len(ran) >= 4  # the queue's room was used
    assert named, "nothing was named: the pool was never full"
    # A request may wait for the recheck (0.5 s) while the threads are not yet stuck past
    # background_slow_warning; none waits for background_submit_timeout (10 s).
    assert max(latencies) < 2.0, latencies
    assert len(stuck_warnings) == 2  # once per hung thread, with its stack
    assert "in hang\n    RELEASE.wait(60)" in log
