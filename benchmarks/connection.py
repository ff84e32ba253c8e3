"""Micro-benchmark of one command's path: µs per ``GET`` of a 200-byte value.

    .venv/bin/python -m benchmarks.connection [--calls N] [--rounds N]

Compares, in one interleaved run against a throwaway server, the ways a command can
reach Redis: redis-py's client (``Redis.get``), redis-py's public per-connection API
(``send_packed_command`` + ``read_response``, with and without the ``can_read`` poll
that detects a dropped idle connection), and :class:`~pyramid_session_redis.channel.
DirectChannel` as the session uses it. Each is measured with redis-py's Python parser
and, when ``hiredis`` is installed, with hiredis: every parser runs in its own
process (redis-py picks its parser at import time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

VALUE = b"v" * 200
KEY = "bench:connection"


def paths(port: int) -> dict[str, Callable[[], Any]]:
    """The command paths to time, each a zero-argument call doing one GET."""
    import redis

    from pyramid_session_redis.channel import DirectChannel

    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    client.set(KEY, VALUE)
    connection = redis.Connection(host="127.0.0.1", port=port)
    connection.connect()
    packed = connection.pack_command("GET", KEY)
    channel = DirectChannel(redis.ConnectionPool.from_url(url))

    def public() -> Any:
        connection.send_packed_command(connection.pack_command("GET", KEY), check_health=False)
        return connection.read_response(disable_decoding=True)

    def public_polled() -> Any:
        if connection.can_read():
            raise AssertionError("unexpected bytes")
        return public()

    def public_prepacked() -> Any:
        connection.send_packed_command(packed, check_health=False)
        return connection.read_response(disable_decoding=True)

    return {
        "redis-py client": lambda: client.get(KEY),
        "public per-connection": public,
        "public + can_read poll": public_polled,
        "public, packed once": public_prepacked,
        "DirectChannel": lambda: channel.execute("GET", KEY),
    }


def measure(port: int, calls: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) µs per call of every path, the paths interleaved round by round.

    CPU is this thread's CPU time: what the path costs the client, less disturbed than
    wall time by other work on a shared machine.
    """
    timed = paths(port)
    for call in timed.values():
        assert call() == VALUE
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in timed}
    for _ in range(rounds):
        for name, call in timed.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            for _ in range(calls):
                call()
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            samples[name].append((wall / calls * 1e6, cpu / calls * 1e6))
    return {
        name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for name, values in samples.items()
    }


def worker(port: int, calls: int, rounds: int, without_hiredis: bool) -> None:
    if without_hiredis:
        sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py sees no hiredis
    from redis.utils import HIREDIS_AVAILABLE

    result: dict[str, Any] = {"parser": "hiredis" if HIREDIS_AVAILABLE else "python"}
    result.update(measure(port, calls, rounds))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--without-hiredis", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.calls, args.rounds, args.without_hiredis)
        return

    from tests.servers import RedisServerProcess

    with RedisServerProcess() as server:
        results = []
        for flag in (["--without-hiredis"], []):
            command = [sys.executable, "-m", "benchmarks.connection", "--worker", str(server.port)]
            command += ["--calls", str(args.calls), "--rounds", str(args.rounds), *flag]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            results.append(json.loads(output))
    names = [name for name in results[0] if name != "parser"]
    columns = [f"{r['parser']} parser: µs wall / µs CPU" for r in results]
    print("| path (one GET of 200 bytes) | " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * len(results))
    for name in names:
        cells = [f"{r[name][0]:.1f} / {r[name][1]:.1f}" for r in results]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
