"""How many Redis commands each kind of request costs, counted by the server."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
import webtest

from pyramid_session_redis import RedisSessionFactory
from tests.app import build_wsgi_app, make_app
from tests.redis_stats import CommandCounter
from tests.test_codec import CountingCodec


def start_session(app: webtest.TestApp, **values: Any) -> str:
    """Create a session holding ``values``; return its id."""
    for key, value in values.items():
        app.get("/set", {"key": key, "value": json.dumps(value)})
    return str(app.get("/session_id").json)


def test_untouched_session_costs_nothing(redis_url: str, commands: CommandCounter) -> None:
    app = make_app(redis_url)
    response = app.get("/untouched")
    assert commands.counts() == {}
    assert "Set-Cookie" not in response.headers


def test_untouched_with_cookie_costs_nothing(redis_url: str, commands: CommandCounter) -> None:
    app = make_app(redis_url)
    start_session(app, a=1)
    commands.reset()
    response = app.get("/untouched")
    assert commands.counts() == {}
    assert "Set-Cookie" not in response.headers


def test_new_session_is_one_set(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, timeout=300)
    response = app.get("/set", {"key": "a", "value": "1"})
    assert commands.counts() == {"set": 1}
    assert "Set-Cookie" in response.headers
    (key,) = redis_client.keys()
    assert 295 <= redis_client.ttl(key) <= 300


def test_reading_a_new_session_without_writing_costs_nothing(
    redis_url: str, commands: CommandCounter
) -> None:
    app = make_app(redis_url)
    response = app.get("/read", {"key": "a"})
    assert response.json is None
    assert commands.counts() == {}
    assert "Set-Cookie" not in response.headers


def test_read_is_one_getex_that_slides_the_ttl(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, timeout=300)
    session_id = start_session(app, a=1)
    redis_client.expire(session_id, 10)
    commands.reset()
    response = app.get("/read", {"key": "a"})
    assert response.json == 1
    assert commands.counts() == {"getex": 1}
    assert redis_client.ttl(session_id) > 250
    assert "Set-Cookie" not in response.headers


def test_read_of_a_mutable_value_writes_nothing_if_unchanged(
    redis_url: str, commands: CommandCounter
) -> None:
    app = make_app(redis_url)
    start_session(app, items=[1, 2])
    commands.reset()
    assert app.get("/dump").json == {"items": [1, 2]}
    assert commands.counts() == {"getex": 1}


# The compare-and-set is one native ``SET … IFEQ`` where the server has it; otherwise
# one EVALSHA whose script's own GET and SET run inside Redis (and are counted by
# commandstats too). Either way the client sends one command: one round trip.
@pytest.mark.parametrize("persistence", ["cas", "overwrite"])
def test_write_is_load_plus_one_write(
    redis_url: str,
    redis_client: redis.Redis,
    commands: CommandCounter,
    native_cas: bool,
    persistence: str,
) -> None:
    app = make_app(redis_url, persistence=persistence, timeout=300)
    session_id = start_session(app, a=1)
    app.get("/set", {"key": "a", "value": "2"})  # the first write learns what the server has
    commands.reset()
    app.get("/set", {"key": "b", "value": "2"})
    script = {"evalsha": 1, "get": 1, "set": 1}
    expected = {"set": 1} if persistence == "overwrite" or native_cas else script
    assert commands.counts() == {"getex": 1, **expected}
    assert app.get("/dump").json == {"a": 2, "b": 2}
    assert 295 <= redis_client.ttl(session_id) <= 300


def test_nested_mutation_is_detected(redis_url: str, commands: CommandCounter) -> None:
    app = make_app(redis_url)
    start_session(app, items=[1])
    app.get("/append", {"key": "items", "value": "2"})
    assert app.get("/read", {"key": "items"}).json == [1, 2]


def test_nested_mutation_is_ignored_without_detect_changes(
    redis_url: str, commands: CommandCounter
) -> None:
    app = make_app(redis_url, detect_changes=False)
    start_session(app, items=[1])
    commands.reset()
    app.get("/append", {"key": "items", "value": "2"})
    assert commands.counts() == {"getex": 1}
    assert app.get("/read", {"key": "items"}).json == [1]


def test_writing_the_same_value_again_writes_nothing(
    redis_url: str, commands: CommandCounter
) -> None:
    app = make_app(redis_url)
    start_session(app, a=1)
    commands.reset()
    app.get("/set", {"key": "a", "value": "1"})
    assert commands.counts() == {"getex": 1}


def test_timeout_trigger_reads_are_a_plain_get(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, timeout=1200, timeout_trigger=600)
    session_id = start_session(app, a=1)
    ttl_before = redis_client.ttl(session_id)
    commands.reset()
    for _ in range(3):
        assert app.get("/read", {"key": "a"}).json == 1
    assert commands.counts() == {"get": 3}
    assert redis_client.ttl(session_id) <= ttl_before


def test_readheavy_reads_are_one_getex(redis_url: str, commands: CommandCounter) -> None:
    app = make_app(redis_url, set_redis_ttl_readheavy=True, python_expires=False)
    start_session(app, a=1)
    commands.reset()
    for _ in range(3):
        assert app.get("/read", {"key": "a"}).json == 1
    assert commands.counts() == {"getex": 3}


def test_lru_mode_never_sets_a_ttl(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, set_redis_ttl=False, persistence="overwrite")
    session_id = start_session(app, a=1)
    app.get("/set", {"key": "b", "value": "2"})
    assert redis_client.ttl(session_id) == -1
    assert "expire" not in commands.counts()
    assert "getex" not in commands.counts()


def test_server_without_getex_gets_a_pipelined_get_and_expire(server_factory: Any) -> None:
    server = server_factory(["--rename-command", "GETEX", ""])
    app = make_app(server.url, timeout=300)
    session_id = start_session(app, a=1)
    client = server.client()
    client.expire(session_id, 10)
    counter = CommandCounter.for_port(server.port)
    counter.reset()
    assert app.get("/read", {"key": "a"}).json == 1
    assert app.get("/read", {"key": "a"}).json == 1
    assert counter.counts() == {"get": 2, "expire": 2}
    assert client.ttl(session_id) > 250
    counter.close()


def test_invalidate_is_the_load_and_one_del(redis_url: str, commands: CommandCounter) -> None:
    """``request.session`` loads the session (as in 1.8), then ``invalidate()`` deletes it."""
    app = make_app(redis_url)
    start_session(app, a=1)
    commands.reset()
    app.get("/invalidate")
    assert commands.counts() == {"getex": 1, "del": 1}


def test_lru_mode_read_is_a_get_plus_one_write_of_the_new_expiry(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, set_redis_ttl=False, persistence="overwrite")
    session_id = start_session(app, a=1)
    time.sleep(1.1)  # the sliding expiry, kept in the payload, moves by a second
    commands.reset()
    assert app.get("/read", {"key": "a"}).json == 1
    assert commands.counts() == {"get": 1, "set": 1}
    assert redis_client.ttl(session_id) == -1


def test_read_only_requests_serialize_nothing_unless_handed_a_mutable_value(
    redis_url: str, commands: CommandCounter
) -> None:
    factory = RedisSessionFactory("secret", redis_url=redis_url)
    codec = factory.codec = CountingCodec()
    app = webtest.TestApp(build_wsgi_app(factory))
    start_session(app, n=1, items=[1, 2])

    codec.encodes = 0
    for _ in range(5):
        assert app.get("/read", {"key": "n"}).json == 1  # an int: nothing to compare
    assert codec.encodes == 0
    # A list handed out may be mutated in place: compared once at the end, not written.
    commands.reset()
    assert app.get("/read", {"key": "items"}).json == [1, 2]
    assert codec.encodes == 1
    assert commands.counts() == {"getex": 1}


def test_lock_mode_costs_one_round_trip_more_on_a_read_and_none_on_a_write(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    """persistence=lock: load+lock is one script call, and so is write+unlock or unlock."""
    app = make_app(redis_url, persistence="lock", timeout=300)
    session_id = start_session(app, a=1)
    app.get("/dump")  # the scripts are cached on the server from here on
    app.get("/set", {"key": "a", "value": "2"})
    commands.reset()

    assert app.get("/dump").json == {"a": 2}
    read = commands.counts()
    commands.reset()
    app.get("/set", {"key": "b", "value": "3"})
    write = commands.counts()

    assert read["evalsha"] == 2 and "getex" not in read  # lock+load, release
    assert write["evalsha"] == 2 and "getex" not in write  # lock+load, write+release
    assert 295 <= redis_client.ttl(session_id) <= 300
    assert not redis_client.exists(f"{{{session_id}}}:lock")
    assert app.get("/dump").json == {"a": 2, "b": 3}
