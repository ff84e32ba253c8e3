"""The payload serializer: candidates compared on speed, size and round-trip guarantees.

    .venv/bin/python -m benchmarks.codecs              # about 30 seconds
    .venv/bin/python -m benchmarks.codecs --quick

Candidates (ormsgpack and orjson come with the ``bench`` extra; one that is not installed
is skipped):

- ``v1 tagged JSON``: the format of payload markers 0x01-0x03 (stdlib ``json`` plus tags);
- ``v2 msgspec``: today's serializer (MessagePack through msgspec, extension types; the
  session's top-level hex tokens stored as bytes);
- ``ormsgpack``: the same extension types through ormsgpack's ``default`` hook, with its
  pass-through options (tuples, datetimes, UUIDs, subclasses, enums, big ints go to the
  hook);
- ``orjson``: JSON with a ``default`` hook for what it cannot write (no hook exists for
  tuples, and nothing turns tags back into values when loading);
- ``pickle``: what 1.8 stored (it runs code when loading; for reference only).

For each: CPU microseconds (the thread's CPU time: steadier than wall time on a
shared machine) to encode plus decode the benchmark sessions (``workloads.SEEDS``
small and large, and a small session with a datetime, a tuple, a set, a Decimal and a
UUID), their size, and how many of the safe serializer's round-trip cases (every type,
nested, big ints, 1 vs 1.0 vs True, list vs tuple, set vs frozenset, key types, refusing
unsupported types) each passes. Samples of the candidates alternate; the figure is the
best round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time as clock
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from pyramid_session_redis import serializer, tagged_json
from tests import tagged_json_writer
from tests.test_tagged_json import CONTAINERS, MIXED, SCALARS, Color, MyStr, Thing, typed

from .workloads import SEEDS

Candidate = tuple[Callable[[Any], bytes], Callable[[bytes], Any]]

RICH = {
    **SEEDS["small"],
    "login_at": datetime(2026, 11, 30, 0, 1, 2, tzinfo=timezone.utc),
    "cart": [("sku-1", 2), ("sku-2", 1)],
    "seen": {3, 1, 2},
    "total": Decimal("19.90"),
    "tenant": UUID("0f0e0d0c-0b0a-0908-0706-050403020100"),
}
SESSIONS = {"small": SEEDS["small"], "large": SEEDS["large"], "rich": RICH}
STRICTNESS = [
    [1, 1.0, True, Decimal("1"), "1", b"1"],
    [(1, 2), [1, 2], {1, 2}, frozenset({1, 2})],
    {1: "int key", (1, 2): "tuple key", None: "none key"},
    [2**63, 2**64, -(2**63) - 1, 10**400],
]
UNSUPPORTED = [bytearray(b"x"), memoryview(b"x"), Color.RED, MyStr("s"), Thing(), (Color.RED,)]


def _pickle() -> Candidate:
    import pickle

    return (lambda value: pickle.dumps(value, 5)), pickle.loads


def _ormsgpack() -> Candidate:
    import ormsgpack

    options = (
        ormsgpack.OPT_PASSTHROUGH_TUPLE
        | ormsgpack.OPT_PASSTHROUGH_DATETIME
        | ormsgpack.OPT_PASSTHROUGH_UUID
        | ormsgpack.OPT_PASSTHROUGH_SUBCLASS
        | ormsgpack.OPT_PASSTHROUGH_ENUM
        | ormsgpack.OPT_PASSTHROUGH_DATACLASS
        | ormsgpack.OPT_PASSTHROUGH_BIG_INT
    )

    def pack(code: int, items: Any) -> Any:
        return ormsgpack.Ext(code, ormsgpack.packb(items, default=default, option=options))

    def default(value: Any) -> Any:
        """The extension types of v2, their inner arrays packed by ormsgpack."""
        kind = type(value)
        if kind is tuple:
            return pack(serializer.TUPLE, list(value))
        if kind in (set, frozenset):
            code = serializer.SET if kind is set else serializer.FROZENSET
            return pack(code, serializer._sorted_items(value, exact=True))
        if kind is timedelta:
            return pack(serializer.TIMEDELTA, [value.days, value.seconds, value.microseconds])
        if kind in (int, Decimal, UUID, datetime, date, time):
            ext = serializer._tree(value, exact=True)
            return ormsgpack.Ext(ext.code, ext.data)
        raise TypeError(f"cannot serialize {kind.__name__}")

    def hook(code: int, data: bytes) -> Any:
        return serializer._BUILDERS[code](memoryview(data))

    def dumps(value: Any) -> bytes:
        return ormsgpack.packb(value, default=default, option=options)

    return dumps, lambda raw: ormsgpack.unpackb(raw, ext_hook=hook)


def _orjson() -> Candidate:
    import orjson

    def default(value: Any) -> Any:
        if type(value) in (set, frozenset):
            return sorted(value)
        if type(value) in (bytes, Decimal):
            return str(value)
        raise TypeError(type(value).__name__)

    return (lambda value: orjson.dumps(value, default=default)), orjson.loads


def candidates() -> dict[str, Candidate]:
    found: dict[str, Candidate] = {
        "v1 tagged JSON": (tagged_json_writer.dumps, tagged_json.loads),
        "v2 msgspec (default)": (serializer.dumps_data, serializer.loads),
    }
    for name, make in (("ormsgpack", _ormsgpack), ("orjson", _orjson), ("pickle", _pickle)):
        with contextlib.suppress(ImportError):  # not installed: skipped
            found[name] = make()
    return found


def guarantees(dumps: Callable[[Any], bytes], loads: Callable[[bytes], Any]) -> dict[str, Any]:
    """How many round-trip cases come back exactly, and unsupported values are refused.

    Each case is a value in a session dict, as the codec stores it.
    """
    cases = [*SCALARS, *CONTAINERS, MIXED, *STRICTNESS]
    cases += [[value, (value,), {"k": value}, {0: value}] for value in SCALARS + CONTAINERS]
    exact = 0
    for value in cases:
        with contextlib.suppress(Exception):  # refused or failed: not exact
            exact += typed(loads(dumps({"v": value}))["v"]) == typed(value)
    refused = 0
    for value in UNSUPPORTED:
        try:
            dumps({"k": value})
        except (TypeError, ValueError):
            refused += 1
    return {
        "exact round trips": f"{exact}/{len(cases)}",
        "refused": f"{refused}/{len(UNSUPPORTED)}",
    }


def bench(found: dict[str, Candidate], rounds: int, budget_s: float) -> dict[str, Any]:
    """CPU µs of encode + decode per session and candidate, best of the rounds (the
    least disturbed by other work on the machine, as ``timeit`` advises); bytes."""
    samples: dict[tuple[str, str], list[float]] = {}
    sizes: dict[tuple[str, str], int] = {}
    for session, value in SESSIONS.items():
        loops = 20 if session == "large" else 500
        for name, (dumps, _) in found.items():
            sizes[name, session] = len(dumps(value))
        deadline = clock.perf_counter() + budget_s
        for _ in range(rounds):
            for name, (dumps, loads) in found.items():
                started = clock.thread_time()
                for _ in range(loops):
                    loads(dumps(value))
                elapsed = (clock.thread_time() - started) / loops
                samples.setdefault((name, session), []).append(elapsed * 1e6)
            if clock.perf_counter() > deadline:
                break
    return {
        name: {
            session: {
                "us": round(min(samples[name, session]), 2),
                "bytes": sizes[name, session],
            }
            for session in SESSIONS
        }
        for name in found
    }


def markdown(results: dict[str, Any]) -> str:
    rows = [
        "| serializer | small CPU µs / bytes | large CPU µs / bytes | rich CPU µs / bytes "
        "| exact round trips "
        "| unsupported refused |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, result in results.items():
        cells = [f"{result[s]['us']:.1f} / {result[s]['bytes']}" for s in SESSIONS]
        rows.append(
            f"| {name} | {' | '.join(cells)} | {result['exact round trips']} "
            f"| {result['refused']} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    found = candidates()
    rounds, budget = (5, 5.0) if args.quick else (41, 30.0)
    results = bench(found, rounds, budget)
    for name, (dumps, loads) in found.items():
        results[name].update(guarantees(dumps, loads))
    print(markdown(results) if args.markdown else json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
