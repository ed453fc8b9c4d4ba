"""Scenarios run against a real gunicorn, shared by the tests and by ``report.py``.

Each scenario starts gunicorn on 127.0.0.1 (``server.run_gunicorn``, which stops it for
sure), drives it with a thread-pool load generator on ``http.client`` (one connection per
request, as browsers and proxies often do), and returns its figures as a dict. The tests
assert on the figures; ``report.py`` prints them for ``docs/reliability.md``.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _helpers import Server, run_gunicorn

HERE = Path(__file__).resolve().parent
APP = "reliability_app:app"
CONF = ("-c", "python:funapi_sync.server.gunicorn_conf")

#: Requests of the soak, per worker class; the other scenarios use half as many.
#: ``FUNAPI_SOAK_REQUESTS=20000`` is the long run (docs/reliability.md).
SOAK_REQUESTS = int(os.environ.get("FUNAPI_SOAK_REQUESTS", "1000"))
CLIENTS = 8
_BOOTED = re.compile(r"Booting worker with pid: (\d+)")
_BACKGROUND_ERROR = re.compile(r"^ERROR funapi_sync\.background .*$", re.MULTILINE)
_ORDER_ID = re.compile(r"POST /(?:orders|faults/[a-z-]+)/(\d{6}-[0-9a-f]{8})")


def named_at_error(log: str) -> set[str]:
    """The order ids an ERROR line of ``funapi_sync.background`` names (tasks not run)."""
    return {
        order_id for line in _BACKGROUND_ERROR.findall(log) for order_id in _ORDER_ID.findall(line)
    }


def scaled(minimum: int) -> int:
    return max(minimum, SOAK_REQUESTS // 2)


@dataclass
class Reply:
    index: int
    order_id: str
    status: int | None  # None: no response (refused, reset, timed out)
    pid: int | None = None
    error: str = ""


@dataclass
class Load:
    """What the load generator saw."""

    replies: list[Reply] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self) -> list[Reply]:
        return [reply for reply in self.replies if reply.status is not None and reply.status < 300]

    def ok_ids(self) -> set[str]:
        return {reply.order_id for reply in self.ok()}


def post_order(port: int, order_id: str, timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST",
            f"/orders/{order_id}",
            body=b'{"qty": 1}',
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def run_load(
    port: int,
    requests: int,
    *,
    clients: int = CLIENTS,
    on_reply: Callable[[int], None] | None = None,
    send: Callable[[int, str], tuple[int, dict[str, Any]]] = post_order,
) -> Load:
    """Send ``requests`` orders from ``clients`` threads; ``on_reply(n)`` after each reply.

    Bounded: every request has a timeout, and a refused connection is one failed reply
    (the server may be shutting down on purpose), never a retry.
    """
    counter = itertools.count()
    done = itertools.count(1)
    lock = threading.Lock()
    load = Load()

    def client() -> None:
        while True:
            with lock:
                index = next(counter)
            if index >= requests:
                return
            order_id = f"{index:06d}-{uuid.uuid4().hex[:8]}"
            try:
                status, body = send(port, order_id)
                reply = Reply(index, order_id, status, body.get("pid") if body else None)
            except (OSError, http.client.HTTPException) as exc:
                reply = Reply(index, order_id, None, error=type(exc).__name__)
            with lock:
                load.replies.append(reply)
                finished = next(done)
            if on_reply is not None:
                on_reply(finished)

    started = time.monotonic()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    load.seconds = time.monotonic() - started
    return load


def rows(db: Path, kind: str = "order") -> list[tuple[str, int]]:
    """(order id, pid) of every row of ``kind`` the tasks wrote."""
    if not db.exists():
        return []
    connection = sqlite3.connect(db, timeout=60)
    try:
        return list(connection.execute("SELECT id, pid FROM orders WHERE kind = ?", (kind,)))
    finally:
        connection.close()


def rss_kb(pid: int) -> int:
    """A process's resident set size (VmRSS in /proc/<pid>/status), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def boots(server: Server) -> list[int]:
    return [int(pid) for pid in _BOOTED.findall(server.log())]


def serve(
    tmp_path: Path, *args: str, worker_class: str = "sync", workers: int = 2, **env: str
) -> Any:
    threads = ("--threads", "4") if worker_class == "gthread" else ()
    return run_gunicorn(
        APP,
        "--worker-class",
        worker_class,
        *threads,
        *CONF,
        *args,
        tmp_path=tmp_path,
        workers=workers,
        cwd=HERE,
        env={"REL_DB": str(tmp_path / "orders.sqlite3"), **env},
    )


def stop(server: Server) -> float:
    """SIGTERM the master and wait for it (it drains each worker's pool); return seconds."""
    started = time.monotonic()
    server.stop(signal.SIGTERM, timeout=60)
    return time.monotonic() - started


# -- the scenarios ----------------------------------------------------------------------


def soak(tmp_path: Path, worker_class: str, requests: int = SOAK_REQUESTS) -> dict[str, Any]:
    """Every 201 is exactly one row; worker RSS after a warm-up and at the end."""
    db = tmp_path / "orders.sqlite3"
    with serve(tmp_path, worker_class=worker_class) as server:
        warm = run_load(server.port, max(50, requests // 10))
        pids = boots(server)
        rss_before = {pid: rss_kb(pid) for pid in pids}
        load = run_load(server.port, requests)
        rss_after = {pid: rss_kb(pid) for pid in pids}
        shutdown = stop(server)
        log = server.log()
    written = rows(db)
    ids = [order_id for order_id, _ in written]
    accepted = warm.ok_ids() | load.ok_ids()
    return {
        "scenario": f"soak ({worker_class})",
        "requests": len(warm.replies) + len(load.replies),
        "ok": len(warm.ok()) + len(load.ok()),
        "rows": len(written),
        "missing": len(accepted - set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "unexpected": len(set(ids) - accepted),
        "requests_per_second": round(len(load.replies) / load.seconds, 1),
        "rss_kb_before": rss_before,
        "rss_kb_after": rss_after,
        "rss_growth_kb": max(rss_after[pid] - rss_before[pid] for pid in pids),
        "rss_growth_percent": round(
            max(100 * (rss_after[pid] - rss_before[pid]) / rss_before[pid] for pid in pids), 2
        ),
        "shutdown_seconds": round(shutdown, 2),
        "boots": len(boots_in(log)),
        "tracebacks": log.count("Traceback"),
    }


def boots_in(log: str) -> list[str]:
    return _BOOTED.findall(log)


def sigterm_mid_load(
    tmp_path: Path, requests: int | None = None, shutdown_timeout: float = 20.0
) -> dict[str, Any]:
    """SIGTERM the master a third of the way in: every 201 ran, or was named at ERROR.

    With a ``shutdown_timeout`` shorter than the queue takes to drain, the tasks left
    over are the ones the ERROR lines name.
    """
    requests = requests or scaled(300)
    db = tmp_path / "orders.sqlite3"
    env = {"REL_TASK_SECONDS": "0.01", "REL_SHUTDOWN_TIMEOUT": str(shutdown_timeout)}
    if shutdown_timeout < 1:
        env["REL_TASK_SECONDS"] = "0.05"
    with serve(tmp_path, **env) as server:
        signalled = threading.Event()
        sent_at: list[float] = []

        def maybe_signal(finished: int) -> None:
            if finished >= requests // 3 and not signalled.is_set():
                signalled.set()
                sent_at.append(time.monotonic())
                server.process.send_signal(signal.SIGTERM)

        load = run_load(server.port, requests, clients=16, on_reply=maybe_signal)
        server.process.wait(60)
        shutdown = time.monotonic() - sent_at[0]
        log = server.log()
    written = {order_id for order_id, _ in rows(db)}
    named = named_at_error(log)
    accepted = load.ok_ids()
    return {
        "scenario": f"SIGTERM mid-load (sync, background_shutdown_timeout={shutdown_timeout})",
        "requests": len(load.replies),
        "ok": len(accepted),
        "rows": len(written),
        "named_at_error": len(named),
        "lost_silently": len(accepted - written - named),
        "refused_after_sigterm": sum(reply.status is None for reply in load.replies),
        "shutdown_seconds": round(shutdown, 2),
        "tracebacks": log.count("Traceback"),
    }


def sigkill_one_worker(tmp_path: Path, requests: int | None = None) -> dict[str, Any]:
    """SIGKILL one of two workers mid-load: only that worker's queued tasks can be lost."""
    requests = requests or scaled(300)
    db = tmp_path / "orders.sqlite3"
    queue_size, pool_threads = 32, 4
    env = {"REL_TASK_SECONDS": "0.02", "REL_QUEUE_SIZE": str(queue_size)}
    with serve(tmp_path, **env) as server:
        victim = boots(server)[0]
        killed = threading.Event()
        killed_after: list[int] = []

        def maybe_kill(finished: int) -> None:
            if finished >= requests // 3 and not killed.is_set():
                killed.set()
                killed_after.append(finished)
                os.kill(victim, signal.SIGKILL)

        load = run_load(server.port, requests, clients=16, on_reply=maybe_kill)
        after_kill = [reply for reply in load.replies if reply.index >= killed_after[0] + 16]
        booted = boots(server)
        shutdown = stop(server)
    written = {order_id for order_id, _ in rows(db)}
    lost = [reply for reply in load.ok() if reply.order_id not in written]
    return {
        "scenario": "SIGKILL one of 2 workers (sync)",
        "requests": len(load.replies),
        "ok": len(load.ok()),
        "rows": len(written),
        "lost": len(lost),
        "lost_from_other_workers": sum(reply.pid != victim for reply in lost),
        # NOTE: the queued batches, those running, and the one a close() was blocked on
        # (its response was already sent; back-pressure holds the sync worker).
        "loss_bound": queue_size + pool_threads + 1,
        "failed_requests": sum(reply.status is None for reply in load.replies),
        "ok_after_kill": sum(reply.status == 201 for reply in after_kill),
        "replacement_booted": len(booted) > 2,
        "shutdown_seconds": round(shutdown, 2),
    }


def max_requests_recycling(tmp_path: Path, requests: int | None = None) -> dict[str, Any]:
    """``--max-requests 40``: workers recycle under load and no task is lost."""
    requests = requests or scaled(300)
    db = tmp_path / "orders.sqlite3"
    with serve(tmp_path, "--max-requests", "40", "--max-requests-jitter", "0") as server:
        load = run_load(server.port, requests)
        shutdown = stop(server)
        log = server.log()
    ids = [order_id for order_id, _ in rows(db)]
    accepted = load.ok_ids()
    return {
        "scenario": "--max-requests 40 (sync)",
        "requests": len(load.replies),
        "ok": len(accepted),
        "rows": len(ids),
        "missing": len(accepted - set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "worker_boots": len(boots_in(log)),
        "shutdown_seconds": round(shutdown, 2),
        "tracebacks_outside_tasks": log.count("Traceback"),
    }


def task_faults(tmp_path: Path, per_kind: int = 20) -> dict[str, Any]:
    """Faulty tasks are contained, and the workers keep serving.

    A task raising an ``Exception`` or a ``BaseException`` subclass is logged at WARNING
    and the request's next task runs; one raising ``SystemExit`` (trying to stop) ends its
    request's batch, and the skipped task is named at ERROR.
    """
    db = tmp_path / "orders.sqlite3"
    kinds = ("runtime-error", "base-exception", "system-exit")
    with serve(tmp_path, worker_class="gthread") as server:
        pids = set(boots(server))
        statuses = []
        for kind in kinds:

            def send(port: int, order_id: str, kind: str = kind) -> tuple[int, dict[str, Any]]:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                try:
                    connection.request("POST", f"/faults/{kind}/{order_id}")
                    response = connection.getresponse()
                    return response.status, json.loads(response.read())
                finally:
                    connection.close()

            statuses += run_load(server.port, per_kind, clients=4, send=send).replies
        after = run_load(server.port, 50)
        same_workers = set(boots(server)) == pids
        stop(server)
        log = server.log()
    return {
        "scenario": "task faults (gthread)",
        "fault_requests": len(statuses),
        "fault_requests_ok": sum(reply.status == 201 for reply in statuses),
        "next_task_ran": {kind: len(rows(db, kind)) for kind in kinds},
        "failures_logged": log.count("WARNING funapi_sync.background"),
        "skipped_named_at_error": len(named_at_error(log)),
        "orders_after_faults_ok": len(after.ok()),
        "orders_after_faults_rows": len(rows(db)),
        "same_workers": same_workers,
    }
