"""Behind Sentinel: sessions through a redis-py ``Sentinel`` client, across a failover.

A master and a replica of the run's server binary, and that binary in Sentinel mode
watching them; the application gets ``sentinel.master_for(...)`` through
``redis_client_callable``. After a failover the same client finds the new master, and
the sessions written before it are all there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import webtest
from redis.sentinel import Sentinel

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.exceptions import SessionBackendError
from tests.app import SECRET, build_wsgi_app
from tests.servers import RedisServerProcess, ServerFactory, sentinel_process
from tests.test_commands import start_session

MASTER = "sessions"


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.1)


@dataclass
class Watched:
    master: RedisServerProcess
    replica: RedisServerProcess
    sentinel: Sentinel

    def master_port(self) -> int:
        return int(self.sentinel.discover_master(MASTER)[1])


@pytest.fixture
def watched(server_factory: ServerFactory, tmp_path: Path) -> Iterator[Watched]:
    master = server_factory()
    replica = server_factory(["--replicaof", "127.0.0.1", str(master.port)])
    eventually(
        lambda: replica.client().info("replication")["master_link_status"] == "up",
        "the replica is in sync",
    )
    with sentinel_process(master.binary, master.port, tmp_path / "sentinel", MASTER) as port:
        sentinel = Sentinel([("127.0.0.1", port)], socket_timeout=5)
        # The Sentinel learns the replica from the master's INFO, then asks the replica
        # itself; only a replica it has seen linked to the master can be promoted.
        eventually(
            lambda: (
                [
                    replica["master-link-status"]
                    for replica in sentinel.sentinels[0].sentinel_slaves(MASTER)
                ]
                == ["ok"]
            ),
            "the Sentinel sees the replica in sync",
        )
        yield Watched(master, replica, sentinel)


def test_sessions_through_sentinel_survive_a_failover(watched: Watched) -> None:
    client = watched.sentinel.master_for(MASTER, socket_timeout=5)
    factory = RedisSessionFactory(SECRET, redis_client_callable=lambda request, **kw: client)
    wsgi = build_wsgi_app(factory)
    browsers = [webtest.TestApp(wsgi) for _ in range(3)]
    ids = [start_session(browser, n=n) for n, browser in enumerate(browsers)]
    assert browsers[0].get("/incr", {"key": "hits"}).json == 1
    assert sorted(watched.master.client().keys()) == sorted(i.encode() for i in ids)

    assert watched.master.client().wait(1, 10_000) == 1  # replicated before the switch
    sentinel_client = watched.sentinel.sentinels[0]
    sentinel_client.execute_command("SENTINEL", "FAILOVER", MASTER)
    eventually(lambda: watched.master_port() == watched.replica.port, "the failover")
    eventually(
        lambda: watched.replica.client().info("replication")["role"] == "master",
        "the replica takes over",
    )

    outages: list[str] = []

    def serves_its_session() -> bool:
        try:
            return bool(browsers[0].get("/read", {"key": "n"}).json == 0)
        except SessionBackendError as exc:  # typed, while a connection knows the old master
            outages.append(str(exc))
            return False

    eventually(serves_its_session, "the application reaches the new master")
    print(f"typed errors before the new master was reached: {len(outages)} {outages}")
    for n, browser in enumerate(browsers):
        assert browser.get("/read", {"key": "n"}).json == n
    assert browsers[0].get("/incr", {"key": "hits"}).json == 2  # written to the new master
    new_master = watched.replica.client()
    assert sorted(new_master.keys()) == sorted(i.encode() for i in ids)
    assert all(new_master.ttl(i) > 0 for i in ids)
