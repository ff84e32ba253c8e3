"""Timeouts: Redis TTLs, payload expiry, timeout triggers and LRU mode."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from pyramid_session_redis.codec import SafeCodec
from pyramid_session_redis.exceptions import InvalidSession_PayloadTimeout
from tests.app import make_app
from tests.redis_stats import CommandCounter
from tests.test_commands import start_session

CODEC = SafeCodec()


def rewrite_expiry(client: redis.Redis, key: str, expires: int) -> None:
    """Move a stored session's payload expiry, keeping its TTL (simulates elapsed time)."""
    record = CODEC.decode(client.get(key))
    record.expires = expires
    client.set(key, CODEC.encode(record), keepttl=True)


def test_reads_after_a_pause_refresh_the_ttl_without_rewriting(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    # 1.8.1 rewrote the whole payload on any read more than a second after a write.
    app = make_app(redis_url, timeout=300)
    session_id = start_session(app, a=[1, 2])
    payload = redis_client.get(session_id)
    time.sleep(1.1)
    commands.reset()
    assert app.get("/dump").json == {"a": [1, 2]}
    assert commands.counts() == {"getex": 1}
    assert redis_client.get(session_id) == payload


def test_no_timeout_means_no_ttl_and_a_plain_get(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, timeout=0)
    session_id = start_session(app, a=1)
    commands.reset()
    assert app.get("/read", {"key": "a"}).json == 1
    assert commands.counts() == {"get": 1}
    assert redis_client.ttl(session_id) == -1


def test_trigger_reached_rewrites_expiry_and_ttl(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter, native_cas: bool
) -> None:
    app = make_app(redis_url, timeout=1200, timeout_trigger=600)
    session_id = start_session(app, a=0)
    app.get("/set", {"key": "a", "value": "1"})  # caches the compare-and-set script
    now = int(time.time())
    rewrite_expiry(redis_client, session_id, now + 600)  # 600 s left: trigger reached
    redis_client.expire(session_id, 600)
    commands.reset()
    assert app.get("/read", {"key": "a"}).json == 1
    # the load's GET, then one compare-and-set: a native SET IFEQ, or an EVALSHA whose
    # script runs a GET and a SET inside Redis
    script = {"get": 2, "evalsha": 1, "set": 1}
    assert commands.counts() == ({"get": 1, "set": 1} if native_cas else script)
    record = CODEC.decode(redis_client.get(session_id))
    assert now + 1195 <= record.expires <= now + 1201
    assert redis_client.ttl(session_id) > 1190


def test_trigger_not_reached_sends_nothing_more(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, timeout=1200, timeout_trigger=600)
    session_id = start_session(app, a=1)
    rewrite_expiry(redis_client, session_id, int(time.time()) + 601)
    commands.reset()
    app.get("/read", {"key": "a"})
    assert commands.counts() == {"get": 1}


@pytest.mark.parametrize("options", [{"set_redis_ttl": False}, {"timeout_trigger": 60}])
def test_payload_expiry_is_enforced(
    redis_url: str, redis_client: redis.Redis, options: dict[str, Any]
) -> None:
    reports: list[Exception] = []
    app = make_app(
        redis_url, timeout=300, func_invalid_logger=lambda r, e: reports.append(e), **options
    )
    session_id = start_session(app, a=1)
    rewrite_expiry(redis_client, session_id, int(time.time()) - 1)
    reports.clear()
    assert app.get("/dump").json == {}
    assert [type(r) for r in reports] == [InvalidSession_PayloadTimeout]


def test_lru_mode_slides_the_payload_expiry(redis_url: str, redis_client: redis.Redis) -> None:
    app = make_app(redis_url, timeout=300, set_redis_ttl=False)
    session_id = start_session(app, a=1)
    rewrite_expiry(redis_client, session_id, int(time.time()) + 10)
    app.get("/read", {"key": "a"})
    record = CODEC.decode(redis_client.get(session_id))
    assert record.expires is not None and record.expires >= int(time.time()) + 295
    assert redis_client.ttl(session_id) == -1


def test_readheavy_reads_keep_the_data(redis_url: str, redis_client: redis.Redis) -> None:
    # 1.8.1's readheavy mode failed every read of an existing session.
    app = make_app(
        redis_url, set_redis_ttl_readheavy=True, python_expires=False, deserialized_fails_new=True
    )
    session_id = start_session(app, a=1)
    redis_client.expire(session_id, 5)
    for _ in range(3):
        assert app.get("/read", {"key": "a"}).json == 1
    assert redis_client.ttl(session_id) > 1000
