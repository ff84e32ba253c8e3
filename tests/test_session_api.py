"""The ISession contract and the 1.8 extras, through a real Pyramid app."""

from __future__ import annotations

import datetime
import email.utils
import json
import time
from typing import Any

import pytest
import redis
import webtest
from pyramid.interfaces import ISession
from pyramid.request import Request
from zope.interface.verify import verifyObject

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.codec import SafeCodec
from pyramid_session_redis.exceptions import InvalidSession, SessionGone
from tests.app import SECRET, build_wsgi_app, make_app
from tests.redis_stats import CommandCounter, CommandStat
from tests.test_codec import body_of
from tests.test_commands import start_session


def run(redis_url: str, view: Any, **options: Any) -> Any:
    """Serve ``view`` at /t on a fresh app and return (app, view result of one GET)."""
    app = make_app(redis_url, {"t": view}, **options)
    return app, app.get("/t").json


def test_session_provides_isession(redis_url: str) -> None:
    _, result = run(redis_url, lambda request: verifyObject(ISession, request.session))
    assert result is True


def test_dict_api(redis_url: str) -> None:
    def view(request: Request) -> Any:
        s = request.session
        s["a"] = 1
        s.update({"b": 2}, c=3)
        assert s.setdefault("d", 4) == 4
        assert s.setdefault("a", 99) == 1
        assert s.pop("d") == 4
        assert s.pop("missing", "dflt") == "dflt"
        with pytest.raises(KeyError):
            s.pop("missing")
        assert s.popitem() == ("c", 3)
        del s["b"]
        assert "a" in s and "b" not in s and len(s) == 1
        assert list(s) == ["a"] and list(s.keys()) == ["a"]
        assert list(s.values()) == [1] and list(s.items()) == [("a", 1)]
        assert s.get("nope") is None and s.get("nope", 5) == 5
        return dict(s)

    app, result = run(redis_url, view)
    assert result == {"a": 1}
    assert app.get("/dump").json == {"a": 1}


def test_clear_then_set(redis_url: str) -> None:
    app = make_app(redis_url)
    start_session(app, a=1, b=2)
    app.get("/clear")
    app.get("/set", {"key": "c", "value": "3"})
    assert app.get("/dump").json == {"c": 3}


def test_new_and_created(redis_url: str) -> None:
    def view(request: Request) -> Any:
        request.session["x"] = 1
        return [request.session.new, request.session.created]

    app = make_app(redis_url, {"t": view})
    before = int(time.time())
    new, created = app.get("/t").json
    assert new is True and before <= created <= int(time.time())
    new_again, created_again = app.get("/t").json
    assert new_again is False and created_again == created


def test_flash_queue(redis_url: str) -> None:
    def view(request: Request) -> Any:
        s = request.session
        s.flash("one")
        s.flash("one", allow_duplicate=False)
        s.flash("two")
        s.flash("two")  # duplicates are kept by default
        s.flash("elsewhere", queue="q")
        return [s.peek_flash(), s.peek_flash("q"), s.peek_flash("empty")]

    app, result = run(redis_url, view)
    assert result == [["one", "two", "two"], ["elsewhere"], []]
    assert app.get("/pop_flash").json == ["one", "two", "two"]
    assert app.get("/pop_flash").json == []


def test_pop_flash_on_a_cookieless_request_stores_nothing(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url)
    response = app.get("/pop_flash")
    assert response.json == []
    assert redis_client.keys() == []
    assert "Set-Cookie" not in response.headers


def test_csrf_tokens(redis_url: str) -> None:
    def view(request: Request) -> Any:
        s = request.session
        first = s.get_csrf_token()
        assert s.get_csrf_token() == first
        second = s.new_csrf_token()
        return [first, second, s.get_csrf_token()]

    app, (first, second, current) = run(redis_url, view)
    assert len(first) == 64 and first != second and current == second
    assert app.get("/read", {"key": "_csrft_"}).json == second


def test_invalidate_deletes_key_and_expires_cookie(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url)
    session_id = start_session(app, a=1)
    response = app.get("/invalidate")
    assert redis_client.exists(session_id) == 0
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert app.get("/dump").json == {}


def test_data_after_invalidate_lands_under_a_new_id(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def view(request: Request) -> Any:
        old = request.session.session_id
        request.session.invalidate()
        request.session["fresh"] = True
        return [old, request.session.ensure_id()]

    app = make_app(redis_url, {"t": view})
    start_session(app, a=1)
    old, new = app.get("/t").json
    assert old != new
    assert redis_client.exists(old) == 0 and redis_client.exists(new) == 1
    assert app.get("/dump").json == {"fresh": True}


def test_emptied_session_is_deleted(redis_url: str, redis_client: redis.Redis) -> None:
    app = make_app(redis_url)
    session_id = start_session(app, a=1)
    response = app.get("/delete", {"key": "a"})
    assert redis_client.exists(session_id) == 0
    assert "Max-Age=0" in response.headers["Set-Cookie"]


def test_emptied_session_is_kept_without_invalidate_empty_session(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url, invalidate_empty_session=False)
    session_id = start_session(app, a=1)
    app.get("/delete", {"key": "a"})
    assert redis_client.exists(session_id) == 1


def test_ensure_id_on_a_new_empty_session_stores_and_cookies(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url)
    response = app.get("/ensure_id")
    session_id = response.json
    assert len(session_id) == 64
    assert redis_client.exists(session_id) == 1
    assert "Set-Cookie" in response.headers
    assert app.get("/session_id").json == session_id


def test_session_id_safecheck(redis_url: str) -> None:
    def view(request: Request) -> Any:
        s = request.session
        empty = s.session_id_safecheck
        s["a"] = 1
        return [empty, s.session_id_safecheck]

    _, (empty, filled) = run(redis_url, view)
    assert empty is None and len(filled) == 64


def test_default_ids_are_64_lowercase_hex(redis_url: str) -> None:
    app = make_app(redis_url)
    session_id = start_session(app, a=1)
    assert len(session_id) == 64 and all(c in "0123456789abcdef" for c in session_id)


def test_custom_id_generator_and_prefix(redis_url: str, redis_client: redis.Redis) -> None:
    app = make_app(redis_url, id_generator=lambda: "custom-id", prefix="app1:")
    assert start_session(app, a=1) == "app1:custom-id"
    assert redis_client.exists("app1:custom-id") == 1


def test_id_collision_never_overwrites_another_session(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    ids = iter(["taken", "free"])
    redis_client.set("taken", b"someone else's session")
    app = make_app(redis_url, id_generator=lambda: next(ids))
    assert start_session(app, a=1) == "free"
    assert redis_client.get("taken") == b"someone else's session"


def test_adjust_session_timeout_persists(redis_url: str, redis_client: redis.Redis) -> None:
    def view(request: Request) -> Any:
        request.session.adjust_session_timeout(50)
        return request.session.timeout

    app = make_app(redis_url, {"t": view}, timeout=300)
    session_id = start_session(app, a=1)
    assert app.get("/t").json == 50
    assert 45 <= redis_client.ttl(session_id) <= 50
    app.get("/read", {"key": "a"})  # the sliding refresh keeps the session's own timeout
    assert 45 <= redis_client.ttl(session_id) <= 50
    assert app.get("/t").json == 50


def test_adjust_session_expires_is_honoured_with_a_timeout(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def view(request: Request) -> Any:
        request.session.adjust_session_expires(int(time.time()) + 30)
        return "ok"

    app = make_app(redis_url, {"t": view}, timeout=300)
    session_id = start_session(app, a=1)
    app.get("/t")
    assert 25 <= redis_client.ttl(session_id) <= 30


def test_adjust_cookie_max_age_resends_cookie(redis_url: str) -> None:
    def view(request: Request) -> Any:
        request.session.adjust_cookie_max_age(1000)
        return "ok"

    app = make_app(redis_url, {"t": view})
    start_session(app, a=1)
    assert "Max-Age=1000" in app.get("/t").headers["Set-Cookie"]


@pytest.mark.parametrize("expires", [3600, datetime.timedelta(seconds=3600)])
def test_adjust_cookie_expires_resends_cookie_with_expires(redis_url: str, expires: Any) -> None:
    def view(request: Request) -> Any:
        request.session.adjust_cookie_expires(expires)
        return "ok"

    app = make_app(redis_url, {"t": view})
    start_session(app, a=1)
    header = app.get("/t").headers["Set-Cookie"]
    stamp = header.split("expires=")[1].split(";")[0]
    sent = email.utils.parsedate_to_datetime(stamp).timestamp()
    assert abs(sent - (time.time() + 3600)) < 120


def test_do_persist_and_do_refresh(redis_url: str, redis_client: redis.Redis) -> None:
    def view(request: Request) -> Any:
        s = request.session
        s["a"] = 1
        s.do_persist()
        stored = redis_client.exists(s.session_id)
        s.do_refresh(force_redis_ttl=77)
        return [s.session_id, stored]

    app = make_app(redis_url, {"t": view})
    session_id, stored = app.get("/t").json
    assert stored == 1
    assert 70 <= redis_client.ttl(session_id) <= 77
    assert app.get("/dump").json == {"a": 1}


def cas_writes(native_cas: bool, n: int) -> dict[str, int]:
    """Server-side counts of ``n`` compare-and-set writes (the script's GET and SET count)."""
    return {"set": n} if native_cas else {"evalsha": n, "get": n, "set": n}


def test_do_persist_then_more_changes_is_one_more_clean_write(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter, native_cas: bool
) -> None:
    """The persisted write is the new baseline: the end's compare-and-set wins at once.

    The increment before ``do_persist`` is not sent again (n ends at 2, not 3).
    """

    def view(request: Request) -> Any:
        s = request.session
        s["a"] = 2
        s.incr("n")
        s.do_persist()
        s["b"] = 3
        s.incr("n")
        return "ok"

    app = make_app(redis_url, {"t": view})
    session_id = start_session(app, a=1, n=0)  # the second write learns the CAS flavour
    commands.reset()
    app.get("/t")
    assert commands.counts() == {"getex": 1, **cas_writes(native_cas, 2)}
    assert app.get("/dump").json == {"a": 2, "n": 2, "b": 3}
    assert redis_client.exists(session_id)


def test_do_persist_of_a_new_session_then_more_changes(
    redis_url: str, commands: CommandCounter, native_cas: bool
) -> None:
    def view(request: Request) -> Any:
        s = request.session
        s["a"] = 1
        s.incr("n")
        s.do_persist()
        s["b"] = 2
        s.incr("n")
        return "ok"

    app = make_app(redis_url, {"t": view})
    start_session(app, x=1, y=2)  # learns the CAS flavour
    app.reset()
    commands.reset()
    response = app.get("/t")
    cas = cas_writes(native_cas, 1)
    assert commands.counts() == {**cas, "set": cas["set"] + 1}  # SET NX, then one CAS
    assert response.headers["Set-Cookie"].startswith("session=")
    assert app.get("/dump").json == {"a": 1, "n": 2, "b": 2}


def test_a_value_read_after_do_persist_is_compared_with_what_was_persisted(
    redis_url: str, commands: CommandCounter
) -> None:
    """A new session persisted mid-request, then only read: nothing more is written."""

    def view(request: Request) -> Any:
        s = request.session
        s["a"] = [1]
        s.do_persist()
        return s["a"]  # a mutable value handed out, unchanged

    app = make_app(redis_url, {"t": view})
    assert app.get("/t").json == [1]
    assert commands.counts() == {"set": 1}  # the SET NX of do_persist, nothing at the end
    assert app.get("/dump").json == {"a": [1]}


def test_a_new_session_persisted_then_emptied_is_deleted(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def view(request: Request) -> Any:
        s = request.session
        s["a"] = 1
        s.do_persist()
        stored = redis_client.exists(s.session_id)
        del s["a"]
        return stored

    app = make_app(redis_url, {"t": view})
    response = app.get("/t")
    assert response.json == 1  # it was stored in between
    assert redis_client.keys() == []  # and deleted at the end
    assert "Set-Cookie" not in response.headers  # no cookie for a session that is gone
    assert app.get("/dump").json == {}

    start_session(app, a=1)
    redis_client.flushall()  # the cookie now points to no session
    response = app.get("/t")
    assert redis_client.keys() == []
    assert "Max-Age=0" in response.headers["Set-Cookie"]  # the stale cookie is taken back


def test_values_of_every_supported_type_round_trip(redis_url: str) -> None:
    import datetime
    import decimal
    import uuid

    value = {
        "dt": datetime.datetime(2026, 11, 22, 5, 6, 7, 89),
        "d": datetime.date(2026, 1, 2),
        "u": uuid.UUID(int=7),
        "dec": decimal.Decimal("1.10"),
        "b": b"\x00\xff",
        "t": (1, "two"),
        "s": {1, 2},
        "big": 10**40,
    }

    def write(request: Request) -> Any:
        request.session["v"] = value
        return "ok"

    def check(request: Request) -> Any:
        return request.session["v"] == value

    app = make_app(redis_url, {"write": write, "check": check})
    app.get("/write")
    assert app.get("/check").json is True


@pytest.mark.parametrize("detect_changes", [True, False])
def test_changed_persists_in_place_mutation(redis_url: str, detect_changes: bool) -> None:
    def view(request: Request) -> Any:
        request.session["items"].append(json.loads(request.params["v"]))
        request.session.changed()
        return "ok"

    app = make_app(redis_url, {"t": view}, detect_changes=detect_changes)
    start_session(app, items=[])
    app.get("/t", {"v": "1"})
    assert app.get("/read", {"key": "items"}).json == [1]


def test_refresh_never_resurrects_a_deleted_session(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def view(request: Request) -> Any:
        request.session.get("a")  # loaded
        redis_client.delete(request.session.session_id)  # revoked meanwhile
        request.session.do_refresh()
        request.session.do_refresh(force_redis_ttl=500)
        return request.session.session_id

    app = make_app(redis_url, {"t": view})
    start_session(app, a=1)
    session_id = app.get("/t").json
    assert redis_client.exists(session_id) == 0


def test_large_sessions_are_stored_compressed_by_default(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url)
    big = [f"item number {i}" for i in range(500)]
    session_id = start_session(app, big=big, small=1)
    stored = redis_client.get(session_id)
    assert stored[0] == 0x06 and len(stored) < len(json.dumps(big)) / 2  # zstd
    assert app.get("/read", {"key": "big"}).json == big
    small_id = start_session(make_app(redis_url), a=1)
    assert redis_client.get(small_id)[0] == 0x04  # under 1 KB: plain


@pytest.mark.parametrize("setting", ["none", "1000000"])
def test_compression_can_be_turned_off_and_compressed_sessions_stay_readable(
    redis_url: str, redis_client: redis.Redis, setting: str
) -> None:
    from pyramid_session_redis.settings import parse_ini_settings

    compressing = make_app(redis_url)
    big = [f"item number {i}" for i in range(500)]
    start_session(compressing, big=big, small=1)
    options = parse_ini_settings({"redis.sessions.compress_threshold": setting})
    plain = make_app(redis_url, **options)
    plain.set_cookie("session", compressing.cookies["session"])
    assert plain.get("/read", {"key": "big"}).json == big
    plain.get("/set", {"key": "small", "value": "2"})  # one key: appended to the stored value
    plain.get("/delete", {"key": "big"})  # a deletion: rewritten whole, plain
    session_id = plain.get("/session_id").json
    assert body_of(redis_client.get(session_id))[0] == 0x04  # plain
    assert compressing.get("/read", {"key": "small"}).json == 2


def test_missing_keys_raise_key_error_naming_them(redis_url: str) -> None:
    def view(request: Request) -> Any:
        s = request.session
        with pytest.raises(KeyError) as missing:
            s.pop("missing")
        with pytest.raises(KeyError) as empty:
            s.popitem()
        return [missing.value.args, empty.value.args]

    _, result = run(redis_url, view)
    assert result == [["missing"], ["popitem(): session is empty"]]


def test_do_persist_leaves_nothing_to_do_at_the_end(
    redis_url: str, commands: CommandCounter, native_cas: bool
) -> None:
    """A request whose last change was persisted sends nothing more (no refresh either)."""

    def view(request: Request) -> Any:
        request.session["a"] = 2
        request.session.do_persist()
        return "ok"

    app = make_app(redis_url, {"t": view})
    start_session(app, a=1, b=1)  # the second write learns the CAS flavour
    commands.reset()
    app.get("/t")
    assert commands.counts() == {"getex": 1, **cas_writes(native_cas, 1)}


def test_do_persist_of_a_session_deleted_meanwhile_starts_a_new_one(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Mid-request (no response yet): reported gone, never recreated, later data is new."""
    problems: list[InvalidSession] = []

    def view(request: Request) -> Any:
        s = request.session
        redis_client.delete(s.session_id)  # a logout elsewhere
        s["a"] = 2
        s.do_persist()
        s["b"] = 1
        return "ok"

    app = make_app(
        redis_url, {"t": view}, func_invalid_logger=lambda request, p: problems.append(p)
    )
    session_id = start_session(app, a=1)
    problems.clear()
    response = app.get("/t")
    assert response.status_int == 200
    assert [(type(p), p.session_id) for p in problems] == [(SessionGone, session_id)]
    assert session_id not in str(problems[0])  # the message shows a keyed hash
    assert not redis_client.exists(session_id)
    (new_key,) = redis_client.keys()
    assert new_key.decode() != session_id
    assert app.get("/dump").json == {"b": 1}


def test_a_lost_write_asks_the_cookie_hook_about_the_real_response(
    redis_url: str, redis_client: redis.Redis
) -> None:
    seen: list[Any] = []

    def allow(response: Any) -> bool:
        seen.append(response)
        return True

    def view(request: Request) -> Any:
        redis_client.delete(request.session.session_id)
        request.session["a"] = 2
        return "ok"

    app = make_app(redis_url, {"t": view}, func_check_response_allow_cookies=allow)
    start_session(app, a=1)
    seen.clear()
    response = app.get("/t")
    assert "Max-Age=0" in response.headers["Set-Cookie"]  # the cookie of a gone session
    assert seen and all(r is not None and hasattr(r, "set_cookie") for r in seen)


def test_do_refresh_of_a_new_session_does_nothing(redis_url: str, commands: CommandCounter) -> None:
    def view(request: Request) -> Any:
        request.session.do_refresh()
        return request.session.session_id

    app = make_app(redis_url, {"t": view})
    assert app.get("/t").json is None  # no id given to it
    assert commands.counts() == {}


def test_lock_mode_refresh_and_invalidate_release_the_lock(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def refresh(request: Request) -> Any:
        request.session.do_refresh(force_redis_ttl=77)
        return "ok"

    app = make_app(redis_url, {"refresh": refresh}, persistence="lock", lock_wait=0.5, timeout=300)
    session_id = start_session(app, a=1)
    app.get("/refresh")
    assert 70 <= redis_client.ttl(session_id) <= 77
    assert redis_client.keys() == [session_id.encode()]  # no lock left behind
    app.get("/invalidate")
    assert redis_client.keys() == []  # deleted, and its lock released


def test_invalidating_a_new_session_that_has_an_id_sends_nothing(
    redis_url: str, commands: CommandCounter
) -> None:
    def view(request: Request) -> Any:
        request.session.ensure_id()
        request.session.invalidate()
        return "ok"

    app = make_app(redis_url, {"t": view})
    response = app.get("/t")
    assert commands.counts() == {}
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("bad", [0, -5, 1.5, "60", None])
def test_adjust_session_timeout_refuses_anything_but_a_positive_int(
    redis_url: str, bad: Any
) -> None:
    def view(request: Request) -> Any:
        with pytest.raises(ValueError) as refused:
            request.session.adjust_session_timeout(bad)
        request.session.adjust_session_timeout(1)  # the smallest allowed
        return str(refused.value)

    _, result = run(redis_url, view)
    assert result == "timeout_seconds must be a positive int"


def stored_record(redis_client: redis.Redis, session_id: str) -> Any:
    raw = redis_client.get(session_id)
    assert isinstance(raw, bytes)
    return SafeCodec().decode(raw)


def test_adjusting_the_timeout_back_to_the_default_stores_none(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def view(request: Request) -> Any:
        request.session.adjust_session_timeout(int(request.params["t"]))
        return "ok"

    app = make_app(redis_url, {"t": view}, timeout=300)
    session_id = start_session(app, a=1)
    app.get("/t", {"t": "50"})
    assert stored_record(redis_client, session_id).timeout == 50
    app.get("/t", {"t": "300"})
    assert stored_record(redis_client, session_id).timeout is None  # the factory's again
    assert 295 <= redis_client.ttl(session_id) <= 300


def test_with_an_expiry_in_the_payload_adjustments_move_it(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def timeout(request: Request) -> Any:
        request.session.adjust_session_timeout(500)
        return request.session.expires

    def expires(request: Request) -> Any:
        request.session.adjust_session_expires(int(request.params["at"]))
        return request.session.expires

    app = make_app(
        redis_url, {"timeout": timeout, "expires": expires}, timeout=300, timeout_trigger=100
    )
    session_id = start_session(app, a=1)
    before = int(time.time())
    moved = app.get("/timeout").json
    assert before + 500 <= moved <= int(time.time()) + 500
    assert stored_record(redis_client, session_id).expires == moved

    at = int(time.time()) + 1000
    assert app.get("/expires", {"at": str(at)}).json == at
    assert stored_record(redis_client, session_id).expires == at


def test_an_expiry_adjusted_into_the_past_leaves_at_most_a_second(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def view(request: Request) -> Any:
        request.session.adjust_session_expires(int(time.time()) - 100)
        return "ok"

    app = make_app(redis_url, {"t": view}, timeout=300)
    session_id = start_session(app, a=1)
    app.get("/t")
    assert redis_client.pttl(session_id) <= 1000  # a TTL of 1 s (or already gone)


def test_a_session_gone_mid_request_is_not_recreated_even_empty(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Persisted, deleted by someone else, persisted again (gone): nothing at the end."""

    def view(request: Request) -> Any:
        s = request.session
        s["a"] = 1
        s.do_persist()
        redis_client.delete(s.session_id)
        s["b"] = 1
        s.do_persist()  # gone: the session starts over, empty
        return dict(s)

    app = make_app(redis_url, {"t": view})
    response = app.get("/t")
    assert response.json == {}
    assert redis_client.keys() == []
    assert "Set-Cookie" not in response.headers


class CountingCodec(SafeCodec):
    __slots__ = ("encodes",)

    def __init__(self) -> None:
        super().__init__()
        self.encodes = 0

    def encode_plain(self, record: Any) -> bytes:
        self.encodes += 1
        return super().encode_plain(record)


def test_a_new_session_is_serialized_once(redis_url: str) -> None:
    factory = RedisSessionFactory(SECRET, redis_url=redis_url)
    codec = factory.codec = CountingCodec()
    app = webtest.TestApp(build_wsgi_app(factory))
    app.get("/set", {"key": "a", "value": "[1]"})
    assert codec.encodes == 1


def test_lock_mode_deletes_an_emptied_session_and_releases_in_one_command(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, persistence="lock")
    session_id = start_session(app, a=1)
    commands.reset()
    app.get("/delete", {"key": "a"})
    assert redis_client.keys() == []
    stats = commands.stats()
    used = [stats.get(name, CommandStat()) for name in ("evalsha", "eval")]
    ran = [stat.calls - stat.failed_calls for stat in used]
    assert sum(ran) == 2  # take the lock and load; delete and release (NOSCRIPT not counted)
    assert not redis_client.exists(session_id)


def test_redis_client_callable_is_given_the_request(redis_url: str) -> None:
    given: list[Any] = []
    client = redis.Redis.from_url(redis_url)

    def client_for(request: Any, **options: Any) -> redis.Redis:
        given.append(request)
        return client

    def view(request: Request) -> Any:
        request.session["a"] = 1
        return [request.path]

    try:
        app = make_app(redis_url, {"t": view}, redis_client_callable=client_for)
        app.get("/t")
        assert given and all(request.path == "/t" for request in given)
    finally:
        client.close()
