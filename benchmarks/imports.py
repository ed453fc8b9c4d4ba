"""Import time: a fresh ``python -c "import X"`` per run, funapi_sync against its peers.

The whole process is timed, interpreter start included (what a worker boot or a CLI
call pays), with every module's bytecode compiled beforehand, as the issue measured it:
median of ``runs`` elapsed times per module, the modules interleaved run by run; the
children's CPU time is reported beside it, since a shared machine's load moves elapsed
time more than CPU time.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .scenarios import installed

ROOT = Path(__file__).resolve().parent.parent

#: funapi_sync first; the peers that are installed follow.
MODULES = ("funapi_sync", "flask", "falcon", "fastapi")


def run(runs: int) -> dict[str, Any]:
    """``{module: {elapsed_ms, cpu_ms}}`` (medians), plus ``skipped`` for what is missing."""
    modules = [module for module in MODULES if installed(module)]
    # NOTE: pip compiled the peers' bytecode when it installed them; this checkout's may be
    # stale or missing (an editable install, PYTHONDONTWRITEBYTECODE=1), and each run would
    # then compile funapi_sync from source: measured here as 50 ms of 165.
    compileall.compile_dir(ROOT / "funapi_sync", quiet=1)
    samples: dict[str, list[tuple[float, float]]] = {module: [] for module in modules}
    for round_ in range(runs):
        # NOTE: each round in a new order, so no module always runs right after another.
        for module in modules[round_ % len(modules) :] + modules[: round_ % len(modules)]:
            samples[module].append(_one(module))
    results: dict[str, Any] = {
        module: {
            "elapsed_ms": statistics.median(elapsed for elapsed, _ in runs_),
            "cpu_ms": statistics.median(cpu for _, cpu in runs_),
            # NOTE: the median of the rounds' ratios, each round's two figures taken back
            # to back: this machine's speed drifts by a quarter between rounds.
            "elapsed_to_first": statistics.median(
                mine[0] / first[0] for mine, first in zip(runs_, samples[modules[0]], strict=True)
            ),
        }
        for module, runs_ in samples.items()
    }
    results["runs"] = runs
    results["skipped"] = {m: f"{m} is not installed" for m in MODULES if m not in modules}
    return results


def _one(module: str) -> tuple[float, float]:
    # NOTE: this checkout's funapi_sync, not another one installed in the environment.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", f"import {module}"], env=env, cwd=ROOT)
    # NOTE: a blocking wait4, not subprocess's wait(timeout), which polls with sleeps of up
    # to 50 ms and so rounded every elapsed time up to the next 50 ms step.
    timer = threading.Timer(60, process.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, process.args)
    return elapsed * 1000, (usage.ru_utime + usage.ru_stime) * 1000
