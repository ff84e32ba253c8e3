"""A real Sentinel failover under traffic: the master is SIGKILLed while users keep coming.

The deployment (tests/topologies.py): a master, its replica and three Sentinels
(``down-after-milliseconds`` 1000), reached from ini settings alone (``sentinels``,
``sentinel_service``). Every session was written before the kill and confirmed
replicated (``WAIT 1``). While the replica is promoted, every response is the user's
own data or the typed 503, never a 500, a wrong or empty session, or a new cookie; the
application serves again by itself. The window (kill -> first request served) is
measured and printed, not asserted beyond a generous bound.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from pyramid_session_redis.exceptions import InvalidSession_NotInBackend
from tests.topologies import SentinelSet, confirm_replicated, started
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
