"""The cost of the write path's concurrency work: the merge, a conflict, the lock.

    .venv/bin/python -m benchmarks.conflicts            # about 20 seconds
    .venv/bin/python -m benchmarks.conflicts --quick

Against a throwaway Redis on a free 127.0.0.1 port, in this process:

- ``merge()`` alone on a small and a ~20 KB session where each side changed one key;
- a save through :class:`~pyramid_session_redis.persist.SessionWriter` that wins at once
  vs one that lost a race first (another client wrote a key in between): the difference
  is the conflict path (the reply, the decode, the merge, the second write);
- a whole read-only and write request (WSGI, in process) with ``persistence="cas"`` vs
  ``"lock"``, uncontended: the lock's price, and the round trips counted by the server.

Samples alternate between the compared cases; figures are medians in microseconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import redis
import webtest

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.codec import SafeCodec, SessionRecord
from pyramid_session_redis.merge import merge
from pyramid_session_redis.persist import SessionWriter
from pyramid_session_redis.settings import build_settings
from pyramid_session_redis.state import SessionState
from tests.app import build_wsgi_app
from tests.redis_stats import CommandCounter
from tests.servers import RedisServerProcess, find_server_binary

from .interleaved import Send, median_us, time_requests
from .workloads import SEEDS


def bench_merge(rounds: int) -> dict[str, float]:
    """µs per ``merge()`` of two one-key changes, small and large session."""
    out = {}
    for name in ("small", "large"):
        base = dict(SEEDS[name])
        ours, theirs = {**base, "mine": 1}, {**base, "theirs": 2}
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            merge(base, ours, theirs)
            samples.append(time.perf_counter() - started)
        out[f"merge() {name}"] = median_us(samples)
    return out


def bench_conflict(url: str, rounds: int) -> dict[str, float]:
    """µs per save without and with one lost race (small and large session)."""
    codec, settings = SafeCodec(), build_settings("secret")
    factory = RedisSessionFactory("secret", redis_url=url)
    other = redis.Redis.from_url(url)
    store = factory.store_for(None)
    writer = SessionWriter(store, codec, settings, on_conflict=lambda keys: None)
    out: dict[str, float] = {}
    try:
        for name in ("small", "large"):
            samples: dict[str, list[float]] = {"no conflict": [], "one conflict": []}
            for n in range(rounds):
                for case, series in samples.items():
                    key = f"bench:{name}:{case}:{n}"
                    loaded = codec.encode(SessionRecord(dict(SEEDS[name]), 0))
                    other.set(key, loaded)
                    state = SessionState(codec.decode(loaded), loaded, codec.unpack(loaded))
                    state.assign("mine", n)
                    if case == "one conflict":
                        theirs = SessionRecord({**SEEDS[name], "theirs": n}, 0)
                        other.set(key, codec.encode(theirs))
                    plain = codec.encode_plain(state.record)
                    started = time.perf_counter()
                    writer.save(state, key, plain, lambda: 60, None)
                    series.append(time.perf_counter() - started)
                    other.delete(key)
            for case, series in samples.items():
                out[f"save, {case}, {name}"] = median_us(series)
    finally:
        other.close()
    return out


def bench_lock(url: str, rounds: int, counter: CommandCounter) -> dict[str, Any]:
    """µs and server-side commands per request, persistence cas vs lock, uncontended."""
    apps = {
        mode: webtest.TestApp(
            build_wsgi_app(RedisSessionFactory("secret", redis_url=url, persistence=mode))
        )
        for mode in ("cas", "lock")
    }
    for app in apps.values():
        app.get("/set", {"key": "user", "value": "42"})
        app.get("/set", {"key": "n", "value": "0"})
    requests: dict[str, Send] = {
        "read": lambda app, n: app.get("/read", {"key": "user"}),
        "write": lambda app, n: app.get("/set", {"key": "n", "value": str(n)}),
    }
    return time_requests(apps, requests, rounds, counter)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conflicts")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rounds = 50 if args.quick else 400
    with RedisServerProcess(find_server_binary()) as server:
        counter = CommandCounter(server.client())
        results = {
            "merge": {k: round(v, 1) for k, v in bench_merge(rounds * 5).items()},
            "conflict": {k: round(v, 1) for k, v in bench_conflict(server.url, rounds).items()},
            "lock": bench_lock(server.url, rounds, counter),
        }
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
