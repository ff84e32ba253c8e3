"""The cost of the opt-in security features: signed payloads, hashed keys, regenerate_id().

    .venv/bin/python -m benchmarks.security            # about 20 seconds
    .venv/bin/python -m benchmarks.security --quick

Against a throwaway Redis on a free 127.0.0.1 port, in this process:

- the codec alone: encode + decode of a small and a ~20 KB session, plain vs wrapped in
  the ``SigningCodec`` of ``sign_payloads`` (the MAC, its check, the 34 bytes);
- whole read and write requests (WSGI, in process) with the defaults, with
  ``sign_payloads``, and with ``hash_keys``, with the server's command counts;
- a login request calling ``regenerate_id()`` vs the same write without it, and the one
  search per Cluster hash slot and process that picks a tag for the new id's slot.

Samples alternate between the compared cases; figures are medians in microseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import webtest
from pyramid.request import Request

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.codec import Codec, SafeCodec, SessionRecord
from pyramid_session_redis.integrity import SigningCodec
from pyramid_session_redis.keys import slot_tags
from pyramid_session_redis.lock import tag_for_slot
from tests.app import build_wsgi_app
from tests.redis_stats import CommandCounter
from tests.servers import RedisServerProcess, find_server_binary

from .conflicts import round_trips
from .workloads import SEEDS


def median_us(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e6, 1)


def bench_codec(rounds: int) -> dict[str, float]:
    """µs per encode + decode, plain vs signed, small and large session."""
    codecs: dict[str, Codec] = {
        "plain": SafeCodec(1024),
        "signed": SigningCodec(SafeCodec(1024), b"k" * 32, True).for_key("k" * 64),
    }
    out = {}
    for name in ("small", "large"):
        record = SessionRecord(dict(SEEDS[name]), 1_700_000_000, None, None)
        samples: dict[str, list[float]] = {case: [] for case in codecs}
        for _ in range(rounds):
            for case, codec in codecs.items():
                started = time.perf_counter()
                codec.decode(codec.encode(record))
                samples[case].append(time.perf_counter() - started)
        for case, series in samples.items():
            out[f"encode+decode {name}, {case}"] = median_us(series)
    return out


def login(request: Request) -> Any:
    request.session.regenerate_id()
    request.session["user"] = "42"
    return "ok"


def bench_requests(url: str, rounds: int, counter: CommandCounter) -> dict[str, Any]:
    """µs and server-side commands per request, per configuration."""
    configs: dict[str, dict[str, Any]] = {
        "defaults": {},
        "sign_payloads": {"sign_payloads": True},
        "hash_keys": {"hash_keys": True},
    }
    apps = {
        name: webtest.TestApp(
            build_wsgi_app(
                RedisSessionFactory("secret", redis_url=url, **options), {"login": login}
            )
        )
        for name, options in configs.items()
    }
    for app in apps.values():
        app.get("/set", {"key": "big", "value": json.dumps(SEEDS["large"])})
        app.get("/set", {"key": "n", "value": "0"})
    requests: dict[str, Callable[[webtest.TestApp, int], Any]] = {
        "read (20 KB session)": lambda app, n: app.get("/read", {"key": "n"}),
        "write (20 KB session)": lambda app, n: app.get("/set", {"key": "n", "value": str(n)}),
        "login: regenerate_id() + write": lambda app, n: app.get("/login"),
    }
    out: dict[str, Any] = {}
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
            out[f"{request_name}, {name}"] = {
                "us": median_us(samples[name]),
                "round trips": round_trips(counter.counts()),
            }
    return out


def bench_tag_search(slots: int) -> dict[str, float]:
    """µs to find the tag of a slot: searched per slot, vs the table built once."""
    tag_for_slot.cache_clear()
    samples = []
    for slot in range(0, 16384, 16384 // slots):
        started = time.perf_counter()
        tag_for_slot(slot)
        samples.append(time.perf_counter() - started)
    slot_tags.cache_clear()
    started = time.perf_counter()
    slot_tags()
    table = time.perf_counter() - started
    return {
        "tag_for_slot(), a slot not seen before, median": median_us(samples),
        "tag_for_slot(), worst seen": median_us([max(samples)]),
        "slot_tags(): every slot, once per process": median_us([table]),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.security")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rounds = 50 if args.quick else 400
    with RedisServerProcess(find_server_binary()) as server:
        counter = CommandCounter(server.client())
        results = {
            "codec": bench_codec(rounds * 5),
            "requests": bench_requests(server.url, rounds, counter),
            "regenerate_id tag search": bench_tag_search(16 if args.quick else 128),
        }
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
