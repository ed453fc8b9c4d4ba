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
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.apps import funapi_app, funapi_seed_app  # noqa: E402
from benchmarks.scenarios import TIMED, Scenario, base_environ, call, fresh_environ  # noqa: E402
from funapi_sync import App  # noqa: E402

#: (label, path suffix, function): the request path's stages, read from cumulative times.
STAGES = (
    ("App.__call__ (everything)", "funapi_sync/app.py", "__call__"),
    ("route match", "funapi_sync/routing/table.py", "match"),
    ("werkzeug Request() (runs on first read of req)", "werkzeug/wrappers/request.py", "__init__"),
    ("build_input", "funapi_sync/inputs.py", "build_input"),
    ("  request.args", "werkzeug/sansio/request.py", "args"),
    ("  read_body", "funapi_sync/_body.py", "read_body"),
    ("    request.mimetype", "werkzeug/sansio/request.py", "mimetype"),
    ("    request.content_length", "werkzeug/sansio/request.py", "content_length"),
    ("    request.get_data", "werkzeug/wrappers/request.py", "get_data"),
    ("    parse_json", "funapi_sync/_json.py", "parse_json"),
    ("    body schema load (marshmallow)", "funapi_sync/_body.py", "load"),
    ("  Input()", "funapi_sync/inputs.py", "__init__"),
    ("BackgroundTasks + add_task", "funapi_sync/background.py", "_add"),
    ("handler", "_app.py", ""),  # funapi_app.py or funapi_seed_app.py
    ("render (payload to JSON parts)", "funapi_sync/responses.py", "render"),
    ("  encode_json", "funapi_sync/_json.py", "encode_json"),
    ("send (start_response, body list)", "funapi_sync/responses.py", "send"),
    ("close(): AfterClose (Batch + submit)", "funapi_sync/after_close.py", "__call__"),
    ("  pool submit", "funapi_sync/pool.py", "submit"),
)


def stage_table(stats: pstats.Stats, calls: int, plain_us: float) -> str:
    """Cumulative time per stage, per request, and scaled to the unprofiled µs/request."""
    cumulative: dict[str, float] = {}
    for (filename, _, name), (_, _, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        for label, suffix, function in STAGES:
            if filename.endswith(suffix) and (name == function or not function):
                if function or label not in cumulative:
                    cumulative[label] = cumulative.get(label, 0.0) + cumtime
                else:  # the handler: its own top-level function only
                    cumulative[label] = max(cumulative[label], cumtime)
    whole = cumulative.get(STAGES[0][0]) or 1.0
    lines = ["| stage | share of App.__call__ | ≈ µs of the unprofiled request |", "|---|---|---|"]
    for label, _, _ in STAGES:
        if label in cumulative:
            share = cumulative[label] / whole
            lines.append(f"| {label} | {share:.0%} | {share * plain_us:.1f} |")
    return "\n".join(lines)


def requests(app: App, scenario: Scenario, calls: int) -> float:
    """Make ``calls`` requests; return µs/request (pool drained, as in the benchmark)."""
    base = base_environ(scenario)
    environs = [fresh_environ(base, scenario.body) for _ in range(calls)]
    started = time.perf_counter_ns()
    for environ in environs:
        call(app, environ)
    app.background.drain(timeout=30)
    return (time.perf_counter_ns() - started) / 1000 / calls


def task_cost(shape: str, rounds: int = 31, calls: int = 500) -> str:
    """The signup's one background task, whole: the app against itself without ``add_task``.

    cProfile sees only the request thread; the task's run on a pool thread (which the
    benchmark counts, since each batch ends with ``drain()``, and which a server pays on
    the same GIL) shows only in this difference. Interleaved rounds; median and fastest.
    """
    from benchmarks.apps.common import signup_payload

    app = (funapi_seed_app if shape == "seed" else funapi_app).create_app()
    without = App(title="Benchmark API, signup without its task")

    @without.post("/signup", body=funapi_app.SignupSchema, status_code=201)
    def signup(input: Any, *, background: Any) -> Any:
        return signup_payload(input.body)

    signup_scenario = next(s for s in TIMED if s.name == "signup")
    apps = {"with the task": app, "without add_task": without}
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for each in apps.values():
        requests(each, signup_scenario, calls)  # warm-up
    for round_ in range(rounds):
        for name in apps if round_ % 2 else reversed(list(apps)):
            samples[name].append(requests(apps[name], signup_scenario, calls))
    lines = ["| signup | median µs | fastest round µs |", "|---|---|---|"]
    for name, values in samples.items():
        lines.append(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} |")
    added = statistics.median(samples["with the task"]) - statistics.median(
        samples["without add_task"]
    )
    return "\n".join(lines) + f"\n\nOne background task costs {added:.1f} µs per request (median)."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--pyinstrument", action="store_true")
    parser.add_argument(
        "--shape",
        choices=("lean", "seed"),
        default="lean",
        help="lean handlers, or the seed's (input, req, task, *, background) on every route",
    )
    args = parser.parse_args()
    app = (funapi_seed_app if args.shape == "seed" else funapi_app).create_app()
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
        print(stage_table(stats, args.calls, plain) + "\n")
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
    print("## signup's background task, request thread and pool thread together\n")
    print(task_cost(args.shape) + "\n")
    return 0


def _short(filename: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


if __name__ == "__main__":
    sys.exit(main())
