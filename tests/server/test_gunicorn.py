"""The headline under a real gunicorn: tasks run after the response, on a fork-safe pool.

Every test starts gunicorn on 127.0.0.1 with an ephemeral port (``server.run_gunicorn``)
and talks to it with ``http.client``. The app is ``live_apps/background_app.py``: each
task event is one line appended to a file, which the tests read after a drain (SIGTERM
to the master, which drains the pool at worker exit) or through a bounded poll.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from _helpers import Server, run_gunicorn, run_server

pytestmark = [pytest.mark.server, pytest.mark.timeout(90)]

LIVE_APPS = Path(__file__).resolve().parent / "live_apps"
APP = "background_app:app"
CONF = ("-c", "python:funapi_sync.server.gunicorn_conf")
_EVENT = re.compile(r"^(?P<event>.+) pid=(?P<pid>\d+) t=(?P<t>[\d.]+)$")
_UNFINISHED = re.compile(
    r"^ERROR funapi_sync\.background pid=\d+ background task \S+ of GET /sleep/(?P<name>\S+)"
    r" did not finish within the [\d.]+ s shutdown timeout \((?P<state>[a-z ]+)\)"
    r" \[task [0-9a-f]{16}-[0-9a-f]+\]$",
    re.MULTILINE,
)


def request(server: Server, path: str, method: str = "GET") -> tuple[int, bytes, float]:
    """Make one request on a new connection; return status, body and time to the last byte."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        started = time.perf_counter()
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        return response.status, body, time.perf_counter() - started
    finally:
        connection.close()


def events(log: Path) -> list[tuple[str, int, float]]:
    """The task events so far: (event, pid, time)."""
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        match = _EVENT.match(line)
        assert match, f"malformed event line {line!r}"
        rows.append((match["event"], int(match["pid"]), float(match["t"])))
    return rows


def wait_for_events(
    log: Path, done: Callable[[list[tuple[str, int, float]]], bool], timeout: float = 10.0
) -> list[tuple[str, int, float]]:
    """Poll the event file (bounded) until ``done(events)``; fail with what was seen."""
    deadline = time.monotonic() + timeout
    while True:
        rows = events(log)
        if done(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"events not reached within {timeout} s: {rows}")
        time.sleep(0.02)


def named(rows: list[tuple[str, int, float]], prefix: str) -> list[tuple[str, int, float]]:
    return [row for row in rows if row[0].startswith(prefix)]


@pytest.fixture
def bg_log(tmp_path: Path) -> Path:
    return tmp_path / "events.log"


def serve(tmp_path: Path, bg_log: Path, *args: str, workers: int = 1, **env: str):
    return run_gunicorn(
        APP,
        *args,
        tmp_path=tmp_path,
        workers=workers,
        cwd=LIVE_APPS,
        env={"BG_LOG": str(bg_log), **env},
    )


# -- the response does not wait for its tasks -----------------------------------------


@pytest.mark.parametrize(
    "worker_args", [(), ("--worker-class", "gthread", "--threads", "4")], ids=["sync", "gthread"]
)
def test_time_to_full_response_does_not_include_a_1s_task(tmp_path, bg_log, worker_args):
    with serve(tmp_path, bg_log, *worker_args) as server:
        assert request(server, "/pid")[0] == 200  # warm up
        timings = []
        for number in range(3):
            status, body, elapsed = request(server, f"/sleep/t{number}?seconds=1")
            assert status == 200
            assert b'"queued":"t' in body
            timings.append(elapsed)
        worker = "gthread" if worker_args else "sync"
        print(f"time to full response with a 1 s task ({worker}): {timings}")
        assert max(timings) < 0.3, timings
        # ...and the tasks did run, one second later, in the worker.
        rows = wait_for_events(bg_log, lambda rows: len(named(rows, "slept")) == 3)
        assert {pid for _, pid, _ in named(rows, "slept")} == set(server.worker_pids)
        assert server.stop() == 0


def test_500_requests_with_2_tasks_each_run_exactly_1000_tasks(tmp_path, bg_log):
    with serve(tmp_path, bg_log, workers=2) as server:
        assert len(server.worker_pids) == 2
        with ThreadPoolExecutor(max_workers=8) as clients:
            statuses = list(
                clients.map(lambda _: request(server, "/count?n=2", "POST")[0], range(500))
            )
        assert statuses == [200] * 500
        # SIGTERM: each worker drains its pool before it exits.
        assert server.stop() == 0
    rows = named(events(bg_log), "count")
    print(f"task executions counted after 500 requests x 2 tasks: {len(rows)}")
    assert len(rows) == 1000
    assert Counter(event for event, _, _ in rows) == {"count 0": 500, "count 1": 500}
    assert {pid for _, pid, _ in rows} == set(server.worker_pids)
    assert "did not finish" not in server.log()


def test_preload_with_the_pool_used_in_the_master_still_runs_tasks_in_every_worker(
    tmp_path, bg_log
):
    with serve(
        tmp_path,
        bg_log,
        "--preload",
        workers=2,
        BG_TOUCH_AT_IMPORT="1",
        BG_SHUTDOWN_TIMEOUT="5",
    ) as server:
        master = server.process.pid
        # The master ran a task at import, before it forked the workers.
        assert [(event, pid) for event, pid, _ in events(bg_log)] == [("count 0", master)]
        assert len(server.worker_pids) == 2
        assert master not in server.worker_pids

        answered: Counter[int] = Counter()

        def one(_: int) -> int:
            status, body, _ = request(server, "/count?n=1", "POST")
            assert status == 200
            return int(re.search(rb'"pid":(\d+)', body).group(1))

        with ThreadPoolExecutor(max_workers=4) as clients:
            for _ in range(20):  # bounded: until both workers have answered
                answered.update(clients.map(one, range(10)))
                if len(answered) == 2:
                    break
        assert set(answered) == set(server.worker_pids), answered
        total = sum(answered.values()) + 1
        rows = wait_for_events(bg_log, lambda rows: len(rows) >= total)
        # Every worker ran exactly the tasks of the requests it answered.
        ran = Counter(pid for _, pid, _ in rows if pid != master)
        assert ran == answered
        assert server.stop() == 0
    assert "did not finish" not in server.log()


# -- shutdown -------------------------------------------------------------------------


@pytest.mark.parametrize("conf", [(), CONF], ids=["plain", "gunicorn_conf"])
def test_sigterm_drains_20_queued_tasks_before_the_process_exits(tmp_path, bg_log, conf):
    with serve(tmp_path, bg_log, *conf) as server:
        for number in range(20):
            assert request(server, f"/sleep/t{number}?seconds=0.5")[0] == 200
        assert len(named(events(bg_log), "slept")) < 20  # most are still queued
        started = time.monotonic()
        assert server.stop() == 0
        took = time.monotonic() - started
    slept = {event.split()[1] for event, _, _ in named(events(bg_log), "slept")}
    assert slept == {f"t{number}" for number in range(20)}
    assert "ERROR" not in server.log()
    # 20 tasks of 0.5 s on 4 pool threads: well inside the graceful timeout.
    assert took < 10, took


def test_sigterm_with_a_short_shutdown_timeout_names_every_unfinished_task(tmp_path, bg_log):
    with serve(tmp_path, bg_log, BG_SHUTDOWN_TIMEOUT="1") as server:
        for number in range(20):
            assert request(server, f"/sleep/t{number}?seconds=0.5")[0] == 200
        started = time.monotonic()
        assert server.stop() == 0
        took = time.monotonic() - started
    log = server.log()
    slept = {event.split()[1] for event, _, _ in named(events(bg_log), "slept")}
    unfinished = {match["name"]: match["state"] for match in _UNFINISHED.finditer(log)}
    assert unfinished, log
    # Nothing is lost without a log line: each task either ran or is named at ERROR.
    assert slept | set(unfinished) == {f"t{number}" for number in range(20)}, (slept, log)
    never_started = {name for name, state in unfinished.items() if state == "never started"}
    assert never_started
    assert not never_started & slept
    assert took < 8, took


# -- failures and odd clients ---------------------------------------------------------


def test_a_failing_task_is_logged_and_the_worker_keeps_serving(tmp_path, bg_log):
    with serve(tmp_path, bg_log) as server:
        status, body, _ = request(server, "/fail")
        assert status == 200
        rows = wait_for_events(bg_log, lambda rows: len(named(rows, "after failure")) == 1)
        assert [event for event, _, _ in rows] == ["before failure", "after failure"]
        warning = server.wait_for_log(
            r"WARNING funapi_sync\.background pid=\d+ background task \S*explode of GET /fail"
            r" failed \[task [0-9a-f-]+\]\nTraceback \(most recent call last\):\n(?:.*\n)*?"
            r"RuntimeError: task exploded"
        )
        assert warning
        worker = server.worker_pids[0]
        for _ in range(3):
            status, body, _ = request(server, "/pid")
            assert (status, body) == (200, f'{{"pid":{worker}}}'.encode())
        assert server.stop() == 0


def test_a_client_that_disconnects_before_reading_the_body_does_not_stop_the_tasks(
    tmp_path, bg_log
):
    marker = tmp_path / "client-gone"
    with serve(tmp_path, bg_log) as server:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        client.sendall(
            f"GET /big?marker={quote(str(marker))} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        )
        # Once the handler has the request, reset the connection without reading a byte.
        wait_for_events(bg_log, lambda rows: len(named(rows, "big handler started")) == 1)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        marker.touch()
        wait_for_events(bg_log, lambda rows: len(named(rows, "disconnect task")) == 1)
        assert request(server, "/pid")[0] == 200
        assert server.stop() == 0


@pytest.mark.parametrize(
    "worker_args", [(), ("--worker-class", "gthread", "--threads", "2")], ids=["sync", "gthread"]
)
def test_tasks_start_after_the_body_was_fully_sent(tmp_path, bg_log, worker_args):
    # The body pauses before its last chunk until the test opens a gate: a task started
    # (or even handed to the pool) before the last byte is seen while the body waits, with
    # no race for the task to win or lose.
    gate = tmp_path / "gate"
    with serve(tmp_path, bg_log, *worker_args) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request("GET", f"/paused-stream?gate={gate}")
            response = connection.getresponse()
            assert response.status == 200
            assert [response.readline() for _ in range(4)] == [
                f"chunk {number}\n".encode() for number in range(4)
            ]
            paused = wait_for_events(bg_log, lambda rows: len(rows) >= 1)
            assert [event for event, _, _ in paused] == ["body paused handed_over=0"]
            # The body waits at the gate; the task has still logged nothing.
            assert [event for event, _, _ in events(bg_log)] == ["body paused handed_over=0"]
            gate.touch()
            assert response.read() == b"last chunk\n"
        finally:
            connection.close()
        rows = wait_for_events(bg_log, lambda rows: len(named(rows, "task started")) == 1)
        assert [event for event, _, _ in rows] == [
            "body paused handed_over=0",
            "body done",
            "task started",
        ]
        assert rows[1][2] <= rows[2][2]
        assert server.stop() == 0


# -- other ways to start gunicorn -----------------------------------------------------


def test_gunicorn_start_from_a_script_runs_tasks_and_drains_at_sigterm(tmp_path, bg_log):
    with run_server(
        [sys.executable, "start_background.py"],
        log_path=tmp_path / "start.log",
        cwd=LIVE_APPS,
        env={"BG_LOG": str(bg_log)},
    ) as server:
        worker = server.worker_pids[0]
        assert request(server, "/sleep/from-script?seconds=0.5")[0] == 200
        assert request(server, "/fail")[0] == 200
        assert server.stop() == 0
    rows = events(bg_log)
    assert ("slept from-script", worker) in [(event, pid) for event, pid, _ in rows]
    assert "task exploded" in server.log()
    assert "did not finish" not in server.log()


# -- faults: worker timeout, a full queue, a hung task --------------------------------
# Each counts: every accepted task either ran (an event line) or is named at ERROR.

_NAMED = re.compile(
    r"^ERROR funapi_sync\.background pid=\d+ background task \S+ of GET /(?:sleep|hang)/"
    r"(?P<name>\S+) (?P<what>.+) \((?P<state>still running|never started)\)"
    r" \[task [0-9a-f]{16}-[0-9a-f]+\]$",
    re.MULTILINE,
)


def named_at_error(log: str) -> dict[str, str]:
    return {match["name"]: match["state"] for match in _NAMED.finditer(log)}


def slept(bg_log: Path) -> set[str]:
    return {event.split()[1] for event, _, _ in named(events(bg_log), "slept")}


@pytest.mark.parametrize("conf", [(), CONF], ids=["plain", "gunicorn_conf"])
def test_a_worker_timeout_names_every_queued_and_running_task_before_the_kill(
    tmp_path, bg_log, conf
):
    with serve(tmp_path, bg_log, *conf, "--timeout", "2", BG_WORKERS="1") as server:
        worker = server.worker_pids[0]
        accepted = {f"t{number}" for number in range(3)}
        for name in sorted(accepted):
            assert request(server, f"/sleep/{name}?seconds=20")[0] == 200
        # A client that never finishes its request holds the sync worker in recv(): it
        # stops heart-beating, and the arbiter aborts it (SIGABRT, then SIGKILL).
        holder = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            holder.sendall(b"GET /pid HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            server.wait_for_log(rf"WORKER TIMEOUT \(pid:{worker}\)")
            server.wait_for_log(rf"Booting worker with pid: (?!{worker}\b)\d+")
        finally:
            holder.close()
        assert server.stop() == 0
    log = server.log()
    unfinished = named_at_error(log)
    assert unfinished == {"t0": "still running", "t1": "never started", "t2": "never started"}
    assert "gunicorn aborted worker" in log
    assert slept(bg_log) | set(unfinished) == accepted
    assert not slept(bg_log) & {"t1", "t2"}


@pytest.mark.parametrize("conf", [(), CONF], ids=["plain", "gunicorn_conf"])
def test_a_close_blocked_on_a_full_queue_keeps_the_worker_alive_and_loses_nothing(
    tmp_path, bg_log, conf
):
    with serve(
        tmp_path,
        bg_log,
        *conf,
        "--timeout",
        "2",
        BG_WORKERS="1",
        BG_QUEUE_SIZE="1",
        BG_SUBMIT_TIMEOUT="60",
    ) as server:
        worker = server.worker_pids[0]
        assert request(server, "/sleep/t0?seconds=4")[0] == 200  # the one pool thread
        assert request(server, "/sleep/t1?seconds=0")[0] == 200  # the one queue slot
        # This response is complete at once; its close() then waits ~4 s for a slot,
        # twice the worker timeout, heart-beating.
        assert request(server, "/sleep/t2?seconds=0")[0] == 200
        status, body, _ = request(server, "/pid")
        assert (status, body) == (200, f'{{"pid":{worker}}}'.encode())
        wait_for_events(bg_log, lambda rows: len(named(rows, "slept")) == 3)
        assert server.stop() == 0
    log = server.log()
    assert "WORKER TIMEOUT" not in log
    assert slept(bg_log) == {"t0", "t1", "t2"}
    assert "ERROR" not in log


def test_a_close_blocked_past_its_bound_gives_up_naming_the_tasks_and_serves_on(tmp_path, bg_log):
    with serve(
        tmp_path, bg_log, BG_WORKERS="1", BG_QUEUE_SIZE="1", BG_SUBMIT_TIMEOUT="0.5"
    ) as server:
        worker = server.worker_pids[0]
        accepted = {"t0", "t1", "t2"}
        assert request(server, "/sleep/t0?seconds=3")[0] == 200  # the one pool thread
        assert request(server, "/sleep/t1?seconds=0")[0] == 200  # the one queue slot
        assert request(server, "/sleep/t2?seconds=0")[0] == 200  # close() gives up
        server.wait_for_log(r"background task \S+ of GET /sleep/t2 was not queued")
        status, body, _ = request(server, "/pid")
        assert (status, body) == (200, f'{{"pid":{worker}}}'.encode())
        wait_for_events(bg_log, lambda rows: len(named(rows, "slept")) == 2)
        assert server.stop() == 0
    log = server.log()
    assert named_at_error(log) == {"t2": "never started"}
    assert "the queue stayed full for 0.5 s" in log
    assert slept(bg_log) == {"t0", "t1"}
    assert slept(bg_log) | set(named_at_error(log)) == accepted


@pytest.mark.parametrize("conf", [(), CONF], ids=["plain", "gunicorn_conf"])
def test_max_requests_recycling_with_a_hung_task_is_bounded_by_the_shutdown_timeout(
    tmp_path, bg_log, conf
):
    with serve(
        tmp_path,
        bg_log,
        *conf,
        "--max-requests",
        "2",
        "--max-requests-jitter",
        "0",
        BG_SHUTDOWN_TIMEOUT="1",
    ) as server:
        worker = server.worker_pids[0]
        assert request(server, "/hang/h1")[0] == 200
        wait_for_events(bg_log, lambda rows: len(named(rows, "hanging")) == 1)
        started = time.monotonic()
        assert request(server, "/pid")[0] == 200  # the second request: the worker recycles
        server.wait_for_log(rf"Booting worker with pid: (?!{worker}\b)\d+")
        took = time.monotonic() - started
        # The replacement answers.
        assert request(server, "/pid")[0] == 200
        assert server.stop() == 0
    log = server.log()
    # Without the bound the old worker hangs in the executor's join at exit until the
    # arbiter kills it after --timeout (30 s): no replacement meanwhile.
    assert took < 15, (took, log)
    assert named_at_error(log) == {"h1": "still running"}
    assert "did not finish within the 1.0 s shutdown timeout" in log
    assert "background task(s) still running (named above); they are abandoned" in log
