"""Session record codecs: the safe envelope and the 1.x pickle-compatible layout."""

from __future__ import annotations

import json
import pickle
import random
import string
import zlib
from datetime import datetime, timezone
from typing import Any

import pytest
import zstandard

from pyramid_session_redis import serializer
from pyramid_session_redis.codec import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    JSON_MARKER,
    JSON_ZLIB_MARKER,
    JSON_ZSTD_MARKER,
    PLAIN_MARKER,
    STAMP_BYTES,
    STAMPED_MARKER,
    ZLIB_MARKER,
    ZSTD_MARKER,
    Codec,
    DecodeError,
    LegacyCodec,
    LegacyPayloadError,
    SafeCodec,
    SessionRecord,
)
from pyramid_session_redis.state import SessionState

from . import stored_forms
from .test_tagged_json import CONTAINERS, MIXED, SCALARS, short_id, typed


def body_of(raw: bytes) -> bytes:
    """A stored value without its stamp (marker 0x07, 8 random bytes, a varint length)."""
    if raw[0] != STAMPED_MARKER:
        return raw
    pos, length, shift = STAMP_BYTES, 0, 0
    while True:
        byte = raw[pos]
        length |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            break
    assert len(raw) == pos + length, "patch frames follow the body"
    return raw[pos:]


CREATED = 1795325693
CSRF = "3f8a2c61d0b94e7a95c2e4f17b8d06a3c5e9f1247ab8d3e06c91f5a27d4b8e10"
SMALL = {"user_id": 42, "csrf": CSRF, "flash": ["hi"]}
RICH = {
    "user": {"id": 7, "roles": ("admin",)},
    "seen": {1, 2},
    "by_id": {3: "x"},
    "at": datetime(2024, 1, 1, tzinfo=timezone.utc),
    "~t": "tag-like key at the top level",
}


def legacy_layout(record: SessionRecord) -> dict[str, Any]:
    """The payload dict in 1.8's key order (m, c, v, x, t), as 1.8.1 was seen to write it."""
    payload: dict[str, Any] = {"m": record.data, "c": record.created, "v": 1}
    if record.expires is not None:
        payload["x"] = record.expires
    if record.timeout is not None:
        payload["t"] = record.timeout
    return payload


def twenty_kb_session(seed: int, int_every: int) -> dict[str, Any]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + " "
    return {
        f"key_{i:03d}": (
            rng.randrange(10**6) if i % int_every == 0 else "".join(rng.choices(alphabet, k=90))
        )
        for i in range(200)
    }


# --- SafeCodec -----------------------------------------------------------------------------

TIMES = [
    (None, None),
    (1200, None),
    (None, CREATED + 1200),
    (1200, CREATED + 1200),
    (1200, CREATED + 4321),
    (1201, CREATED - 5),
    (86400 * 365, 2**32 - 1),
    (2**31 - 1, 2**40),
]
# Times no valid writer produces (corruption): encode accepts them, decode refuses them.
BAD_TIMES = [(0, CREATED), (-60, 0), (2**31, None), (2**40, 2**45), (None, 2**41)]


@pytest.mark.parametrize(("timeout", "expires"), BAD_TIMES)
@pytest.mark.parametrize("codec", [SafeCodec(), LegacyCodec(pickle.dumps, pickle.loads)])
def test_decode_rejects_out_of_range_times(
    codec: Any, timeout: int | None, expires: int | None
) -> None:
    raw = codec.encode(SessionRecord({"a": 1}, CREATED, timeout, expires))
    with pytest.raises(DecodeError, match="out of range"):
        codec.decode(raw)


@pytest.mark.parametrize(("timeout", "expires"), TIMES)
@pytest.mark.parametrize(
    "data", [{}, SMALL, RICH, {"~": {"~~": 1}}], ids=["empty", "small", "rich", "tilde"]
)
@pytest.mark.parametrize("created", [0, CREATED, 2**32 - 1])
def test_safe_roundtrip(
    data: dict[str, Any], created: int, timeout: int | None, expires: int | None
) -> None:
    codec = SafeCodec()
    record = SessionRecord(data, created, timeout, expires)
    raw = codec.encode(record)
    assert raw[0] == PLAIN_MARKER
    assert codec.decode(raw) == record
    assert codec.encode(codec.decode(raw)) == raw  # stable: unchanged sessions are not rewritten


def test_safe_layout() -> None:
    raw = SafeCodec().encode(SessionRecord({"a": 1}, CREATED, 1200, CREATED + 1200))
    # marker, created (u32 BE), timeout 20 min -> 2*20*2+1, expires - created - timeout = 0 -> 1,
    # then the MessagePack map {"a": 1}
    assert raw == b"\x04" + CREATED.to_bytes(4, "big") + bytes([81, 1]) + b"\x81\xa1a\x01"
    raw = SafeCodec().encode(SessionRecord({}, 5, None, None))
    assert raw == b"\x04\x00\x00\x00\x05\x00\x00\x80"
    raw = SafeCodec().encode(SessionRecord({}, 5, 61, 4))  # 61 s -> 2*122+2; -62 s -> 2*123+2
    assert raw == b"\x04\x00\x00\x00\x05" + bytes([0xF6, 0x01, 0xF8, 0x01]) + b"\x80"


def test_safe_marker_is_neither_pickle_nor_json() -> None:
    raw = SafeCodec().encode(SessionRecord(SMALL, CREATED))
    assert raw[:1] not in (b"\x80", b"{", b"[")
    assert pickle.dumps({})[:1] == b"\x80"


def test_safe_encode_value_is_serializer_dumps() -> None:
    for value in (SMALL, (1, 2), {1: 2}, "s"):
        assert SafeCodec().encode_value(value) == serializer.dumps(value)


@pytest.mark.parametrize(
    ("record", "error"),
    [
        (SessionRecord({1: "int key"}, CREATED), TypeError),  # type: ignore[dict-item]
        (SessionRecord([], CREATED), TypeError),  # type: ignore[arg-type]
        (SessionRecord({"a": object()}, CREATED), TypeError),
        (SessionRecord({}, float(CREATED)), TypeError),  # type: ignore[arg-type]
        (SessionRecord({}, True), TypeError),
        (SessionRecord({}, CREATED, "1200"), TypeError),  # type: ignore[arg-type]
        (SessionRecord({}, CREATED, None, 1.5), TypeError),  # type: ignore[arg-type]
        (SessionRecord({}, -1), ValueError),
        (SessionRecord({}, 2**32), ValueError),
        (SessionRecord({}, CREATED, 2**80), ValueError),
    ],
)
def test_safe_encode_rejects_invalid_records(record: SessionRecord, error: type) -> None:
    with pytest.raises(error):
        SafeCodec().encode(record)


def _valid() -> bytes:
    return SafeCodec().encode(SessionRecord(RICH, CREATED, 1200, CREATED + 1200))


def _with_body(body: bytes) -> bytes:
    """A version 1 (tagged JSON) envelope with ``body`` after the header."""
    return b"\x01" + CREATED.to_bytes(4, "big") + b"\x51\x01" + body


def _with_msgpack(body: bytes) -> bytes:
    return b"\x04" + CREATED.to_bytes(4, "big") + b"\x51\x01" + body


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00" + _valid()[1:],
        b"\x02" + _valid()[1:],
        b"\x1f" + _valid()[1:],
        b"\xff" + _valid()[1:],
        b'{"m":{}}',
        b"[1,{}]",
        pickle.dumps({"m": {}, "c": CREATED, "v": 1}),
        b"\x01" + CREATED.to_bytes(4, "big") + b"\xff" * 11 + b"}",  # endless varint
        _with_body(b""),
        _with_body(b"}}"),
        _with_body(b"} "),
        _with_body(b'"a":1'),
        _with_body(b'"a":1,}'),
        _with_body(b"\xff}"),
        _with_body(b'"~t":[1]}'),  # data is a tuple
        _with_body(b'"~m":[1,2]}'),  # data has an int key
        _with_body(b'"~d":"2024-01-01"}'),
        _with_body(b'"a":{"~p":"x"}}'),
        _with_body(b'"a":' * 50_000 + b"1" + b"}" * 50_001),
        _with_msgpack(b""),
        _with_msgpack(b"\x81\xa1a"),  # truncated
        _with_msgpack(b"\x80\x80"),  # trailing data
        _with_msgpack(b"\x90"),  # data is a list
        _with_msgpack(b"\x81\x01\x02"),  # data has an int key
        _with_msgpack(serializer.dumps({(1,): 2})),  # data has a tuple key
        _with_msgpack(serializer.dumps((1,))),  # data is a tuple
        _with_msgpack(b"\x81\xa1a\xc7\x01\x63\x00"),  # unknown extension
        _with_msgpack(b"\x81\xa1a" * 50_000 + b"\x01"),
        b"\x04" + CREATED.to_bytes(4, "big") + b"\xff" * 11 + b"\x80",  # endless varint
    ],
)
def test_safe_decode_rejects_malformed(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        SafeCodec().decode(raw)


def test_safe_decode_every_truncation() -> None:
    raw = _valid()
    for end in range(len(raw)):
        with pytest.raises(DecodeError):
            SafeCodec().decode(raw[:end])


def test_safe_decode_random_bytes() -> None:
    rng = random.Random(99)
    valid = _valid()
    for _ in range(2000):
        blob = b"\x01" + rng.randbytes(rng.randrange(0, 40))
        flipped = bytearray(valid)
        flipped[rng.randrange(len(valid))] ^= 1 << rng.randrange(8)
        for raw in (blob, bytes(flipped)):
            try:
                record = SafeCodec().decode(raw)
            except DecodeError:
                continue
            assert type(record.created) is int and type(record.data) is dict


def test_safe_decode_error_is_value_error_with_cause() -> None:
    assert issubclass(DecodeError, ValueError)
    with pytest.raises(DecodeError) as info:
        SafeCodec().decode(_with_body(b'"a":{"~p":1e999}}'))
    assert isinstance(info.value.__cause__, ValueError)


def test_safe_decode_names_foreign_formats() -> None:
    with pytest.raises(DecodeError, match="pickle"):
        SafeCodec().decode(pickle.dumps({"m": {}}))
    with pytest.raises(DecodeError, match="JSON"):
        SafeCodec().decode(b"{}")
    with pytest.raises(DecodeError, match="reserved"):
        SafeCodec().decode(b"\x09abc")
    with pytest.raises(DecodeError, match="truncated"):
        SafeCodec().decode(b"\x07abc")  # a stamped value cut short


# --- sizes ---------------------------------------------------------------------------------


def _ratio(data: dict[str, Any], timeout: int | None, expires: int | None) -> float:
    safe = SafeCodec().encode(SessionRecord(data, CREATED, timeout, expires))
    old = pickle.dumps({"m": data, "c": CREATED, "v": 1, "t": 1200, "x": CREATED + 1200})
    return len(safe) / len(old)


@pytest.mark.parametrize(
    ("timeout", "expires"), [(1200, CREATED + 1200), (None, CREATED + 1200), (None, None)]
)
def test_small_session_is_at_most_070_of_pickle(timeout: int | None, expires: int | None) -> None:
    assert _ratio(SMALL, timeout, expires) <= 0.7


def test_20kb_session_of_strings_is_not_larger_than_pickle() -> None:
    data = twenty_kb_session(seed=1, int_every=10)
    assert 18_000 < len(json.dumps(data)) < 22_000
    assert _ratio(data, 1200, CREATED + 1200) <= 1.0


def test_20kb_session_of_many_ints_stays_close_to_pickle() -> None:
    """JSON digits cost more than pickle's binary ints: at most a few percent more."""
    data = twenty_kb_session(seed=2, int_every=2)
    assert _ratio(data, 1200, CREATED + 1200) <= 1.03


# --- LegacyCodec ---------------------------------------------------------------------------

PICKLE = LegacyCodec(pickle.dumps, pickle.loads)


@pytest.mark.parametrize(("timeout", "expires"), TIMES[:5])
def test_legacy_stores_exactly_the_pickled_layout(timeout: int | None, expires: int | None) -> None:
    record = SessionRecord(RICH, CREATED, timeout, expires)
    raw = PICKLE.encode(record)
    assert raw == pickle.dumps(legacy_layout(record))
    assert PICKLE.decode(raw) == record


def test_legacy_reads_what_1x_wrote() -> None:
    raw = pickle.dumps(
        {"m": {"user_id": 42, 1: "int key"}, "c": 1795325693, "v": 1, "x": 1795326893, "t": 1200}
    )
    record = PICKLE.decode(raw)
    assert record == SessionRecord({"user_id": 42, 1: "int key"}, 1795325693, 1200, 1795326893)  # type: ignore[dict-item]


def test_legacy_reads_layout_without_optional_keys() -> None:
    assert PICKLE.decode(pickle.dumps({"m": {}, "c": 5, "v": 1})) == SessionRecord({}, 5)
    assert PICKLE.decode(
        pickle.dumps({"m": {}, "c": 5, "v": 1, "t": None, "x": None})
    ) == SessionRecord({}, 5)


@pytest.mark.parametrize(
    "payload",
    [
        {"m": {}, "c": 5},  # no version marker
        {"m": {}, "c": 5, "v": 0},
        {"m": {}, "c": 5, "v": -1},
        {"managed_dict": {"a": 1}, "created": 5, "timeout": 60},  # the 1.2 layout
    ],
)
def test_legacy_payloads_older_than_1_8_are_told_apart(payload: dict[str, Any]) -> None:
    """1.8 reported these as InvalidSession_PayloadLegacy (a fresh session), not as corrupt."""
    with pytest.raises(LegacyPayloadError):
        PICKLE.decode(pickle.dumps(payload))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage",
        b"\x80\x04\x95garbage",
        pickle.dumps({"m": {}, "c": CREATED})[:-3],
        pickle.dumps([{"m": {}, "c": CREATED}]),
        pickle.dumps("m"),
        pickle.dumps(None),
        pickle.dumps({"c": CREATED, "v": 1}),
        pickle.dumps({"m": {}, "v": 1}),
        pickle.dumps({"m": [], "c": CREATED}),
        pickle.dumps({"m": None, "c": CREATED}),
        pickle.dumps({"m": {}, "c": str(CREATED)}),
        pickle.dumps({"m": {}, "c": float(CREATED)}),
        pickle.dumps({"m": {}, "c": True}),
        pickle.dumps({"m": {}, "c": CREATED, "v": 2}),
        pickle.dumps({"m": {}, "c": CREATED, "v": "1"}),
        pickle.dumps({"m": {}, "c": CREATED, "t": "1200"}),
        pickle.dumps({"m": {}, "c": CREATED, "x": 1.5}),
        SafeCodec().encode(SessionRecord({}, CREATED)),
    ],
)
def test_legacy_rejects_malformed(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        PICKLE.decode(raw)


def test_legacy_chains_the_deserializer_error() -> None:
    with pytest.raises(DecodeError) as info:
        PICKLE.decode(b"garbage")
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)

    class Boom(Exception):
        pass

    def explode(raw: bytes) -> Any:
        raise Boom(raw)

    with pytest.raises(DecodeError) as info:
        LegacyCodec(pickle.dumps, explode).decode(b"x")
    assert isinstance(info.value.__cause__, Boom)


def test_legacy_with_str_serializer() -> None:
    codec = LegacyCodec(json.dumps, json.loads)
    record = SessionRecord({"a": [1, "é"]}, CREATED, None, CREATED + 60)
    raw = codec.encode(record)
    assert raw == json.dumps(legacy_layout(record)).encode()
    assert codec.decode(raw) == record
    assert codec.encode_value({"a": 1}) == b'{"a": 1}'
    with pytest.raises(DecodeError):
        codec.decode(b"[1, 2]")


def test_legacy_serializer_return_types() -> None:
    def to_bytearray(value: Any) -> Any:
        return bytearray(b"x")

    def to_int(value: Any) -> Any:
        return 5

    assert LegacyCodec(to_bytearray, pickle.loads).encode_value(1) == b"x"
    with pytest.raises(TypeError, match="int"):
        LegacyCodec(to_int, pickle.loads).encode_value(1)


def test_legacy_encode_value_is_serialize() -> None:
    for value in (SMALL, (1, 2), {1: 2}):
        assert PICKLE.encode_value(value) == pickle.dumps(value)


def test_codecs_satisfy_the_protocol() -> None:
    codecs: list[Codec] = [SafeCodec(), PICKLE]
    for codec in codecs:
        record = SessionRecord({"k": "v"}, CREATED, 60, CREATED + 60)
        assert codec.decode(codec.encode(record)) == record


# --- SafeCodec compression -------------------------------------------------------------------


@pytest.mark.parametrize(("compression", "marker"), [("zstd", ZSTD_MARKER), ("zlib", ZLIB_MARKER)])
def test_compression_above_the_threshold_is_smaller_and_readable_everywhere(
    compression: str, marker: int
) -> None:
    record = SessionRecord(twenty_kb_session(3, 10), CREATED, 1200, None)
    plain = SafeCodec().encode(record)
    packed = SafeCodec(1024, compression).encode(record)
    assert plain[0] == packed[0] == STAMPED_MARKER  # 20 KB: stamped
    assert body_of(plain)[0] == PLAIN_MARKER and body_of(packed)[0] == marker
    assert len(packed) < len(plain) * 0.8
    # Readable whatever the reader's own settings: they can change at any time.
    readers = [SafeCodec(), SafeCodec(1024, "zlib"), SafeCodec(1024, "zstd"), SafeCodec(10**9)]
    for reader in readers:
        assert reader.decode(packed) == record
        assert reader.decode(plain) == record


def test_an_unknown_compression_is_refused() -> None:
    with pytest.raises(ValueError, match="compression"):
        SafeCodec(1024, "lz4")


@pytest.mark.parametrize("compression", ["zstd", "zlib"])
def test_small_or_incompressible_payloads_stay_plain(compression: str) -> None:
    small = SessionRecord(SMALL, CREATED, 1200, None)
    assert SafeCodec(1024, compression).encode(small)[0] == PLAIN_MARKER
    tiny = SessionRecord({"a": 1}, CREATED)  # the compressor's framing would make it bigger
    assert SafeCodec(0, compression).encode(tiny)[0] == PLAIN_MARKER


def _zstd(data: bytes, **options: Any) -> bytes:
    return zstandard.ZstdCompressor(level=1, **options).compress(data)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x02",
        b"\x02not zlib at all",
        b"\x02" + zlib.compress(b"{}")[:-3],  # truncated stream
        b"\x02" + zlib.compress(b"\x00" * 10) + b"trailing",
        b"\x02" + zlib.compress(b"\x00\x00\x00\x00\x00\x00{}"),  # inflates to garbage
        b"\x03",
        b"\x03not zstd at all",
        b"\x03" + _zstd(b"\x00" * 100)[:-3],  # truncated frame
        b"\x03" + _zstd(b"\x00" * 100) + b"trailing",
        b"\x03" + _zstd(b"\x00" * 100) * 2,  # two frames
        b"\x03" + _zstd(b"\x00" * 100, write_content_size=False),  # size not recorded
        b"\x03" + _zstd(b"\x00\x00\x00\x00\x00\x00{}"),  # inflates to garbage
        b"\x05",
        b"\x05not zlib at all",
        b"\x05" + zlib.compress(b"\x00" * 10)[:-3],
        b"\x05" + zlib.compress(b"\x00" * 10) + b"trailing",
        b"\x05" + zlib.compress(b"\x00\x00\x00\x00\x00\x00\x90"),  # inflates to a list
        b"\x06",
        b"\x06" + _zstd(b"\x00" * 100)[:-3],
        b"\x06" + _zstd(b"\x00" * 100) + b"trailing",
        b"\x06" + _zstd(b"\x00" * 100, write_content_size=False),
        b"\x06" + _zstd(b"\x00\x00\x00\x00\x00\x00{}"),
    ],
)
def test_corrupt_compressed_payloads_are_decode_errors(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        SafeCodec().decode(raw)


@pytest.mark.parametrize("marker", [ZSTD_MARKER, JSON_ZSTD_MARKER])
def test_zstd_decompression_bomb_is_refused(marker: int) -> None:
    bomb = bytes([marker]) + _zstd(b"\x00" * DEFAULT_MAX_PAYLOAD_BYTES)
    assert len(bomb) < 100_000
    with pytest.raises(DecodeError, match="max_payload_bytes"):
        SafeCodec().decode(bomb)


@pytest.mark.parametrize("marker", [ZLIB_MARKER, JSON_ZLIB_MARKER])
def test_decompression_bomb_is_refused(marker: int) -> None:
    bomb = bytes([marker]) + zlib.compress(b"\x00" * DEFAULT_MAX_PAYLOAD_BYTES, 9)
    assert len(bomb) < 100_000
    with pytest.raises(DecodeError, match="max_payload_bytes"):
        SafeCodec().decode(bomb)


@pytest.mark.parametrize(("compression", "marker"), [("zstd", ZSTD_MARKER), ("zlib", ZLIB_MARKER)])
def test_every_truncation_of_a_compressed_payload_is_a_decode_error(
    compression: str, marker: int
) -> None:
    data = {**RICH, "flash": ["saved"] * 10}
    packed = SafeCodec(0, compression).encode(SessionRecord(data, CREATED, 1200, None))
    assert packed[0] == marker
    for end in range(len(packed)):
        with pytest.raises(DecodeError):
            SafeCodec().decode(packed[:end])


class CountingCodec(SafeCodec):
    """The default codec, counting how often it serializes and packs (compresses)."""

    __slots__ = ("encodes", "packs")

    def __init__(self) -> None:
        super().__init__(compress_threshold=1024)
        self.encodes = self.packs = 0

    def encode_plain(self, record: SessionRecord) -> bytes:
        self.encodes += 1
        return super().encode_plain(record)

    def pack(self, plain: bytes) -> bytes:
        self.packs += 1
        return super().pack(plain)


def test_plain_and_packed_forms_map_one_to_one() -> None:
    codec = SafeCodec(compress_threshold=1024)
    record = SessionRecord(twenty_kb_session(3, 10), CREATED, 1200, None)
    plain = codec.encode_plain(record)
    packed = codec.pack(plain)
    assert plain[0] == PLAIN_MARKER and body_of(packed)[0] == ZSTD_MARKER
    assert codec.unpack(packed) == plain and codec.unpack(plain) == plain
    assert codec.decode_plain(plain) == record == codec.decode(packed)
    again = codec.encode(record)
    assert body_of(again) == body_of(packed) and again[:STAMP_BYTES] != packed[:STAMP_BYTES]


def test_an_unchanged_compressed_session_is_compared_without_compressing() -> None:
    codec = CountingCodec()
    record = SessionRecord(twenty_kb_session(3, 10), CREATED, 1200, None)
    stored = codec.encode(record)
    codec.packs = 0
    plain = codec.unpack(stored)
    state = SessionState(codec.decode_plain(plain), stored, plain)
    key = next(iter(state.data))
    state.expose(key, [state.data[key]])  # a mutable value handed out: must be compared
    state.forced = True
    assert state.encode_if_changed(codec, detect_changes=True) is None
    state.assign("new", 1)
    changed = state.encode_if_changed(codec, detect_changes=True)
    assert changed is not None and codec.decode_plain(changed).data["new"] == 1
    assert codec.packs == 0  # packing waits until a write is actually sent


# --- stored forms of earlier releases ---------------------------------------------------------


STORED_FORMATS = {
    "safe_v1": (JSON_MARKER, JSON_ZLIB_MARKER, JSON_ZSTD_MARKER),
    "safe_v2": (PLAIN_MARKER, ZLIB_MARKER, ZSTD_MARKER),
}


@pytest.mark.parametrize(("name", "data", "timeout", "expires"), stored_forms.RECORDS)
@pytest.mark.parametrize("compression", [c[0] for c in stored_forms.COMPRESSIONS])
@pytest.mark.parametrize("reader", ["zstd", "zlib", "none"])
@pytest.mark.parametrize("stored_format", sorted(STORED_FORMATS))
def test_payloads_of_every_stored_format_are_read(
    name: str,
    data: dict[str, Any],
    timeout: int | None,
    expires: int | None,
    compression: str,
    reader: str,
    stored_format: str,
) -> None:
    """Payloads kept under tests/data/ (format 1: markers 0x01-0x03, format 2: 0x04-0x06),
    as the writer of their time stored them, decode exactly."""
    raw = stored_forms.load(stored_format)[f"{name}/{compression}"]
    assert raw[0] in STORED_FORMATS[stored_format]
    codec = SafeCodec(None, "zstd") if reader == "none" else SafeCodec(1024, reader)
    record = codec.decode(raw)
    assert (record.created, record.timeout, record.expires) == (
        stored_forms.CREATED,
        timeout,
        expires,
    )
    assert typed(record.data) == typed(data)


@pytest.mark.parametrize(("name", "data", "timeout", "expires"), stored_forms.RECORDS)
def test_format_2_is_written_byte_for_byte_as_stored(
    name: str, data: dict[str, Any], timeout: int | None, expires: int | None
) -> None:
    """The plain form is stable: a change of the writer that would rewrite every stored
    session, or break the comparison with what was loaded, fails here."""
    record = SessionRecord(data, stored_forms.CREATED, timeout, expires)
    stored = SafeCodec().encode(record)
    assert body_of(stored) == stored_forms.load("safe_v2")[f"{name}/plain"]


@pytest.mark.parametrize("key", ["\ud800", "a\udfffb", "~t", ""])
def test_any_str_key_roundtrips_at_the_top_level(key: str) -> None:
    record = SessionRecord({key: (1, "\ud800"), "plain": 1}, CREATED)
    assert SafeCodec().decode(SafeCodec().encode(record)) == record


def test_compression_contexts_are_per_thread() -> None:
    import threading

    codec = SafeCodec(0, "zstd")
    records = [SessionRecord({"n": n, "pad": [f"{n}"] * 300}, CREATED) for n in range(8)]
    failures: list[int] = []

    def work(record: SessionRecord) -> None:
        for _ in range(200):
            if codec.decode(codec.encode(record)) != record:
                failures.append(record.data["n"])

    threads = [threading.Thread(target=work, args=(record,)) for record in records]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@pytest.mark.parametrize("form", sorted(stored_forms.load("safe_v1")))
def test_a_format_1_payload_unpacks_to_its_format_2_plain_form(form: str) -> None:
    """So an unchanged session read from format 1 is found unchanged (and not rewritten)."""
    raw = stored_forms.load("safe_v1")[form]
    codec = CountingCodec()
    plain = codec.unpack(raw)
    assert plain[0] == PLAIN_MARKER
    assert plain == codec.encode_plain(SafeCodec().decode(raw))
    state = SessionState(codec.decode_plain(plain), raw, plain)
    state.expose_all()
    codec.packs = 0
    assert state.encode_if_changed(codec, detect_changes=True) is None
    assert codec.packs == 0


ALL_CODECS = {
    "uncompressed": SafeCodec(None),
    "zstd": SafeCodec(0, "zstd"),
    "zlib": SafeCodec(0, "zlib"),
    "zstd above 1 KB": SafeCodec(1024, "zstd"),
    "zlib above 1 KB": SafeCodec(1024, "zlib"),
    "pickle (1.8 layout)": LegacyCodec(pickle.dumps, pickle.loads),
}


@pytest.mark.parametrize("name", sorted(ALL_CODECS))
@pytest.mark.parametrize(
    "value", [*SCALARS, *CONTAINERS, pytest.param(MIXED, id="mixed")], ids=short_id
)
def test_every_codec_and_compression_roundtrips_every_type(name: str, value: Any) -> None:
    codec = ALL_CODECS[name]
    data = {"v": value, "nested": [value, (value,), {"k": value}, {0: value}], "pad": "ab" * 600}
    record = SessionRecord(data, CREATED, 1200, CREATED + 60)
    raw = codec.encode(record)
    decoded = codec.decode(raw)
    assert typed(decoded.data) == typed(data)
    assert (decoded.created, decoded.timeout, decoded.expires) == (CREATED, 1200, CREATED + 60)
    if name != "pickle (1.8 layout)":
        expected = ALL_CODECS["uncompressed"].encode_plain(record)
        assert codec.unpack(raw) == expected  # one plain form whatever the compression
        for reader in ("uncompressed", "zstd", "zlib"):
            assert typed(ALL_CODECS[reader].decode(raw).data) == typed(data)
