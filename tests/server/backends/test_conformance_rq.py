"""The conformance suite (tests/backends/test_conformance.py) run on RQBackend, on a real Redis.

The suite's tests are imported here and collected again with this module's ``kind`` and
``backend`` fixtures: one Kind, ``rq``, whose backend talks to a redis-server started for
this module (flushed before each test). The suite counts runs in this process's memory
(``calls``), so its ``drain()`` first runs rq's ``SimpleWorker`` here, in burst mode: rq's
own job loop, no fork. What a separate worker process does (``funapi-sync worker``, a
SIGKILL mid-job, the lease) is proven in test_rq.py and the fault table
(tests/server/reliability/test_fault_table.py). What RQ does not offer is skipped by name,
with the reason in ``RQ.lacks``.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from _helpers import ROOT
from redis_server import RedisServer, redis_server
from rq import SimpleWorker

from funapi_sync.backends.rq import RQBackend

sys.path.insert(0, str(ROOT / "tests" / "backends"))  # the suite, under the name the fast loop uses

from test_conformance import (
    Kind,
    _reset,
    test_a_main_function_is_refused,
    test_a_store_that_fails_before_response_answers_503_and_names_each_task,
    test_after_response_stores_nothing_before_close,
    test_before_response_on_an_in_process_backend_is_refused_at_registration,
    test_before_response_stores_the_tasks_before_the_status_line,
    test_current_task_is_the_running_task_and_none_outside,
    test_every_accepted_task_runs_and_a_request_keeps_its_order,
    test_keyword_arguments_and_a_classmethod_arrive,
    test_status_answers_for_a_stored_task_with_its_result,
    test_storing_the_same_ids_twice_stores_them_once,
    test_the_id_add_task_returned_is_the_one_status_answers_for,
    test_the_in_process_backends_refuse_nothing,
    test_what_cannot_be_stored_is_refused_at_add_task,
)

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

#: Re-exported so pytest collects them here, with the ``rq`` Kind (and the suite's reset).
__all__ = [
    "_reset",
    "test_a_main_function_is_refused",
    "test_a_store_that_fails_before_response_answers_503_and_names_each_task",
    "test_after_response_stores_nothing_before_close",
    "test_before_response_on_an_in_process_backend_is_refused_at_registration",
    "test_before_response_stores_the_tasks_before_the_status_line",
    "test_current_task_is_the_running_task_and_none_outside",
    "test_every_accepted_task_runs_and_a_request_keeps_its_order",
    "test_keyword_arguments_and_a_classmethod_arrive",
    "test_status_answers_for_a_stored_task_with_its_result",
    "test_storing_the_same_ids_twice_stores_them_once",
    "test_the_id_add_task_returned_is_the_one_status_answers_for",
    "test_the_in_process_backends_refuse_nothing",
    "test_what_cannot_be_stored_is_refused_at_add_task",
]


class InProcessRQBackend(RQBackend):
    """RQBackend whose ``drain()`` first runs the queue here with rq's SimpleWorker."""

    def drain(self, timeout: float | None = None) -> bool:
        # NOTE: rq's worker installs its own SIGINT/SIGTERM handlers; give pytest its own back.
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            SimpleWorker([self.queue], connection=self.connection).work(burst=True)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return super().drain(timeout)


_URL: list[str] = []

RQ = Kind(
    "rq",
    lambda tmp: InProcessRQBackend(_URL[0], fallback="error"),
    durable=True,
    lacks={
        "status": "RQBackend keeps no status per task: status() returns None and tasks() is"
        " empty (one job per request; the task ids are not carried into the job, so"
        " current_task() is not set either)",
        "store": "there is no SQLite store; one request is one job whatever Redis does, proven"
        " by test_rq.py::test_a_redis_slower_than_the_socket_timeout_makes_one_job_and_runs_"
        "each_task_once",
        "json": "RQ pickles the arguments, so an object, NaN or a method of a module-level"
        " object is stored; only what a worker cannot import is refused",
    },
    count=lambda backend: backend.queue.count,
)


@pytest.fixture(scope="module")
def redis_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as running:
        _URL[:] = [running.url]
        yield running
        _URL.clear()


@pytest.fixture(params=[RQ], ids=str)
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def backend(kind: Kind, tmp_path: Path, redis_running: RedisServer) -> Iterator[Any]:
    redis.Redis.from_url(redis_running.url).flushall()
    made = kind.make(tmp_path)
    yield made
    made.connection.close()
