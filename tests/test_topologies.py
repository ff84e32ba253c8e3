"""The same request-level scenarios on every deployment, each configured from ini alone.

One server (``redis_url``), Sentinel (``sentinels``, ``sentinel_service``: a master, a
replica, three Sentinels), Cluster (``cluster_nodes``: three masters) and client-side
shards (``shards``: three servers, one of weight 2). Each topology is started once for
this module (see tests/topologies.py). Command counts are taken on the node that holds
the session's key, from the server's own statistics.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import webtest
from pyramid.request import Request

from tests.redis_stats import CommandCounter
from tests.test_patches import APPENDED
from tests.test_user_index import VIEWS as USER_VIEWS
from tests.topologies import ClusterWithReplicas, SentinelSet, Shards, SingleServer, Topology
from tests.topology_app import Site, topology_app

KINDS: dict[str, Callable[[], Topology]] = {
    "single": SingleServer,
    "sentinel": SentinelSet,
    "cluster": lambda: ClusterWithReplicas(replicas=0),
    "shards": Shards,
}


@pytest.fixture(scope="module", params=list(KINDS))
def topology(request: pytest.FixtureRequest) -> Iterator[Topology]:
    deployment = KINDS[request.param]()
    try:
        yield deployment
    finally:
        deployment.close()


@pytest.fixture
def site(topology: Topology) -> Callable[..., Site]:
    """``site(**ini_options)``: the test app on the emptied topology."""
    topology.flush()
    return lambda **options: topology_app(topology, VIEWS, **options)


class Meddler:
    """A view that loads the session, runs ``meddle()`` (another request), then writes."""

    def __init__(self) -> None:
        self.meddle: Callable[[], Any] = lambda: None

    def __call__(self, request: Request) -> Any:
        request.session.get("mine")
        outcome = self.meddle()
        request.session["mine"] = 1
        return outcome


MEDDLER = Meddler()


def regenerate(request: Request) -> Any:
    request.session.regenerate_id()
    return request.session.session_id


VIEWS = {**USER_VIEWS, "meddle": MEDDLER, "regenerate": regenerate}


# What the deployment sends a master by itself, whichever request runs: a replica's
# acknowledgements (REPLCONF ACK, every second) and the Sentinels' monitoring (PING,
# INFO, PUBLISH to their hello channel). Never the application's: left out of the counts.
DEPLOYMENT_TRAFFIC = frozenset({"replconf", "ping", "info", "publish"})


def application_commands(counts: dict[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if name not in DEPLOYMENT_TRAFFIC}


def stored_session(topology: Topology, browser: webtest.TestApp) -> tuple[str, Any]:
    session_id = browser.get("/session_id").json
    return session_id, topology.node_for(session_id)


# --------------------------------------------------------------------------- scenarios


def test_read_is_one_getex_on_the_node_holding_the_key(
    site: Callable[..., Site], topology: Topology
) -> None:
    browser = site().browser()
    browser.get("/set", {"key": "a", "value": json.dumps({"x": [1, 2]})})
    browser.get("/read", {"key": "a"})  # connections and the slot map are ready
    _, node = stored_session(topology, browser)
    counter = CommandCounter.for_port(node.port)
    try:
        with counter.measure() as read:
            assert browser.get("/read", {"key": "a"}).json == {"x": [1, 2]}
    finally:
        counter.close()
    assert application_commands(read.counts) == {"getex": 1}


def test_write_then_read_in_a_new_request(site: Callable[..., Site]) -> None:
    browser = site().browser()
    browser.get("/set", {"key": "a", "value": "1"})
    browser.get("/incr", {"key": "n", "by": "5"})
    browser.get("/set", {"key": "a", "value": "2"})
    assert browser.get("/dump").json == {"a": 2, "n": 5}


def test_two_concurrent_requests_on_distinct_keys_both_land(site: Callable[..., Site]) -> None:
    app = site()
    mine, other = app.browser(), app.browser()
    mine.get("/set", {"key": "theirs", "value": "0"})
    other.set_cookie("session", mine.cookies["session"])
    MEDDLER.meddle = lambda: other.get("/set", {"key": "theirs", "value": "1"}).json
    try:
        mine.get("/meddle")
    finally:
        MEDDLER.meddle = lambda: None
    assert mine.get("/dump").json == {"theirs": 1, "mine": 1}


def test_a_large_sessions_change_is_appended_and_concurrent_ones_merge(
    site: Callable[..., Site], topology: Topology
) -> None:
    """A patch frame (stamped values, codec.py): one script on the key's own node."""
    app = site()
    mine, other = app.browser(), app.browser()
    big = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(60)]  # stamped
    mine.get("/set", {"key": "big", "value": json.dumps(big)})
    mine.get("/set", {"key": "theirs", "value": "0"})
    _, node = stored_session(topology, mine)
    counter = CommandCounter.for_port(node.port)
    try:
        with counter.measure() as write:
            mine.get("/set", {"key": "n", "value": "1"})
    finally:
        counter.close()
    assert application_commands(write.counts) == APPENDED
    other.set_cookie("session", mine.cookies["session"])
    MEDDLER.meddle = lambda: other.get("/set", {"key": "theirs", "value": "1"}).json
    try:
        mine.get("/meddle")  # its append loses to the other's: merged, written whole
    finally:
        MEDDLER.meddle = lambda: None
    assert mine.get("/dump").json == {"big": big, "theirs": 1, "n": 1, "mine": 1}


def test_invalidate_deletes_the_key_and_expires_the_cookie(
    site: Callable[..., Site], topology: Topology
) -> None:
    browser = site().browser()
    browser.get("/set", {"key": "a", "value": "1"})
    session_id, node = stored_session(topology, browser)
    response = browser.get("/invalidate")
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    with contextlib.closing(node.client()) as client:
        assert client.exists(session_id) == 0
    assert browser.get("/dump").json == {}


def test_regenerate_id_moves_the_data_and_removes_the_old_key(
    site: Callable[..., Site], topology: Topology
) -> None:
    browser = site().browser()
    browser.get("/set", {"key": "a", "value": "1"})
    old_id, old_node = stored_session(topology, browser)
    new_id = browser.get("/regenerate").json
    assert new_id != old_id and browser.get("/session_id").json == new_id
    with contextlib.closing(old_node.client()) as client:
        assert client.exists(old_id) == 0
    assert topology.node_for(new_id) is old_node  # one node: the move is one script
    assert browser.get("/dump").json == {"a": 1}


def test_lock_mode_serializes_a_sessions_requests(site: Callable[..., Site]) -> None:
    app = site(persistence="lock", lock_wait="0.2")
    mine, other = app.browser(), app.browser()
    mine.get("/set", {"key": "a", "value": "1"})
    other.set_cookie("session", mine.cookies["session"])
    MEDDLER.meddle = lambda: other.get("/set", {"key": "a", "value": "2"}, expect_errors=True)
    try:
        blocked = mine.get("/meddle")  # holds the lock while the other request waits
    finally:
        MEDDLER.meddle = lambda: None
    assert blocked.status_int == 200
    assert mine.get("/dump").json == {"a": 1, "mine": 1}  # the other one never wrote
    assert other.get("/set", {"key": "a", "value": "3"}).status_int == 200  # lock released
    assert mine.get("/dump").json == {"a": 3, "mine": 1}


def test_a_read_slides_the_ttl(site: Callable[..., Site], topology: Topology) -> None:
    browser = site(timeout="300").browser()
    browser.get("/set", {"key": "a", "value": "1"})
    session_id, node = stored_session(topology, browser)
    with contextlib.closing(node.client()) as client:
        client.expire(session_id, 10)
        assert browser.get("/read", {"key": "a"}).json == 1
        assert 290 < client.ttl(session_id) <= 300


def test_log_out_everywhere_across_the_deployment(site: Callable[..., Site]) -> None:
    app = site()
    alices = [app.browser() for _ in range(4)]
    for browser in alices:
        browser.get("/set", {"key": "cart", "value": "[]"})
        browser.get("/login", {"user": "alice"})
    bob = app.browser()
    bob.get("/login", {"user": "bob"})
    assert len(alices[0].get("/sessions", {"user": "alice"}).json) == 4
    assert alices[0].get("/revoke", {"user": "alice", "keep": "1"}).json == 3
    assert [b.get("/whoami").json for b in alices] == ["alice", None, None, None]
    assert bob.get("/whoami").json == "bob"
    assert alices[0].get("/revoke", {"user": "alice"}).json == 1
    assert alices[0].get("/whoami").json is None
