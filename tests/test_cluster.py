"""On a real three-node Redis Cluster: every operation touches one key, so all work.

The cluster (the ``cluster`` fixture of conftest.py: three masters without replicas) is
started once for this module and emptied before each test; the application gets a redis-py
``RedisCluster`` client through ``redis_client_callable``.
The lock operations of ``persistence = lock`` touch two keys per call, which must share
a slot.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
import redis
import webtest
from pyramid.request import Request
from redis.cluster import RedisCluster

from pyramid_session_redis import RedisSessionFactory, connection
from pyramid_session_redis.channel import ClientChannel
from pyramid_session_redis.exceptions import InvalidSession, SessionGone
from pyramid_session_redis.lock import LockedLoad, LockOutcome, acquire_and_load, lock_key
from pyramid_session_redis.store import RedisStore, ServerFeatures
from tests.app import build_wsgi_app
from tests.test_lock import AWKWARD_KEYS


class ClusterApp:
    def __init__(self, client: RedisCluster) -> None:
        self.reports: list[InvalidSession] = []
        self.meddle: Any = None
        factory = RedisSessionFactory(
            "secret",
            redis_client_callable=lambda request, **options: client,
            func_invalid_logger=lambda request, exc: self.reports.append(exc),
        )
        self.wsgi = build_wsgi_app(factory, {"meddle": self._meddle})

    def _meddle(self, request: Request) -> Any:
        request.session.get("mine")
        self.meddle(request.session.session_id)
        request.session["mine"] = int(request.params.get("value", "1"))
        return "ok"

    def browser(self) -> webtest.TestApp:
        return webtest.TestApp(self.wsgi)


def test_sessions_live_on_every_node_and_behave(cluster: RedisCluster) -> None:
    app = ClusterApp(cluster)
    browsers = [app.browser() for _ in range(12)]
    ids = []
    for n, browser in enumerate(browsers):
        browser.get("/set", {"key": "n", "value": json.dumps(n)})
        browser.get("/incr", {"key": "hits"})
        ids.append(browser.get("/session_id").json)
    assert len({cluster.keyslot(i) // 5461 for i in ids}) >= 2  # spread over nodes
    for n, browser in enumerate(browsers):
        assert browser.get("/read", {"key": "n"}).json == n  # one GETEX, routed by key
        assert browser.get("/read", {"key": "hits"}).json == 1
        assert cluster.ttl(ids[n]) > 1000
    browsers[0].get("/invalidate")
    assert cluster.exists(ids[0]) == 0


def test_compare_and_set_merges_and_never_resurrects_on_a_cluster(
    cluster: RedisCluster,
) -> None:
    app = ClusterApp(cluster)
    mine, other = app.browser(), app.browser()
    mine.get("/set", {"key": "theirs", "value": "0"})
    other.set_cookie("session", mine.cookies["session"])
    app.meddle = lambda sid: other.get("/set", {"key": "theirs", "value": "1"})
    mine.get("/meddle")
    assert mine.get("/dump").json == {"theirs": 1, "mine": 1}

    app.meddle = cluster.delete
    session_id = mine.get("/session_id").json
    app.reports.clear()
    response = mine.get("/meddle", {"value": "2"})
    assert cluster.exists(session_id) == 0
    assert [type(r) for r in app.reports] == [SessionGone]
    assert "Max-Age=0" in response.headers["Set-Cookie"]


# --------------------------------------------------------------------------- persistence = lock


def test_lock_keys_share_the_session_keys_slot_on_the_cluster(cluster: RedisCluster) -> None:
    for key in [*AWKWARD_KEYS, *(f"{{shop}}:{n:064x}" for n in range(8))]:
        expected = cluster.execute_command("CLUSTER KEYSLOT", key)
        assert cluster.execute_command("CLUSTER KEYSLOT", lock_key(key)) == expected, key


def test_lock_operations_run_on_every_node_of_the_cluster(cluster: RedisCluster) -> None:
    store = RedisStore(ClientChannel(cluster), ServerFeatures())
    keys = [f"s:{n}" for n in range(12)] + ["{shop}:abc", "a}b"]
    assert len({cluster.keyslot(key) // 5461 for key in keys}) == 3  # every node
    for key in keys:
        cluster.set(key, b"v1")
        token, payload = acquire_and_load(store, key, 10_000, 1.0, 300)
        assert payload == b"v1" and token is not None
        assert store.load_locked(key, "other", 10_000, None) == LockedLoad(True, None)
        assert store.write_unlock(key, "other", b"stale", 300) is LockOutcome.FENCED
        assert store.write_unlock(key, token, b"v2", 300) is LockOutcome.WRITTEN
        assert cluster.get(key) == b"v2" and cluster.ttl(key) > 290
        assert store.load_locked(key, "t2", 10_000, None).payload == b"v2"
        assert store.refresh_unlock(key, "t2", 600) is LockOutcome.WRITTEN
        assert store.load_locked(key, "t3", 10_000, None).payload == b"v2"
        assert store.release(key, "t3") is True
        assert store.load_locked(key, "t4", 10_000, None).payload == b"v2"
        assert store.delete_unlock(key, "t4") is True
        assert store.write_unlock(key, "t4", b"v3", None) is LockOutcome.FENCED
        assert cluster.exists(key, lock_key(key)) == 0


# --------------------------------------------------------------------------- regenerate_id()


def regenerating_login(request: Request) -> Any:
    request.session.regenerate_id()
    request.session["user"] = "alice"
    return request.session.session_id


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"hash_keys": True},
        {"persistence": "lock"},
        {"persistence": "overwrite", "hash_keys": True, "sign_payloads": True},
        {"prefix": "{shop}:"},
    ],
    ids=["plain", "hash_keys", "lock", "overwrite-hashed-signed", "prefix-tag"],
)
def test_regenerate_id_moves_within_the_slot_on_every_node(
    cluster: RedisCluster, options: dict[str, Any]
) -> None:
    factory = RedisSessionFactory(
        "secret", redis_client_callable=lambda request, **kw: cluster, **options
    )
    wsgi = build_wsgi_app(factory, {"login": regenerating_login})
    nodes: set[int] = set()
    for n in range(60):  # until sessions were moved on every node (a few dozen at most)
        browser = webtest.TestApp(wsgi)
        browser.get("/set", {"key": "n", "value": json.dumps(n)})
        old_key = factory.key(browser.get("/session_id").json)
        for _ in range(2):  # a second regeneration keeps the slot too
            new_id = browser.get("/login").json
        new_key = factory.key(new_id)
        assert cluster.execute_command("CLUSTER KEYSLOT", new_key) == cluster.execute_command(
            "CLUSTER KEYSLOT", old_key
        )
        assert cluster.exists(old_key) == 0 and cluster.exists(lock_key(old_key)) == 0
        assert browser.get("/dump").json == {"n": n, "user": "alice"}
        nodes.add(cluster.keyslot(new_key) // 5461)
        if n >= 3 and (len(nodes) == 3 or "prefix" in options):
            break
    assert len(nodes) == (1 if "prefix" in options else 3)  # "{shop}:": one slot for all


def test_the_factorys_cluster_client_sends_no_command_twice(cluster: RedisCluster) -> None:
    """redis-py's RedisCluster resends any command after a connection error by default
    (a write that ran would conflict with itself); the factory's resends nothing
    (ClientChannel sends reads again itself), with no deprecated argument on this redis-py."""
    options = connection.no_cluster_resends()
    node = cluster.get_nodes()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = RedisCluster(host=node.host, port=node.port, **options)
    try:
        assert client.set("psr:no-resend", "1")
        attempts: list[int] = []

        def attempt() -> None:
            attempts.append(1)
            raise redis.ConnectionError("dropped")

        with pytest.raises(redis.ConnectionError):
            options["retry"].call_with_retry(attempt, lambda error: None)
        assert attempts == [1]
        assert options.get("cluster_error_retry_attempts", 0) == 0
    finally:
        client.delete("psr:no-resend")
        client.close()
