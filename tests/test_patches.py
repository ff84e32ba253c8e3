"""Stamped values and patch frames: a change to a few keys of a large session is appended.

A stored value of 1 KB or more carries a random stamp (codec.py); a request that changed
a few of its top-level keys appends them as a frame, compared by stamp and length,
instead of rewriting and recompressing the whole; a deletion, a lost race, metadata
changes and a value already carrying ``MAX_PATCHES`` frames are written whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pyramid.request import Request

from pyramid_session_redis.codec import (
    MAX_PATCHES,
    PATCHED_MARKER,
    STAMP_BYTES,
    STAMPED_MARKER,
    DecodeError,
    SafeCodec,
    SessionRecord,
    body_marker,
)
from pyramid_session_redis.exceptions import SessionTooLarge
from pyramid_session_redis.persist import Saved
from pyramid_session_redis.state import MAX_PATCH_KEYS, SessionState
from pyramid_session_redis.store import CasOutcome
from tests.app import make_app
from tests.redis_stats import CommandCounter
from tests.test_codec import body_of
from tests.test_commands import start_session
from tests.test_persist import KEY, TTL, Rival, RivalStore, loaded, nobody, stored, writer

CODEC = SafeCodec(compress_threshold=1024)
# ~4 KB of hex digits (~2 KB compressed): stamped whether compressed or not.
BIG = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(60)]


def append_item(request: Request) -> Any:
    request.session["items"].append(request.params["value"])
    return "appended"


def read_items(request: Request) -> Any:
    return list(request.session["items"])


VIEWS = {"append_item": append_item, "read_items": read_items}


# The commands of a request that loads a stamped session and appends a frame to it.
APPENDED = {"getex": 1, "evalsha": 1, "strlen": 1, "getrange": 1, "append": 1, "expire": 1}


def big_session(app: Any) -> str:
    return start_session(app, big=BIG, counter=0, items=[])


# --------------------------------------------------------------------- through the app


@pytest.mark.parametrize("options", [{}, {"compress_threshold": None}], ids=["zstd", "plain"])
def test_a_change_to_one_key_of_a_large_session_is_appended(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter, options: dict[str, Any]
) -> None:
    app = make_app(redis_url, **options)
    session_id = big_session(app)
    before = redis_client.get(session_id)
    assert before is not None and before[0] == STAMPED_MARKER
    commands.reset()
    app.get("/set", {"key": "counter", "value": "1"})
    assert commands.counts() == APPENDED  # nothing rewritten, as the README's table says
    after = redis_client.get(session_id)
    assert after is not None and after.startswith(before)  # same stamp, same body
    assert 0 < len(after) - len(before) < 40  # one small frame
    assert 0 < redis_client.ttl(session_id) <= 1200
    assert app.get("/read", {"key": "counter"}).json == 1
    assert app.get("/read", {"key": "big"}).json == BIG


def test_after_max_patches_frames_the_next_write_is_whole(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url)
    session_id = big_session(app)  # created with "big", then two keys appended
    first = redis_client.get(session_id)
    assert first is not None
    appended = 2
    for n in range(1, MAX_PATCHES + 1):
        commands.reset()
        app.get("/set", {"key": "counter", "value": str(n)})
        if commands.counts().get("append") != 1:
            break
        appended += 1
    assert appended == MAX_PATCHES
    rewritten = redis_client.get(session_id)
    assert rewritten is not None and rewritten[:STAMP_BYTES] != first[:STAMP_BYTES]
    assert body_of(rewritten)  # no frames left: body_of checks that
    data = SafeCodec().decode(rewritten).data
    assert data == {"big": BIG, "counter": MAX_PATCHES - 1, "items": []}


def test_an_equal_value_or_an_unmutated_exposed_one_writes_nothing(
    redis_url: str, commands: CommandCounter
) -> None:
    app = make_app(redis_url, VIEWS)
    big_session(app)
    app.get("/set", {"key": "counter", "value": "5"})  # one frame stored
    commands.reset()
    app.get("/set", {"key": "counter", "value": "5"})
    assert app.get("/read_items").json == []
    assert set(commands.counts()) == {"getex"}


def test_a_value_mutated_in_place_is_appended(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, VIEWS)
    session_id = big_session(app)
    commands.reset()
    app.get("/append_item", {"value": "a"})
    app.get("/append_item", {"value": "b"})
    assert commands.counts().get("append") == 2
    assert app.get("/read_items").json == ["a", "b"]
    raw = redis_client.get(session_id)
    assert raw is not None and SafeCodec().decode(raw).data["items"] == ["a", "b"]


def set_many(request: Request) -> Any:
    request.session.update({f"k{i}": i for i in range(int(request.params["count"]))})
    return "set"


@pytest.mark.parametrize(
    ("count", "appended"), [(MAX_PATCH_KEYS, True), (MAX_PATCH_KEYS + 1, False)]
)
def test_a_request_that_touched_many_keys_is_written_whole(
    redis_url: str, commands: CommandCounter, count: int, appended: bool
) -> None:
    app = make_app(redis_url, {"set_many": set_many})
    big_session(app)
    commands.reset()
    app.get("/set_many", {"count": str(count)})
    assert ("append" in commands.counts()) is appended
    assert app.get("/read", {"key": f"k{count - 1}"}).json == count - 1


def test_a_deletion_is_written_whole_and_leaves_no_copy_behind(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, compress_threshold=None)
    session_id = start_session(app, big=BIG, secret_note="remove-me-0451")
    app.get("/set", {"key": "counter", "value": "1"})  # a frame first
    commands.reset()
    app.get("/delete", {"key": "secret_note"})
    assert "append" not in commands.counts()
    raw = redis_client.get(session_id)
    assert raw is not None and b"remove-me-0451" not in raw
    assert app.get("/dump").json == {"big": BIG, "counter": 1}


def set_int_key(request: Request) -> Any:
    request.session[1] = "x"
    return "set"


def set_object(request: Request) -> Any:
    request.session["counter"] = object()
    return "set"


@pytest.mark.parametrize("view", ["set_int_key", "set_object"])
@pytest.mark.parametrize("size", ["small", "large"])
def test_what_cannot_be_stored_raises_and_leaves_the_session_as_it_was(
    redis_url: str, redis_client: redis.Redis, view: str, size: str
) -> None:
    """As for a whole write: TypeError at the save, nothing written."""
    app = make_app(redis_url, {"set_int_key": set_int_key, "set_object": set_object})
    session_id = big_session(app) if size == "large" else start_session(app, counter=0)
    before = redis_client.get(session_id)
    with pytest.raises(TypeError):
        app.get(f"/{view}")
    assert redis_client.get(session_id) == before
    assert app.get("/read", {"key": "counter"}).json == 0


def test_small_sessions_are_not_stamped(redis_url: str, redis_client: redis.Redis) -> None:
    app = make_app(redis_url)
    session_id = start_session(app, a=1)
    app.get("/set", {"key": "a", "value": "2"})
    raw = redis_client.get(session_id)
    assert raw is not None and raw[0] == 0x04


def test_sign_payloads_writes_whole_values(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, sign_payloads=True)
    big_session(app)
    commands.reset()
    app.get("/set", {"key": "counter", "value": "1"})
    assert "append" not in commands.counts()
    assert app.get("/read", {"key": "counter"}).json == 1


def test_lock_mode_writes_whole_values(redis_url: str, commands: CommandCounter) -> None:
    app = make_app(redis_url, persistence="lock")
    big_session(app)
    commands.reset()
    app.get("/set", {"key": "counter", "value": "1"})
    assert "append" not in commands.counts()
    assert app.get("/read", {"key": "counter"}).json == 1


# ------------------------------------------------------------------- races, at the writer


@pytest.fixture
def client(redis_url: str, redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """The writer's own connection (``redis_client``, emptied, is the other request's)."""
    own = redis.Redis.from_url(redis_url)
    yield own
    own.close()


def patch_of(state: SessionState) -> tuple[dict[str, Any], list[str]]:
    patch = state.patch_if_changed(CODEC, detect_changes=True)
    assert patch is not None
    return patch


def test_an_append_after_another_write_is_merged_and_written_whole(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"big": BIG, "a": 0, "b": 0})
    rival = Rival(redis_client)
    store = RivalStore(client, rival.first(b=2))  # another request writes b first
    session_writer, conflicts, _ = writer(store)
    assert session_writer.can_patch(state)
    state.assign("a", 1)
    saved = session_writer.save_patch(state, KEY, *patch_of(state), lambda: TTL)
    assert saved is Saved.WRITTEN
    assert store.attempts == [CasOutcome.CONFLICT, CasOutcome.WRITTEN]
    assert stored(redis_client) == {"big": BIG, "a": 1, "b": 2}
    assert conflicts == []


def test_two_appends_from_the_same_version_are_both_kept(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    first = loaded(redis_client, {"big": BIG, "a": 0, "b": 0})
    raw = redis_client.get(KEY)
    assert isinstance(raw, bytes)
    second = SessionState(CODEC.decode(raw), raw, CODEC.unpack(raw))  # the same version
    store = RivalStore(client, nobody)
    session_writer, _, _ = writer(store)
    first.assign("a", 1)
    second.assign("b", 2)
    assert session_writer.save_patch(first, KEY, *patch_of(first), lambda: TTL) is Saved.WRITTEN
    assert session_writer.save_patch(second, KEY, *patch_of(second), lambda: TTL) is Saved.WRITTEN
    assert store.attempts == [CasOutcome.WRITTEN, CasOutcome.CONFLICT, CasOutcome.WRITTEN]
    assert stored(redis_client) == {"big": BIG, "a": 1, "b": 2}


def test_a_rewrite_of_the_same_length_is_a_conflict(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    """The stamp, not the length alone, tells versions apart."""
    state = loaded(redis_client, {"big": BIG, "a": 0})
    store = RivalStore(client, Rival(redis_client).first(a=9))  # same length, new stamp
    session_writer, conflicts, _ = writer(store)
    state.assign("a", 1)
    assert session_writer.save_patch(state, KEY, *patch_of(state), lambda: TTL) is Saved.WRITTEN
    assert store.attempts[0] is CasOutcome.CONFLICT
    assert conflicts == [("a",)]
    assert stored(redis_client) == {"big": BIG, "a": 1}


def test_an_append_to_a_deleted_session_is_gone(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"big": BIG, "a": 0})
    store = RivalStore(client, lambda attempt: redis_client.delete(KEY))
    session_writer, _, _ = writer(store)
    state.assign("a", 1)
    assert session_writer.save_patch(state, KEY, *patch_of(state), lambda: TTL) is Saved.GONE
    assert redis_client.exists(KEY) == 0


# ------------------------------------------------------------------------- the codec


def test_frames_apply_in_order_and_the_plain_form_follows() -> None:
    record = SessionRecord({"big": BIG, "a": 1, "b": 2}, 1_700_000_000, 600)
    raw = CODEC.encode(record)
    plain = CODEC.unpack(raw)
    for sets, deletes in (({"a": 2}, []), ({"a": 3, "c": (1, 2)}, ["b"])):
        frame = CODEC.patch_frame(sets, deletes)
        assert CODEC.can_append(raw, plain, frame)
        raw, plain = raw + frame, CODEC.patched_plain(plain, frame)
        assert CODEC.unpack(raw) == plain and plain[0] == PATCHED_MARKER
    expected = SessionRecord({"big": BIG, "a": 3, "c": (1, 2)}, 1_700_000_000, 600)
    assert CODEC.decode(raw) == expected
    # Packing a patched plain form folds the frames into one body.
    folded = CODEC.pack(plain)
    assert body_of(folded) and CODEC.decode(folded) == expected


def test_can_append_limits_frames_their_size_and_the_payload() -> None:
    raw = CODEC.encode(SessionRecord({"big": BIG}, 1_700_000_000))
    plain = CODEC.unpack(raw)
    small = CODEC.patch_frame({"n": 1}, [])
    for _ in range(MAX_PATCHES):
        assert CODEC.can_append(raw, plain, small)
        raw, plain = raw + small, CODEC.patched_plain(plain, small)
    assert not CODEC.can_append(raw, plain, small)
    fresh = CODEC.encode(SessionRecord({"big": BIG}, 1_700_000_000))
    fresh_plain = CODEC.unpack(fresh)
    assert not CODEC.can_append(fresh, fresh_plain, CODEC.patch_frame({"n": "x" * 5000}, []))
    tight = SafeCodec(1024, max_payload_bytes=len(fresh_plain) + 10)
    assert tight.can_append(fresh, fresh_plain, CODEC.patch_frame({"n": 1}, []))
    assert not tight.can_append(fresh, fresh_plain, CODEC.patch_frame({"n": "x" * 10}, []))
    small_raw = CODEC.encode(SessionRecord({"a": 1}, 0))
    assert not CODEC.can_append(small_raw, small_raw, small)  # not stamped


def test_a_patch_past_max_payload_bytes_is_refused_and_nothing_written(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url)
    session_id = big_session(app)
    raw = redis_client.get(session_id)
    assert raw is not None
    size = len(SafeCodec(1024).unpack(raw))
    tight = make_app(redis_url, max_payload_bytes=size + 20)
    tight.set_cookie("session", app.cookies["session"])
    tight.get("/set", {"key": "counter", "value": "1"})  # a frame that fits
    grown = redis_client.get(session_id)
    assert grown is not None and grown.startswith(raw)
    with pytest.raises(SessionTooLarge):
        tight.get("/set", {"key": "counter", "value": '"' + "x" * 100 + '"'})
    assert redis_client.get(session_id) == grown  # refused whole: nothing written
    assert tight.get("/read", {"key": "counter"}).json == 1


def test_body_marker_reads_through_the_stamp() -> None:
    stamped = SafeCodec(1024).encode(SessionRecord({"big": BIG}, 1_700_000_000))
    plain = SafeCodec().encode(SessionRecord({"big": BIG}, 1_700_000_000))
    assert body_marker(stamped[:16]) == 0x06 and body_marker(plain[:16]) == 0x04
    assert body_marker(SafeCodec().encode(SessionRecord({"a": 1}, 0))) == 0x04
    assert body_marker(stamped[:STAMP_BYTES]) is None  # cut before the body
    assert body_marker(b"") is None


@pytest.mark.parametrize(
    "frames",
    [
        b"\x05ab",  # shorter than it says
        b"\x00",  # empty
        b"\x01\xc1",  # not MessagePack
        b"\x02\x91\x01",  # not [{...}, [...]]
        b"\x05\x92\x81\x01\x01\x90",  # a key that is not a str
    ],
    ids=["truncated", "empty", "garbage", "shape", "key type"],
)
def test_malformed_frames_are_a_decode_error(frames: bytes) -> None:
    raw = CODEC.encode(SessionRecord({"big": BIG}, 1_700_000_000))
    with pytest.raises(DecodeError):
        CODEC.decode(raw + frames)


def test_an_append_to_a_value_replaced_by_another_type_is_gone(
    client: redis.Redis, redis_client: redis.Redis
) -> None:
    state = loaded(redis_client, {"big": BIG, "a": 0})

    def replace(attempt: int) -> None:
        redis_client.delete(KEY)
        redis_client.hset(KEY, "f", "v")

    session_writer, _, _ = writer(RivalStore(client, replace))
    state.assign("a", 1)
    assert session_writer.save_patch(state, KEY, *patch_of(state), lambda: TTL) is Saved.GONE
    assert redis_client.type(KEY) == b"hash"


def test_a_malformed_frame_in_redis_gives_a_fresh_session(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url, deserialized_fails_new=True)
    session_id = big_session(app)
    raw = redis_client.get(session_id)
    assert raw is not None
    redis_client.set(session_id, raw + b"\x05ab")
    assert app.get("/dump").json == {}
