"""Log out everywhere under concurrency (a real threaded server) and on a real Cluster.

Ordering comes from ``threading.Event`` objects shared with the views, as in
test_concurrency.py: a view signals that it loaded (and changed) its session and waits
until the test releases it; a request's write is done when its response has arrived.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import webtest
from pyramid.request import Request
from redis.cluster import RedisCluster

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.exceptions import InvalidSession, SessionGone
from pyramid_session_redis.user_index import index_key
from tests.app import SECRET, build_wsgi_app
from tests.test_concurrency import EVENT_TIMEOUT, Gate, joined, run_in_thread
from tests.test_user_index import VIEWS, index
from tests.wsgi_server import HttpClient, LiveServer, is_expiry


def held(gate: Gate) -> Any:
    """A view that sets ``x``, binds ``user`` if given, then waits on ``gate``."""

    def view(request: Request) -> Any:
        session = request.session
        session["x"] = request.params.get("value", "1")
        if "user" in request.params:
            session.bind_user(request.params["user"])
        gate.loaded.set()
        if not gate.release.wait(EVENT_TIMEOUT):
            raise RuntimeError("never released")
        return "held"

    return view


class Live:
    def __init__(self, server: LiveServer, reports: list[InvalidSession]) -> None:
        self.server = server
        self.reports = reports

    def client(self) -> HttpClient:
        return self.server.client("session", timeout=EVENT_TIMEOUT * 2)

    def logged_in(self, user: str) -> tuple[HttpClient, str]:
        client = self.client()
        assert client.get("/set", {"key": "cart", "value": json.dumps([user])}).status == 200
        assert client.get("/login", {"user": user}).status == 200
        return client, client.get("/session_id").json


@pytest.fixture
def live(redis_url: str, redis_client: redis.Redis) -> Iterator[Any]:
    servers: list[LiveServer] = []

    def start(gate: Gate, **options: Any) -> Live:
        reports: list[InvalidSession] = []
        factory = RedisSessionFactory(
            SECRET,
            redis_url=redis_url,
            func_invalid_logger=lambda request, problem: reports.append(problem),
            **options,
        )
        server = LiveServer(build_wsgi_app(factory, {**VIEWS, "held": held(gate)}), threads=4)
        servers.append(server.start())
        return Live(server, reports)

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("persistence", ["cas", "overwrite", "lock"])
def test_a_revocation_wins_over_a_concurrent_write_of_the_revoked_session(
    live: Any, redis_client: redis.Redis, persistence: str
) -> None:
    """A loads and changes its session and is held; from another session of the same
    user, B revokes every other session; then A finishes: its write must not bring
    the revoked session back."""
    gate = Gate()
    site = live(gate, persistence=persistence)
    a, a_id = site.logged_in("alice")
    b, b_id = site.logged_in("alice")
    site.reports.clear()
    thread, out = run_in_thread(a.get, "/held", {"value": "2"})
    try:
        assert gate.loaded.wait(EVENT_TIMEOUT), "A never loaded its session"
        assert b.get("/revoke", {"user": "alice", "keep": "1"}).json == 1
        assert redis_client.exists(a_id) == 0
    finally:
        gate.release.set()
    reply_a = joined(thread, out)

    assert reply_a.status == 200
    assert redis_client.exists(a_id) == 0  # not resurrected
    assert [type(report) for report in site.reports] == [SessionGone]
    assert [(m.key, is_expiry(m)) for m in reply_a.set_cookies] == [("session", True)]
    assert [s["current"] for s in b.get("/sessions", {"user": "alice"}).json] == [True]
    assert b_id in index(redis_client, "alice")
    a.close()
    b.close()


def test_a_login_finishing_during_a_revocation_stays_revocable(
    live: Any, redis_client: redis.Redis
) -> None:
    """A binds its session and is held before saving; B revokes meanwhile (A is not in
    the index yet, so nothing of A's is deleted); A then stores its binding: it must be
    in the index, and the next revocation must log it out."""
    gate = Gate()
    site = live(gate)
    a = site.client()
    assert a.get("/set", {"key": "cart", "value": "[]"}).status == 200
    a_id = a.get("/session_id").json
    b, _ = site.logged_in("alice")
    thread, out = run_in_thread(a.get, "/held", {"user": "alice"})
    try:
        assert gate.loaded.wait(EVENT_TIMEOUT)
        assert b.get("/revoke", {"user": "alice", "keep": "1"}).json == 0
    finally:
        gate.release.set()
    assert joined(thread, out).status == 200

    assert a_id in index(redis_client, "alice")
    assert a.get("/whoami").json == "alice"
    assert b.get("/revoke", {"user": "alice", "keep": "1"}).json == 1
    assert redis_client.exists(a_id) == 0
    assert a.get("/whoami").json is None
    a.close()
    b.close()


# --------------------------------------------------------------------------- cluster


def ids_on_every_node(cluster: RedisCluster) -> Callable[[], str]:
    """New session ids whose keys land on the three nodes in turn (twelve random ids
    missed a node in about one run of forty)."""
    turn = itertools.count()

    def new_id() -> str:
        node = next(turn) % 3
        while True:
            candidate = secrets.token_hex(32)
            if cluster.keyslot(candidate) // 5461 == node:
                return candidate

    return new_id


def test_binding_listing_and_revoking_across_cluster_nodes(cluster: RedisCluster) -> None:
    reports: list[InvalidSession] = []
    factory = RedisSessionFactory(
        SECRET,
        id_generator=ids_on_every_node(cluster),
        redis_client_callable=lambda request, **options: cluster,
        func_invalid_logger=lambda request, problem: reports.append(problem),
    )
    wsgi = build_wsgi_app(factory, VIEWS)
    browsers = [webtest.TestApp(wsgi) for _ in range(12)]
    ids = []
    for browser in browsers:
        browser.get("/set", {"key": "cart", "value": "[]"})
        browser.get("/login", {"user": "alice"})
        ids.append(browser.get("/session_id").json)
    bob = webtest.TestApp(wsgi)
    bob.get("/login", {"user": "bob"})
    assert len({cluster.keyslot(i) // 5461 for i in ids}) == 3  # sessions on every node
    index_slot = cluster.keyslot(index_key(None, "alice"))
    assert index_slot == cluster.keyslot("{" + index_key(None, "alice").split("{")[1])

    stored = cluster.zrange(index_key(None, "alice"), 0, -1)
    assert sorted(member.decode() for member in stored) == sorted(ids)
    listed = browsers[0].get("/sessions", {"user": "alice"}).json
    assert len(listed) == 12 and sum(entry["current"] for entry in listed) == 1

    browsers[1].get("/logout")  # unbind: out of the index, session kept
    browsers[2].get("/invalidate")  # out of the index, session deleted
    assert len(browsers[0].get("/sessions", {"user": "alice"}).json) == 10

    assert browsers[0].get("/revoke", {"user": "alice", "keep": "1"}).json == 9
    assert cluster.exists(*ids[3:]) == 0
    assert cluster.exists(ids[0], ids[1]) == 2
    assert browsers[0].get("/whoami").json == "alice"
    assert browsers[5].get("/dump").json == {}
    assert bob.get("/whoami").json == "bob"
    assert [s["current"] for s in browsers[0].get("/sessions", {"user": "alice"}).json] == [True]
    assert browsers[0].get("/revoke", {"user": "alice"}).json == 1
    assert cluster.exists(ids[0]) == 0
