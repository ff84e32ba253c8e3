"""Real Sentinel failovers: the deployment is tests/topologies.py's ``SentinelSet``, a
master, its replica and three Sentinels (``down-after-milliseconds`` 1000).

Under traffic, from ini settings alone (``sentinels``, ``sentinel_service``): the master
is SIGKILLed while users keep coming. Every session was written before the kill and
confirmed replicated (``WAIT 1``). While the replica is promoted, every response is the
user's own data or the typed 503, never a 500, a wrong or empty session, or a new
cookie; the application serves again by itself. The window (kill -> first request
served) is measured and printed, not asserted beyond a generous bound.

Through ``redis_client_callable`` (the 1.8 way, in code): the application's client is
redis-py's ``Sentinel(...).master_for(...)``; after a failover asked of a Sentinel
(``SENTINEL FAILOVER``) the same client finds the new master, and every session written
before it is there, data and TTL.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import webtest
from redis.sentinel import Sentinel

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.exceptions import InvalidSession_NotInBackend, SessionBackendError
from tests.app import SECRET, build_wsgi_app
from tests.servers import HOST
from tests.test_commands import start_session
from tests.topologies import SERVICE, SentinelSet, confirm_replicated, started, wait_for
from tests.topology_app import User, recovery_window, topology_app

DEADLINE = 30.0  # seconds for the application to serve again: generous, not a target
USERS = 12


@pytest.fixture
def sentinel_set() -> Iterator[SentinelSet]:
    yield from started(SentinelSet)


def test_killing_the_master_gives_503s_then_the_promoted_replica_serves_every_session(
    sentinel_set: SentinelSet, record_property: pytest.RecordProperty
) -> None:
    site = topology_app(sentinel_set)
    users = [User.signed_up(site, n) for n in range(USERS)]
    confirm_replicated(sentinel_set.master)

    killed = sentinel_set.kill_master()
    values = itertools.count(1)

    def read_or_write(user: User) -> bool:
        return user.read() if next(values) % 2 else user.write(next(values))

    window, refused = recovery_window(killed, users, read_or_write, DEADLINE, values)
    print(f"\nSentinel failover: first request served {window:.2f} s after the kill")
    record_property("sentinel_failover_window_s", round(window, 2))
    assert refused > 0  # the window was seen: requests did meet the dead master

    sentinel_set.wait_promoted()  # the Sentinels agree: the replica is the master now
    for user in users:  # every replicated session, read and written on the new master
        assert user.read() and user.write(-user.n) and user.read()
        assert user.possible == {-user.n}
    assert not [r for r in site.reports if isinstance(r, InvalidSession_NotInBackend)]


def test_a_redis_py_sentinel_client_follows_a_failover_with_every_session(
    sentinel_set: SentinelSet,
) -> None:
    sentinel = Sentinel([(HOST, port) for port in sentinel_set.sentinel_ports], socket_timeout=5)
    client = sentinel.master_for(SERVICE, socket_timeout=5)
    factory = RedisSessionFactory(SECRET, redis_client_callable=lambda request, **kw: client)
    wsgi = build_wsgi_app(factory)
    browsers = [webtest.TestApp(wsgi) for _ in range(3)]
    ids = [start_session(browser, n=n) for n, browser in enumerate(browsers)]
    assert browsers[0].get("/incr", {"key": "hits"}).json == 1
    old_master, new_master = sentinel_set.master, sentinel_set.replica
    assert sorted(old_master.client().keys()) == sorted(i.encode() for i in ids)

    marker = "psr:replicated"
    confirm_replicated(old_master, marker)  # every session reached the replica first
    sentinel_set.failover()
    sentinel_set.wait_promoted()  # every Sentinel names the replica; it says it is master
    assert sentinel.discover_master(SERVICE) == (HOST, new_master.port)

    outages: list[str] = []

    def serves_its_session() -> bool:
        try:
            return bool(browsers[0].get("/read", {"key": "n"}).json == 0)
        except SessionBackendError as exc:  # typed, while a connection knows the old master
            outages.append(str(exc))
            return False

    wait_for(serves_its_session, "the application reaches the new master")
    print(f"typed errors before the new master was reached: {len(outages)} {outages}")
    for n, browser in enumerate(browsers):
        assert browser.get("/read", {"key": "n"}).json == n
    assert browsers[0].get("/incr", {"key": "hits"}).json == 2  # written to the new master
    with new_master.client() as promoted:
        assert sorted(promoted.keys()) == sorted(i.encode() for i in [*ids, marker])
        assert all(promoted.ttl(i) > 0 for i in ids)
