"""Redis memory per stored session: ours, 1.8.1's, and a dense layout packed into hashes.

    .venv/bin/python -m benchmarks.memory              # 100,000 sessions per layout
    .venv/bin/python -m benchmarks.memory --sessions 10000 --markdown

Against a throwaway server on a free 127.0.0.1 port (``PSR_REDIS_SERVER`` picks the
binary), each layout stores the same number of small sessions (``workloads.SEEDS
["small"]``) after a ``FLUSHALL``, with the TTL each library sets, and reports the growth
of ``INFO memory`` ``used_memory`` per session, plus ``STRLEN`` and ``MEMORY USAGE`` of
one key.

- ``ours``: the default codec (MessagePack envelope; the factory's timeout is not
  stored), a 64-hex-character id as the key, ``SET … EX 1200``;
- ``ours, format 1``: the same session in the tagged-JSON envelope of the previous
  release (markers 0x01-0x03);
- ``1.8.1``: 1.8.1's payload, the pickle of ``{"m": data, "c": created, "v": 1, "x":
  expires, "t": timeout}`` as written by this library's ``LegacyCodec`` with
  ``pickle.dumps`` (the interoperability tests check those bytes are identical to the
  real 1.8.1's), under a 64-character URL-safe id as 1.8.1 makes them, with a TTL;
- ``dense``: sessions packed into 4,096 hashes (the first three hex digits of the id
  pick the hash, the rest is the field), as django-redisession did; once with the
  server's default listpack limits and once with ``hash-max-listpack-value`` raised so
  that small payloads fit a listpack. Per-field expiry needs ``HEXPIRE`` (Redis 7.4+,
  Valkey 9); whether the server has it is reported. Without it, the fields carry no TTL.
"""

from __future__ import annotations

import argparse
import json
import pickle
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from pyramid_session_redis.codec import LegacyCodec, SafeCodec, SessionRecord
from tests import tagged_json_writer
from tests.servers import RedisServerProcess, find_server_binary

from .workloads import SEEDS

TIMEOUT = 1200
BUCKET_DIGITS = 3  # 4,096 hashes
CHUNK = 1000
Store = Callable[[redis.Redis, list[tuple[str, bytes]]], None]


def ours_payload(created: int) -> bytes:
    return SafeCodec(1024, "zstd").encode(SessionRecord(dict(SEEDS["small"]), created))


def format_1_payload(created: int) -> bytes:
    """The previous release's envelope: the same header, marker 0x01, tagged JSON."""
    header = ours_payload(created)[1:7]
    return b"\x01" + header + tagged_json_writer.dumps(dict(SEEDS["small"]))[1:]


def legacy_payload(created: int) -> bytes:
    codec = LegacyCodec(pickle.dumps, pickle.loads)
    return codec.encode(SessionRecord(dict(SEEDS["small"]), created, TIMEOUT, created + TIMEOUT))


def plain_keys(client: redis.Redis, sessions: list[tuple[str, bytes]]) -> None:
    pipe = client.pipeline(transaction=False)
    for key, payload in sessions:
        pipe.set(key, payload, ex=TIMEOUT)
    pipe.execute()


def dense(client: redis.Redis, sessions: list[tuple[str, bytes]]) -> None:
    pipe = client.pipeline(transaction=False)
    for key, payload in sessions:
        pipe.hset(f"s:{key[:BUCKET_DIGITS]}", key[BUCKET_DIGITS:], payload)
    pipe.execute()


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def has_hexpire(client: redis.Redis) -> bool:
    client.hset("probe", "f", "v")
    try:
        client.execute_command("HEXPIRE", "probe", TIMEOUT, "FIELDS", 1, "f")
    except redis.ResponseError:
        return False
    finally:
        client.delete("probe")
    return True


def measure(
    client: redis.Redis, store: Store, ids: Iterator[str], payload: bytes, count: int
) -> dict[str, Any]:
    client.flushall()
    time.sleep(0.2)
    before = used_memory(client)
    first = ""
    for start in range(0, count, CHUNK):
        batch = [(next(ids), payload) for _ in range(min(CHUNK, count - start))]
        first = first or batch[0][0]
        store(client, batch)
    after = used_memory(client)
    result: dict[str, Any] = {
        "payload bytes": len(payload),
        "used_memory per session": round((after - before) / count, 1),
    }
    if store is plain_keys:
        result["MEMORY USAGE of one key"] = client.memory_usage(first)
    else:
        result["hash encoding"] = client.object("encoding", f"s:{first[:BUCKET_DIGITS]}")
    return result


def hex_ids() -> Iterator[str]:
    while True:
        yield secrets.token_hex(32)


def urlsafe_ids() -> Iterator[str]:
    while True:
        yield secrets.token_urlsafe(48)


def per_session(client: redis.Redis, count: int) -> dict[str, float]:
    """``used_memory`` growth per session, ours and 1.8.1's (plain keys; for the suite)."""
    created = int(time.time())
    return {
        variant: measure(client, plain_keys, ids, payload, count)["used_memory per session"]
        for variant, ids, payload in (
            ("ours", hex_ids(), ours_payload(created)),
            ("legacy", urlsafe_ids(), legacy_payload(created)),
        )
    }


def run(count: int) -> dict[str, Any]:
    created = int(time.time())
    ours = ours_payload(created)
    with RedisServerProcess(find_server_binary()) as server:
        client = server.client()
        results: dict[str, Any] = {
            "server": ".".join(map(str, server.version)),
            "sessions": count,
            "HEXPIRE": has_hexpire(client),
        }
        layouts = {
            "ours": (plain_keys, hex_ids(), ours),
            "ours, format 1": (plain_keys, hex_ids(), format_1_payload(created)),
            "1.8.1": (plain_keys, urlsafe_ids(), legacy_payload(created)),
            "dense, default listpack limits": (dense, hex_ids(), ours),
        }
        for name, (store, ids, payload) in layouts.items():
            results[name] = measure(client, store, ids, payload, count)
        default_limit = client.config_get("hash-max-listpack-value")["hash-max-listpack-value"]
        client.config_set("hash-max-listpack-value", 256)
        try:
            results["dense, hash-max-listpack-value 256"] = measure(
                client, dense, hex_ids(), ours, count
            )
        finally:
            client.config_set("hash-max-listpack-value", default_limit)
        client.close()
    legacy = results["1.8.1"]["used_memory per session"]
    for name in layouts.keys() | {"dense, hash-max-listpack-value 256"}:
        result = results[name]
        result["vs 1.8.1"] = round(result["used_memory per session"] / legacy, 2)
    return results


def markdown(results: dict[str, Any]) -> str:
    rows = [
        f"Redis {results['server']}, {results['sessions']:,} small sessions, "
        f"HEXPIRE {'available' if results['HEXPIRE'] else 'not available'}",
        "",
        "| layout | payload bytes | used_memory per session | vs 1.8.1 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, result in results.items():
        if isinstance(result, dict):
            rows.append(
                f"| {name} | {result['payload bytes']} | {result['used_memory per session']} "
                f"| {result['vs 1.8.1']}x |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    results = run(args.sessions)
    print(markdown(results) if args.markdown else json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
