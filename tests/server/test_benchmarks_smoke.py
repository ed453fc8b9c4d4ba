"""Run every benchmark part for a few iterations (``--quick``) so the harness cannot rot.

No timing is asserted: only that each part runs, the apps agree, and figures come out.
Deselect with ``-m "not server"`` (the parts start real gunicorn servers) or
``-k "not benchmarks_smoke"``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.server


def run_part(part: str, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "results.json"
    command = [sys.executable, "benchmarks/run.py", "--quick", "--parts", part, "--json", str(out)]
    done = subprocess.run([*command, *extra], cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text())


def positive(value: float) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_conformance_passes_for_every_app(tmp_path: Path) -> None:
    results = run_part("conformance", tmp_path)
    assert results["conformance"] == []


def test_inprocess_times_every_scenario_for_every_app(tmp_path: Path) -> None:
    results = run_part("inprocess", tmp_path)
    figures = results["inprocess"]
    assert set(figures) == {"hello", "users", "signup"}
    for per_app in figures.values():
        assert set(per_app) == {"raw", "falcon", "flask", "funapi_sync", "funapi_sync_seed"}
        assert all(positive(us) for us in per_app.values())
    # Both handler shapes get their in-process targets, with a figure each.
    targets = {t["target"]: t for t in results["targets"]}
    for scenario in ("hello", "users", "signup"):
        assert f"in process {scenario}, seed: µs ≤ 1.0 x Falcon's" in targets
    assert "in process users, lean: µs ≤ 0.8 x Falcon's" in targets
    assert all(positive(t["value"]) for t in targets.values())


def test_tasks_part_measures_close_cost_and_drain_rate(tmp_path: Path) -> None:
    figures = run_part("tasks", tmp_path)["tasks"]
    assert set(figures["close_cost"]) == {"0", "1", "3"}
    assert figures["drain"]["drained"] is True
    assert positive(figures["drain"]["tasks_per_s"])
    assert positive(figures["start_latency"]["p99_us"])
    assert figures["idle"]["cpu_ms_per_s"] >= 0


@pytest.mark.skipif(shutil.which("wrk") is None, reason="the wrk binary is not installed")
def test_http_part_runs_wrk_against_each_app_and_worker_class(tmp_path: Path) -> None:
    figures = run_part("http", tmp_path)["http"]
    assert set(figures) == {"sync", "gthread"}
    for per_scenario in figures.values():
        for per_app in per_scenario.values():
            assert set(per_app) == {"raw", "falcon", "flask", "funapi_sync", "funapi_sync_seed"}
            for app in per_app.values():
                assert positive(app["rps"])
                assert app["status_errors"] == 0


def test_isolation_part_times_slow_and_fast_tasks(tmp_path: Path) -> None:
    figures = run_part("isolation", tmp_path)["isolation"]
    for app in figures.values():
        assert all(positive(seconds) for seconds in app.values())


def test_write_results_renders_markdown(tmp_path: Path) -> None:
    target = tmp_path / "RESULTS.md"
    run_part("conformance,tasks", tmp_path, "--write-results", "--results-path", str(target))
    text = target.read_text()
    assert "# Benchmark results" in text
    assert "tasks/s" in text


@pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed (CI installs it)"
)
def test_rq_part_times_the_handoff_against_the_pool_on_its_own_redis(tmp_path: Path) -> None:
    figures = run_part("rq", tmp_path)["rq"]
    per_request = figures["per_request_us"]
    assert set(per_request) == {"thread", "rq"}
    for per_n in per_request.values():
        assert set(per_n) == {"0", "1", "3"}
        assert all(positive(us) for us in per_n.values())
