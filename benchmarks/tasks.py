"""Background-task costs in funapi_sync: close()+enqueue, start latency, drain rate, idle cost.

The four pool targets of issue #10, each measured here (never asserted in unit tests):
close()+enqueue of one task adds ≤ 5 µs (:func:`close_cost`); a task on an idle pool
starts ≤ 1 ms after close(), p99 (:func:`start_latency`); ≥ 10 000 trivial tasks/s
drained (:func:`drain_rate`); an idle pool takes no timed wake-ups (:func:`idle_cost`).
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from funapi_sync import App

from .scenarios import Scenario as _Scenario
from .scenarios import base_environ, call, fresh_environ

TASK_COUNTS = (0, 1, 3)


def noop() -> None:
    """The trivial task."""


def build_app(**settings: Any) -> App:
    """``GET /tasks/<n>`` adds n trivial tasks; ``/tasks/0`` takes no ``background`` at all."""
    app = App(title="Task benchmark", **settings)

    @app.get("/tasks/0")
    def none() -> Any:
        return {"ok": True}

    def adding(count: int) -> Any:
        def handler(*, background: Any) -> Any:
            for _ in range(count):
                background.add_task(noop)
            return {"ok": True}

        handler.__name__ = f"tasks_{count}"
        return handler

    for count in TASK_COUNTS[1:]:
        app.get(f"/tasks/{count}")(adding(count))
    return app


def add_task_cost(rounds: int, calls: int) -> dict[str, float]:
    """ns per ``add_task`` on the thread backend, with and without reading ``handle.id``.

    Issue #23's budget: a handle nobody reads costs at most 1 µs per ``add_task``.
    """
    from funapi_sync import BackgroundTasks

    def unread() -> int:
        background = BackgroundTasks()
        add = background.add_task
        started = time.perf_counter_ns()
        for _ in range(calls):
            add(noop)
        return time.perf_counter_ns() - started

    def read() -> int:
        background = BackgroundTasks()
        add = background.add_task
        started = time.perf_counter_ns()
        for _ in range(calls):
            add(noop).id  # noqa: B018 - reading the id is what is timed
        return time.perf_counter_ns() - started

    # NOTE: best of interleaved rounds: the floor is the code's cost, the rest is noise.
    unread_ns = min(unread() for _ in range(rounds)) / calls
    read_ns = min(read() for _ in range(rounds)) / calls
    return {"unread_ns": unread_ns, "read_ns": read_ns}


def close_cost(app: App, rounds: int, calls: int) -> dict[int, dict[str, float]]:
    """Per request with n tasks: µs for the whole request and for ``close()`` alone.

    Each batch first makes ``calls`` requests without closing them, then times closing them
    all (so the pool's threads run while close() is timed, as they would under a server),
    then drains untimed; ``calls`` stays below the queue size so close() never blocks.
    """
    calls = min(calls, app.settings["background_queue_size"] // 2)
    request: dict[int, list[float]] = {n: [] for n in TASK_COUNTS}
    closing: dict[int, list[float]] = {n: [] for n in TASK_COUNTS}
    bases = {n: base_environ(_Scenario(f"tasks_{n}", "GET", f"/tasks/{n}")) for n in TASK_COUNTS}
    for round_ in range(rounds + 1):  # round 0 warms up
        for n in TASK_COUNTS if round_ % 2 else reversed(TASK_COUNTS):
            environs = [fresh_environ(bases[n], b"") for _ in range(calls)]
            started = time.perf_counter_ns()
            for environ in environs:
                call(app, environ)
            whole = (time.perf_counter_ns() - started) / 1000 / calls
            app.background.drain(timeout=30)
            iterables = [app(environ, _ignore) for environ in environs[: calls // 2]]
            for iterable in iterables:
                b"".join(iterable)
            started = time.perf_counter_ns()
            for iterable in iterables:
                close = getattr(iterable, "close", None)
                if close is not None:
                    close()
            only_close = (time.perf_counter_ns() - started) / 1000 / len(iterables)
            app.background.drain(timeout=30)
            if round_:
                request[n].append(whole)
                closing[n].append(only_close)
    return {
        n: {"request_us": statistics.median(request[n]), "close_us": statistics.median(closing[n])}
        for n in TASK_COUNTS
    }


#: The backends :func:`sqlite_request_cost` compares: (name, persist, durable).
SQLITE_VARIANTS = (
    ("thread", None, None),
    ("sqlite after_response durable=process", "after_response", "process"),
    ("sqlite after_response durable=power", "after_response", "power"),
    ("sqlite before_response durable=process", "before_response", "process"),
    ("sqlite before_response durable=power", "before_response", "power"),
)


def sqlite_request_cost(rounds: int, calls: int, directory: str) -> dict[str, dict[str, float]]:
    """µs per request with one trivial task, in process: the thread backend vs SQLite.

    Issue #23's budget, over the thread backend at p50: ``persist="after_response"`` adds
    at most 60 µs, ``"before_response"`` at most 1 ms. Each request is timed alone, from the
    call to the end of ``close()``; the SQLite files live in ``directory`` (a temporary
    one: the disk it is on is what is measured). The backends drain between rounds, untimed.
    """
    import os

    from funapi_sync.backends.sqlite import SQLiteBackend

    apps: dict[str, App] = {}
    for index, (name, persist, durable) in enumerate(SQLITE_VARIANTS):
        backend: Any = "thread"
        if persist is not None:
            path = os.path.join(directory, f"cost{index}.sqlite3")
            backend = SQLiteBackend(path, persist=persist, durable=durable)  # type: ignore[arg-type]
        apps[name] = build_app(background_backend=backend)
    base = base_environ(_Scenario("tasks_1", "GET", "/tasks/1"))
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for round_ in range(rounds + 1):  # round 0 warms up (and creates the files)
        for name in list(apps) if round_ % 2 else reversed(list(apps)):
            app = apps[name]
            for _ in range(calls):
                environ = fresh_environ(base, b"")
                started = time.perf_counter_ns()
                call(app, environ)
                if round_:
                    samples[name].append((time.perf_counter_ns() - started) / 1000)
            app.background.drain(timeout=60)
    for app in apps.values():
        close = getattr(app.background, "close", None)
        if close is not None:
            close()
    return {
        name: {
            "p50_us": statistics.median(values),
            "p90_us": statistics.quantiles(values, n=10)[-1],
        }
        for name, values in samples.items()
    }


def drain_rate(app: App, tasks: int) -> dict[str, float]:
    """Trivial tasks/s that one process's pool drains, from a queue filled in advance.

    Every pool thread is first held on a gate task, ``tasks`` one-task batches are queued
    behind them through real requests, then the gate opens and the drain is timed.
    """
    workers = app.background.stats()["workers"]
    tasks = min(tasks, app.settings["background_queue_size"])
    gate = threading.Event()
    holding = threading.Semaphore(0)

    def hold() -> None:
        holding.release()
        gate.wait(30)

    gates = App(title="gate")

    @gates.get("/hold")
    def hold_route(*, background: Any) -> Any:
        background.add_task(hold)
        return {}

    hold_base = base_environ(_Scenario("hold", "GET", "/hold"))
    for _ in range(workers):
        call(gates, fresh_environ(hold_base, b""))
    for _ in range(workers):
        holding.acquire(timeout=30)
    one = base_environ(_Scenario("tasks_1", "GET", "/tasks/1"))
    for _ in range(tasks):
        call(app, fresh_environ(one, b""))
    started = time.perf_counter()
    gate.set()
    drained = app.background.drain(timeout=60)
    elapsed = time.perf_counter() - started
    return {
        "tasks": tasks,
        "workers": workers,
        "seconds": elapsed,
        "tasks_per_s": tasks / elapsed,
        "drained": drained,
    }


def start_latency(app: App, samples: int) -> dict[str, float]:
    """µs from the start of ``close()`` to the first line of the task, on an idle pool.

    Before each sample the pool is drained and left alone for 5 ms, so its threads are
    back waiting for work, as between requests on a quiet server.
    """
    started_at: list[int] = []
    ran = threading.Event()

    def first_line() -> None:
        started_at.append(time.perf_counter_ns())
        ran.set()

    probe = App(title="latency probe")

    @probe.get("/probe")
    def probe_route(*, background: Any) -> Any:
        background.add_task(first_line)
        return {}

    base = base_environ(_Scenario("probe", "GET", "/probe"))
    latencies: list[float] = []
    for _ in range(samples + 5):  # the first five warm up
        probe.background.drain(timeout=30)
        time.sleep(0.005)
        ran.clear()
        started_at.clear()
        iterable = probe(fresh_environ(base, b""), _ignore)
        b"".join(iterable)
        closed_at = time.perf_counter_ns()
        iterable.close()  # type: ignore[attr-defined]
        ran.wait(30)
        latencies.append((started_at[0] - closed_at) / 1000)
    latencies = sorted(latencies[5:])
    return {
        "samples": len(latencies),
        "p50_us": statistics.median(latencies),
        "p99_us": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def idle_cost(app: App, seconds: float) -> dict[str, float]:
    """CPU the process spends while its pool (already started) has nothing to do.

    A pool that polls, or waits with timeouts in a loop, burns CPU and GIL turns here;
    threads blocked in ``SimpleQueue.get()`` burn none.
    """
    call(app, fresh_environ(base_environ(_Scenario("tasks_1", "GET", "/tasks/1")), b""))
    app.background.drain(timeout=30)
    cpu = time.process_time()
    wall = time.perf_counter()
    time.sleep(seconds)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    return {"seconds": wall, "cpu_ms_per_s": cpu * 1000 / wall}


def _ignore(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    pass
