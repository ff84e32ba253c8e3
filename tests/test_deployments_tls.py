"""TLS to the data nodes of Sentinel and Cluster, configured from ini settings alone.

Every data node stands behind a :class:`~tests.tls.TLSProxy` that takes TLS (with a
client certificate) and plain TCP on one port, and announces the proxy's address: the
sentinels hand it to the application as the master's, ``CLUSTER SLOTS`` and ``MOVED``
name it, while replication and the sentinels' own checks go through it in plain. So this
runs the same on a server built with TLS and on one without (the pip-installed Valkey).
The proxies record what clients sent, by TLS or plain: the application's session ids
travel by TLS only. Sentinel (credentials on, sentinels in plain) and Cluster (three
masters, one replica each) are started once for this module; TLS to the sentinels
themselves is test_deployments' (``sentinel_ssl``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from pyramid_session_redis import session_factory_from_settings
from tests.servers import HOST
from tests.test_tls import certs  # noqa: F401 - the session's certificates
from tests.tls import Certificates
from tests.topologies import ClusterWithReplicas, SentinelSet, Topology, started
from tests.topology_app import Site, ini_settings, serve

KINDS = ["sentinel", "cluster-nodes", "cluster-url"]
UNAVAILABLE = {"error": "SessionBackendError"}


@pytest.fixture(scope="module")
def sentinel(certs: Certificates) -> Iterator[SentinelSet]:  # noqa: F811 - the fixture
    yield from started(SentinelSet, credentials=True, data_tls=certs)


@pytest.fixture(scope="module")
def cluster(certs: Certificates) -> Iterator[ClusterWithReplicas]:  # noqa: F811 - the fixture
    yield from started(ClusterWithReplicas, data_tls=certs)


@dataclasses.dataclass
class Deployment:
    """A deployment whose data nodes take TLS, and the ini settings that reach it."""

    topology: Topology
    settings: dict[str, Any]  # redis.sessions.* as an ini file gives them

    def site(self, **changes: str | None) -> Site:
        """The test app on the settings with ``changes`` (``None``: the option left out)."""
        settings = {**self.settings, **{f"redis.sessions.{k}": v for k, v in changes.items()}}
        kept = {name: value for name, value in settings.items() if value is not None}
        return serve(session_factory_from_settings(kept))

    def sent(self, kind: str) -> bytes:
        """What clients sent the data nodes by ``kind`` (``"tls"``/``"plain"``), so far."""
        return b"".join(proxy.sent_by(kind) for proxy in self.topology.data_proxies.values())


@pytest.fixture
def deploy(request: pytest.FixtureRequest) -> Any:
    """``deploy(kind)``: the module's deployment of that kind, emptied."""

    def deploy(kind: str) -> Deployment:
        topology: Topology = request.getfixturevalue(kind.split("-")[0])
        topology.flush()
        options = {}
        if kind == "cluster-url":  # TLS asked for by the URL's scheme, not by redis_ssl
            entry = topology.reached_port(topology.masters()[1].port)
            options = {"cluster_nodes": f"rediss://{HOST}:{entry}/0", "redis_ssl": "false"}
        return Deployment(topology, ini_settings(topology, **options))

    return deploy


def sessions_on_every_master(site: Site, topology: Topology) -> list[tuple[Any, str]]:
    """(browser, session id) of sessions made until every master holds at least one."""
    made: list[tuple[Any, str]] = []
    holders: set[int] = set()
    while len(made) < 6 or holders != {node.port for node in topology.masters()}:
        assert len(made) < 200, "a master holds none of 200 sessions"
        browser = site.browser()
        browser.get("/set", {"key": "n", "value": json.dumps(len(made))})
        made.append((browser, browser.get("/session_id").json))
        assert topology.holds(made[-1][1])
        holders.add(topology.node_for(made[-1][1]).port)
    return made


@pytest.mark.parametrize("kind", KINDS)
def test_sessions_over_tls_to_the_data_nodes_from_ini_settings(deploy: Any, kind: str) -> None:
    """Set, read and invalidate with TLS to each master; the session ids went by TLS
    (a client certificate shown, the CA checked), never in plain."""
    deployment = deploy(kind)
    assert deployment.settings["redis.sessions.redis_ssl"] == ("false" if "url" in kind else "true")
    made = sessions_on_every_master(deployment.site(), deployment.topology)
    for n, (browser, _) in enumerate(made):
        assert browser.get("/read", {"key": "n"}).json == n
    made[0][0].get("/invalidate")
    assert not deployment.topology.holds(made[0][1])
    assert made[0][0].get("/dump").json == {}
    by_tls, in_plain = deployment.sent("tls"), deployment.sent("plain")
    for _, session_id in made:
        assert session_id.encode() in by_tls and session_id.encode() not in in_plain
    for node in deployment.topology.masters():  # each master's connections are TLS
        tls_to_node = deployment.topology.data_proxies[node.port].sent_by("tls")
        assert any(session_id.encode() in tls_to_node for _, session_id in made)


@pytest.mark.parametrize("kind", ["sentinel", "cluster-nodes"])
def test_without_redis_ssl_the_same_proxies_carry_the_sessions_in_plain(
    deploy: Any, kind: str
) -> None:
    """The proxies tell TLS from plain: the record above is the application's doing."""
    deployment = deploy(kind)
    no_tls = dict.fromkeys(["redis_ssl", "redis_ssl_certfile", "redis_ssl_keyfile"])
    browser = deployment.site(**no_tls, redis_ssl_ca_certs=None).browser()
    browser.get("/set", {"key": "n", "value": "1"})
    session_id = browser.get("/session_id").json.encode()
    assert session_id in deployment.sent("plain") and session_id not in deployment.sent("tls")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("problem", ["another CA", "no client certificate"])
def test_a_refused_tls_handshake_is_the_typed_backend_error(
    deploy: Any,
    kind: str,
    problem: str,
    certs: Certificates,  # noqa: F811 - the fixture
) -> None:
    """The 503 (``SessionBackendError``), never a 500; nothing stored, and a correctly
    configured app is served meanwhile."""
    deployment = deploy(kind)
    changes: dict[str, str | None] = (
        {"redis_ssl_ca_certs": str(certs.other_ca)}
        if problem == "another CA"
        else {"redis_ssl_certfile": None, "redis_ssl_keyfile": None}
    )
    refused = deployment.site(**changes).browser()
    response = refused.get("/set", {"key": "n", "value": "1"}, expect_errors=True)
    assert (response.status_int, response.json) == (503, UNAVAILABLE)
    for node in deployment.topology.masters():
        with contextlib.closing(node.client()) as client:
            assert client.dbsize() == 0
    served = deployment.site().browser()
    served.get("/set", {"key": "n", "value": "2"})
    assert served.get("/read", {"key": "n"}).json == 2


def test_a_moved_slot_is_followed_over_tls_to_its_new_master(deploy: Any) -> None:
    """``MOVED`` names the new master's proxy; the application follows with TLS."""
    deployment = deploy("cluster-nodes")
    cluster: ClusterWithReplicas = deployment.topology  # type: ignore[assignment]
    browser = deployment.site().browser()
    browser.get("/set", {"key": "n", "value": "1"})
    session_id = browser.get("/session_id").json
    slot, source = cluster.keyslot(session_id), cluster.node_for(session_id)
    target = next(node for node in cluster.masters() if node is not source)
    assert cluster.migrate_slot(slot, target) == 1
    try:
        target_proxy = cluster.data_proxies[target.port]
        before = target_proxy.sent_by("tls").count(session_id.encode())
        assert browser.get("/read", {"key": "n"}).json == 1
        assert target_proxy.sent_by("tls").count(session_id.encode()) > before
        assert session_id.encode() not in deployment.sent("plain")
    finally:
        cluster.migrate_slot(slot, source)


@pytest.mark.parametrize("kind", KINDS)
def test_ssl_cert_reqs_none_reaches_every_data_node_connection(
    deploy: Any,
    kind: str,
    certs: Certificates,  # noqa: F811 - the fixture
) -> None:
    """With ``redis_ssl_cert_reqs = none`` the CA that refused above is not checked, on
    the connections to every master (not just the first node asked)."""
    deployment = deploy(kind)
    site = deployment.site(redis_ssl_ca_certs=str(certs.other_ca), redis_ssl_cert_reqs="none")
    made = sessions_on_every_master(site, deployment.topology)
    assert [browser.get("/read", {"key": "n"}).json for browser, _ in made] == list(
        range(len(made))
    )
    assert not any(session_id.encode() in deployment.sent("plain") for _, session_id in made)
