"""Profile funapi_sync on the three in-process scenarios: ``python benchmarks/profile_funapi.py``.

For each scenario: the unprofiled µs/request, then cProfile's top functions with their own
and cumulative time per request (cProfile inflates every call, so read the shares, not the
absolute µs). ``--pyinstrument`` adds pyinstrument's call tree (pip install pyinstrument).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.apps.funapi_app import create_app  # noqa: E402
from benchmarks.scenarios import TIMED, Scenario, base_environ, call, fresh_environ  # noqa: E402
from funapi_sync import App  # noqa: E402


def requests(app: App, scenario: Scenario, calls: int) -> float:
    """Make ``calls`` requests; return µs/request (pool drained, as in the benchmark)."""
    base = base_environ(scenario)
    environs = [fresh_environ(base, scenario.body) for _ in range(calls)]
    started = time.perf_counter_ns()
    for environ in environs:
        call(app, environ)
    app.background.drain(timeout=30)
    return (time.perf_counter_ns() - started) / 1000 / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--pyinstrument", action="store_true")
    args = parser.parse_args()
    app = create_app()
    for scenario in TIMED:
        requests(app, scenario, 500)  # warm-up
        plain = min(requests(app, scenario, args.calls) for _ in range(3))
        print(f"## {scenario.name}: {plain:.1f} µs/request unprofiled\n")
        profiler = cProfile.Profile()
        profiler.enable()
        requests(app, scenario, args.calls)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        total = stats.total_tt  # type: ignore[attr-defined]
        print(f"profiled: {total / args.calls * 1e6:.1f} µs/request; top by own time:\n")
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
        print("| own µs/req | cum µs/req | calls/req | function |\n|---|---|---|---|")
        for (filename, line, name), (_, ncalls, tottime, cumtime, _) in rows[: args.top]:
            where = _short(filename)
            print(
                f"| {tottime / args.calls * 1e6:.2f} | {cumtime / args.calls * 1e6:.2f}"
                f" | {ncalls / args.calls:.1f} | {where}:{line} {name} |"
            )
        print()
        if args.pyinstrument:
            from pyinstrument import Profiler

            tree = Profiler(interval=0.0001)
            tree.start()
            requests(app, scenario, args.calls)
            tree.stop()
            print("```")
            print(tree.output_text(unicode=True, color=False, show_all=False))
            print("```\n")
    return 0


def _short(filename: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


if __name__ == "__main__":
    sys.exit(main())
