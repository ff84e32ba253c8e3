"""``SessionState``: a session's data and this request's change log (pure, no I/O).

What the log holds decides the end of the request (whether to serialize, what to send)
and, under a conflict, what the merge keeps: these tests pin the log itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from pyramid_session_redis.codec import SafeCodec, SessionRecord
from pyramid_session_redis.state import SessionState

CREATED = 1_700_000_000


class CountingCodec(SafeCodec):
    """The safe codec, counting how often a record is serialized."""

    __slots__ = ("encodes",)

    def __init__(self) -> None:
        super().__init__()
        self.encodes = 0

    def encode_plain(self, record: SessionRecord) -> bytes:
        self.encodes += 1
        return super().encode_plain(record)


def loaded(data: dict[str, Any], timeout: int | None = None) -> tuple[SessionState, SafeCodec]:
    """A state as a request loads it from Redis, and its codec."""
    codec = SafeCodec()
    raw = codec.encode(SessionRecord(data, CREATED, timeout))
    return SessionState(codec.decode(raw), raw, codec.unpack(raw)), codec


def log(state: SessionState) -> dict[str, Any]:
    return {
        "written": state.written,
        "deleted": state.deleted,
        "increments": state.increments,
        "exposed": state.exposed,
    }


# --------------------------------------------------------------------------- the change log

# (data loaded, what the request does, the data after, the log after)
STEPS = [
    pytest.param(
        {"n": 5},
        [("incr", "n", 2), ("incr", "n", 3)],
        {"n": 10},
        {"written": set(), "deleted": set(), "increments": {"n": 5}, "exposed": set()},
        id="increments-add-up",
    ),
    pytest.param(
        {},
        [("incr", "n", 2)],
        {"n": 2},
        {"written": set(), "deleted": set(), "increments": {"n": 2}, "exposed": set()},
        id="incr-of-a-missing-key-counts-from-0",
    ),
    pytest.param(
        {"n": 5},
        [("incr", "n", 1), ("assign", "n", 100)],
        {"n": 100},
        {"written": {"n"}, "deleted": set(), "increments": {}, "exposed": set()},
        id="incr-then-assign",
    ),
    pytest.param(
        {"n": 5},
        [("incr", "n", 1), ("remove", "n")],
        {},
        {"written": set(), "deleted": {"n"}, "increments": {}, "exposed": set()},
        id="incr-then-remove",
    ),
    pytest.param(
        {"n": 5},
        [("assign", "n", 3), ("incr", "n", 1)],
        {"n": 4},
        {"written": {"n"}, "deleted": set(), "increments": {}, "exposed": set()},
        id="assign-then-incr-is-an-assignment",
    ),
    pytest.param(
        {"n": 5},
        [("remove", "n"), ("incr", "n", 1)],
        {"n": 1},
        {"written": {"n"}, "deleted": set(), "increments": {}, "exposed": set()},
        id="remove-then-incr-is-an-assignment",
    ),
    pytest.param(
        {"k": 1},
        [("assign", "k", 2), ("remove", "k")],
        {},
        {"written": set(), "deleted": {"k"}, "increments": {}, "exposed": set()},
        id="assign-then-remove",
    ),
    pytest.param(
        {"k": 1},
        [("remove", "k"), ("assign", "k", 2)],
        {"k": 2},
        {"written": {"k"}, "deleted": set(), "increments": {}, "exposed": set()},
        id="remove-then-assign",
    ),
    pytest.param(
        {"n": 5.5},
        [("incr", "n", 0.5)],
        {"n": 6.0},
        {"written": set(), "deleted": set(), "increments": {"n": 0.5}, "exposed": set()},
        id="float-increment",
    ),
]


@pytest.mark.parametrize(("data", "steps", "after", "expected_log"), STEPS)
def test_the_change_log(
    data: dict[str, Any], steps: list[Any], after: dict[str, Any], expected_log: dict[str, Any]
) -> None:
    state, _ = loaded(data)
    for name, *args in steps:
        getattr(state, name)(*args)
    assert state.data == after
    assert log(state) == expected_log
    assert state.touched


def test_incr_returns_the_new_value() -> None:
    state, _ = loaded({"n": 5})
    assert state.incr("n", 2) == 7
    assert state.incr("m", 3) == 3
    state.assign("k", 10)
    assert state.incr("k", 1) == 11


@pytest.mark.parametrize(
    ("value", "exposed"),
    [
        ([1], True),
        ({"a": 1}, True),
        ({1}, True),
        ((1, [2]), True),  # a tuple holding a list
        (frozenset({1}), False),
        ((1, "a"), False),
        (1, False),
        ("text", False),
        (None, False),
    ],
)
def test_only_mutable_values_handed_out_are_remembered(value: Any, exposed: bool) -> None:
    state, _ = loaded({"k": value})
    assert state.expose("k", state.data["k"]) is state.data["k"]
    assert state.exposed == ({"k"} if exposed else set())
    assert not state.touched  # a read is not a change


def test_expose_all_remembers_every_mutable_value() -> None:
    state, _ = loaded({"list": [1], "dict": {}, "int": 1, "str": "s"})
    state.expose_all()
    assert state.exposed == {"list", "dict"}


def test_metadata_changes() -> None:
    state, _ = loaded({"k": 1})
    state.touch_meta(timeout=50, expires=CREATED + 50)
    assert (state.record.timeout, state.record.expires) == (50, CREATED + 50)
    assert state.meta_changed and state.touched
    assert log(state) == {"written": set(), "deleted": set(), "increments": {}, "exposed": set()}


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.assign("k", 1),
        lambda s: s.remove("k"),
        lambda s: s.incr("n", 1),
        lambda s: s.touch_meta(timeout=1),
        lambda s: setattr(s, "forced", True),
    ],
)
def test_every_kind_of_change_counts_as_touched(change: Any) -> None:
    state, _ = loaded({"k": 0})
    assert not state.touched
    change(state)
    assert state.touched


# --------------------------------------------------------------------------- end of request


def test_an_untouched_state_is_not_serialized() -> None:
    state, _ = loaded({"k": [1]})
    codec = CountingCodec()
    state.expose("k", state.data["k"])
    assert state.encode_if_changed(codec, detect_changes=False) is None
    assert codec.encodes == 0  # without detect_changes a read costs nothing
    assert state.encode_if_changed(codec, detect_changes=True) is None
    assert codec.encodes == 1  # a handed-out value is compared


def test_an_in_place_change_is_found_with_detect_changes() -> None:
    state, codec = loaded({"k": [1]})
    state.expose("k", state.data["k"]).append(2)
    plain = state.encode_if_changed(codec, detect_changes=True)
    assert plain is not None and codec.decode_plain(plain).data == {"k": [1, 2]}
    assert state.encode_if_changed(codec, detect_changes=False) is None  # not without it


def test_a_change_back_to_what_was_loaded_is_no_change() -> None:
    state, codec = loaded({"k": 1})
    state.assign("k", 2)
    assert state.encode_if_changed(codec, detect_changes=True) is not None
    state.assign("k", 1)
    assert state.encode_if_changed(codec, detect_changes=True) is None


def test_a_new_state_has_no_baseline() -> None:
    record = SessionRecord({"k": 1}, CREATED, 50)
    state = SessionState(record)
    codec = SafeCodec()
    assert state.loaded is None and state.loaded_plain is None
    assert state.had_data and state.data is record.data
    state.assign("x", 1)
    plain = state.encode_if_changed(codec, detect_changes=True)
    assert plain is not None
    assert state.base(codec) == SessionRecord({}, CREATED, None, None)


def test_a_loaded_state_starts_with_an_empty_log() -> None:
    state, _ = loaded({"k": [1]})
    assert log(state) == {"written": set(), "deleted": set(), "increments": {}, "exposed": set()}
    assert (state.meta_changed, state.forced, state.had_data) == (False, False, True)
    assert not state.touched


def test_the_loaded_bytes_are_the_plain_form_unless_given() -> None:
    codec = SafeCodec()
    raw = codec.encode(SessionRecord({"k": 1}, CREATED))
    assert SessionState(codec.decode(raw), raw).loaded_plain == raw
    assert SessionState(codec.decode(raw), raw, b"plain").loaded_plain == b"plain"
    assert not SessionState(SessionRecord({}, CREATED), raw).had_data


def test_mark_persisted_makes_the_write_the_new_baseline() -> None:
    state, codec = loaded({"k": 1, "gone": 0})
    state.assign("k", 2)
    state.remove("gone")
    state.incr("n", 1)
    state.expose("list", [])
    state.touch_meta(timeout=9)
    state.forced = True
    plain = codec.encode_plain(state.record)
    payload = codec.pack(plain)

    state.mark_persisted(payload, plain)

    assert (state.loaded, state.loaded_plain) == (payload, plain)
    assert log(state) == {"written": set(), "deleted": set(), "increments": {}, "exposed": set()}
    assert (state.meta_changed, state.forced, state.touched) == (False, False, False)
    assert state.encode_if_changed(codec, detect_changes=True) is None
    assert state.base(codec) == SessionRecord({"k": 2, "n": 1}, CREATED, 9)


@pytest.mark.parametrize(("data", "had_data"), [({"k": 1}, True), ({}, False)])
def test_mark_persisted_remembers_whether_there_was_data(
    data: dict[str, Any], had_data: bool
) -> None:
    """``had_data`` (an emptied session is deleted) follows what was persisted last."""
    state = SessionState(SessionRecord(dict(data), CREATED))
    codec = SafeCodec()
    assert state.had_data is had_data
    if had_data:
        state.remove("k")
    else:
        state.assign("k", 1)
    plain = codec.encode_plain(state.record)
    state.mark_persisted(codec.pack(plain), plain)
    assert state.had_data is not had_data


# --------------------------------------------------------------------------- merge support


def test_base_is_a_fresh_copy_of_what_was_loaded() -> None:
    state, codec = loaded({"list": [1], "k": 1}, timeout=50)
    state.expose("list", state.data["list"]).append(2)
    base = state.base(codec)
    assert base == SessionRecord({"list": [1], "k": 1}, CREATED, 50)
    assert base.data["list"] is not state.data["list"]
    base.data["list"].append(3)
    assert state.base(codec).data["list"] == [1]  # each call a new copy


def test_adopt_continues_from_the_merge_onto_what_redis_holds() -> None:
    state, codec = loaded({"n": 1, "k": 1})
    state.incr("n", 2)
    state.assign("k", 2)
    merged = SessionRecord({"n": 13, "k": 2, "theirs": 1}, CREATED, 40)
    theirs = codec.encode(SessionRecord({"n": 11, "k": 1, "theirs": 1}, CREATED))

    state.adopt(merged, theirs, codec.unpack(theirs))

    assert state.record is merged and state.data is merged.data
    assert (state.loaded, state.loaded_plain) == (theirs, codec.unpack(theirs))
    assert state.increments == {"n": 2}  # still pending, as a delta over the new baseline
    assert state.written == {"k"}
    assert state.forced  # the merged record differs from what Redis holds
    assert state.base(codec).data == {"n": 11, "k": 1, "theirs": 1}
    plain = state.encode_if_changed(codec, detect_changes=False)
    assert plain is not None and codec.decode_plain(plain) == merged
