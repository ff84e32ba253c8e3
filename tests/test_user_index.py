"""Log out everywhere: bind_user, list_user_sessions, revoke_user_sessions.

Through a real Pyramid app and a real Redis; the index is inspected in Redis itself
(a sorted set of session keys scored by the binding's deadline), command counts come
from the server. Concurrency and Cluster tests are in test_user_index_live.py.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import webtest
from pyramid.config import Configurator
from pyramid.request import Request

from pyramid_session_redis import (
    RedisSessionFactory,
    UserSession,
    list_user_sessions,
    revoke_user_session,
    revoke_user_sessions,
    user_index,
)
from pyramid_session_redis import session as session_module
from pyramid_session_redis.exceptions import (
    ConfigurationError,
    InvalidSession,
    SessionBackendError,
    UserBindingExpired,
)
from pyramid_session_redis.settings import parse_ini_settings
from pyramid_session_redis.store import (
    CAD_SCRIPT,
    CAS_SCRIPT,
    INDEX_ENTRIES_SCRIPT,
    INDEX_UPDATE_SCRIPT,
)
from pyramid_session_redis.user_index import (
    USER_KEY,
    binding_of,
    index_key,
    lapsed,
    settled,
    userid_text,
)
from pyramid_session_redis.util import log_id, make_log_key
from tests.app import SECRET, build_wsgi_app
from tests.redis_stats import CommandCounter

LIFETIME = 3600
TIMEOUT = 600


# --------------------------------------------------------------------------- the app


def login(request: Request) -> Any:
    request.session.bind_user(request.params["user"])
    return "bound"


def login_int(request: Request) -> Any:
    request.session.bind_user(int(request.params["user"]))
    return "bound"


def logout(request: Request) -> Any:
    request.session.unbind_user()
    return "unbound"


def whoami(request: Request) -> Any:
    return request.session.bound_userid


def sessions(request: Request) -> Any:
    found = list_user_sessions(request, request.params["user"])
    return [dataclasses.asdict(s) for s in found]


def revoke(request: Request) -> Any:
    keep = request.params.get("keep") == "1"
    return revoke_user_sessions(request, request.params["user"], except_current=keep)


def bad_login(request: Request) -> Any:
    try:
        request.session.bind_user(None)
    except TypeError as exc:
        return type(exc).__name__
    return "bound"


def persist_login(request: Request) -> Any:
    """bind_user(), then do_persist(): the index has the session before the view ends."""
    request.session.bind_user(request.params["user"])
    request.session.do_persist()
    return [s.current for s in list_user_sessions(request, request.params["user"])]


def revoke_one(request: Request) -> Any:
    return revoke_user_session(request, request.params["user"], request.params["handle"])


def relogin(request: Request) -> Any:
    """Log out and in again in one request: invalidate(), then bind a new session."""
    request.session.invalidate()
    request.session.bind_user(request.params["user"])
    return "relogged"


def regenerate(request: Request) -> Any:
    request.session.regenerate_id()
    return "regenerated"


VIEWS = {
    "regenerate": regenerate,
    "login": login,
    "login_int": login_int,
    "logout": logout,
    "whoami": whoami,
    "sessions": sessions,
    "revoke": revoke,
    "relogin": relogin,
    "bad_login": bad_login,
    "revoke_one": revoke_one,
    "persist_login": persist_login,
}


@dataclasses.dataclass
class Site:
    wsgi: Any
    reports: list[InvalidSession]

    def browser(self) -> webtest.TestApp:
        return webtest.TestApp(self.wsgi)

    @property
    def registry(self) -> Any:
        return self.wsgi.registry


@pytest.fixture
def site(redis_url: str, redis_client: redis.Redis) -> Callable[..., Site]:
    def build(**options: Any) -> Site:
        reports: list[InvalidSession] = []
        options.setdefault("timeout", TIMEOUT)
        options.setdefault("user_index_lifetime", LIFETIME)
        factory = RedisSessionFactory(
            SECRET,
            redis_url=redis_url,
            func_invalid_logger=lambda request, problem: reports.append(problem),
            **options,
        )
        return Site(build_wsgi_app(factory, VIEWS), reports)

    return build


def logged_in(site: Site, user: str) -> tuple[webtest.TestApp, str]:
    """A browser whose session holds data and is bound to ``user``; (browser, session id)."""
    browser = site.browser()
    browser.get("/set", {"key": "cart", "value": json.dumps([user])})
    browser.get("/login", {"user": user})
    return browser, browser.get("/session_id").json


def index(redis_client: redis.Redis, user: str, prefix: str | None = None) -> dict[str, int]:
    """The user's index as stored: {session key: deadline}."""
    pairs = redis_client.zrange(index_key(prefix, user), 0, -1, withscores=True)
    return {member.decode(): int(score) for member, score in pairs}


def handle(session_id: str) -> str:
    return log_id(make_log_key(SECRET), session_id)


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("userid", "expected"),
    [("alice", "alice"), (42, "42"), ("42", "42"), ("ü{x}", "ü{x}")],
)
def test_user_ids_are_str_or_int(userid: Any, expected: str) -> None:
    assert userid_text(userid) == expected


@pytest.mark.parametrize("userid", [None, True, 1.5, b"alice", ["a"]])
def test_other_user_ids_are_refused(userid: Any) -> None:
    with pytest.raises(TypeError):
        userid_text(userid)


def test_an_empty_user_id_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        userid_text("")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["alice", 100], ("alice", 100)),
        (["alice", True], None),
        (["alice", 1.0], None),
        ([1, 100], None),
        (["alice", 100, 1], None),
        (("alice", 100), None),
        ("alice", None),
        (None, None),
    ],
)
def test_binding_is_read_only_from_its_exact_form(value: Any, expected: Any) -> None:
    assert binding_of({USER_KEY: value}) == expected
    assert binding_of({}) is None


def test_lapsed_and_settled() -> None:
    assert lapsed({USER_KEY: ["a", 100]}, 100) and not lapsed({USER_KEY: ["a", 100]}, 99)
    assert not lapsed({USER_KEY: "junk"}, 10**10) and not lapsed({}, 10**10)
    # bound at until - lifetime: settled once PENDING_GRACE seconds have passed since
    bound_at = 1000
    assert not settled(bound_at + LIFETIME, LIFETIME, bound_at + user_index.PENDING_GRACE - 1)
    assert settled(bound_at + LIFETIME, LIFETIME, bound_at + user_index.PENDING_GRACE)


def test_index_keys_hash_the_user_and_carry_their_own_hash_tag() -> None:
    key = index_key(None, "alice")
    assert key.startswith("psr:user:{") and key.endswith("}") and "alice" not in key
    assert key == index_key(None, "alice") == index_key("", "alice")
    assert len({key, index_key(None, "bob"), index_key("shop:", "alice")}) == 3
    # braces in the user id or prefix never change which part is the hash tag
    assert index_key("{app}", "{x}").startswith("psr:user:{")


A, B = "alice", "bob"
FAR = 4_000_000_000


def e(user: str, key: str, until: int = FAR) -> user_index.Entry:
    return user_index.Entry(user, key, until)


@pytest.mark.parametrize(
    ("before", "planned", "final", "expected"),
    [
        pytest.param(None, e(A, "k"), e(A, "k"), {A: ["k"]}, id="bind"),
        pytest.param(e(A, "k"), None, None, {}, id="unbind"),
        pytest.param(e(A, "k", 10**9 * 3), e(A, "k"), e(A, "k"), {A: ["k"]}, id="renew"),
        pytest.param(e(A, "k"), e(B, "k"), e(B, "k"), {B: ["k"]}, id="rebind-to-another"),
        pytest.param(None, e(A, "k"), None, {}, id="bind-but-session-gone"),
        pytest.param(e(A, "k"), e(B, "k"), None, {}, id="rebind-but-session-gone"),
        pytest.param(None, e(A, "taken"), e(A, "free"), {A: ["free"]}, id="id-collision"),
        pytest.param(e(A, "old"), None, e(A, "new"), {A: ["new"]}, id="moved-by-the-write"),
        pytest.param(e(A, "old"), e(A, "new"), e(A, "new"), {A: ["new"]}, id="moved-before"),
        pytest.param(None, None, None, {}, id="nothing"),
    ],
)
def test_index_update_table(
    redis_url: str,
    redis_client: redis.Redis,
    before: user_index.Entry | None,
    planned: user_index.Entry | None,
    final: user_index.Entry | None,
    expected: dict[str, list[str]],
) -> None:
    factory = RedisSessionFactory(SECRET, redis_url=redis_url)
    store = factory.store_for(None)
    if before is not None:
        store.index_update(factory.user_index(before.userid), 0, (before.key, before.until), ())
    update = user_index.IndexUpdate(store, factory.user_index, before)
    update.before_write(planned)
    update.after_write(final)
    found = {user: sorted(index(redis_client, user)) for user in (A, B)}
    assert {user: keys for user, keys in found.items() if keys} == expected
    if final is not None:
        assert index(redis_client, final.userid)[final.key] == final.until


# --------------------------------------------------------------------------- binding


def test_binding_enters_the_index_scored_by_its_deadline(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    app = site()
    before = int(time.time())
    browser, session_id = logged_in(app, "alice")
    entries = index(redis_client, "alice")
    assert list(entries) == [session_id]
    assert before + LIFETIME <= entries[session_id] <= int(time.time()) + LIFETIME
    # the index key expires with its latest deadline
    assert redis_client.expiretime(index_key(None, "alice")) == entries[session_id]
    assert browser.get("/whoami").json == "alice"
    assert browser.get("/dump").json == {
        "cart": ["alice"],
        USER_KEY: ["alice", entries[session_id]],
    }


def test_binding_a_new_session_creates_it(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    browser = site().browser()
    browser.get("/login", {"user": "alice"})
    session_id = browser.get("/session_id").json
    assert redis_client.exists(session_id) == 1
    assert list(index(redis_client, "alice")) == [session_id]


@pytest.mark.parametrize("existing", [False, True])
def test_do_persist_updates_the_index_at_once(
    site: Callable[..., Site], redis_client: redis.Redis, existing: bool
) -> None:
    browser = site().browser()
    if existing:
        browser.get("/set", {"key": "cart", "value": "[]"})
    assert browser.get("/persist_login", {"user": "alice"}).json == [True]
    session_id = browser.get("/session_id").json
    assert list(index(redis_client, "alice")) == [session_id]
    assert browser.get("/whoami").json == "alice"


def test_an_id_collision_on_login_indexes_only_the_id_used(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    ids = iter(["taken", "free"])
    app = site(id_generator=lambda: next(ids))
    redis_client.set("taken", b"another user's session")
    browser = app.browser()
    browser.get("/login", {"user": "alice"})
    assert browser.get("/session_id").json == "free"
    assert list(index(redis_client, "alice")) == ["free"]  # the planned "taken" removed
    assert redis_client.get("taken") == b"another user's session"


def test_an_int_user_id_is_the_same_user_as_its_digits(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    app = site()
    first, second = app.browser(), app.browser()
    first.get("/login_int", {"user": "7"})
    second.get("/login", {"user": "7"})
    assert len(index(redis_client, "7")) == 2
    assert first.get("/whoami").json == "7"


def test_unbind_takes_the_session_out_and_keeps_it(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    browser, _ = logged_in(site(), "alice")
    browser.get("/logout")
    assert index(redis_client, "alice") == {}
    assert redis_client.exists(index_key(None, "alice")) == 0  # emptied: gone
    assert browser.get("/dump").json == {"cart": ["alice"]}
    assert browser.get("/whoami").json is None


def test_invalidate_unbinds(site: Callable[..., Site], redis_client: redis.Redis) -> None:
    app = site()
    browser, session_id = logged_in(app, "alice")
    _, other_id = logged_in(app, "alice")
    browser.get("/invalidate")
    assert redis_client.exists(session_id) == 0
    assert list(index(redis_client, "alice")) == [other_id]


def test_invalidate_then_bind_in_one_request_moves_the_entry(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    browser, old_id = logged_in(site(), "alice")
    browser.get("/relogin", {"user": "alice"})
    new_id = browser.get("/session_id").json
    assert new_id != old_id and redis_client.exists(old_id) == 0
    assert list(index(redis_client, "alice")) == [new_id]


def test_rebinding_to_another_user_moves_the_entry(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    browser, session_id = logged_in(site(), "alice")
    browser.get("/login", {"user": "bob"})
    assert index(redis_client, "alice") == {}
    assert list(index(redis_client, "bob")) == [session_id]


def test_rebinding_the_same_user_renews_the_deadline(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    browser, session_id = logged_in(site(), "alice")
    redis_client.zadd(index_key(None, "alice"), {session_id: 5})  # as if bound long ago
    browser.get("/login", {"user": "alice"})
    assert index(redis_client, "alice")[session_id] >= int(time.time()) + LIFETIME - 5


def test_binding_prunes_lapsed_entries(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    app = site()
    key = index_key(None, "alice")
    redis_client.zadd(key, {"lapsed-session": int(time.time()) - 1})
    _, session_id = logged_in(app, "alice")
    assert list(index(redis_client, "alice")) == [session_id]


def test_clearing_the_session_unbinds_it(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    app = site()
    browser, session_id = logged_in(app, "alice")
    _, other_id = logged_in(app, "alice")
    browser.get("/clear")  # emptied: deleted, and out of the index
    assert redis_client.exists(session_id) == 0
    assert list(index(redis_client, "alice")) == [other_id]


def test_deleting_the_reserved_key_through_the_dict_api_unbinds(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    browser, _ = logged_in(site(), "alice")
    browser.get("/delete", {"key": USER_KEY})
    assert index(redis_client, "alice") == {}
    assert browser.get("/dump").json == {"cart": ["alice"]}


def test_junk_in_the_reserved_key_is_no_binding(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    browser = site().browser()
    for junk in ['"alice"', '["alice"]', "[1, 2]", '["alice", "soon"]']:
        assert browser.get("/set", {"key": USER_KEY, "value": junk}).status_int == 200
        assert browser.get("/whoami").json is None
    assert redis_client.keys("psr:user:*") == []


def test_a_binding_past_its_deadline_gives_a_fresh_session(
    site: Callable[..., Site], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = site()
    browser, session_id = logged_in(app, "alice")
    app.reports.clear()
    later = int(time.time()) + LIFETIME + 1
    monkeypatch.setattr(session_module, "now", lambda: later)
    assert browser.get("/dump").json == {}
    assert [type(report) for report in app.reports] == [UserBindingExpired]
    assert session_id not in str(app.reports[0])
    monkeypatch.undo()
    # and the index expires with it: its key's deadline is the binding's
    assert redis_client.expiretime(index_key(None, "alice")) <= later


def test_bind_user_refuses_other_ids(site: Callable[..., Site]) -> None:
    browser = site().browser()
    assert browser.get("/bad_login").json == "TypeError"
    assert browser.get("/whoami").json is None


# --------------------------------------------------------------------------- listing


def test_listing_shows_each_live_session_without_its_id(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    app = site()
    start = int(time.time())
    first, first_id = logged_in(app, "alice")
    _, second_id = logged_in(app, "alice")
    logged_in(app, "bob")
    listed = first.get("/sessions", {"user": "alice"}).json
    assert {entry["handle"] for entry in listed} == {handle(first_id), handle(second_id)}
    assert first_id not in json.dumps(listed) and second_id not in json.dumps(listed)
    now = int(time.time())
    for entry in listed:
        assert start <= entry["created"] <= now
        assert start + TIMEOUT <= entry["expires"] <= now + TIMEOUT
        assert start + LIFETIME <= entry["bound_until"] <= now + LIFETIME
        assert entry["current"] is (entry["handle"] == handle(first_id))
    assert [entry["created"] for entry in listed] == sorted(entry["created"] for entry in listed)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"serialize": pickle.dumps, "deserialize": pickle.loads}, id="1.8-layout"),
        pytest.param({"persistence": "lock"}, id="lock"),
        pytest.param({"persistence": "overwrite"}, id="overwrite"),
        pytest.param({"timeout": None}, id="no-timeout"),
        pytest.param({"set_redis_ttl": False}, id="lru-mode"),
    ],
)
def test_binding_listing_and_revoking_in_other_modes(
    site: Callable[..., Site], redis_client: redis.Redis, options: dict[str, Any]
) -> None:
    app = site(**options)
    mine, my_id = logged_in(app, "alice")
    other, other_id = logged_in(app, "alice")
    listed = list_user_sessions(app.registry, "alice")
    assert sorted(s.handle for s in listed) == sorted([handle(my_id), handle(other_id)])
    assert all(s.created > 0 for s in listed)
    if options.get("timeout", TIMEOUT) is None:
        assert all(s.expires is None for s in listed)
    else:
        assert all(s.expires is not None and s.expires > time.time() for s in listed)
    assert mine.get("/revoke", {"user": "alice", "keep": "1"}).json == 1
    assert redis_client.exists(other_id) == 0 and other.get("/whoami").json is None
    mine.get("/logout")
    assert mine.get("/whoami").json is None
    assert list_user_sessions(app.registry, "alice") == []


def test_listing_from_the_registry(site: Callable[..., Site]) -> None:
    app = site()
    _, session_id = logged_in(app, "alice")
    listed = list_user_sessions(app.registry, "alice")
    assert len(listed) == 1 and isinstance(listed[0], UserSession)
    assert listed[0].handle == handle(session_id) and listed[0].current is False
    assert list_user_sessions(app.registry, "nobody") == []


def test_listing_skips_gone_sessions_and_prunes_them_once_settled(
    site: Callable[..., Site], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = site()
    _, gone_id = logged_in(app, "alice")
    _, live_id = logged_in(app, "alice")
    redis_client.delete(gone_id)  # expired, or deleted behind our back
    listed = list_user_sessions(app.registry, "alice")
    assert [s.handle for s in listed] == [handle(live_id)]
    # just bound: kept (its request might still be about to store it)
    assert set(index(redis_client, "alice")) == {gone_id, live_id}
    monkeypatch.setattr(user_index, "PENDING_GRACE", 0)
    list_user_sessions(app.registry, "alice")
    assert set(index(redis_client, "alice")) == {live_id}


def test_listing_skips_sessions_bound_elsewhere_or_undecodable(
    site: Callable[..., Site], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = site()
    _, rebound_id = logged_in(app, "bob")
    _, garbage_id = logged_in(app, "alice")
    _, wrongtype_id = logged_in(app, "alice")
    _, live_id = logged_in(app, "alice")
    key = index_key(None, "alice")
    redis_client.zadd(key, {rebound_id: int(time.time()) + LIFETIME})
    redis_client.set(garbage_id, b"\x00not a payload")
    redis_client.delete(wrongtype_id)
    redis_client.rpush(wrongtype_id, b"x")
    listed = list_user_sessions(app.registry, "alice")
    assert [s.handle for s in listed] == [handle(live_id)]
    monkeypatch.setattr(user_index, "PENDING_GRACE", 0)
    list_user_sessions(app.registry, "alice")
    assert set(index(redis_client, "alice")) == {live_id}


# --------------------------------------------------------------------------- revoking


def test_revoke_logs_out_every_other_session_of_the_user(
    site: Callable[..., Site], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(user_index, "PENDING_GRACE", 0)  # entries count as settled
    app = site()
    mine, my_id = logged_in(app, "alice")
    others = [logged_in(app, "alice") for _ in range(3)]
    bob, bob_id = logged_in(app, "bob")
    assert mine.get("/revoke", {"user": "alice", "keep": "1"}).json == 3
    for browser, session_id in others:
        assert redis_client.exists(session_id) == 0
        assert browser.get("/dump").json == {}  # a fresh, anonymous session
    assert mine.get("/whoami").json == "alice"
    assert bob.get("/whoami").json == "bob"
    assert list(index(redis_client, "alice")) == [my_id]
    assert list(index(redis_client, "bob")) == [bob_id]


def test_revoke_including_the_current_session_expires_its_cookie(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    app = site()
    mine, my_id = logged_in(app, "alice")
    _, other_id = logged_in(app, "alice")
    app.reports.clear()
    response = mine.get("/revoke", {"user": "alice"})
    assert response.json == 2
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert redis_client.exists(my_id, other_id) == 0
    assert app.reports == []  # invalidated, not "gone under us"
    assert list(index(redis_client, "alice")) == [other_id]  # just bound: pruned later
    assert list_user_sessions(app.registry, "alice") == []


def test_revoke_from_the_registry(site: Callable[..., Site], redis_client: redis.Redis) -> None:
    app = site()
    browsers = [logged_in(app, "alice") for _ in range(2)]
    assert revoke_user_sessions(app.registry, "alice") == 2
    assert all(redis_client.exists(sid) == 0 for _, sid in browsers)
    assert revoke_user_sessions(app.registry, "alice") == 0
    with pytest.raises(TypeError, match="needs the request"):
        revoke_user_sessions(app.registry, "alice", except_current=True)


def test_revoke_one_session_by_its_handle(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    app = site()
    mine, my_id = logged_in(app, "alice")
    other, other_id = logged_in(app, "alice")
    _, bob_id = logged_in(app, "bob")
    revoke = {"user": "alice", "handle": handle(other_id)}
    assert mine.get("/revoke_one", revoke).json is True
    assert redis_client.exists(other_id) == 0 and other.get("/whoami").json is None
    assert mine.get("/revoke_one", revoke).json is False  # already gone
    assert mine.get("/revoke_one", {"user": "alice", "handle": handle(bob_id)}).json is False
    assert mine.get("/revoke_one", {"user": "alice", "handle": "nonsense"}).json is False
    assert redis_client.exists(my_id, bob_id) == 2
    response = mine.get("/revoke_one", {"user": "alice", "handle": handle(my_id)})
    assert response.json is True and "Max-Age=0" in response.headers["Set-Cookie"]
    assert redis_client.exists(my_id) == 0
    assert revoke_user_session(app.registry, "bob", handle(bob_id)) is True


def test_a_session_bound_while_revoking_stays_indexed(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    """Entries younger than the grace period stay after a revocation: a login whose
    entry was added just before its session is stored must remain revocable."""
    app = site()
    logged_in(app, "alice")
    key = index_key(None, "alice")
    redis_client.zadd(key, {"being-stored": int(time.time()) + LIFETIME})
    revoke_user_sessions(app.registry, "alice")
    assert "being-stored" in index(redis_client, "alice")


# --------------------------------------------------------------------------- costs


@pytest.fixture
def scripts_cached(redis_client: redis.Redis) -> None:
    for script in (CAS_SCRIPT, CAD_SCRIPT, INDEX_UPDATE_SCRIPT, INDEX_ENTRIES_SCRIPT):
        redis_client.script_load(script)


# Commands the index scripts run inside Redis (INFO commandstats counts them too).
INDEX_ADD = {"evalsha": 1, "zadd": 1, "zremrangebyscore": 1, "zrange": 1, "expireat": 1, "zcard": 1}
INDEX_REMOVE = {"evalsha": 1, "zrem": 1, "zremrangebyscore": 1, "zrange": 1, "zcard": 1}
INDEX_READ = {"evalsha": 1, "zremrangebyscore": 1, "zrange": 1}


def plus(*counts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for name, n in count.items():
            total[name] = total.get(name, 0) + n
    return total


REQUESTS = [
    ("/read", {"key": "cart"}),
    ("/set", {"key": "x", "value": "1"}),
    ("/incr", {"key": "n"}),
    ("/append", {"key": "cart", "value": "2"}),
    ("/untouched", {}),
    ("/whoami", {}),
]


def test_requests_that_do_not_bind_cost_what_they_cost_unbound(
    site: Callable[..., Site], commands: CommandCounter, scripts_cached: None
) -> None:
    app = site()
    bound, _ = logged_in(app, "alice")
    unbound = app.browser()
    unbound.get("/set", {"key": "cart", "value": json.dumps(["alice"])})
    for path, params in REQUESTS:
        with commands.measure() as on_bound:
            bound.get(path, params)
        with commands.measure() as on_unbound:
            unbound.get(path, params)
        assert on_bound.counts == on_unbound.counts, path
    assert on_bound.counts == {"getex": 1}  # /whoami: one read, as any read


def test_binding_and_unbinding_cost_one_script_call_on_the_index(
    site: Callable[..., Site], commands: CommandCounter, scripts_cached: None
) -> None:
    app = site()
    browser = app.browser()
    browser.get("/set", {"key": "cart", "value": "[]"})
    browser.get("/set", {"key": "x", "value": "0"})  # the factory learns the server's CAS
    with commands.measure() as plain_write:
        browser.get("/set", {"key": "x", "value": "1"})
    with commands.measure() as login:
        browser.get("/login", {"user": "alice"})
    with commands.measure() as logout:
        browser.get("/logout")
    assert login.counts == plus(plain_write.counts, INDEX_ADD)
    assert logout.counts == plus(plain_write.counts, INDEX_REMOVE)
    fresh = app.browser()
    with commands.measure() as first_login:
        fresh.get("/login", {"user": "alice"})
    assert first_login.counts == plus({"set": 1}, INDEX_ADD)  # SET NX, then the index


def test_invalidating_a_bound_session_costs_one_script_call_more(
    site: Callable[..., Site], commands: CommandCounter, scripts_cached: None
) -> None:
    app = site()
    bound, _ = logged_in(app, "alice")
    unbound = app.browser()
    unbound.get("/set", {"key": "cart", "value": "[]"})
    with commands.measure() as plain:
        unbound.get("/invalidate")
    with commands.measure() as logout:
        bound.get("/invalidate")
    assert plain.counts == {"getex": 1, "del": 1}
    assert logout.counts == plus(plain.counts, INDEX_REMOVE)


def test_listing_and_revoking_cost_two_round_trips(
    site: Callable[..., Site], commands: CommandCounter, scripts_cached: None
) -> None:
    app = site()
    for _ in range(3):
        logged_in(app, "alice")
    with commands.measure() as listing:
        assert len(list_user_sessions(app.registry, "alice")) == 3
    with commands.measure() as revoking:
        assert revoke_user_sessions(app.registry, "alice") == 3
    # the index; then GET + TTL of each session, pipelined
    assert listing.counts == plus(INDEX_READ, {"get": 3, "ttl": 3})
    # the index; then one DEL per session, pipelined (young entries: nothing to prune)
    assert revoking.counts == plus(INDEX_READ, {"del": 3})


# --------------------------------------------------------------------------- errors, options


def test_redis_down_is_a_typed_error() -> None:
    factory = RedisSessionFactory(SECRET, redis_url="redis://127.0.0.1:1/0")
    with Configurator() as config:
        config.set_session_factory(factory)
        registry = config.registry
    with pytest.raises(SessionBackendError):
        list_user_sessions(registry, "alice")
    with pytest.raises(SessionBackendError):
        revoke_user_sessions(registry, "alice")


def test_an_index_key_holding_another_type_is_a_typed_error(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    app = site()
    redis_client.set(index_key(None, "alice"), b"not an index")
    with pytest.raises(SessionBackendError, match="not a sorted set"):
        list_user_sessions(app.registry, "alice")
    with pytest.raises(SessionBackendError, match="not a sorted set"):
        revoke_user_sessions(app.registry, "alice")
    browser = app.browser()
    browser.get("/set", {"key": "cart", "value": "[]"})
    with pytest.raises(SessionBackendError):
        browser.get("/login", {"user": "alice"})
    assert browser.get("/whoami").json is None  # the binding was not stored


def test_a_registry_without_this_session_factory_is_refused() -> None:
    with Configurator() as config:
        registry = config.registry
    with pytest.raises(TypeError, match="session factory"):
        list_user_sessions(registry, "alice")
    with pytest.raises(TypeError, match="session factory"):
        revoke_user_sessions(object(), "alice")


def test_a_client_callable_needs_the_request(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    factory = RedisSessionFactory(SECRET, redis_client_callable=lambda request, **kw: client)
    with Configurator() as config:
        config.set_session_factory(factory)
        registry = config.registry
    with pytest.raises(TypeError, match="pass the request"):
        list_user_sessions(registry, "alice")
    client.close()


def test_user_index_lifetime_option() -> None:
    assert parse_ini_settings({"redis.sessions.user_index_lifetime": "86400"}) == {
        "user_index_lifetime": 86400
    }
    for bad in (0, -1, 1.5, True, "10", None):
        with pytest.raises(ConfigurationError) as info:
            RedisSessionFactory(SECRET, user_index_lifetime=bad)
        assert info.value.options == ("user_index_lifetime",)


def test_the_prefix_namespaces_the_index(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    app = site(prefix="shop:")
    _, session_id = logged_in(app, "alice")
    assert session_id.startswith("shop:")
    assert list(index(redis_client, "alice", "shop:")) == [session_id]
    assert index(redis_client, "alice") == {}


# --------------------------------------------------------------------------- the README's pattern


def readme_views() -> dict[str, Any]:
    text = (Path(__file__).parent.parent / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "bind_user" in b)
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    return namespace


class BoundUserPolicy:
    """A security policy whose authenticated user is the session's bound user."""

    def identity(self, request: Request) -> Any:
        return request.session.bound_userid

    def authenticated_userid(self, request: Request) -> Any:
        return request.session.bound_userid

    def permits(self, request: Request, context: Any, permission: str) -> bool:
        return True

    def remember(self, request: Request, userid: Any, **kw: Any) -> list[Any]:
        return []

    def forget(self, request: Request, **kw: Any) -> list[Any]:
        return []


def test_the_readme_pattern_works(redis_url: str, redis_client: redis.Redis) -> None:
    views = readme_views()
    views["check_credentials"] = lambda request: request.params.get("user")

    def done(view: Callable[[Request], Any]) -> Callable[[Request], Any]:
        def wrapped(request: Request) -> Any:
            result = view(request)
            return "done" if result is None else result

        return wrapped

    with Configurator() as config:
        config.set_session_factory(RedisSessionFactory(SECRET, redis_url=redis_url))
        config.set_security_policy(BoundUserPolicy())
        for name, view in [
            ("login", views["login_view"]),  # regenerate_id(), then bind_user()
            ("sessions", views["sessions_view"]),
            ("end_session", views["end_session_view"]),
            ("everywhere", views["log_out_everywhere_view"]),
            ("password", done(views["password_changed"])),
            ("whoami", whoami),
        ]:
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name, renderer="json")
        wsgi = config.make_wsgi_app()
    laptop, phone, tablet = (webtest.TestApp(wsgi) for _ in range(3))
    for browser in (laptop, phone, tablet):
        browser.get("/login", {"user": "alice"})
    listed = laptop.get("/sessions").json
    assert len(listed) == 3 and [s["current"] for s in listed].count(True) == 1
    phone_handle = next(s["handle"] for s in phone.get("/sessions").json if s["current"])
    assert laptop.post("/end_session", {"handle": phone_handle}).status_int == 303
    assert phone.get("/whoami").json is None
    assert laptop.get("/password").json == "done"
    assert tablet.get("/whoami").json is None
    assert laptop.get("/whoami").json == "alice"
    response = laptop.get("/everywhere")
    assert response.status_int == 303 and "Max-Age=0" in response.headers["Set-Cookie"]
    assert laptop.get("/whoami").json is None
    assert list_user_sessions(wsgi.registry, "alice") == []


def test_regenerating_a_bound_session_moves_its_index_entry(
    site: Callable[..., Site], redis_client: redis.Redis
) -> None:
    """A later regenerate_id() (privilege change) keeps the binding and the index follows."""
    app = site()
    browser, old_id = logged_in(app, "alice")
    browser.get("/regenerate")
    new_id = browser.get("/session_id").json

    assert new_id != old_id and not redis_client.exists(old_id)
    assert browser.get("/whoami").json == "alice"
    assert list(index(redis_client, "alice")) == [new_id]
    assert [s.handle for s in list_user_sessions(app.registry, "alice")] == [handle(new_id)]
    assert revoke_user_sessions(app.registry, "alice") == 1
    assert not redis_client.exists(new_id)
    assert browser.get("/whoami").json is None
