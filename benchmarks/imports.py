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
import resource
import statistics
import subprocess
import sys
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
    for _ in range(runs):
        for module in modules:
            samples[module].append(_one(module))
    results: dict[str, Any] = {
        module: {
            "elapsed_ms": statistics.median(elapsed for elapsed, _ in runs_),
            "cpu_ms": statistics.median(cpu for _, cpu in runs_),
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
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", f"import {module}"], check=True, timeout=60, env=env, cwd=ROOT
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed * 1000, cpu * 1000
