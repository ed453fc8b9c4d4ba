"""The guarantees of docs/reliability.md, each proven against a real gunicorn.

Sizes are small by default so that CI stays quick; ``FUNAPI_SOAK_REQUESTS=20000`` makes
the long run. ``python tests/reliability/report.py`` runs the same scenarios and prints
the figures the doc quotes.
"""

from __future__ import annotations

import pytest
from harness import (
    SOAK_REQUESTS,
    max_requests_recycling,
    sigkill_one_worker,
    sigterm_mid_load,
    soak,
    task_faults,
)

pytestmark = [pytest.mark.server, pytest.mark.timeout(max(120, SOAK_REQUESTS // 20))]


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_soak_every_201_is_exactly_one_row(tmp_path, worker_class):
    figures = soak(tmp_path, worker_class)
    print(figures)

    assert figures["ok"] == figures["requests"]
    assert figures["rows"] == figures["ok"]
    assert (figures["missing"], figures["duplicates"], figures["unexpected"]) == (0, 0, 0)
    assert figures["tracebacks"] == 0
    assert figures["boots"] == 2
    # A gross leak only: RSS of a small run moves by allocator noise.
    assert figures["rss_growth_kb"] < 32 * 1024


@pytest.mark.parametrize("shutdown_timeout", [20.0, 0.2], ids=["drains", "times-out"])
def test_sigterm_mid_load_every_accepted_task_ran_or_was_named_at_error(tmp_path, shutdown_timeout):
    figures = sigterm_mid_load(tmp_path, shutdown_timeout=shutdown_timeout)
    print(figures)

    assert figures["ok"] > 0
    assert figures["lost_silently"] == 0
    assert figures["rows"] + figures["named_at_error"] >= figures["ok"]
    assert figures["tracebacks"] == 0


def test_sigkill_of_one_worker_loses_at_most_that_workers_queued_tasks(tmp_path):
    figures = sigkill_one_worker(tmp_path)
    print(figures)

    assert figures["lost_from_other_workers"] == 0
    assert figures["lost"] <= figures["loss_bound"]
    assert figures["replacement_booted"]
    assert figures["ok_after_kill"] > 0


def test_max_requests_recycling_loses_nothing(tmp_path):
    figures = max_requests_recycling(tmp_path)
    print(figures)

    assert figures["ok"] == figures["requests"]
    assert figures["rows"] == figures["ok"]
    assert (figures["missing"], figures["duplicates"]) == (0, 0)
    # 2 workers serving 40 requests each before they are replaced.
    assert figures["worker_boots"] >= figures["requests"] // 40
    assert figures["tracebacks_outside_tasks"] == 0


def test_faulty_tasks_are_contained_and_the_server_keeps_serving(tmp_path):
    figures = task_faults(tmp_path)
    print(figures)

    assert figures["fault_requests_ok"] == figures["fault_requests"] == 60
    # SystemExit stops its own request's batch (never the pool thread): the next task
    # is skipped and named at ERROR instead.
    assert figures["next_task_ran"] == {
        "runtime-error": 20,
        "base-exception": 20,
        "system-exit": 0,
    }
    assert figures["failures_logged"] == 40
    assert figures["skipped_named_at_error"] == 20
    assert figures["orders_after_faults_ok"] == figures["orders_after_faults_rows"] == 50
    assert figures["same_workers"]
