"""``session.regenerate_id()``: a new id, the same data, the old key gone, one round trip.

Through a real app on the suite's server, in every persistence mode; the store's move
script on its own; the choice of the new id (same Cluster hash slot as the old key).
The Cluster itself is in ``test_cluster.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
import webtest
from pyramid.request import Request

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.channel import ClientChannel
from pyramid_session_redis.codec import SafeCodec, SessionRecord
from pyramid_session_redis.exceptions import (
    InvalidSession,
    NotInBackend,
    SessionGone,
    SessionLockLost,
    SessionLockTimeout,
)
from pyramid_session_redis.keys import StorageKeys, derive_key, same_slot_id, slot_of, slot_tags
from pyramid_session_redis.lock import hash_tag, lock_key, tag_for_slot
from pyramid_session_redis.persist import MoveTarget, Saved, SessionWriter
from pyramid_session_redis.settings import build_settings
from pyramid_session_redis.state import SessionState
from pyramid_session_redis.store import MoveOutcome, RedisStore, ServerFeatures
from pyramid_session_redis.util import new_session_id
from tests.app import SECRET, build_wsgi_app
from tests.redis_stats import CommandCounter

MODES = ["cas", "overwrite", "lock"]


def login(request: Request) -> Any:
    """The pattern the README shows: check the credentials, then a new id, then the user."""
    request.session.regenerate_id()
    request.session["user"] = request.params.get("user", "alice")
    return request.session.session_id


class App:
    """A real app whose views may act on Redis in the middle of a login."""

    def __init__(self, redis_url: str, **options: Any) -> None:
        self.reports: list[InvalidSession] = []
        self.meddle: Callable[[str], Any] = lambda old_id: None
        self.factory = RedisSessionFactory(
            SECRET,
            redis_url=redis_url,
            func_invalid_logger=lambda request, exc: self.reports.append(exc),
            **options,
        )
        views = {
            "login": login,
            "meddled_login": self._meddled_login,
            "twice": self._twice,
            "persist_now": self._persist_now,
            "regenerate_invalidate": self._regenerate_invalidate,
            "regenerate_clear": self._regenerate_clear,
            "created": lambda request: request.session.created,
        }
        self.wsgi = build_wsgi_app(self.factory, views)

    def browser(self) -> webtest.TestApp:
        return webtest.TestApp(self.wsgi)

    def key(self, session_id: str) -> str:
        return self.factory.key(session_id)

    def _meddled_login(self, request: Request) -> Any:
        old_id = request.session.session_id
        request.session.get("user")  # loaded
        self.meddle(old_id)  # another request of the same session acts meanwhile
        return login(request)

    def _twice(self, request: Request) -> Any:
        request.session.regenerate_id()
        first = request.session.session_id
        request.session.regenerate_id()
        return [first, request.session.session_id]

    def _persist_now(self, request: Request) -> Any:
        request.session.regenerate_id()
        request.session["user"] = "bob"
        request.session.do_persist()
        return request.session.session_id

    def _regenerate_invalidate(self, request: Request) -> Any:
        request.session.regenerate_id()
        request.session.invalidate()
        return "logged out"

    def _regenerate_clear(self, request: Request) -> Any:
        request.session.regenerate_id()
        request.session.clear()
        return "cleared"


def cookie_id(app: App, browser: webtest.TestApp) -> str:
    return app.factory.cookie.signer.loads(browser.cookies["session"].encode())


def anonymous_session(app: App, browser: webtest.TestApp) -> str:
    browser.get("/set", {"key": "cart", "value": json.dumps(["book"])})
    return str(browser.get("/session_id").json)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("hash_keys", [False, True])
def test_login_moves_the_data_to_a_new_id_and_the_old_key_is_gone(
    redis_url: str, redis_client: redis.Redis, mode: str, hash_keys: bool
) -> None:
    app = App(redis_url, persistence=mode, timeout=600, hash_keys=hash_keys)
    browser = app.browser()
    old_id = anonymous_session(app, browser)
    response = browser.get("/login")
    new_id = response.json
    assert new_id != old_id
    assert cookie_id(app, browser) == new_id  # the cookie follows
    assert redis_client.exists(app.key(old_id)) == 0
    assert redis_client.exists(lock_key(app.key(old_id))) == 0  # lock mode: released
    assert redis_client.keys() == [app.key(new_id).encode()]
    assert 590 <= redis_client.ttl(app.key(new_id)) <= 600
    assert browser.get("/dump").json == {"cart": ["book"], "user": "alice"}
    assert slot_of(app.key(new_id)) == slot_of(app.key(old_id))


@pytest.mark.parametrize("prefix", ["app:", "{app}:", "app}:", "}{a}:", "{a}{", "a{b}c{"])
@pytest.mark.parametrize("hash_keys", [False, True])
def test_login_works_under_every_prefix_the_settings_accept(
    redis_url: str, redis_client: redis.Redis, prefix: str, hash_keys: bool
) -> None:
    # A prefix whose "{" opens no hash tag is refused at start-up (test_settings.py).
    app = App(redis_url, prefix=prefix, hash_keys=hash_keys)
    browser = app.browser()
    old_id = anonymous_session(app, browser)
    app.reports.clear()  # the first request's: no cookie yet
    for user in ("alice", "bob"):  # a second login moves the session again
        new_id = browser.get("/login", {"user": user}).json
        assert new_id != old_id and new_id.startswith(prefix)
        assert cookie_id(app, browser) == new_id
        assert redis_client.keys() == [app.key(new_id).encode()]
        assert slot_of(app.key(new_id)) == slot_of(app.key(old_id))
        old_id = new_id
    assert browser.get("/dump").json == {"cart": ["book"], "user": "bob"}
    assert app.reports == []


def test_the_old_cookie_finds_no_session(redis_url: str, mode: str) -> None:
    app = App(redis_url, persistence=mode)
    browser, attacker = app.browser(), app.browser()
    anonymous_session(app, browser)
    attacker.set_cookie("session", browser.cookies["session"])  # a fixated id
    browser.get("/login")
    app.reports.clear()
    assert attacker.get("/dump").json == {}
    assert [type(r) for r in app.reports] == [NotInBackend]


def test_regenerate_is_one_round_trip_with_the_pending_changes(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter, mode: str
) -> None:
    app = App(redis_url, persistence=mode)
    warm = app.browser()
    anonymous_session(app, warm)
    warm.get("/login")  # the move script is now in the server's script cache
    browser = app.browser()
    anonymous_session(app, browser)
    commands.reset()
    browser.get("/login", {"user": "carol"})
    # Sent by the client: one load (GETEX, or the lock's script) and one move (EVALSHA);
    # the rest runs inside the scripts.
    move = {"evalsha": 1, "get": 1, "exists": 1, "set": 1, "del": 1}
    expected = {
        "cas": {"getex": 1, **move},
        "overwrite": {"getex": 1, **move},
        # acquire: GET, SET NX PX, EXPIRE; move: GET lock, GET, EXISTS, SET, DEL x2
        "lock": {"evalsha": 2, "get": 3, "set": 2, "expire": 1, "exists": 1, "del": 2},
    }[mode]
    assert commands.counts() == expected
    assert browser.get("/dump").json == {"cart": ["book"], "user": "carol"}


def test_regenerating_an_unchanged_session_still_moves_it(
    redis_url: str, redis_client: redis.Redis, mode: str
) -> None:
    app = App(redis_url, persistence=mode)
    browser = app.browser()
    old_id = anonymous_session(app, browser)
    browser.get("/twice")
    new_id = cookie_id(app, browser)
    assert redis_client.keys() == [new_id.encode()]
    assert new_id != old_id
    assert browser.get("/dump").json == {"cart": ["book"]}


def test_the_last_of_two_regenerations_wins_and_nothing_is_left_behind(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url)
    browser = app.browser()
    old_id = anonymous_session(app, browser)
    first, second = browser.get("/twice").json
    assert len({old_id, first, second}) == 3
    assert cookie_id(app, browser) == second
    assert redis_client.keys() == [second.encode()]


def test_the_creation_time_is_kept(redis_url: str, redis_client: redis.Redis) -> None:
    app = App(redis_url)
    browser = app.browser()
    anonymous_session(app, browser)
    created = browser.get("/created").json
    browser.get("/login")
    assert browser.get("/created").json == created


def test_do_persist_moves_at_once(redis_url: str, redis_client: redis.Redis, mode: str) -> None:
    app = App(redis_url, persistence=mode)
    browser = app.browser()
    old_id = anonymous_session(app, browser)
    new_id = browser.get("/persist_now").json
    assert cookie_id(app, browser) == new_id
    assert redis_client.keys() == [new_id.encode()]
    assert browser.get("/dump").json == {"cart": ["book"], "user": "bob"}
    assert redis_client.exists(old_id, lock_key(old_id)) == 0


def test_invalidate_after_regenerate_deletes_the_stored_session(
    redis_url: str, redis_client: redis.Redis, mode: str
) -> None:
    app = App(redis_url, persistence=mode)
    browser = app.browser()
    anonymous_session(app, browser)
    response = browser.get("/regenerate_invalidate")
    assert redis_client.keys() == []
    assert "Max-Age=0" in response.headers["Set-Cookie"]


def test_a_session_emptied_after_regenerate_is_deleted_and_its_cookie_expired(
    redis_url: str, redis_client: redis.Redis, mode: str
) -> None:
    app = App(redis_url, persistence=mode)
    browser = app.browser()
    anonymous_session(app, browser)
    response = browser.get("/regenerate_clear")
    assert redis_client.keys() == []
    assert "Max-Age=0" in response.headers["Set-Cookie"]


def test_a_new_session_just_gets_a_fresh_id(redis_url: str, redis_client: redis.Redis) -> None:
    app = App(redis_url)
    browser = app.browser()
    assert browser.get("/login").json is None  # no session yet: an id once it is stored
    new_id = cookie_id(app, browser)
    assert redis_client.keys() == [new_id.encode()]
    assert browser.get("/dump").json == {"user": "alice"}


def test_a_response_without_cookies_keeps_the_old_id(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url, func_check_response_allow_cookies=lambda response: False)
    browser = app.browser()
    browser.set_cookie("session", app.factory.cookie.signer.dumps("a" * 64).decode())
    redis_client.set("a" * 64, app.factory.codec.encode(SessionRecord({"cart": 1}, 0)))
    response = browser.get("/login")
    assert "Set-Cookie" not in response.headers
    assert redis_client.keys() == [b"a" * 64]  # not moved: the client could not follow
    assert browser.get("/dump").json == {"cart": 1, "user": "alice"}


# ------------------------------------------------------------------ concurrent requests


def test_a_concurrent_write_to_the_old_id_is_merged_into_the_new_one(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url)
    browser, other = app.browser(), app.browser()
    anonymous_session(app, browser)
    other.set_cookie("session", browser.cookies["session"])
    app.meddle = lambda old_id: other.get("/set", {"key": "theme", "value": '"dark"'})
    new_id = browser.get("/meddled_login").json
    assert redis_client.keys() == [new_id.encode()]
    assert browser.get("/dump").json == {"cart": ["book"], "theme": "dark", "user": "alice"}


def test_a_session_deleted_meanwhile_is_not_recreated_under_the_new_id(
    redis_url: str, redis_client: redis.Redis, mode: str
) -> None:
    app = App(redis_url, persistence=mode)
    browser = app.browser()
    anonymous_session(app, browser)
    app.meddle = lambda old_id: redis_client.delete(old_id)  # e.g. a logout elsewhere
    app.reports.clear()
    response = browser.get("/meddled_login")
    assert redis_client.keys() == []
    assert [type(r) for r in app.reports] == [SessionGone]
    assert "Max-Age=0" in response.headers["Set-Cookie"]


def test_lock_mode_holds_off_other_requests_until_the_move(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = App(redis_url, persistence="lock", lock_timeout=5, lock_wait=0.05)
    browser, other = app.browser(), app.browser()
    anonymous_session(app, browser)
    other.set_cookie("session", browser.cookies["session"])
    seen: list[type[Exception]] = []

    def other_request(old_id: str) -> None:
        with pytest.raises(SessionLockTimeout) as raised:  # the login holds the lock
            other.get("/read", {"key": "cart"})
        seen.append(raised.type)

    app.meddle = other_request
    new_id = browser.get("/meddled_login").json
    assert seen == [SessionLockTimeout]
    assert redis_client.keys() == [new_id.encode()]  # and released by the move


def test_a_lease_that_ran_out_fences_the_move(redis_url: str, redis_client: redis.Redis) -> None:
    app = App(redis_url, persistence="lock")
    browser = app.browser()
    old_id = anonymous_session(app, browser)
    app.meddle = lambda old_id: redis_client.set(lock_key(old_id), b"someone else")
    with pytest.raises(SessionLockLost):  # raised after the response, nothing written
        browser.get("/meddled_login")
    assert redis_client.get(old_id) is not None  # the old session is intact
    assert sorted(redis_client.keys()) == sorted([old_id.encode(), lock_key(old_id).encode()])


# ------------------------------------------------------------------ the store's move


@pytest.fixture
def store(redis_client: redis.Redis) -> RedisStore:
    return RedisStore(ClientChannel(redis_client), ServerFeatures())


def test_move_outcomes(store: RedisStore, redis_client: redis.Redis) -> None:
    redis_client.set("old", b"v1")
    assert store.move("old", "new", b"v2", 60, expected=b"other") == (
        MoveOutcome.CONFLICT,
        b"v1",
    )
    redis_client.set("taken", b"theirs")
    assert store.move("old", "taken", b"v2", 60, expected=b"v1") == (MoveOutcome.TAKEN, None)
    assert redis_client.get("taken") == b"theirs" and redis_client.get("old") == b"v1"
    assert store.move("old", "new", b"v2", 60, expected=b"v1") == (MoveOutcome.MOVED, None)
    assert redis_client.get("new") == b"v2" and redis_client.exists("old") == 0
    assert 55 <= redis_client.ttl("new") <= 60
    assert store.move("old", "newer", b"v3", None) == (MoveOutcome.GONE, None)
    assert store.move("new", "newer", b"v3", None) == (MoveOutcome.MOVED, None)
    assert redis_client.ttl("newer") == -1 and redis_client.exists("new") == 0


def test_move_under_the_lock_checks_the_token_and_releases_it(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    redis_client.set("old", b"v1")
    redis_client.set(lock_key("old"), b"mine")
    assert store.move("old", "new", b"v2", None, token="theirs") == (MoveOutcome.FENCED, None)
    assert store.move("old", "new", b"v2", None, token="mine") == (MoveOutcome.MOVED, None)
    assert redis_client.exists("old", lock_key("old")) == 0
    redis_client.set(lock_key("gone"), b"mine")
    assert store.move("gone", "x", b"v", None, token="mine") == (MoveOutcome.GONE, None)
    assert redis_client.exists(lock_key("gone"), "x") == 0


# ------------------------------------------------------------------ the new id's slot


@pytest.mark.parametrize("prefix", [None, "app:", "{shop}:", "app}:"])
@pytest.mark.parametrize("hashed", [False, True])
def test_the_new_id_keeps_the_slot_the_prefix_and_at_most_one_tag(
    prefix: str | None, hashed: bool
) -> None:
    keys = StorageKeys(derive_key("s", "storage-key") if hashed else None, prefix)

    def ids() -> str:
        return (prefix or "") + new_session_id()

    for _ in range(50):
        old_id = ids()
        for _ in range(3):  # a session regenerated again and again
            new_id = same_slot_id(ids, keys, keys(old_id), prefix)
            assert slot_of(keys(new_id)) == slot_of(keys(old_id))
            assert new_id.startswith(prefix or "")
            assert new_id.count("{") <= 1
            old_id = new_id
        if not hashed:
            assert hash_tag(old_id) is not None or prefix == "{shop}:"


def test_hashed_keys_reveal_neither_the_id_nor_each_other() -> None:
    keys = StorageKeys(derive_key("s", "storage-key"), "app:")
    other = StorageKeys(derive_key("t", "storage-key"), "app:")
    session_id = "app:" + new_session_id()
    assert keys(session_id).startswith("app:") and session_id[4:] not in keys(session_id)
    assert keys(session_id) != other(session_id)
    assert keys("app:{psr7}x").startswith("app:{psr7}")  # the slot tag stays
    assert derive_key(["s", "old"], "storage-key") == derive_key(b"s", "storage-key")


def test_the_slot_table_holds_the_lock_modules_tags() -> None:
    tags = slot_tags()
    assert len(tags) == 16384
    for slot in (0, 1, 5460, 5461, 9999, 16383):
        assert tags[slot] == tag_for_slot(slot)
        assert slot_of(tags[slot]) == slot


@pytest.mark.parametrize("mode", MODES)
def test_a_taken_new_key_moves_to_another_id_and_leaves_it_alone(
    store: RedisStore, redis_client: redis.Redis, mode: str
) -> None:
    codec = SafeCodec()
    record = SessionRecord({"cart": 1}, 1_700_000_000)
    loaded = codec.encode(record)
    redis_client.set("old", loaded)
    redis_client.set("taken", b"someone else's")
    lock = None
    if mode == "lock":
        lock = "token"
        redis_client.set(lock_key("old"), lock)
    writer = SessionWriter(store, codec, build_settings(SECRET, persistence=mode), print)
    state = SessionState(codec.decode(loaded), loaded, codec.unpack(loaded))
    state.assign("user", "alice")
    target = MoveTarget("taken", "taken", lambda: ("free", "free"))
    plain = codec.encode_plain(state.record)
    assert writer.move(state, "old", target, plain, lambda: 60, lock) is Saved.WRITTEN
    assert target.session_id == "free"
    assert redis_client.get("taken") == b"someone else's"
    assert codec.decode(redis_client.get("free")).data == {"cart": 1, "user": "alice"}
    assert redis_client.exists("old", lock_key("old")) == 0
