"""``persistence = lock``: the store's lock operations against a real server.

One request of a session at a time: the load takes the lock, the write (or refresh,
delete, plain release) drops it, each in one round trip. A lease frees the lock of a
holder that died; a token fences off a writer whose lease ran out. Waiting is bounded
and ends in ``SessionLockTimeout``. (Same-slot keys on a real cluster: test_cluster.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from pyramid_session_redis.channel import ClientChannel, DirectChannel
from pyramid_session_redis.exceptions import SessionBackendError, SessionLockTimeout
from pyramid_session_redis.lock import (
    FIRST_DELAY,
    MAX_DELAY,
    TAG_SEARCH_LIMIT,
    LockedLoad,
    LockOutcome,
    acquire_and_load,
    hash_tag,
    lock_key,
    new_token,
    poll_delays,
    tag_for_slot,
)
from pyramid_session_redis.store import RedisStore, ServerFeatures, WrongTypeError
from tests.redis_stats import CommandCounter

KEY = "sess:0123abcd"
LOCK = lock_key(KEY)
LEASE_MS = 10_000


@pytest.fixture(params=["direct", "client"])
def store(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> Iterator[RedisStore]:
    """A store over our own connections, and over a redis-py client (a user's pool)."""
    pool = redis.ConnectionPool.from_url(redis_url)
    client = redis.Redis(connection_pool=pool)
    channel = DirectChannel(pool) if request.param == "direct" else ClientChannel(client)
    yield RedisStore(channel, ServerFeatures())
    client.close()
    pool.disconnect()


def lock_holder(client: redis.Redis) -> bytes | None:
    value = client.get(LOCK)
    assert value is None or isinstance(value, bytes)
    return value


def wait_for_lease_end(client: redis.Redis, key: str = LOCK) -> None:
    """Block until the server has expired the lock (a dead holder's lease ran out)."""
    deadline = time.monotonic() + 5
    while client.exists(key):
        assert time.monotonic() < deadline, "the lease never ran out"
        time.sleep(0.005)


# --------------------------------------------------------------------------- the lock key

# Session keys of every shape: generated ids, prefixes, prefixes with a hash tag, and
# the brace placements for which Redis hashes the whole key.
AWKWARD_KEYS = [
    "0123abcd" * 8,
    "shop:0123abcd",
    "{shop}:0123abcd",
    "pre{fix}:{id}",
    "a{b",
    "a}b",
    "{}abc",
    "}{a}",
    "x{}y}z",
    "{",
    "}",
    "",
    "ünï{cödé}",
    "ünï}cödé",
    "{abc}:lock",
]


@pytest.mark.parametrize(
    ("key", "tag"),
    [("abc", None), ("{a}bc", "a"), ("x{a}{b}", "a"), ("{}a", None), ("a{b", None), ("{a", None)],
)
def test_hash_tag_follows_the_cluster_rule(key: str, tag: str | None) -> None:
    assert hash_tag(key) == tag


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_the_lock_key_is_in_the_session_keys_slot(key: str) -> None:
    lock = lock_key(key)
    assert key_slot(lock.encode()) == key_slot(key.encode())
    assert lock != key


def test_lock_keys_are_distinct_and_readable() -> None:
    assert len({lock_key(key) for key in AWKWARD_KEYS}) == len(AWKWARD_KEYS)
    assert lock_key("abc") == "{abc}:lock"
    assert lock_key("{shop}:abc") == "{shop}:abc:lock"
    assert lock_key("a}b").endswith(":lock:a}b")


def test_a_tag_is_found_for_every_slot_within_the_search_bound() -> None:
    slots = {key_slot(f"psr{n}".encode()) for n in range(TAG_SEARCH_LIMIT)}
    assert len(slots) == REDIS_CLUSTER_HASH_SLOTS
    assert key_slot(("{" + tag_for_slot(1234) + "}").encode()) == 1234
    with pytest.raises(ValueError):
        tag_for_slot(REDIS_CLUSTER_HASH_SLOTS)


# --------------------------------------------------------------------------- acquire


def test_acquire_loads_the_payload_and_takes_the_lock(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set(KEY, b"payload", ex=100)
    assert store.load_locked(KEY, "tok-a", LEASE_MS, 300) == LockedLoad(False, b"payload")
    assert lock_holder(redis_client) == b"tok-a"
    assert 0 < redis_client.pttl(LOCK) <= LEASE_MS
    assert 295 <= redis_client.ttl(KEY) <= 300  # slid, as load(key, refresh_ttl) does


def test_acquire_without_refresh_keeps_the_ttl(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set(KEY, b"payload", ex=100)
    assert store.load_locked(KEY, "tok-a", LEASE_MS, None) == LockedLoad(False, b"payload")
    assert redis_client.ttl(KEY) <= 100


def test_a_held_lock_is_busy_and_changes_nothing(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set(KEY, b"payload", ex=100)
    store.load_locked(KEY, "tok-a", LEASE_MS, None)
    assert store.load_locked(KEY, "tok-b", LEASE_MS, 300) == LockedLoad(True, None)
    assert lock_holder(redis_client) == b"tok-a"
    assert redis_client.ttl(KEY) <= 100  # the busy attempt did not slide the TTL


def test_a_missing_session_takes_no_lock(store: RedisStore, redis_client: redis.Redis) -> None:
    assert store.load_locked(KEY, "tok-a", LEASE_MS, 300) == LockedLoad(False, None)
    assert redis_client.exists(KEY, LOCK) == 0
    assert acquire_and_load(store, KEY, LEASE_MS, 1.0, 300) == (None, None)


def test_a_key_of_another_type_is_a_typed_error(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.rpush(KEY, b"x")
    with pytest.raises(WrongTypeError):
        store.load_locked(KEY, "tok-a", LEASE_MS, None)
    assert redis_client.exists(LOCK) == 0


def test_tokens_are_fresh() -> None:
    assert len({new_token() for _ in range(1000)}) == 1000


# --------------------------------------------------------------------------- waiting


def test_acquire_and_load_returns_a_token_that_holds_the_lock(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set(KEY, b"payload")
    token, payload = acquire_and_load(store, KEY, LEASE_MS, 1.0, None)
    assert payload == b"payload"
    assert token is not None and lock_holder(redis_client) == token.encode()


def test_a_waiter_gets_the_lock_once_the_holder_releases_it(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set(KEY, b"v1")
    holder, _ = acquire_and_load(store, KEY, LEASE_MS, 1.0, None)
    assert holder is not None
    pauses: list[float] = []

    def holder_finishes_while_we_sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            assert store.write_unlock(KEY, holder, b"v2", None) is LockOutcome.WRITTEN

    token, payload = acquire_and_load(
        store, KEY, LEASE_MS, 5.0, None, sleep=holder_finishes_while_we_sleep
    )
    assert payload == b"v2"  # it sees the holder's write: requests ran one after another
    assert token is not None and token != holder and lock_holder(redis_client) == token.encode()
    assert len(pauses) == 3


def test_waiting_is_bounded_and_ends_in_a_typed_error(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set(KEY, b"payload")
    store.load_locked(KEY, "holder", LEASE_MS, None)
    started = time.monotonic()
    with pytest.raises(SessionLockTimeout) as info:
        acquire_and_load(store, KEY, LEASE_MS, 0.2, None)
    assert time.monotonic() - started >= 0.2
    assert info.value.waited >= 0.2
    assert info.value.attempts > 1
    assert isinstance(info.value, SessionBackendError)
    assert KEY not in str(info.value)  # no session id in messages (they end up in logs)
    assert lock_holder(redis_client) == b"holder"


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_wait_never_sleeps_past_the_deadline_and_tries_once_more_at_it(
    store: RedisStore, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    redis_client.set(KEY, b"payload")
    store.load_locked(KEY, "holder", LEASE_MS, None)
    fake = FakeTime()
    commands.reset()
    with pytest.raises(SessionLockTimeout) as info:
        acquire_and_load(store, KEY, LEASE_MS, 0.5, None, clock=fake.clock, sleep=fake.sleep)
    assert info.value.waited == pytest.approx(0.5)
    assert sum(fake.sleeps) == pytest.approx(0.5)
    assert all(0 < s <= MAX_DELAY for s in fake.sleeps)
    assert info.value.attempts == len(fake.sleeps) + 1  # the last one at the deadline
    assert commands.counts() == {
        "evalsha": info.value.attempts,
        "get": info.value.attempts,
        "set": info.value.attempts,
    }


@pytest.mark.parametrize(
    ("jitter", "expected_ms"),
    [
        (lambda: 0.999999, [2, 4, 8, 16, 32, 50, 50, 50]),
        (lambda: 0.0, [1, 2, 4, 8, 16, 25, 25, 25]),
    ],
)
def test_poll_schedule_doubles_then_caps_with_jitter_of_at_most_half(
    jitter: Callable[[], float], expected_ms: list[int]
) -> None:
    delays = poll_delays(jitter)
    assert [round(next(delays) * 1000) for _ in expected_ms] == expected_ms
    assert FIRST_DELAY == 0.002 and MAX_DELAY == 0.05


# --------------------------------------------------------------------------- lease and fencing


def test_the_lease_frees_the_lock_of_a_holder_that_died(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set(KEY, b"payload")
    assert store.load_locked(KEY, "dead-worker", 50, None) == LockedLoad(False, b"payload")
    token, payload = acquire_and_load(store, KEY, LEASE_MS, 5.0, None)  # no deadlock
    assert payload == b"payload" and token is not None
    assert lock_holder(redis_client) == token.encode()


def test_a_late_writer_whose_lock_was_retaken_is_fenced_off(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set(KEY, b"v1", ex=100)
    assert store.load_locked(KEY, "slow", 50, None).payload == b"v1"
    wait_for_lease_end(redis_client)
    assert store.load_locked(KEY, "next", LEASE_MS, None).payload == b"v1"
    # The slow request wakes up while "next" holds the lock...
    assert store.write_unlock(KEY, "slow", b"stale", 300) is LockOutcome.FENCED
    assert lock_holder(redis_client) == b"next"
    assert store.refresh_unlock(KEY, "slow", 300) is LockOutcome.FENCED
    assert redis_client.ttl(KEY) <= 100
    # ...and after "next" wrote and left.
    assert store.write_unlock(KEY, "next", b"v2", 300) is LockOutcome.WRITTEN
    assert store.write_unlock(KEY, "slow", b"stale", 300) is LockOutcome.FENCED
    assert redis_client.get(KEY) == b"v2"
    assert redis_client.exists(LOCK) == 0


def test_a_writer_whose_lease_ran_out_is_fenced_even_if_nobody_took_the_lock(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set(KEY, b"v1")
    store.load_locked(KEY, "slow", 50, None)
    wait_for_lease_end(redis_client)
    assert store.write_unlock(KEY, "slow", b"stale", None) is LockOutcome.FENCED
    assert redis_client.get(KEY) == b"v1"
    assert redis_client.exists(LOCK) == 0  # fencing never creates a lock


# --------------------------------------------------------------------------- write, refresh, delete


@pytest.mark.parametrize(("ttl", "expected_ttl"), [(300, 300), (None, -1)])
def test_write_sets_the_payload_and_ttl_and_releases(
    store: RedisStore, redis_client: redis.Redis, ttl: int | None, expected_ttl: int
) -> None:
    redis_client.set(KEY, b"v1", ex=100)
    store.load_locked(KEY, "tok", LEASE_MS, None)
    assert store.write_unlock(KEY, "tok", b"v2", ttl) is LockOutcome.WRITTEN
    assert redis_client.get(KEY) == b"v2"
    assert redis_client.ttl(KEY) in (expected_ttl, expected_ttl - 1)
    assert redis_client.exists(LOCK) == 0


def test_a_write_on_a_deleted_session_is_gone_and_recreates_nothing(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set(KEY, b"v1")
    store.load_locked(KEY, "tok", LEASE_MS, None)
    redis_client.delete(KEY)  # a logout elsewhere, an admin, an eviction
    assert store.write_unlock(KEY, "tok", b"v2", 300) is LockOutcome.GONE
    assert redis_client.exists(KEY, LOCK) == 0


def test_refresh_slides_the_ttl_and_releases(store: RedisStore, redis_client: redis.Redis) -> None:
    redis_client.set(KEY, b"v1", ex=100)
    store.load_locked(KEY, "tok", LEASE_MS, None)
    assert store.refresh_unlock(KEY, "tok", 300) is LockOutcome.WRITTEN
    assert redis_client.ttl(KEY) >= 295
    assert redis_client.exists(LOCK) == 0
    store.load_locked(KEY, "tok2", LEASE_MS, None)
    redis_client.delete(KEY)
    assert store.refresh_unlock(KEY, "tok2", 300) is LockOutcome.GONE
    assert redis_client.exists(KEY, LOCK) == 0


def test_delete_always_deletes_and_releases_only_its_own_lock(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set(KEY, b"v1")
    store.load_locked(KEY, "tok", LEASE_MS, None)
    assert store.delete_unlock(KEY, "tok") is True
    assert redis_client.exists(KEY, LOCK) == 0
    # A logout whose lease ran out still logs out, and leaves the new holder's lock.
    redis_client.set(KEY, b"v1")
    store.load_locked(KEY, "next", LEASE_MS, None)
    assert store.delete_unlock(KEY, "slow") is False
    assert redis_client.exists(KEY) == 0
    assert lock_holder(redis_client) == b"next"
    assert store.write_unlock(KEY, "next", b"v2", None) is LockOutcome.GONE  # not resurrected
    assert redis_client.exists(KEY) == 0


def test_release_only_releases_our_own_token(store: RedisStore, redis_client: redis.Redis) -> None:
    redis_client.set(KEY, b"v1")
    store.load_locked(KEY, "mine", LEASE_MS, None)
    assert store.release(KEY, "someone-else") is False
    assert lock_holder(redis_client) == b"mine"
    assert store.release(KEY, "mine") is True
    assert redis_client.exists(LOCK) == 0
    assert store.release(KEY, "mine") is False  # twice is harmless
    assert redis_client.get(KEY) == b"v1"


# --------------------------------------------------------------------------- round trips


def _operations(store: RedisStore) -> Iterator[tuple[str, Callable[[], object], dict[str, int]]]:
    """(name, call, commands the server runs for it): exactly one sent by the client."""
    yield (
        "acquire",
        lambda: store.load_locked(KEY, "t", LEASE_MS, 300),
        {"get": 1, "set": 1, "expire": 1},
    )
    yield "busy", lambda: store.load_locked(KEY, "u", LEASE_MS, 300), {"get": 1, "set": 1}
    yield "write", lambda: store.write_unlock(KEY, "t", b"v2", 300), {"get": 1, "del": 1, "set": 1}
    store_lock = lambda: store.load_locked(KEY, "t", LEASE_MS, None)  # noqa: E731
    yield "re-acquire", store_lock, {"get": 1, "set": 1}
    yield "refresh", lambda: store.refresh_unlock(KEY, "t", 300), {"get": 1, "del": 1, "expire": 1}
    yield "re-acquire", store_lock, {"get": 1, "set": 1}
    yield "release", lambda: store.release(KEY, "t"), {"get": 1, "del": 1}
    yield "re-acquire", store_lock, {"get": 1, "set": 1}
    yield "delete", lambda: store.delete_unlock(KEY, "t"), {"get": 1, "del": 2}


def test_every_lock_operation_is_one_round_trip(
    store: RedisStore, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    redis_client.set(KEY, b"v1")
    # Cold script cache (the fixture flushed it): EVALSHA is refused, EVAL caches it.
    with commands.measure() as cold:
        store.load_locked(KEY, "t", LEASE_MS, None)
    assert cold.counts == {"evalsha": 1, "eval": 1, "get": 1, "set": 1}
    store.release(KEY, "t")
    for _, call, _ in _operations(store):  # caches every script
        call()
    redis_client.set(KEY, b"v1")
    for name, call, inside in _operations(store):
        with commands.measure() as m:
            call()
        assert m.counts == {"evalsha": 1, **inside}, name
