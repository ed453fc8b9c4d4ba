"""Run every benchmark part for a few iterations (``--quick``) so the harness cannot rot.

No timing is asserted: only that each part runs, the apps agree, and figures come out.
Deselect with ``-m "not server"`` (the parts start real gunicorn servers) or
``-k "not benchmarks_smoke"``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.server


#: The WSGI apps (each inline peer and its thread-pool twin, funapi_sync's two shapes).
WSGI_APPS = {
    "raw",
    "raw_pool",
    "falcon",
    "falcon_pool",
    "flask",
    "flask_pool",
    "funapi_sync",
    "funapi_sync_seed",
}


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def run_part(part: str, tmp_path: Path, *extra: str, timeout: float = 110) -> dict:
    out = tmp_path / "results.json"
    command = [sys.executable, "benchmarks/run.py", "--quick", "--parts", part, "--json", str(out)]
    done = subprocess.run(
        [*command, *extra], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
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
        assert set(per_app) == WSGI_APPS
        assert all(positive(us) for us in per_app.values())
    # Both handler shapes get their in-process targets, with a figure each.
    targets = {t["target"]: t for t in results["targets"]}
    for scenario, limit in (("hello", "0.5"), ("users", "0.75"), ("signup", "1")):
        assert f"in process {scenario}, seed: µs ≤ {limit} x Falcon's" in targets
    assert "in process signup, seed: µs ≤ 0.70 x falcon_pool's" in targets
    assert "in process users, lean: µs ≤ 0.8 x Falcon's" in targets
    assert all(positive(t["value"]) for t in targets.values())


def test_tasks_part_measures_close_cost_and_drain_rate(tmp_path: Path) -> None:
    figures = run_part("tasks", tmp_path)["tasks"]
    assert set(figures["close_cost"]) == {"0", "1", "3"}
    assert figures["drain"]["drained"] is True
    assert positive(figures["drain"]["tasks_per_s"])
    assert positive(figures["start_latency"]["p99_us"])
    assert figures["idle"]["cpu_ms_per_s"] >= 0


def test_import_part_times_funapi_sync_and_its_peers(tmp_path: Path) -> None:
    results = run_part("import", tmp_path)
    figures = results["import"]
    assert positive(figures["funapi_sync"]["elapsed_ms"])
    assert positive(figures["flask"]["cpu_ms"])
    assert figures["funapi_sync"]["elapsed_to_first"] == 1.0
    assert positive(figures["flask"]["elapsed_to_first"])
    targets = {t["target"] for t in results["targets"]}
    assert "import funapi_sync ≤ import flask (elapsed, median of the rounds' ratios)" in targets


@pytest.mark.skipif(shutil.which("wrk") is None, reason="the wrk binary is not installed")
@pytest.mark.timeout(330)
def test_http_part_runs_wrk_against_each_app_and_server(tmp_path: Path) -> None:
    results = run_part("http", tmp_path, timeout=300)
    figures = results["http"]
    granian = installed("granian")
    fastapi = installed("fastapi") and installed("uvicorn")
    assert set(figures) == {"sync", "gthread", *(["granian"] if granian else [])}
    if not granian:
        assert "granian" in results["skipped"]
    for group, per_scenario in figures.items():
        expected = WSGI_APPS | (
            {"fastapi", "fastapi_def"} if group == "granian" and fastapi else set()
        )
        for per_app in per_scenario.values():
            assert set(per_app) == expected
            for app in per_app.values():
                assert positive(app["rps"])
                assert app["status_errors"] == 0
    targets = {t["target"] for t in results["targets"]}
    if granian and fastapi:
        assert "granian signup, seed: req/s ≥ 2 x FastAPI+uvicorn's" in targets
        assert "granian signup, seed: p99 ≤ FastAPI+uvicorn's" in targets


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
