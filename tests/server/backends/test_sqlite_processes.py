"""SQLiteBackend with real processes: gunicorn workers sharing one file, SIGKILL, restarts,
and ``funapi-sync worker`` alone (SPEC §11, "What happens to an accepted task").

Every task appends ``req index pid attempt id`` to a log file when it ran; the file and
the database are the evidence. Every wait is bounded; every process is killed on the way
out (gunicorn started here runs in its own process group).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _helpers import ROOT, gunicorn_command, run_gunicorn

from funapi_sync.backends._sqlite_store import NewRow, Store

pytestmark = pytest.mark.server

LIVE_APPS = ROOT / "tests" / "server" / "live_apps"
APP = "sqlite_tasks_app:app"
CONF = ("-c", "python:funapi_sync.server.gunicorn_conf")


def app_env(tmp_path: Path, lease: float = 30.0) -> dict[str, str]:
    return {
        "TASKS_DB": str(tmp_path / "tasks.sqlite3"),
        "TASKS_LOG": str(tmp_path / "tasks.log"),
        "TASKS_LEASE": str(lease),
    }


def post_requests(url: str, count: int, tasks: int, sleep: float = 0.0) -> None:
    def post(req: int) -> int:
        query = f"req=r{req}&n={tasks}&sleep={sleep}"
        request = urllib.request.Request(f"{url}/work?{query}", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(post, range(count)))
    assert statuses == [202] * count


def ran(tmp_path: Path) -> list[tuple[str, int, int, int, str]]:
    log = tmp_path / "tasks.log"
    if not log.exists():
        return []
    lines = [line.split() for line in log.read_text().splitlines()]
    return [(r, int(i), int(pid), int(attempt), tid) for r, i, pid, attempt, tid in lines]


def statuses(tmp_path: Path) -> Counter[str]:
    with contextlib.closing(sqlite3.connect(tmp_path / "tasks.sqlite3", timeout=10)) as conn:
        return Counter(dict(conn.execute("SELECT status, count(*) FROM funapi_tasks GROUP BY 1")))


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` (bounded); the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"{what} not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


def all_successful(tmp_path: Path, total: int) -> Callable[[], bool]:
    return lambda: statuses(tmp_path).get("SUCCESSFUL", 0) == total


def assert_each_ran_in_order(
    lines: list[tuple[str, int, int, int, str]], requests: int, tasks: int
) -> None:
    keys = Counter((r, i) for r, i, *_ in lines)
    assert set(keys) == {(f"r{r}", i) for r in range(requests) for i in range(tasks)}
    last: dict[str, int] = {}
    for r, i, *_ in lines:
        assert i >= last.get(r, -1), f"request {r}: task {i} ran after task {last[r]}"
        last[r] = i


def integrity(tmp_path: Path) -> str:
    with contextlib.closing(sqlite3.connect(tmp_path / "tasks.sqlite3")) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.parametrize(
    "worker_args",
    [
        ("--worker-class", "sync"),
        ("--worker-class", "sync", "--preload"),
        ("--worker-class", "gthread", "--threads", "4"),
        ("--worker-class", "gthread", "--threads", "4", "--preload"),
    ],
    ids=["sync", "sync-preload", "gthread", "gthread-preload"],
)
def test_four_workers_share_one_file_each_task_once_in_order(
    tmp_path: Path, worker_args: tuple[str, ...]
) -> None:
    requests, tasks = 120, 3
    with run_gunicorn(
        APP, *CONF, *worker_args, tmp_path=tmp_path, env=app_env(tmp_path), workers=4, cwd=LIVE_APPS
    ) as server:
        post_requests(server.url, requests, tasks)
        wait_until(all_successful(tmp_path, requests * tasks), 60, "every task SUCCESSFUL")
        server.stop()
        log = server.log()
    lines = ran(tmp_path)
    assert len(lines) == requests * tasks  # exactly once: no task ran twice
    assert_each_ran_in_order(lines, requests, tasks)
    assert len({pid for *_, pid, _a, _t in [(r, i, p, a, t) for r, i, p, a, t in lines]}) >= 2
    assert "database is locked" not in log
    assert "Traceback" not in log
    assert integrity(tmp_path) == "ok"


def test_a_sigkilled_workers_accepted_tasks_run_within_its_lease(tmp_path: Path) -> None:
    lease, requests, tasks = 2.0, 16, 2
    with run_gunicorn(
        APP, *CONF, tmp_path=tmp_path, env=app_env(tmp_path, lease), workers=2, cwd=LIVE_APPS
    ) as server:
        post_requests(server.url, requests, tasks, sleep=0.4)
        # NOTE: persist="after_response": a task is accepted once its close() stored it,
        # which may be just after the client read its 202.
        wait_until(lambda: sum(statuses(tmp_path).values()) == requests * tasks, 10, "stored")
        running: list[str] = []

        def someone_runs() -> bool:
            with contextlib.closing(sqlite3.connect(tmp_path / "tasks.sqlite3", timeout=10)) as c:
                running[:] = [
                    o
                    for (o,) in c.execute("SELECT owner FROM funapi_tasks WHERE status = 'RUNNING'")
                ]
            return bool(running)

        wait_until(someone_runs, 10, "a task RUNNING")
        victim = int(running[0].split(":")[1])
        os.kill(victim, signal.SIGKILL)
        took = wait_until(
            all_successful(tmp_path, requests * tasks), lease + 5 + 10, "all SUCCESSFUL"
        )
    lines = ran(tmp_path)
    assert_each_ran_in_order(lines, requests, tasks)
    again = [line for line in lines if line[3] > 1]
    assert again, "the killed worker was running a task; another process ran it again"
    assert all(line[2] != victim for line in again)
    assert took < lease + 5 + 10
    assert integrity(tmp_path) == "ok"


@contextlib.contextmanager
def gunicorn_group(
    tmp_path: Path, env: dict[str, str], name: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """gunicorn in a process group of its own: SIGKILL reaches the master and every worker."""
    log_path = tmp_path / f"{name}.log"
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(LIVE_APPS)])
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            gunicorn_command(APP, *CONF, "--workers", "2"),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=str(LIVE_APPS),
            env=full_env,
            text=True,
            start_new_session=True,
        )
    try:
        wait_until(lambda: "Listening at: " in log_path.read_text(), 20, "gunicorn listening")
        port = log_path.read_text().split("Listening at: http://127.0.0.1:")[1].split()[0]
        yield process, f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_sigkill_of_every_server_process_then_a_restart_runs_every_accepted_task(
    tmp_path: Path,
) -> None:
    # NOTE: persist="before_response": a 202 means stored, so every answered request's
    # tasks must run, though the server dies right after the last response.
    lease, requests, tasks = 2.0, 20, 2
    env = {**app_env(tmp_path, lease), "TASKS_PERSIST": "before_response"}
    with gunicorn_group(tmp_path, env, "first") as (process, url):
        post_requests(url, requests, tasks, sleep=0.3)
        os.killpg(process.pid, signal.SIGKILL)
    left = statuses(tmp_path)
    assert left["READY"] + left["RUNNING"] > 0, f"nothing left to take over: {left}"
    with gunicorn_group(tmp_path, env, "second"):
        wait_until(all_successful(tmp_path, requests * tasks), lease + 5 + 15, "all SUCCESSFUL")
    assert_each_ran_in_order(ran(tmp_path), requests, tasks)
    assert integrity(tmp_path) == "ok"


def test_a_sigterm_whose_drain_is_too_short_loses_nothing(tmp_path: Path) -> None:
    lease, requests, tasks = 2.0, 4, 2
    env = {**app_env(tmp_path, lease), "TASKS_SHUTDOWN_TIMEOUT": "0.3"}
    with run_gunicorn(APP, *CONF, tmp_path=tmp_path, env=env, workers=1, cwd=LIVE_APPS) as server:
        post_requests(server.url, requests, tasks, sleep=1.0)
        wait_until(lambda: sum(statuses(tmp_path).values()) == requests * tasks, 10, "stored")
        wait_until(lambda: statuses(tmp_path)["RUNNING"] > 0, 10, "a task RUNNING")
        server.stop(signal.SIGTERM)
        log = server.log()
    assert "did not finish within the 0.3 s shutdown timeout" in log
    left = statuses(tmp_path)
    assert left["READY"] + left["RUNNING"] > 0, left
    with run_gunicorn(APP, *CONF, tmp_path=tmp_path, env=env, workers=1, cwd=LIVE_APPS):
        wait_until(all_successful(tmp_path, requests * tasks), lease + 5 + 15, "all SUCCESSFUL")
    assert_each_ran_in_order(ran(tmp_path), requests, tasks)


def test_a_worker_alone_drains_the_file_and_exits_in_burst_mode(tmp_path: Path) -> None:
    env = app_env(tmp_path)
    store = Store(env["TASKS_DB"])
    for req in range(10):
        call = [json.dumps({"args": [f"r{req}", i, 0], "kwargs": {}}) for i in range(3)]
        rows = [NewRow(f"t{req}-{i}", "sqlite_tasks_app:record", call[i]) for i in range(3)]
        store.insert(f"b{req}", "POST /work", rows)
    store.close()
    full_env = {**os.environ, **env}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(LIVE_APPS)])
    done = subprocess.run(
        [sys.executable, "-m", "funapi_sync", "worker", APP, "--burst"],
        cwd=str(LIVE_APPS),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert statuses(tmp_path) == Counter({"SUCCESSFUL": 30})
    assert_each_ran_in_order(ran(tmp_path), 10, 3)


def test_202_then_poll_any_worker_answers_the_tasks_status(tmp_path: Path) -> None:
    # Issue #23's acceptance: whichever of 4 workers a poll reaches, it knows the task.
    # NOTE: persist="before_response", so the 202 means stored: with "after_response" the
    # first polls can beat close()'s insert and find nothing yet (the documented window).
    gate = tmp_path / "gate"
    env = {**app_env(tmp_path), "TASKS_PERSIST": "before_response"}
    with run_gunicorn(APP, *CONF, tmp_path=tmp_path, env=env, workers=4, cwd=LIVE_APPS) as server:
        request = urllib.request.Request(f"{server.url}/gated?gate={gate}", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
            task_id = json.loads(response.read())["task"]

        def poll() -> tuple[str | None, int]:
            # NOTE: a new connection per poll, so gunicorn's workers take turns accepting.
            with urllib.request.urlopen(f"{server.url}/tasks/{task_id}", timeout=30) as got:
                answer = json.loads(got.read())
            return answer["status"], answer["pid"]

        before = [poll() for _ in range(80)]
        gate.touch()
        after: list[tuple[str | None, int]] = []
        for _ in range(600):  # bounded: the task sees the gate within 20 ms of polling
            after.append(poll())
            if after[-1][0] == "SUCCESSFUL":
                break
        after += [poll() for _ in range(40)]

    assert {status for status, _ in before} <= {"READY", "RUNNING"}, before
    assert after[-1][0] == "SUCCESSFUL", after[-5:]
    first_done = next(i for i, (status, _) in enumerate(after) if status == "SUCCESSFUL")
    assert {status for status, _ in after[:first_done]} <= {"READY", "RUNNING"}
    assert {status for status, _ in after[first_done:]} == {"SUCCESSFUL"}, after[first_done:]
    assert len({pid for _, pid in before + after}) > 1, "one worker answered every poll"
