"""The write path (``persist.py``) against a real server, and its pure parts as tables.

A ``SessionWriter`` saves a ``SessionState`` the way a request's session does. Other
requests are played by a second real client that writes the session between two
compare-and-set attempts (:class:`RivalStore`) or while the writer backs off (its
``sleep`` hook): every conflict below is a real one, seen by the real server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from pyramid_session_redis.channel import ClientChannel
from pyramid_session_redis.codec import SafeCodec, SessionRecord
from pyramid_session_redis.exceptions import (
    SessionBackendError,
    SessionLockLost,
    SessionWriteConflict,
)
from pyramid_session_redis.lock import lock_key
from pyramid_session_redis.persist import (
    BACKOFF_AFTER,
    MAX_BACKOFF,
    Saved,
    SessionWriter,
    backoff_limit,
    merge_records,
)
from pyramid_session_redis.settings import build_settings
from pyramid_session_redis.state import SessionState
from pyramid_session_redis.store import CasOutcome, RedisStore, ServerFeatures

KEY = "sess:persist"
CREATED = 1_700_000_000
TTL = 600
CODEC = SafeCodec()


class RivalStore(RedisStore):
    """A real store; before compare-and-set attempt ``n`` it calls ``rival(n)``.

    ``rival`` acts on the server through another connection: another request's write.
    """

    def __init__(self, client: redis.Redis, rival: Callable[[int], object]) -> None:
        super().__init__(ClientChannel(client), ServerFeatures())
        self.rival = rival
        self.attempts: list[CasOutcome] = []

    def compare_and_set(
        self,
        key: str,
        expected: bytes,
        payload: bytes,
        ttl: int | None,
        stamp: bytes | None = None,
    ) -> tuple[CasOutcome, bytes | None]:
        self.rival(len(self.attempts))
        outcome, current = super().compare_and_set(key, expected, payload, ttl, stamp)
        self.attempts.append(outcome)
        return outcome, current

    def append_if_unchanged(
        self, key: str, stamp: bytes, length: int, frame: bytes, ttl: int | None
    ) -> tuple[CasOutcome, bytes | None]:
        self.rival(len(self.attempts))
        outcome, current = super().append_if_unchanged(key, stamp, length, frame, ttl)
        self.attempts.append(outcome)
        return outcome, current

    def compare_and_delete(self, key: str, expected: bytes) -> tuple[CasOutcome, bytes | None]:
        self.rival(len(self.attempts))
        outcome, current = super().compare_and_delete(key, expected)
        self.attempts.append(outcome)
        return outcome, current


def nobody(attempt: int) -> None:
    """No other request."""


class Rival:
    """Another request, through its own connection: ``write(key=value)`` changes the session."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def record(self) -> SessionRecord:
        raw = self.client.get(KEY)
        assert isinstance(raw, bytes)
        return CODEC.decode(raw)

    def write(self, **changes: Any) -> None:
        record = self.record()
        record.data.update(changes)
        self.client.set(KEY, CODEC.encode(record), ex=TTL)

    def first(self, **changes: Any) -> Callable[[int], None]:
        """A rival that writes ``changes`` before the first attempt only."""

        def rival(attempt: int) -> None:
            if attempt == 0:
                self.write(**changes)

        return rival

    def remove(self, *keys: str) -> None:
        record = self.record()
        for key in keys:
            del record.data[key]
        self.client.set(KEY, CODEC.encode(record), ex=TTL)

    def before_attempts(self, count: int) -> Callable[[int], None]:
        """A rival that writes ``t<n>`` before each of the first ``count`` attempts."""

        def rival(attempt: int) -> None:
            if attempt < count:
                self.write(**{f"t{attempt}": attempt})

        return rival


@pytest.fixture
def client(redis_url: str, redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """The writer's own connection (``redis_client``, emptied, is the rival's)."""
    own = redis.Redis.from_url(redis_url)
    yield own
    own.close()


def loaded(redis_client: redis.Redis, data: dict[str, Any], **meta: Any) -> SessionState:
    """Store a session holding ``data``; return its state as a request loads it."""
    raw = CODEC.encode(SessionRecord(dict(data), CREATED, **meta))
    redis_client.set(KEY, raw, ex=TTL)
    return SessionState(CODEC.decode(raw), raw, CODEC.unpack(raw))


def writer(store: RedisStore, sleep: Callable[[float], None] | None = None, **options: Any) -> Any:
    """(SessionWriter, conflicts reported, pauses slept)."""
    conflicts: list[tuple[str, ...]] = []
    pauses: list[float] = []
    settings = build_settings("secret", **options)
    record_pause = sleep or pauses.append
    return SessionWriter(store, CODEC, settings, conflicts.append, record_pause), conflicts, pauses


def save(session_writer: SessionWriter, state: SessionState) -> Saved:
    saved: Saved = session_writer.save(
        state, KEY, CODEC.encode_plain(state.record), lambda: TTL, lock=None
    )
    return saved


def raw_at(redis_client: redis.Redis, key: str = KEY) -> bytes | None:
    raw = redis_client.get(key)
    assert raw is None or isinstance(raw, bytes)
    return raw


def stored(redis_client: redis.Redis, key: str = KEY) -> dict[str, Any] | None:
    raw = raw_at(redis_client, key)
    return None if raw is None else CODEC.decode(raw).data


# --------------------------------------------------------------------------- giving up


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_a_writer_that_always_loses_gives_up_after_its_retries(
    retries: int, client: redis.Redis, redis_client: redis.Redis
) -> None:
    """Each attempt is beaten by another write: ``cas_retries + 1`` attempts, then an error."""
    state = loaded(redis_client, {"seed": 0})
    state.assign("ours", 1)
    rival = Rival(redis_client)
    store = RivalStore(client, rival.before_attempts(retries + 10))
    session_writer, conflicts, _ = writer(store, cas_retries=retries)

    with pytest.raises(SessionWriteConflict, match=f"gave up after {retries + 1} conflicting"):
        save(session_writer, state)

    assert store.attempts == [CasOutcome.CONFLICT] * (retries + 1)
    expected = {"seed": 0, **{f"t{n}": n for n in range(retries + 1)}}
    assert stored(redis_client) == expected  # nothing of ours written
    assert conflicts == []


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_the_last_retry_may_still_succeed(
    retries: int, client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"seed": 0})
    state.assign("ours", 1)
    store = RivalStore(client, Rival(redis_client).before_attempts(retries))
    session_writer, conflicts, _ = writer(store, cas_retries=retries)

    assert save(session_writer, state) is Saved.WRITTEN

    assert store.attempts == [CasOutcome.CONFLICT] * retries + [CasOutcome.WRITTEN]
    assert stored(redis_client) == {"seed": 0, "ours": 1, **{f"t{n}": n for n in range(retries)}}
    assert conflicts == []
    assert 0 < redis_client.ttl(KEY) <= TTL


# --------------------------------------------------------------------------- backoff


@pytest.mark.parametrize(
    ("attempt", "limit"),
    [
        (0, 0.0),
        (1, 0.0),
        (2, 0.004),
        (3, 0.008),
        (4, 0.016),
        (5, 0.032),
        (6, MAX_BACKOFF),  # 0.064, capped
        (7, MAX_BACKOFF),
        (30, MAX_BACKOFF),
    ],
)
def test_backoff_limit(attempt: int, limit: float) -> None:
    assert backoff_limit(attempt) == pytest.approx(limit)


def test_backoff_constants() -> None:
    assert BACKOFF_AFTER == 2
    assert MAX_BACKOFF == 0.05


def test_the_pause_is_random_below_the_limit_and_only_from_backoff_after_on(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    conflicts_before_success = 7
    state = loaded(redis_client, {"seed": 0})
    state.assign("ours", 1)
    store = RivalStore(client, Rival(redis_client).before_attempts(conflicts_before_success))
    slept: list[tuple[int, float]] = []
    session_writer, _, _ = writer(
        store, sleep=lambda pause: slept.append((len(store.attempts) - 1, pause))
    )

    assert save(session_writer, state) is Saved.WRITTEN

    assert len(store.attempts) == conflicts_before_success + 1
    # One pause after each lost attempt from BACKOFF_AFTER on, none before.
    assert [attempt for attempt, _ in slept] == list(range(BACKOFF_AFTER, 7))
    for attempt, pause in slept:
        assert 0 <= pause < backoff_limit(attempt), (attempt, pause)
    assert len({pause for _, pause in slept}) == len(slept)  # drawn, not fixed


def test_after_a_pause_the_merge_starts_from_a_fresh_copy(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    """A write during the pause is merged in, and the next attempt succeeds at once."""
    state = loaded(redis_client, {"seed": 0})
    state.assign("ours", 1)
    state.incr("n", 1)
    rival = Rival(redis_client)
    store = RivalStore(client, rival.before_attempts(BACKOFF_AFTER + 1))
    session_writer, conflicts, _ = writer(store, sleep=lambda _: rival.write(during="pause", n=10))

    assert save(session_writer, state) is Saved.WRITTEN

    lost = [CasOutcome.CONFLICT] * (BACKOFF_AFTER + 1)
    assert store.attempts == [*lost, CasOutcome.WRITTEN]
    assert stored(redis_client) == {
        "seed": 0,
        "ours": 1,
        "during": "pause",
        "n": 11,  # the increment onto the copy read after the pause
        **{f"t{n}": n for n in range(BACKOFF_AFTER + 1)},
    }
    assert conflicts == []


GARBAGE = b"\x01\xff\xff"  # a truncated header
FOREIGN = b"\x7fforeign"  # an unknown marker


@pytest.mark.parametrize(
    ("meddle", "left"),
    [
        pytest.param(lambda client: client.delete(KEY), (b"none", None), id="deleted"),
        pytest.param(lambda client: client.set(KEY, GARBAGE), (b"string", GARBAGE), id="garbage"),
        pytest.param(lambda client: client.set(KEY, FOREIGN), (b"string", FOREIGN), id="foreign"),
        pytest.param(
            lambda client: (client.delete(KEY), client.rpush(KEY, b"x")),
            (b"list", None),
            id="another-type",
        ),
    ],
)
def test_a_session_gone_during_the_pause_is_not_written_back(
    meddle: Callable[[redis.Redis], Any],
    left: tuple[bytes, bytes | None],
    client: redis.Redis,
    redis_client: redis.Redis,
) -> None:
    """Deleted (a logout) or replaced while the writer backs off: reported gone, left alone."""
    state = loaded(redis_client, {"seed": 0})
    state.assign("ours", 1)
    store = RivalStore(client, Rival(redis_client).before_attempts(100))
    session_writer, conflicts, _ = writer(store, sleep=lambda _: meddle(redis_client))

    assert save(session_writer, state) is Saved.GONE

    assert store.attempts == [CasOutcome.CONFLICT] * (BACKOFF_AFTER + 1)
    kind, value = left
    assert redis_client.type(KEY) == kind
    if kind == b"string":
        assert redis_client.get(KEY) == value
    assert conflicts == []


# --------------------------------------------------------------------------- one conflict


def test_a_conflict_is_merged_and_written_in_one_more_attempt(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"k": "base", "n": 1})
    state.assign("k", "ours")
    state.incr("n", 2)
    rival = Rival(redis_client)
    store = RivalStore(client, rival.first(k="theirs", n=11, b=1))
    session_writer, conflicts, _ = writer(store)

    assert save(session_writer, state) is Saved.WRITTEN

    assert store.attempts == [CasOutcome.CONFLICT, CasOutcome.WRITTEN]
    assert stored(redis_client) == {"k": "ours", "n": 13, "b": 1}
    assert conflicts == [("k",)]  # reported once, when written
    # What was written is the new baseline: no change is pending any more.
    raw = redis_client.get(KEY)
    assert state.loaded == raw and state.loaded_plain == raw
    assert not state.touched and state.increments == {}


def test_the_ttl_is_asked_again_after_a_merge(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    """The other request set a timeout of 50 s; the merged write keeps it, and its TTL."""
    state = loaded(redis_client, {"k": "base"})
    state.assign("mine", 1)

    def rival(attempt: int) -> None:
        if attempt == 0:
            redis_client.set(KEY, CODEC.encode(SessionRecord({"k": "base"}, CREATED, 50)))

    store = RivalStore(client, rival)
    session_writer, _, _ = writer(store)
    saved = session_writer.save(
        state, KEY, CODEC.encode_plain(state.record), lambda: state.record.timeout or TTL, None
    )

    assert saved is Saved.WRITTEN
    assert store.attempts == [CasOutcome.CONFLICT, CasOutcome.WRITTEN]
    raw = raw_at(redis_client)
    assert raw is not None and CODEC.decode(raw).timeout == 50
    assert 0 < redis_client.ttl(KEY) <= 50


def test_the_merge_of_a_later_conflict_starts_from_the_copy_adopted_before(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    """Two conflicts in a row: the second merge's base is what the first one merged onto.

    So a key the other request deletes in between stays deleted.
    """
    state = loaded(redis_client, {"k": 1, "seed": 0})
    state.assign("mine", 1)
    rival = Rival(redis_client)

    def rivals(attempt: int) -> None:
        if attempt == 0:
            rival.write(x=1)
        elif attempt == 1:
            rival.remove("k")

    store = RivalStore(client, rivals)
    session_writer, conflicts, _ = writer(store)

    assert save(session_writer, state) is Saved.WRITTEN

    assert store.attempts == [CasOutcome.CONFLICT, CasOutcome.CONFLICT, CasOutcome.WRITTEN]
    assert stored(redis_client) == {"seed": 0, "x": 1, "mine": 1}
    assert conflicts == []


def test_a_save_whose_merge_is_empty_writes_an_empty_session(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    """Only ``delete_emptied`` deletes: a save (``invalidate_empty_session`` off) writes."""
    state = loaded(redis_client, {"k": 1})
    state.remove("k")

    def rival(attempt: int) -> None:
        if attempt == 0:
            redis_client.set(KEY, CODEC.encode(SessionRecord({"k": 1}, CREATED, 99)))

    store = RivalStore(client, rival)
    session_writer, _, _ = writer(store, invalidate_empty_session=False)

    assert save(session_writer, state) is Saved.WRITTEN

    assert store.attempts == [CasOutcome.CONFLICT, CasOutcome.WRITTEN]
    raw = raw_at(redis_client)
    assert raw is not None and CODEC.decode(raw) == SessionRecord({}, CREATED, 99)


def test_a_conflict_in_strict_mode_raises_and_writes_nothing(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"k": "base", "j": "base"})
    state.assign("k", "ours")
    state.assign("j", "ours")
    rival = Rival(redis_client)
    store = RivalStore(client, rival.first(k="theirs", j="theirs"))
    session_writer, conflicts, _ = writer(store, on_conflict="strict")

    with pytest.raises(SessionWriteConflict) as raised:
        save(session_writer, state)

    assert raised.value.keys == ("j", "k")
    assert str(raised.value) == "both requests changed 'j', 'k'"
    assert store.attempts == [CasOutcome.CONFLICT]
    assert stored(redis_client) == {"k": "theirs", "j": "theirs"}
    assert conflicts == []


def test_changes_already_in_redis_are_not_written_again(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    """The other request made the very same change: nothing is left to write."""
    state = loaded(redis_client, {"k": "base"})
    state.assign("k", "same")
    rival = Rival(redis_client)
    store = RivalStore(client, rival.first(k="same"))
    session_writer, conflicts, _ = writer(store)
    theirs_raw = CODEC.encode(SessionRecord({"k": "same"}, CREATED))

    assert save(session_writer, state) is Saved.WRITTEN

    assert store.attempts == [CasOutcome.CONFLICT]  # no second attempt
    assert redis_client.get(KEY) == theirs_raw
    assert state.loaded == theirs_raw and state.loaded_plain == theirs_raw
    assert not state.touched
    assert conflicts == []


def test_changes_already_in_redis_still_get_this_requests_ttl(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    """The write that is skipped would have set the TTL this request asked for
    (``adjust_session_timeout()``): one EXPIRE sets it instead."""
    state = loaded(redis_client, {"k": "base"})
    state.assign("k", "same")
    rival = Rival(redis_client)
    store = RivalStore(client, rival.first(k="same"))  # the rival's write: TTL seconds
    session_writer, _, _ = writer(store)
    longer = 5 * TTL

    saved = session_writer.save(
        state, KEY, CODEC.encode_plain(state.record), lambda: longer, lock=None
    )

    assert saved is Saved.WRITTEN
    assert store.attempts == [CasOutcome.CONFLICT]
    assert longer - 5 <= redis_client.ttl(KEY) <= longer


def test_a_conflict_already_in_redis_is_still_reported(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    """A conflict on the way, then another write brings exactly our changes: still reported."""
    state = loaded(redis_client, {"k": "base", "j": 0})
    state.assign("k", "ours")
    state.assign("j", 1)
    rival = Rival(redis_client)

    def rivals(attempt: int) -> None:
        if attempt == 0:
            rival.write(k="theirs")
        elif attempt == 1:
            rival.write(k="ours", j=1)

    store = RivalStore(client, rivals)
    session_writer, conflicts, _ = writer(store)

    assert save(session_writer, state) is Saved.WRITTEN

    assert store.attempts == [CasOutcome.CONFLICT, CasOutcome.CONFLICT]
    assert stored(redis_client) == {"k": "ours", "j": 1}
    assert conflicts == [("k",)]


def test_a_session_deleted_before_the_write_is_gone(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"k": "base"})
    state.assign("k", "ours")
    store = RivalStore(client, lambda attempt: redis_client.delete(KEY))
    session_writer, conflicts, _ = writer(store)

    assert save(session_writer, state) is Saved.GONE

    assert store.attempts == [CasOutcome.GONE]
    assert not redis_client.exists(KEY)
    assert conflicts == []


def test_a_session_replaced_by_garbage_during_a_conflict_is_gone(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"k": "base"})
    state.assign("k", "ours")
    store = RivalStore(client, lambda attempt: redis_client.set(KEY, b"\x01bad"))
    session_writer, _, _ = writer(store)

    assert save(session_writer, state) is Saved.GONE

    assert store.attempts == [CasOutcome.CONFLICT]
    assert redis_client.get(KEY) == b"\x01bad"


# --------------------------------------------------------------------------- emptied sessions


def delete(session_writer: SessionWriter, state: SessionState) -> Saved:
    saved: Saved = session_writer.delete_emptied(state, KEY, lambda: TTL, lock=None)
    return saved


def test_an_emptied_session_is_deleted_if_nobody_wrote(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"k": 1})
    state.remove("k")
    store = RivalStore(client, nobody)
    session_writer, conflicts, _ = writer(store)

    assert delete(session_writer, state) is Saved.DELETED

    assert store.attempts == [CasOutcome.WRITTEN]
    assert not redis_client.exists(KEY)
    assert conflicts == []


def test_an_emptied_session_someone_wrote_to_is_merged_and_kept(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"k": 1})
    state.remove("k")
    rival = Rival(redis_client)
    store = RivalStore(client, rival.first(theirs=2))
    session_writer, conflicts, _ = writer(store)

    assert delete(session_writer, state) is Saved.WRITTEN

    assert store.attempts == [CasOutcome.CONFLICT, CasOutcome.WRITTEN]
    assert stored(redis_client) == {"theirs": 2}
    assert 0 < redis_client.ttl(KEY) <= TTL
    assert state.data == {"theirs": 2} and state.loaded == redis_client.get(KEY)
    assert conflicts == []


def test_an_emptied_session_whose_merge_is_empty_too_is_deleted(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    """They changed only the metadata meanwhile: the merge is empty too, so it is deleted."""
    state = loaded(redis_client, {"k": 1, "j": 1})
    state.remove("k")
    state.remove("j")

    def rival(attempt: int) -> None:
        if attempt == 0:
            redis_client.set(KEY, CODEC.encode(SessionRecord({"k": 1, "j": 1}, CREATED, 99)))

    store = RivalStore(client, rival)
    session_writer, conflicts, _ = writer(store)

    assert delete(session_writer, state) is Saved.DELETED

    assert store.attempts == [CasOutcome.CONFLICT, CasOutcome.WRITTEN]
    assert not redis_client.exists(KEY)
    assert conflicts == []


def test_an_emptied_session_deleted_meanwhile_is_gone(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"k": 1})
    state.remove("k")
    store = RivalStore(client, lambda attempt: redis_client.delete(KEY))
    session_writer, _, _ = writer(store)

    assert delete(session_writer, state) is Saved.GONE
    assert not redis_client.exists(KEY)


def test_overwrite_mode_deletes_and_writes_without_comparing(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"k": 1})
    state.assign("k", "ours")
    Rival(redis_client).write(k="theirs")
    store = RivalStore(client, nobody)
    session_writer, _, _ = writer(store, persistence="overwrite")

    assert save(session_writer, state) is Saved.WRITTEN
    assert stored(redis_client) == {"k": "ours"}  # last writer wins
    assert store.attempts == []
    assert 0 < redis_client.ttl(KEY) <= TTL
    assert state.loaded == state.loaded_plain == redis_client.get(KEY) and not state.touched

    redis_client.delete(KEY)
    state.assign("k", "again")
    assert save(session_writer, state) is Saved.GONE  # never recreated
    assert not redis_client.exists(KEY)

    state = loaded(redis_client, {"k": 1})
    state.remove("k")
    Rival(redis_client).write(theirs=1)  # last writer wins: deleted all the same
    assert delete(session_writer, state) is Saved.DELETED
    assert not redis_client.exists(KEY)
    assert store.attempts == []


# --------------------------------------------------------------------------- persistence = lock

TOKEN = "our-token"


def locked(redis_client: redis.Redis, data: dict[str, Any]) -> SessionState:
    """A session loaded under the lock that ``TOKEN`` holds."""
    state = loaded(redis_client, data)
    redis_client.set(lock_key(KEY), TOKEN, px=10_000)
    return state


def test_a_write_under_the_lock_releases_it(client: redis.Redis, redis_client: redis.Redis) -> None:
    state = locked(redis_client, {"k": 1})
    state.assign("k", 2)
    session_writer, _, _ = writer(RivalStore(client, nobody), persistence="lock")
    plain = CODEC.encode_plain(state.record)

    assert session_writer.save(state, KEY, plain, lambda: TTL, TOKEN) is Saved.WRITTEN

    assert stored(redis_client) == {"k": 2}
    assert 0 < redis_client.ttl(KEY) <= TTL
    assert not redis_client.exists(lock_key(KEY))
    assert state.loaded == state.loaded_plain == plain and not state.touched


def test_a_write_whose_lease_ran_out_is_refused(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = locked(redis_client, {"k": 1})
    redis_client.set(lock_key(KEY), "another-token")  # our lease ended; another took it
    state.assign("k", 2)
    session_writer, _, _ = writer(RivalStore(client, nobody), persistence="lock")
    plain = CODEC.encode_plain(state.record)

    with pytest.raises(SessionLockLost) as raised:
        session_writer.save(state, KEY, plain, lambda: TTL, TOKEN)

    assert str(raised.value) == "the session lock's lease ran out before the write"
    assert stored(redis_client) == {"k": 1}
    assert redis_client.get(lock_key(KEY)) == b"another-token"


def test_a_write_under_the_lock_to_a_deleted_session_is_gone(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = locked(redis_client, {"k": 1})
    redis_client.delete(KEY)
    state.assign("k", 2)
    session_writer, _, _ = writer(RivalStore(client, nobody), persistence="lock")
    plain = CODEC.encode_plain(state.record)

    assert session_writer.save(state, KEY, plain, lambda: TTL, TOKEN) is Saved.GONE
    assert not redis_client.exists(KEY)
    assert state.touched  # nothing was persisted


def test_an_emptied_session_under_the_lock_is_deleted_and_the_lock_released(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = locked(redis_client, {"k": 1})
    state.remove("k")
    store = RivalStore(client, nobody)
    session_writer, _, _ = writer(store, persistence="lock")

    assert session_writer.delete_emptied(state, KEY, lambda: TTL, TOKEN) is Saved.DELETED

    assert redis_client.keys() == []  # the session and its lock
    assert store.attempts == []


# --------------------------------------------------------------------------- creating


def test_create_takes_another_id_on_a_collision_and_gives_up_after_three(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    store = RivalStore(client, nobody)
    session_writer, _, _ = writer(store)
    for taken in ("a", "b", "c"):
        redis_client.set(f"k:{taken}", b"someone else's")
    state = SessionState(SessionRecord({"x": 1}, CREATED))

    ids = iter(["b", "d"])
    created = session_writer.create(state, lambda sid: f"k:{sid}", lambda: next(ids), "a", TTL)
    assert created == "d"
    assert stored(redis_client, "k:d") == {"x": 1}
    assert state.loaded == redis_client.get("k:d") and state.had_data and not state.touched
    assert state.loaded_plain == state.loaded  # the baseline of the next write

    state = SessionState(SessionRecord({"x": 2}, CREATED))
    ids = iter(["b", "c", "free"])
    with pytest.raises(SessionBackendError, match=r"^could not find a free session id$"):
        session_writer.create(state, lambda sid: f"k:{sid}", lambda: next(ids), "a", TTL)
    assert not redis_client.exists("k:free")  # three tries, no more
    assert state.loaded is None
    assert [redis_client.get(f"k:{sid}") for sid in "abc"] == [b"someone else's"] * 3


# --------------------------------------------------------------------------- metadata merge


def record(timeout: int | None = None, expires: int | None = None) -> SessionRecord:
    return SessionRecord({}, 1, timeout, expires)


# (base, ours, theirs) -> (timeout, expires) of the merge; created is always theirs.
METADATA = [
    pytest.param(record(), record(), record(), (None, None), id="nobody-changed"),
    pytest.param(record(60, 100), record(60, 100), record(30, 70), (30, 70), id="theirs-timeout"),
    pytest.param(record(60, 100), record(30, 70), record(60, 100), (30, 70), id="ours-timeout"),
    pytest.param(record(60, 100), record(30, 70), record(90, 130), (30, 70), id="both-ours-wins"),
    pytest.param(
        record(60, 100), record(60, 100), record(60, 160), (60, 160), id="theirs-expires-slid"
    ),
    pytest.param(
        record(60, 100), record(60, 150), record(60, 100), (60, 150), id="ours-expires-slid"
    ),
    pytest.param(
        record(60, 100), record(60, 150), record(60, 160), (60, 150), id="both-slid-ours-wins"
    ),
    pytest.param(
        record(60, 100), record(30, 100), record(60, 160), (30, 160), id="ours-timeout-their-expiry"
    ),
    pytest.param(
        record(60, 100), record(60, 150), record(30, 70), (30, 70), id="their-timeout-and-expiry"
    ),
    pytest.param(record(None), record(None), record(45), (45, None), id="theirs-set-a-timeout"),
    pytest.param(record(45), record(45), record(None), (None, None), id="theirs-back-to-default"),
    pytest.param(record(45), record(None), record(45), (None, None), id="ours-back-to-default"),
]


@pytest.mark.parametrize(("base", "ours", "theirs", "expected"), METADATA)
def test_merge_records_takes_metadata_from_the_side_that_changed_it(
    base: SessionRecord, ours: SessionRecord, theirs: SessionRecord, expected: tuple[Any, Any]
) -> None:
    ours.created, theirs.created = 2, 3
    merged, conflicts = merge_records(base, ours, theirs, {})
    assert (merged.timeout, merged.expires) == expected
    assert merged.created == 3  # the stored one
    assert conflicts == ()


def test_merge_records_merges_the_data_with_increments() -> None:
    base = SessionRecord({"n": 1, "k": "b", "x": 0}, 1)
    ours = SessionRecord({"n": 3, "k": "o", "x": 0}, 1)
    theirs = SessionRecord({"n": 11, "k": "t", "y": 1}, 1)
    merged, conflicts = merge_records(base, ours, theirs, {"n": 2})
    assert merged.data == {"n": 13, "k": "o", "y": 1}
    assert conflicts == ("k",)
    assert base.data == {"n": 1, "k": "b", "x": 0}  # inputs untouched
    assert theirs.data == {"n": 11, "k": "t", "y": 1}
