"""Run the benchmarks of issues #7, #16 and #25: ``python benchmarks/run.py [--quick]``.

Parts, in order: ``conformance`` (every app answers alike), ``import`` (import time),
``inprocess`` (direct WSGI calls), ``tasks`` (close()+enqueue cost, pool drain rate),
``rq``, ``http`` (gunicorn, granian and uvicorn + wrk) and ``isolation`` (a 1 s task vs
the response and the next request). A peer whose package is not installed is skipped,
with the reason printed. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make funapi_sync and benchmarks importable
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    imports,
    inprocess,
    overhttp,
    report,
    rq_handoff,
    scenarios,
    tasks,
)

PARTS = ("conformance", "import", "inprocess", "tasks", "http", "isolation", "rq")
RESULTS_PATH = Path(__file__).with_name("RESULTS.md")


def _sqlite_cost(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The SQLite backend's cost per request, in a temporary directory; None without one."""
    import tempfile

    try:
        directory = tempfile.TemporaryDirectory(prefix="funapi-bench-")
    except OSError as exc:
        _say(f"sqlite cost skipped: no temporary directory ({exc})")
        return None
    with directory as path:
        return tasks.sqlite_request_cost(cfg["rounds"], cfg["task_calls"], path)


def settings(quick: bool) -> dict[str, Any]:
    """Iteration counts: the full run, or a few iterations of every part (``--quick``)."""
    if quick:
        return {
            "rounds": 2,
            "calls": 50,
            "task_calls": 40,
            "drain_tasks": 100,
            "latency_samples": 20,
            "idle_seconds": 0.2,
            "http_rounds": 1,
            "seconds": 1,
            "tries": 1,
            "task_seconds": 0.3,
            "import_runs": 3,
        }
    return {
        "rounds": 9,
        "calls": 2000,
        "task_calls": 400,
        "drain_tasks": 1000,
        "latency_samples": 500,
        "idle_seconds": 2.0,
        "http_rounds": 5,
        "seconds": 2,
        "tries": 5,
        "task_seconds": 1.0,
        "import_runs": 7,
    }


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for package in (
        "funapi_sync", "werkzeug", "marshmallow", "gunicorn", "granian", "flask", "falcon",
        "fastapi", "uvicorn", "rq", "redis",
    ):  # fmt: skip
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    wrk = overhttp.wrk_path()
    if wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
        first_line = (out.stdout or out.stderr).split("\n", 1)[0]
        versions["wrk"] = first_line.split(" Copyright", 1)[0].removeprefix("wrk ").strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": model,
        "pinned": overhttp.pinning(),
        "versions": versions,
    }


def run(parts: list[str], quick: bool) -> dict[str, Any]:
    cfg = settings(quick)
    results: dict[str, Any] = {"machine": machine(), "settings": cfg, "quick": quick}
    names, skipped = scenarios.available()
    for name, reason in skipped.items():
        _say(f"skipped: {name}: {reason}")
    results["skipped"] = dict(skipped)
    apps = scenarios.load_apps(scenarios.wsgi_apps(names))
    problems = scenarios.check_conformance(apps)
    results["conformance"] = problems
    if problems:
        raise SystemExit("conformance check failed:\n" + "\n".join(problems))
    _say("conformance: every WSGI app answers every scenario alike (FastAPI: over HTTP)")
    if "import" in parts:
        results["import"] = imports.run(cfg["import_runs"])
        _say(report.import_table(results["import"]))
    if "inprocess" in parts:
        results["inprocess"] = inprocess.run(apps, cfg["rounds"], cfg["calls"])
        _say(report.inprocess_table(results["inprocess"]))
    if "tasks" in parts:
        app = tasks.build_app()
        results["tasks"] = {
            "close_cost": tasks.close_cost(app, cfg["rounds"], cfg["task_calls"]),
            "add_task": tasks.add_task_cost(cfg["rounds"], cfg["task_calls"]),
            "drain": tasks.drain_rate(app, cfg["drain_tasks"]),
            "start_latency": tasks.start_latency(app, cfg["latency_samples"]),
            "idle": tasks.idle_cost(app, cfg["idle_seconds"]),
        }
        sqlite_cost = _sqlite_cost(cfg)
        if sqlite_cost is not None:
            results["tasks"]["sqlite"] = sqlite_cost
        _say(report.tasks_table(results["tasks"]))
    if "rq" in parts:
        if not rq_handoff.redis_available():
            raise SystemExit(
                "the rq part needs redis-server (apt-get install -y redis-server) or"
                " BENCH_REDIS_URL; or --parts without it"
            )
        results["rq"] = rq_handoff.run(cfg["rounds"], cfg["task_calls"])
        _say(report.rq_table(results["rq"]))
    if "http" in parts and overhttp.wrk_path() is None:
        raise SystemExit("the http part needs wrk: apt-get install -y wrk (or --parts without it)")
    with overhttp.temporary_log_dir() as log_dir:
        if "http" in parts:
            groups, skipped_groups = overhttp.groups_available(names)
            for name, reason in skipped_groups.items():
                _say(f"skipped: {name}: {reason}")
            results["skipped"].update(skipped_groups)
            results["http"] = overhttp.run_throughput(
                cfg["http_rounds"], cfg["seconds"], Path(log_dir), groups
            )
            _say(report.http_tables(results["http"]))
        if "isolation" in parts:
            isolated = [app for app in overhttp.ISOLATION_APPS if app in names]
            results["isolation"] = overhttp.run_isolation(
                cfg["task_seconds"], cfg["tries"], Path(log_dir), isolated
            )
            _say(report.isolation_table(results["isolation"], cfg["task_seconds"]))
    results["targets"] = report.targets(results)
    _say(report.targets_table(results["targets"]))
    return results


def _say(text: str) -> None:
    print(text, end="\n\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations of each part")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument("--write-results", action="store_true", help="rewrite RESULTS.md")
    parser.add_argument("--results-path", type=Path, default=RESULTS_PATH)
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    results = run(parts, args.quick)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.write_results:
        command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
        args.results_path.write_text(report.results_markdown(results, command.strip()))
        print(f"wrote {args.results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
