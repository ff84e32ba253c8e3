"""Timing whole requests of several apps, alternated sample by sample (in process)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import webtest

from tests.redis_stats import CommandCounter

Send = Callable[[webtest.TestApp, int], Any]


def median_us(samples: list[float]) -> float:
    """The median of ``samples`` (seconds) in microseconds, to 0.1 µs."""
    return round(statistics.median(samples) * 1e6, 1)


def round_trips(counts: Mapping[str, int]) -> int:
    """Commands the client sent: script calls, not the commands that ran inside them."""
    scripts = counts.get("evalsha", 0) + counts.get("eval", 0)
    if scripts:
        return scripts + counts.get("getex", 0)
    return sum(counts.values())


def time_requests(
    apps: Mapping[str, webtest.TestApp],
    requests: Mapping[str, Send],
    rounds: int,
    counter: CommandCounter,
) -> dict[str, dict[str, Any]]:
    """Per request and app: median µs over ``rounds`` alternated samples, then the round
    trips and server-side commands of one more request."""
    out: dict[str, dict[str, Any]] = {}
    for request_name, send in requests.items():
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for n in range(rounds):
            for name, app in apps.items():
                started = time.perf_counter()
                send(app, n)
                samples[name].append(time.perf_counter() - started)
        for name, app in apps.items():
            counter.reset()
            send(app, rounds)
            counts = counter.counts()
            out[f"{request_name}, {name}"] = {
                "us": median_us(samples[name]),
                "round trips": round_trips(counts),
                "server commands": dict(counts),
            }
    return out
