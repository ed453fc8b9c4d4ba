"""Run every reliability scenario against a real gunicorn and print the figures.

.. code-block:: console

    FUNAPI_SOAK_REQUESTS=20000 python tests/reliability/report.py

prints the table quoted in docs/reliability.md (and the raw figures as JSON). Sizes come
from ``FUNAPI_SOAK_REQUESTS`` (default 1000, the CI size): the soak sends that many
requests (plus a tenth as a warm-up) per worker class, the other scenarios half as many.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent.parent)]

import gunicorn  # noqa: E402
from harness import (  # noqa: E402
    SOAK_REQUESTS,
    max_requests_recycling,
    sigkill_one_worker,
    sigterm_mid_load,
    soak,
    task_faults,
)


def main() -> None:
    results = []
    started = time.monotonic()
    scenarios = [
        lambda tmp: soak(tmp, "sync"),
        lambda tmp: soak(tmp, "gthread"),
        sigterm_mid_load,
        sigkill_one_worker,
        max_requests_recycling,
        task_faults,
    ]
    for scenario in scenarios:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(scenario(Path(tmp)))
    print(
        f"FUNAPI_SOAK_REQUESTS={SOAK_REQUESTS}, Python {platform.python_version()},"
        f" gunicorn {gunicorn.__version__}, 2 workers, {time.monotonic() - started:.0f} s"
    )
    print()
    print("| scenario | requests | 2xx | rows | lost | other figures |")
    print("|---|---:|---:|---:|---:|---|")
    for figures in results:
        lost = figures.get("lost", figures.get("missing", figures.get("lost_silently", "")))
        shown = {"scenario", "requests", "ok", "rows", "lost", "missing", "lost_silently"}
        others = ", ".join(f"{k}={v}" for k, v in figures.items() if k not in shown)
        print(
            f"| {figures['scenario']} | {figures.get('requests', figures.get('fault_requests'))}"
            f" | {figures.get('ok', figures.get('fault_requests_ok'))}"
            f" | {figures.get('rows', '')} | {lost} | {others} |"
        )
    print()
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
