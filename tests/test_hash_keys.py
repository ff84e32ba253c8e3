"""``hash_keys``: the Redis key is an HMAC of the session id, so a dump of Redis yields
no usable cookie; everything else behaves as with plain keys."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import redis
import webtest
from webob.cookies import SignedSerializer

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.exceptions import ConfigurationError, InvalidSession, NotInBackend
from pyramid_session_redis.factory import SessionFactory
from pyramid_session_redis.lock import lock_key
from pyramid_session_redis.settings import parse_ini_settings
from tests.app import SECRET, build_wsgi_app
from tests.redis_stats import CommandCounter


class App:
    def __init__(self, redis_url: str, secret: str = SECRET, **options: Any) -> None:
        self.reports: list[InvalidSession] = []
        self.factory: SessionFactory = RedisSessionFactory(
            secret,
            redis_url=redis_url,
            hash_keys=True,
            func_invalid_logger=lambda request, exc: self.reports.append(exc),
            **options,
        )
        self.wsgi = build_wsgi_app(self.factory)
        self.browser = webtest.TestApp(self.wsgi)

    def start(self, **values: Any) -> str:
        for key, value in values.items():
            self.browser.get("/set", {"key": key, "value": json.dumps(value)})
        return str(self.browser.get("/session_id").json)


@pytest.mark.parametrize("persistence", ["cas", "overwrite", "lock"])
def test_sessions_work_and_redis_never_sees_the_id(
    redis_url: str, redis_client: redis.Redis, persistence: str
) -> None:
    app = App(redis_url, persistence=persistence, timeout=600)
    session_id = app.start(user="alice", n=1)
    app.browser.get("/incr", {"key": "n"})
    (key,) = redis_client.keys()
    assert re.fullmatch(rb"[0-9a-f]{64}", key) and key.decode() != session_id
    assert session_id.encode() not in key and session_id.encode() not in redis_client.get(key)
    assert 590 <= redis_client.ttl(key) <= 600
    assert app.browser.get("/dump").json == {"user": "alice", "n": 2}
    assert redis_client.exists(lock_key(key.decode())) == 0
    app.browser.get("/invalidate")
    assert redis_client.keys() == []


def test_a_cookie_made_from_a_dumped_key_opens_nothing(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url)
    app.start(user="alice")
    (key,) = redis_client.keys()
    # Even knowing the cookie secret, a stolen key is no id: sign it as one.
    signer = SignedSerializer(SECRET, "pyramid_session_redis.", "sha512", serializer=_Text())
    thief = webtest.TestApp(app.wsgi)
    thief.set_cookie("session", signer.dumps(key.decode()).decode())
    app.reports.clear()
    assert thief.get("/dump").json == {}
    assert [type(r) for r in app.reports] == [NotInBackend]


class _Text:
    def dumps(self, value: str) -> bytes:
        return value.encode()

    def loads(self, value: bytes) -> str:
        return value.decode()


def test_the_prefix_and_its_hash_tag_stay_on_the_key(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url, prefix="{shop}:")
    session_id = app.start(user="alice")
    assert session_id.startswith("{shop}:")
    (key,) = redis_client.keys()
    assert re.fullmatch(rb"\{shop\}:[0-9a-f]{64}", key)


def test_a_read_is_still_one_command(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = App(redis_url)
    app.start(user="alice")
    commands.reset()
    assert app.browser.get("/read", {"key": "user"}).json == "alice"
    assert commands.counts() == {"getex": 1}


def test_rotating_the_secret_logs_everyone_out(redis_url: str, redis_client: redis.Redis) -> None:
    before = App(redis_url, secret="old secret")
    before.start(user="alice")
    after = App(redis_url, secret="new secret")
    # The same cookie, accepted by a signer that still knows the old secret: the key
    # derived from the new secret no longer finds the session.
    after.factory.cookie.signer = before.factory.cookie.signer
    after.browser.set_cookie("session", before.browser.cookies["session"])
    assert after.browser.get("/dump").json == {}
    assert [type(r) for r in after.reports] == [NotInBackend]


def test_hash_keys_needs_a_secret() -> None:
    with pytest.raises(ConfigurationError) as raised:
        RedisSessionFactory(cookie_signer=_Text(), hash_keys=True)
    assert raised.value.options == ("hash_keys", "secret")


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("off", False)])
def test_ini_hash_keys(raw: str, expected: bool) -> None:
    assert parse_ini_settings({"redis.sessions.hash_keys": raw}) == {"hash_keys": expected}


def test_ini_hash_keys_junk_names_the_key() -> None:
    with pytest.raises(ConfigurationError, match=r"redis\.sessions\.hash_keys"):
        parse_ini_settings({"redis.sessions.hash_keys": "maybe"})
