"""A real Redis Cluster with replicas under traffic: a master killed, a slot migrated.

The deployment (tests/topologies.py): three masters with one replica each,
``cluster-node-timeout`` 1000 ms and ``cluster-require-full-coverage no`` (without it
the whole cluster refuses every command until the failed master's replica is promoted),
reached from the ini setting ``cluster_nodes`` alone.

- Failover: sessions on every master, confirmed replicated (``WAIT 1``); one master is
  SIGKILLed. Sessions on the other masters are served without a single error; the failed
  master's sessions get the typed 503 until its replica is promoted, then their own data.
  The window (kill -> those sessions served again) is measured and printed.
- Resharding: the slot holding a group of sessions moves to another master, key by key,
  while those sessions are read, written and (``regenerate_id()``) moved to new ids: no
  error at all (redis-py follows ``MOVED``/``ASK``), no write lost.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyramid.request import Request
from redis.crc import key_slot

from pyramid_session_redis.exceptions import InvalidSession_NotInBackend
from tests.topologies import SLOT_RANGES, ClusterWithReplicas, started
from tests.topology_app import User, recovery_window, topology_app

DEADLINE = 30.0  # seconds for the failed master's sessions to be served again
PER_MASTER = 4


def ids_cycling(slot_groups: list[Callable[[int], bool]]) -> Callable[[], str]:
    """New session ids whose slots satisfy each of ``slot_groups`` in turn."""
    turn = itertools.count()

    def new_id() -> str:
        wanted = slot_groups[next(turn) % len(slot_groups)]
        while True:
            candidate = secrets.token_hex(32)
            if wanted(key_slot(candidate.encode())):
                return candidate

    return new_id


def in_range(first: int, last: int) -> Callable[[int], bool]:
    return lambda slot: first <= slot <= last


# --------------------------------------------------------------------------- failover


@pytest.fixture
def fresh_cluster() -> Iterator[ClusterWithReplicas]:
    yield from started(ClusterWithReplicas)


def test_a_killed_master_fails_only_its_own_sessions_until_its_replica_serves_them(
    fresh_cluster: ClusterWithReplicas, record_property: pytest.RecordProperty
) -> None:
    cluster = fresh_cluster
    groups = [in_range(*bounds) for bounds in SLOT_RANGES]
    site = topology_app(cluster, id_generator=ids_cycling(groups))
    users = [User.signed_up(site, n) for n in range(3 * PER_MASTER)]
    victim = cluster.initial_masters[1]
    doomed = [u for u in users if cluster.node_for(u.session_id) is victim]
    spared = [u for u in users if u not in doomed]
    assert len(doomed) == PER_MASTER and len(spared) == 2 * PER_MASTER
    cluster.confirm_replicated()

    killed = cluster.kill(victim)
    values = itertools.count(1)

    def the_others_never_fail() -> None:
        for user in spared:
            assert user.read() and user.write(next(values))

    window, refused = recovery_window(
        killed, doomed, User.read, DEADLINE, values, the_others_never_fail
    )
    print(f"\nCluster failover: the failed master's sessions served {window:.2f} s after the kill")
    record_property("cluster_failover_window_s", round(window, 2))
    assert refused > 0

    cluster.wait_promoted(victim)
    assert {cluster.node_for(u.session_id) for u in doomed} == {cluster.replica_of[victim]}
    for user in users:
        assert user.read() and user.write(-user.n) and user.read()
    assert not [r for r in site.reports if isinstance(r, InvalidSession_NotInBackend)]


# --------------------------------------------------------------------------- resharding


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterWithReplicas]:
    yield from started(ClusterWithReplicas, replicas=0)


def regenerate(request: Request) -> Any:
    request.session.regenerate_id()
    return request.session.session_id


class Migration(threading.Thread):
    """Moves ``slot`` to ``target`` one key at a time, in the background."""

    def __init__(self, cluster: ClusterWithReplicas, slot: int, target: Any) -> None:
        super().__init__(daemon=True)
        self.cluster, self.slot, self.target = cluster, slot, target
        self.batches = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.cluster.migrate_slot(self.slot, self.target, 1, 0.15, self._count)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _count(self, moved: int) -> None:
        self.batches = moved


@pytest.mark.parametrize("persistence", ["cas", "lock"])
def test_sessions_stay_readable_and_writable_while_their_slot_migrates(
    cluster: ClusterWithReplicas, persistence: str
) -> None:
    slot = key_slot(secrets.token_hex(32).encode())
    site = topology_app(
        cluster,
        {"regenerate": regenerate},
        id_generator=ids_cycling([lambda s: s == slot]),
        persistence=persistence,
    )
    users = [User.signed_up(site, n) for n in range(8)]
    source = cluster.node_for(users[0].session_id)
    target = next(node for node in cluster.masters() if node is not source)
    migration = Migration(cluster, slot, target)
    values, requests = itertools.count(1), 0
    migration.start()
    while migration.is_alive() or requests == 0:
        for user in users:  # every request served: no 503 either
            assert user.write(next(values)) and user.read()
            requests += 2
            if requests % 10 == 0:  # a login: the session moves to a new id, same slot
                response = user.browser.get("/regenerate")
                user.cookie, user.session_id = user.browser.cookies["session"], response.json
                assert key_slot(user.session_id.encode()) == slot
    migration.join()
    assert migration.error is None, migration.error
    print(f"\n{persistence}: {requests} requests during a migration of {migration.batches} keys")
    assert migration.batches >= len(users)
    for user in users:  # nothing lost: each session holds its last write, on the target
        assert user.read() and len(user.possible) == 1
        assert cluster.node_for(user.session_id) is target
    assert not [r for r in site.reports if isinstance(r, InvalidSession_NotInBackend)]
