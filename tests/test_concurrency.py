"""task.spawn / wait / gather: concurrency, errors, order, context, and no deadlocks."""

from __future__ import annotations

import contextvars
import threading

import pytest

from funapi_sync import concurrency
from funapi_sync.concurrency import TASK, Task

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def test_handler_gets_task_as_its_third_positional_parameter(app, client):
    seen: list[object] = []

    @app.get("/")
    def index(i, r, t):
        seen.append(t)
        return {"sum": t.spawn(sum, [1, 2, 3]).wait()}

    assert client.get("/").json == {"sum": 6}
    assert isinstance(seen[0], Task)


def test_three_spawned_calls_run_concurrently(app, client):
    # NOTE: each call returns only once all three are running; run one after another,
    # the first would wait alone and the barrier would break (a 500), not pass slowly.
    all_three = threading.Barrier(3, timeout=10)

    @app.get("/")
    def index(input, req, task):
        handles = [task.spawn(all_three.wait) for _ in range(3)]
        return {"arrivals": sorted(task.gather(*handles))}

    assert client.get("/").json == {"arrivals": [0, 1, 2]}


def test_wait_reraises_the_calls_exception(app, client):
    def fails(code):
        raise LookupError(f"no such item {code}")

    @app.get("/")
    def index(input, req, task):
        handle = task.spawn(fails, code=7)
        with pytest.raises(LookupError, match="no such item 7"):
            handle.wait()
        assert handle.done()
        return {"ok": True}

    assert client.get("/").json == {"ok": True}


def test_an_exception_not_caught_in_the_handler_is_a_500(app, client, caplog_funapi):
    @app.get("/")
    def index(input, req, task):
        return task.spawn(int, "not a number").wait()

    response = client.get("/")
    assert response.status_code == 500
    assert "invalid literal for int()" in caplog_funapi.text


def test_gather_returns_results_in_the_order_given():
    third_done = threading.Event()

    def first():
        # Finish last: wait until the third call has finished.
        assert third_done.wait(timeout=10)
        return "first"

    def third():
        third_done.set()
        return "third"

    handles = [TASK.spawn(first), TASK.spawn(lambda: "second"), TASK.spawn(third)]
    assert TASK.gather(*handles, timeout=10) == ["first", "second", "third"]


def test_gather_raises_the_first_failure_in_order():
    def boom():
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        TASK.gather(TASK.spawn(lambda: 1), TASK.spawn(boom), timeout=10)


def test_contextvars_reach_spawned_calls(app, client):
    @app.get("/")
    def index(input, req, task):
        request_id.set(req.headers["X-Request-Id"])
        handles = [task.spawn(request_id.get) for _ in range(3)]
        return {"ids": task.gather(*handles)}

    assert client.get("/", headers={"X-Request-Id": "r-42"}).json == {"ids": ["r-42"] * 3}


def test_spawn_rejects_a_non_callable_in_the_caller():
    with pytest.raises(TypeError) as info:
        TASK.spawn("send_email")
    assert str(info.value) == (
        "task.spawn() needs a callable as its first argument, got str 'send_email'; pass"
        " the function itself, e.g. task.spawn(fetch, url)"
    )


def test_wait_runs_a_call_no_thread_has_started_in_the_waiting_thread():
    release = threading.Event()
    running = threading.Semaphore(0)

    def block():
        running.release()
        return release.wait(timeout=30)

    blockers = [TASK.spawn(block) for _ in range(concurrency.FANOUT_WORKERS)]
    try:
        for _ in range(concurrency.FANOUT_WORKERS):
            assert running.acquire(timeout=10), "fan-out threads did not all start"
        # Every fan-out thread is busy: the next call can only run in the waiter.
        handle = TASK.spawn(threading.get_ident)
        assert handle.wait(timeout=10) == threading.get_ident()
    finally:
        release.set()
        assert all(TASK.gather(*blockers, timeout=10))


def test_wait_timeout_applies_to_a_call_running_elsewhere():
    release = threading.Event()
    started = threading.Event()

    def slow():
        started.set()
        return release.wait(timeout=30)

    handle = TASK.spawn(slow)
    try:
        assert started.wait(timeout=10)
        with pytest.raises(TimeoutError):
            handle.wait(timeout=0.05)
    finally:
        release.set()
    assert handle.wait(timeout=10) is True


def test_nested_spawns_do_not_deadlock_when_every_fanout_thread_waits():
    workers = concurrency.FANOUT_WORKERS
    # NOTE: the barrier holds every parent until all fan-out threads run one, so each
    # child is queued behind busy threads: without inline waiting this deadlocks.
    barrier = threading.Barrier(workers)

    def child(n):
        return n * 2

    def parent(n):
        barrier.wait(timeout=10)
        return TASK.spawn(child, n).wait(timeout=10)

    parents = [TASK.spawn(parent, n) for n in range(workers)]
    assert TASK.gather(*parents, timeout=20) == [n * 2 for n in range(workers)]


def test_deeply_nested_spawns_finish():
    def fib(n):
        if n < 2:
            return n
        left, right = TASK.spawn(fib, n - 1), TASK.spawn(fib, n - 2)
        return left.wait(timeout=20) + right.wait(timeout=20)

    assert TASK.spawn(fib, 12).wait(timeout=30) == 144


def test_background_task_can_fan_out_while_the_background_pool_is_saturated(app, client):
    app.register("unit", lambda: 10)

    @app.post("/warm")
    def warm(*, background):
        background.add_task(lambda: None)
        return {}

    results: list[int] = []
    lock = threading.Lock()

    @app.post("/orders/<int:n>", depends=["unit"])
    def order(input, req, task, *, background, unit):
        def total():
            # NOTE: every background thread waits here until all of them run this task,
            # then each fans out; spawned calls must not need a background thread.
            barrier.wait(timeout=10)
            parts = task.gather(*(task.spawn(lambda k=k: k * unit) for k in range(3)))
            with lock:
                results.append(input.path["n"] + sum(parts))

        background.add_task(total)
        return {"queued": True}, 202

    client.post("/warm")  # make sure the pool exists, to learn its real size
    workers = app.background.stats()["workers"]
    failed_before = app.background.stats()["failed"]
    barrier = threading.Barrier(workers)
    statuses: list[int] = []

    def send(n):
        statuses.append(app.test_client().post(f"/orders/{n}").status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(2 * workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert app.background.drain(timeout=30)
    assert statuses == [202] * (2 * workers)
    assert sorted(results) == sorted(n + 30 for n in range(2 * workers))
    assert app.background.stats()["failed"] == failed_before
