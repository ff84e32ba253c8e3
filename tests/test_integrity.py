"""``sign_payloads``: a MAC over every stored value, bound to its Redis key.

A value changed in Redis by anyone but us is an invalid session: reported, never
loaded (nor, with a user serializer, even deserialized). Compare-and-set, merge, the
lock and ``regenerate_id()`` keep working, since the MAC is part of the stored bytes.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
import redis
import webtest
from pyramid.request import Request

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.codec import SafeCodec, SessionRecord
from pyramid_session_redis.exceptions import (
    ConfigurationError,
    InvalidSession,
    InvalidSession_PayloadTampered,
    InvalidSession_PayloadUnsigned,
    SessionGone,
)
from pyramid_session_redis.factory import SessionFactory
from pyramid_session_redis.integrity import (
    HEADER,
    PayloadTamperedError,
    PayloadUnsignedError,
    SigningCodec,
)
from pyramid_session_redis.settings import parse_ini_settings
from tests.app import SECRET, build_wsgi_app
from tests.redis_stats import CommandCounter

MODES = ["cas", "overwrite", "lock"]


class App:
    def __init__(self, redis_url: str, **options: Any) -> None:
        self.reports: list[InvalidSession] = []
        self.meddle: Any = lambda key: None
        options.setdefault("sign_payloads", True)
        self.factory: SessionFactory = RedisSessionFactory(
            SECRET,
            redis_url=redis_url,
            func_invalid_logger=lambda request, exc: self.reports.append(exc),
            **options,
        )
        views = {"meddle": self._meddle, "login": self._login, "meddled_login": self._meddled_login}
        self.wsgi = build_wsgi_app(self.factory, views)
        self.browser = self.new_browser()

    def new_browser(self) -> webtest.TestApp:
        return webtest.TestApp(self.wsgi)

    def start(self, browser: webtest.TestApp | None = None, **values: Any) -> str:
        browser = browser or self.browser
        for key, value in values.items():
            browser.get("/set", {"key": key, "value": json.dumps(value)})
        return self.factory.key(str(browser.get("/session_id").json))

    def _meddle(self, request: Request) -> Any:
        request.session.get("mine")
        self.meddle(self.factory.key(request.session.session_id))
        request.session["mine"] = 1
        return "ok"

    def _meddled_login(self, request: Request) -> Any:
        request.session.get("mine")
        self.meddle(self.factory.key(request.session.session_id))
        return self._login(request)

    def _login(self, request: Request) -> Any:
        request.session.regenerate_id()
        request.session["user"] = "alice"
        return request.session.session_id


def flip_bit(raw: bytes, position: int) -> bytes:
    data = bytearray(raw)
    data[position] ^= 0x01
    return bytes(data)


@pytest.mark.parametrize("mode", MODES)
def test_signed_sessions_work_in_every_mode(
    redis_url: str, redis_client: redis.Redis, mode: str
) -> None:
    app = App(redis_url, persistence=mode)
    key = app.start(user="alice", n=1)
    app.browser.get("/incr", {"key": "n"})
    assert redis_client.get(key)[:2] == HEADER
    assert app.browser.get("/dump").json == {"user": "alice", "n": 2}
    assert app.reports[1:] == []  # only the first request's "no cookie"


@pytest.mark.parametrize("position", [0, 1, 2, 20, 33, 34, -1])
def test_a_flipped_bit_anywhere_is_an_invalid_session(
    redis_url: str, redis_client: redis.Redis, position: int
) -> None:
    app = App(redis_url)
    key = app.start(user="alice")
    redis_client.set(key, flip_bit(redis_client.get(key), position), keepttl=True)
    app.reports.clear()
    response = app.browser.get("/dump")  # no 500, even with deserialized_fails_new off
    assert response.json == {}
    assert len(app.reports) == 1
    assert isinstance(app.reports[0], InvalidSession_PayloadTampered)


def test_a_valid_value_copied_to_another_sessions_key_is_refused(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url)
    admin = app.new_browser()
    admin_key = app.start(admin, role="admin")
    attacker_key = app.start(role="guest")
    redis_client.set(attacker_key, redis_client.get(admin_key))
    app.reports.clear()
    assert app.browser.get("/dump").json == {}
    assert [type(r) for r in app.reports] == [InvalidSession_PayloadTampered]


def test_a_read_writes_nothing_and_costs_one_command(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = App(redis_url)
    key = app.start(user="alice")
    before = redis_client.get(key)
    commands.reset()
    assert app.browser.get("/read", {"key": "user"}).json == "alice"
    assert commands.counts() == {"getex": 1}
    assert redis_client.get(key) == before


def test_a_concurrent_write_is_merged_and_stays_signed(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url)
    app.start(theirs=0)
    other = app.new_browser()
    other.set_cookie("session", app.browser.cookies["session"])
    app.meddle = lambda key: other.get("/set", {"key": "theirs", "value": "1"})
    app.browser.get("/meddle")
    assert app.browser.get("/dump").json == {"theirs": 1, "mine": 1}
    (key,) = redis_client.keys()
    assert redis_client.get(key)[:2] == HEADER


def test_a_value_tampered_during_a_request_is_not_written_over(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url)
    key = app.start(theirs=0)

    def tamper(key: str) -> None:
        redis_client.set(key, flip_bit(redis_client.get(key), -1), keepttl=True)

    app.meddle = tamper
    app.reports.clear()
    app.browser.get("/meddle")
    assert [type(r) for r in app.reports] == [SessionGone]  # not ours: dropped, reported
    assert redis_client.keys() == [key.encode()]  # left for inspection, never loaded


@pytest.mark.parametrize("mode", MODES)
def test_regenerate_id_re_signs_for_the_new_key(
    redis_url: str, redis_client: redis.Redis, mode: str
) -> None:
    app = App(redis_url, persistence=mode, hash_keys=True)
    old_key = app.start(cart=["book"])
    new_key = app.factory.key(app.browser.get("/login").json)
    assert redis_client.keys() == [new_key.encode()] and new_key != old_key
    assert app.browser.get("/dump").json == {"cart": ["book"], "user": "alice"}
    assert app.reports[1:] == []


def test_regenerate_id_merges_a_concurrent_write_and_signs_for_the_new_key(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url, hash_keys=True)
    old_key = app.start(theirs=0)
    other = app.new_browser()
    other.set_cookie("session", app.browser.cookies["session"])
    app.meddle = lambda key: other.get("/set", {"key": "theirs", "value": "1"})
    app.browser.get("/meddle")  # a merge first: the stored bytes changed
    app.meddle = lambda key: other.get("/set", {"key": "theirs", "value": "2"})
    response = app.browser.get("/meddled_login")
    new_key = app.factory.key(response.json)
    assert redis_client.keys() == [new_key.encode()] and new_key != old_key
    assert redis_client.get(new_key)[:2] == HEADER
    assert app.browser.get("/dump").json == {"theirs": 2, "mine": 1, "user": "alice"}
    assert app.reports[1:] == []


# ------------------------------------------------------------------ switching it on


def test_unsigned_values_are_read_and_re_signed_by_default(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    unsigned = App(redis_url, sign_payloads=False)
    key = unsigned.start(user="alice")
    assert redis_client.get(key)[:2] != HEADER
    signed = App(redis_url)
    signed.browser.set_cookie("session", unsigned.browser.cookies["session"])
    assert signed.browser.get("/read", {"key": "user"}).json == "alice"
    assert redis_client.get(key)[:2] == HEADER  # rewritten, signed, by that read
    commands.reset()
    signed.browser.get("/read", {"key": "user"})
    assert commands.counts() == {"getex": 1}  # from then on a read is a read
    assert signed.reports == []


def test_unsigned_values_are_refused_once_switched_to_reject(
    redis_url: str, redis_client: redis.Redis
) -> None:
    unsigned = App(redis_url, sign_payloads=False)
    key = unsigned.start(user="alice")
    strict = App(redis_url, unsigned_payloads="reject")
    strict.browser.set_cookie("session", unsigned.browser.cookies["session"])
    assert strict.browser.get("/dump").json == {}
    assert [type(r) for r in strict.reports] == [InvalidSession_PayloadUnsigned]
    assert redis_client.exists(key) == 1  # not loaded, not deleted


def test_under_resign_a_forged_unsigned_value_is_read(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """The documented price of migrating: switch to ``reject`` once it is done."""
    app = App(redis_url)
    key = app.start(role="guest")
    forged = SafeCodec().encode(SessionRecord({"role": "admin"}, 0))
    redis_client.set(key, forged)
    assert app.browser.get("/dump").json == {"role": "admin"}


# ------------------------------------------------------------------ 1.8 payloads (pickle)


def test_a_tampered_pickle_is_never_unpickled(redis_url: str, redis_client: redis.Redis) -> None:
    unpickled: list[bytes] = []

    def loads(raw: bytes) -> Any:
        unpickled.append(raw)
        return pickle.loads(raw)

    app = App(redis_url, serialize=pickle.dumps, deserialize=loads)
    key = app.start(user="alice")
    assert app.browser.get("/read", {"key": "user"}).json == "alice"
    unpickled.clear()
    redis_client.set(key, flip_bit(redis_client.get(key), -2), keepttl=True)
    assert app.browser.get("/dump").json == {}
    assert unpickled == []


# ------------------------------------------------------------------ the codec alone


def test_the_codec_needs_a_key_and_binds_to_it() -> None:
    codec = SigningCodec(SafeCodec(), b"k" * 32, reject_unsigned=True)
    record = SessionRecord({"a": 1}, 1_700_000_000)
    with pytest.raises(TypeError):
        codec.encode(record)
    raw = codec.for_key("s1").encode(record)
    assert codec.for_key("s1").decode(raw) == record
    with pytest.raises(PayloadTamperedError):
        codec.for_key("s2").decode(raw)
    with pytest.raises(PayloadTamperedError):
        SigningCodec(SafeCodec(), b"x" * 32, True).for_key("s1").decode(raw)
    with pytest.raises(PayloadUnsignedError):
        codec.for_key("s1").decode(SafeCodec().encode(record))
    with pytest.raises(PayloadTamperedError):
        codec.for_key("s1").decode(raw[:20])  # truncated


def test_compression_happens_inside_the_signature() -> None:
    codec = SigningCodec(SafeCodec(compress_threshold=64), b"k" * 32, True).for_key("s")
    record = SessionRecord({"text": "x" * 5000}, 1_700_000_000)
    raw = codec.encode(record)
    assert len(raw) < 200 and codec.decode(raw) == record


# ------------------------------------------------------------------ configuration


def test_sign_payloads_needs_a_secret() -> None:
    class Signer:
        def dumps(self, value: str) -> bytes:
            return value.encode()

        def loads(self, value: bytes) -> str:
            return value.decode()

    with pytest.raises(ConfigurationError) as raised:
        RedisSessionFactory(cookie_signer=Signer(), sign_payloads=True)
    assert raised.value.options == ("sign_payloads", "secret")


def test_unknown_unsigned_policy_is_refused() -> None:
    with pytest.raises(ConfigurationError) as raised:
        RedisSessionFactory(SECRET, sign_payloads=True, unsigned_payloads="sometimes")
    assert raised.value.options == ("unsigned_payloads",)


def test_unsigned_payloads_only_applies_with_signing() -> None:
    with pytest.raises(ConfigurationError) as raised:
        RedisSessionFactory(SECRET, unsigned_payloads="reject")
    assert raised.value.options == ("unsigned_payloads", "sign_payloads")


def test_ini_options() -> None:
    options = parse_ini_settings(
        {"redis.sessions.sign_payloads": "true", "redis.sessions.unsigned_payloads": "reject"}
    )
    assert options == {"sign_payloads": True, "unsigned_payloads": "reject"}


@pytest.mark.parametrize("options", [{"sign_payloads": True}, {"hash_keys": True}])
def test_requests_cost_the_commands_they_cost_without_the_option(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter, options: dict[str, Any]
) -> None:
    def counts(app: App) -> list[dict[str, int]]:
        app.start(n=0)
        seen = []
        for path, params in [("/set", {"key": "n", "value": "1"}), ("/read", {"key": "n"})]:
            commands.reset()
            app.browser.get(path, params)
            seen.append(commands.counts())
        return seen

    counts(App(redis_url, sign_payloads=False))  # the server's script cache is warm now
    plain = counts(App(redis_url, sign_payloads=False))
    assert counts(App(redis_url, **{"sign_payloads": False, **options})) == plain
