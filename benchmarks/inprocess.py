"""In-process timing: direct WSGI calls with prebuilt environs, rounds interleaved across apps."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from .scenarios import TIMED, base_environ, call, drain_of, fresh_environ

#: Time limit for one app's batch, so a pathological slowdown cannot hang the run.
BATCH_SECONDS = 10.0


def time_batch(
    app: Callable[..., Any],
    base: dict[str, Any],
    body: bytes,
    calls: int,
    finish: Callable[[], Any],
) -> float:
    """Mean µs per request over one batch of ``calls`` requests, ``finish()`` included.

    The environs are built before the clock starts; ``finish`` (draining funapi_sync's pool)
    is timed, so work moved to another thread is not hidden from the figure (the ``_pool``
    peers' executors are drained alike).
    """
    environs = [fresh_environ(base, body) for _ in range(calls)]
    deadline = time.perf_counter() + BATCH_SECONDS
    started = time.perf_counter_ns()
    done = 0
    for environ in environs:
        call(app, environ)
        done += 1
        if not done % 256 and time.perf_counter() > deadline:
            break
    finish()
    return (time.perf_counter_ns() - started) / 1000 / done


def run(
    apps: dict[str, Callable[..., Any]], rounds: int, calls: int, seed: int = 7
) -> dict[str, dict[str, float]]:
    """Return ``{scenario: {app: median µs/request}}``; each round visits apps in a new order."""
    finishers = {name: drain_of(name, app) for name, app in apps.items()}
    shuffle = random.Random(seed).shuffle
    results: dict[str, dict[str, float]] = {}
    for scenario in TIMED:
        base = base_environ(scenario)
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for name, app in apps.items():  # warm-up: caches, lazy pools, first-request setup
            time_batch(app, base, scenario.body, min(calls, 200), finishers[name])
        order = list(apps)
        for _ in range(rounds):
            shuffle(order)
            for name in order:
                samples[name].append(
                    time_batch(apps[name], base, scenario.body, calls, finishers[name])
                )
        results[scenario.name] = {name: statistics.median(s) for name, s in samples.items()}
    return results
