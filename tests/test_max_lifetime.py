"""``max_lifetime``: seconds since creation, enforced on the server whatever the activity.

Sessions are aged by rewriting their creation time in Redis (as the codec stores it),
so the tests need no sleeping.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
import webtest
from pyramid.request import Request

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.exceptions import (
    ConfigurationError,
    InvalidSession,
    InvalidSession_PastLifetime,
    LifetimeExceeded,
)
from pyramid_session_redis.factory import SessionFactory
from pyramid_session_redis.integrity import codec_for_key
from pyramid_session_redis.lock import lock_key
from pyramid_session_redis.settings import parse_ini_settings
from tests.app import SECRET, build_wsgi_app
from tests.redis_stats import CommandCounter

LIFETIME = 3600


def regenerate(request: Request) -> Any:
    request.session.regenerate_id()
    return request.session.session_id


class App:
    def __init__(self, redis_url: str, **options: Any) -> None:
        self.reports: list[InvalidSession] = []
        options.setdefault("max_lifetime", LIFETIME)
        self.factory: SessionFactory = RedisSessionFactory(
            SECRET,
            redis_url=redis_url,
            func_invalid_logger=lambda request, exc: self.reports.append(exc),
            **options,
        )
        self.browser = webtest.TestApp(build_wsgi_app(self.factory, {"regenerate": regenerate}))

    def start(self, **values: Any) -> str:
        for key, value in values.items():
            self.browser.get("/set", {"key": key, "value": json.dumps(value)})
        return self.factory.key(str(self.browser.get("/session_id").json))


def age(app: App, client: redis.Redis, key: str, seconds: int) -> None:
    """Move the stored session's creation time ``seconds`` into the past (TTL kept)."""
    codec = codec_for_key(app.factory.codec, key)
    record = codec.decode(client.get(key))
    record.created -= seconds  # the sliding expiry (activity) is left as it is
    client.set(key, codec.encode(record), keepttl=True)


@pytest.mark.parametrize("persistence", ["cas", "overwrite", "lock"])
def test_an_over_age_session_is_replaced_by_a_fresh_one(
    redis_url: str, redis_client: redis.Redis, persistence: str
) -> None:
    app = App(redis_url, persistence=persistence)
    key = app.start(user="alice")
    age(app, redis_client, key, LIFETIME)
    app.reports.clear()
    response = app.browser.get("/dump")
    assert response.json == {}
    assert [type(r) for r in app.reports] == [InvalidSession_PastLifetime]
    assert app.reports[0].created <= redis_client.time()[0] - LIFETIME  # type: ignore[attr-defined]
    assert redis_client.keys() == []  # deleted (and, with the lock, unlocked)
    assert redis_client.exists(lock_key(key)) == 0
    assert "Max-Age=0" in response.headers["Set-Cookie"]  # nothing replaces it yet
    assert LifetimeExceeded is InvalidSession_PastLifetime


def test_an_over_age_session_costs_its_load_and_one_del(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = App(redis_url)
    key = app.start(user="alice")
    age(app, redis_client, key, LIFETIME)
    commands.reset()
    app.browser.get("/dump")
    assert commands.counts() == {"getex": 1, "del": 1}


def test_a_write_to_an_over_age_session_starts_a_new_one(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url)
    old_key = app.start(user="alice")
    age(app, redis_client, old_key, LIFETIME + 5)
    app.browser.get("/set", {"key": "cart", "value": "1"})
    new_key = app.start()
    assert new_key != old_key
    assert redis_client.keys() == [new_key.encode()]
    assert app.browser.get("/dump").json == {"cart": 1}


def test_activity_does_not_extend_the_lifetime(redis_url: str, redis_client: redis.Redis) -> None:
    app = App(redis_url, timeout=600)
    key = app.start(n=0)
    age(app, redis_client, key, LIFETIME - 100)
    for _ in range(3):
        app.browser.get("/incr", {"key": "n"})  # active, well within the timeout
    assert app.browser.get("/read", {"key": "n"}).json == 3
    age(app, redis_client, key, 100)
    app.reports.clear()
    assert app.browser.get("/read", {"key": "n"}).json is None
    assert [type(r) for r in app.reports] == [InvalidSession_PastLifetime]


def test_a_writes_ttl_never_reaches_past_the_lifetime(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url, timeout=600, max_lifetime=300)
    key = app.start(n=0)
    assert 295 <= redis_client.ttl(key) <= 300  # created: the lifetime, not the timeout
    age(app, redis_client, key, 250)
    app.browser.get("/incr", {"key": "n"})
    assert 45 <= redis_client.ttl(key) <= 50


def test_a_read_near_the_end_caps_the_ttl_its_getex_slid(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = App(redis_url, timeout=600, max_lifetime=3600)
    key = app.start(n=0)
    commands.reset()
    app.browser.get("/read", {"key": "n"})
    assert commands.counts() == {"getex": 1}  # far from the end: a read is one command
    age(app, redis_client, key, 3500)
    commands.reset()
    app.browser.get("/read", {"key": "n"})
    assert commands.counts() == {"getex": 1, "expire": 1}  # the last `timeout` seconds
    assert 95 <= redis_client.ttl(key) <= 100


def test_without_a_timeout_the_lifetime_is_the_ttl(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url, timeout=None, max_lifetime=120)
    key = app.start(n=0)
    assert 115 <= redis_client.ttl(key) <= 120


def test_regenerate_id_keeps_the_creation_time_and_so_the_lifetime(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url, timeout=600)
    key = app.start(user="alice")
    age(app, redis_client, key, LIFETIME - 50)
    new_key = app.factory.key(app.browser.get("/regenerate").json)
    assert new_key != key and redis_client.exists(key) == 0
    assert redis_client.ttl(new_key) <= 50  # the move's TTL is capped too
    age(app, redis_client, new_key, 50)
    app.reports.clear()
    assert app.browser.get("/dump").json == {}
    assert [type(r) for r in app.reports] == [InvalidSession_PastLifetime]


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("raw", "expected"), [("3600", 3600), ("0", None), ("", None), (" 60 ", 60)]
)
def test_ini_max_lifetime(raw: str, expected: int | None) -> None:
    options = parse_ini_settings({"redis.sessions.max_lifetime": raw})
    assert options == {"max_lifetime": expected}


@pytest.mark.parametrize("value", [-1, 1.5, "60", True])
def test_invalid_max_lifetime_is_refused_naming_the_option(value: Any) -> None:
    with pytest.raises(ConfigurationError) as raised:
        RedisSessionFactory(SECRET, max_lifetime=value)
    assert raised.value.options == ("max_lifetime",)


def test_ini_junk_names_the_key() -> None:
    with pytest.raises(ConfigurationError, match=r"redis\.sessions\.max_lifetime"):
        parse_ini_settings({"redis.sessions.max_lifetime": "an hour"})


def test_a_zero_max_lifetime_means_none_as_for_timeout() -> None:
    assert RedisSessionFactory(SECRET, max_lifetime=0).settings.max_lifetime is None
