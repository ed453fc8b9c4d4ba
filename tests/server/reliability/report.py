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
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[2])]

import gunicorn  # noqa: E402
from harness import (  # noqa: E402
    SOAK_REQUESTS,
    max_requests_recycling,
    sigkill_one_worker,
    sigterm_mid_load,
    soak,
    task_faults,
)


def row(figures: dict[str, object]) -> str:
    """One Markdown table row: the common columns, then what is particular to the scenario."""
    common = {
        "scenario",
        "requests",
        "ok",
        "rows",
        "lost",
        "missing",
        "lost_silently",
        "rss_kb_before",
        "rss_kb_after",
        "rss_growth_kb",
        "rss_growth_percent",
        "shutdown_seconds",
        "fault_requests",
        "fault_requests_ok",
    }
    lost = figures.get("lost", figures.get("missing", figures.get("lost_silently", "")))
    rss = ""
    if "rss_growth_kb" in figures:
        rss = f"+{figures['rss_growth_kb']} KiB ({figures['rss_growth_percent']} %)"
    shutdown = f"{figures['shutdown_seconds']} s" if "shutdown_seconds" in figures else ""
    notes = ", ".join(f"{key}={value}" for key, value in figures.items() if key not in common)
    cells = [
        figures["scenario"],
        figures.get("requests", figures.get("fault_requests", "")),
        figures.get("ok", figures.get("fault_requests_ok", "")),
        figures.get("rows", ""),
        lost,
        rss,
        shutdown,
        notes,
    ]
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def main() -> None:
    results = []
    started = time.monotonic()
    scenarios = [
        lambda tmp: soak(tmp, "sync"),
        lambda tmp: soak(tmp, "gthread"),
        sigterm_mid_load,
        lambda tmp: sigterm_mid_load(tmp, shutdown_timeout=0.2),
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
    print("| scenario | requests | 2xx | rows | lost | worker RSS growth | shutdown | notes |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for figures in results:
        print(row(figures))
    print()
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
