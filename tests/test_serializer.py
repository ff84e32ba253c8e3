"""The MessagePack serializer: exact round trips, strict types, compact output, hostile input."""

from __future__ import annotations

import collections
import contextlib
import math
import random
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
import pytest

from pyramid_session_redis import serializer
from pyramid_session_redis.serializer import dumps, is_immutable, loads

from .test_tagged_json import (
    CONTAINERS,
    MIXED,
    SCALARS,
    Color,
    MyStr,
    Point,
    Thing,
    short_id,
    typed,
)

EXT_CODES = sorted(serializer._BUILDERS)


def roundtrip(value: Any) -> Any:
    return loads(dumps(value))


def assert_roundtrips(value: Any) -> None:
    assert typed(roundtrip(value)) == typed(value)


@pytest.mark.parametrize("value", SCALARS + CONTAINERS, ids=short_id)
def test_roundtrip(value: Any) -> None:
    assert_roundtrips(value)


@pytest.mark.parametrize("value", SCALARS + CONTAINERS, ids=short_id)
def test_roundtrip_nested(value: Any) -> None:
    """Every value also survives inside lists, tuples, sets' neighbours, dicts and maps."""
    assert_roundtrips([value, (value,), {"k": value}, {"~k": value}, {0: value}, [[value]]])


def test_roundtrip_mixed() -> None:
    assert_roundtrips(MIXED)
    assert_roundtrips([MIXED, (MIXED, [MIXED])])


@pytest.mark.parametrize(
    "value",
    [
        [1, 1.0, True, Decimal("1"), "1", b"1"],
        {"a": [(), [], set(), frozenset(), {}]},
        {1: "int", 1.5: "float", None: "none", b"b": "bytes", (1,): "tuple"},
        {"keys": {True: 1, "True": 2}},
        [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1],
        ["\ud800", {"\udfff": 1}, {"a": "\ud800b"}],
    ],
    ids=["scalar_types", "empty_containers", "key_types", "bool_key", "int_edges", "surrogates"],
)
def test_type_strictness(value: Any) -> None:
    """1 vs 1.0 vs True, list vs tuple, set vs frozenset, key types: all kept apart."""
    assert_roundtrips(value)


def test_plain_values_are_plain_messagepack() -> None:
    value = {"a": [1, 2.5, None, True, "é", b"\x00"], "b": {"c": -(2**63)}}
    out = dumps(value)
    assert out == msgspec.msgpack.encode(value)
    assert msgspec.msgpack.decode(out) == value


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ((1, 2), serializer.TUPLE),
        ({2, 1}, serializer.SET),
        (frozenset({1}), serializer.FROZENSET),
        ({1: 2}, serializer.MAPPING),
        (2**64, serializer.BIG_INT),
        ("\ud800", serializer.SURROGATE_STR),
        (Decimal("1.5"), serializer.DECIMAL),
        (UUID(int=5), serializer.UUID_BYTES),
        (datetime(2024, 1, 1), serializer.DATETIME),
        (date(2024, 1, 1), serializer.DATE),
        (time(1, 2), serializer.TIME),
        (timedelta(1, 2, 3), serializer.TIMEDELTA),
    ],
)
def test_extension_codes(value: Any, code: int) -> None:
    ext = msgspec.msgpack.decode(dumps(value), ext_hook=lambda c, data: (c, bytes(data)))
    assert ext[0] == code


def test_wire_format_examples() -> None:
    assert dumps((1, 2)) == b"\xc7\x03\x01\x92\x01\x02"  # ext 8, 3 bytes, code 1, [1, 2]
    assert dumps(UUID(int=1)) == b"\xd8\x08" + UUID(int=1).bytes  # fixext 16, code 8
    assert dumps({3, 1, 2}) == b"\xd6\x02\x93\x01\x02\x03"  # sorted
    assert dumps(date(2024, 1, 2)) == b"\xc7\x0a\x0a2024-01-02"


def test_equal_sets_encode_identically() -> None:
    """Change detection compares encodings: a reloaded set must encode as before."""
    words = {f"w{i}" for i in range(100)}
    assert dumps(words) == dumps(set(sorted(words, reverse=True))) == dumps(roundtrip(words))
    assert roundtrip({1, "a", None}) == {1, "a", None}


def test_int_keys_and_tuple_keys_keep_their_types() -> None:
    loaded = roundtrip({1: "a", (1, (2, "x")): {3: "b"}})
    assert [type(k) for k in loaded] == [int, tuple]
    assert type(next(iter(loaded[1, (2, "x")]))) is int


def test_aware_datetime_keeps_instant_and_offset() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    value = datetime(2024, 3, 31, 1, 30, 15, 999, tzinfo=ist)
    loaded = roundtrip(value)
    assert loaded == value and loaded.utcoffset() == value.utcoffset()
    assert roundtrip(datetime(2024, 1, 1, tzinfo=timezone.utc)).tzinfo is timezone.utc


def test_nan_roundtrips() -> None:
    assert math.isnan(roundtrip(float("nan")))
    assert Decimal.is_nan(roundtrip(Decimal("NaN")))


# --- unsupported types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (Thing(), "Thing"),
        (object(), "object"),
        (1j, "complex"),
        (bytearray(b"x"), "bytearray"),
        (memoryview(b"x"), "memoryview"),
        (Color.RED, "Color"),
        (Point(1, 2), "Point"),
        (MyStr("s"), "MyStr"),
        (range(3), "range"),
        (print, "builtin_function_or_method"),
    ],
)
def test_unsupported_type_raises_type_error_naming_it(value: Any, name: str) -> None:
    for container in (value, [value], {"k": value}, (value,), {1: value}, [(1,), value]):
        with pytest.raises(TypeError, match=name):
            dumps(container)
    with contextlib.suppress(TypeError):
        hash(value)
        for container in ({value: 1}, {value}, frozenset({value}), {value: 1, "k": 2}):
            with pytest.raises(TypeError, match=name):
                dumps(container)


def test_dict_subclasses_are_refused() -> None:
    for value in (collections.OrderedDict(a=1), collections.defaultdict(list)):
        with pytest.raises(TypeError):
            dumps({"k": value})


def test_reference_cycle_raises_value_error() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError):
        dumps(cycle)
    with pytest.raises(ValueError):
        dumps((cycle,))


# --- malformed input -----------------------------------------------------------------------


def _ext(code: int, payload: bytes) -> bytes:
    return msgspec.msgpack.encode(msgspec.msgpack.Ext(code, payload))


def _enc(value: Any) -> bytes:
    return msgspec.msgpack.encode(value)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\xc1",  # never used opcode
        b"\x92\x01",  # truncated array
        b"\x01\x02",  # trailing data
        b"\xa1\xff",  # invalid UTF-8
        b"\x81\x80\x01",  # a map as a map key (unhashable)
        _ext(0, b""),
        _ext(14, b"\x90"),
        _ext(99, b"\x90"),
        _ext(serializer.TUPLE, b"\x01"),  # not an array
        _ext(serializer.TUPLE, b"\x92\x01"),  # truncated inside
        _ext(serializer.SET, _enc([[1]])),  # unhashable item
        _ext(serializer.MAPPING, _enc([1])),  # odd length
        _ext(serializer.MAPPING, _enc([[1], 2])),
        _ext(serializer.SURROGATE_STR, b"\xff"),
        _ext(serializer.DECIMAL, b"abc"),
        _ext(serializer.DECIMAL, b"1e999999999999999999999"),
        _ext(serializer.DECIMAL, "é".encode()),
        _ext(serializer.UUID_BYTES, b"\x00" * 15),
        _ext(serializer.DATETIME, b"not a date"),
        _ext(serializer.DATETIME, b"2024-02-30T00:00:00"),
        _ext(serializer.DATE, b"2024-13-01"),
        _ext(serializer.TIME, b"25:00"),
        _ext(serializer.TIMEDELTA, _enc([1, 2])),
        _ext(serializer.TIMEDELTA, _enc([1, 2, 3.0])),
        _ext(serializer.TIMEDELTA, _enc([True, 2, 3])),
        _ext(serializer.TIMEDELTA, _enc([10**12, 0, 0])),
        _enc([1, {"a": 2}]) + b"x",
        b"\x91" * 100_000 + b"\x01",  # deep arrays
        b"\x81\xa1a" * 100_000 + b"\x01",  # deep maps
    ],
)
def test_malformed_input_raises_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        loads(blob)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"a": 1, "b": [1, {"c": "d"}], "e": b"x"},
        {"t": (1, 2), "s": {3}, "d": datetime(2024, 5, 1), "u": UUID(int=7), "n": 2**70},
        {"lone \udc80 surrogate": 1, "k": (2,)},  # the whole map is extension 4
        {"nested": {0: "int key", "\udc80": "surrogate key"}},
    ],
    ids=short_id,
)
def test_loads_data_reads_what_dumps_data_writes(data: dict[str, Any]) -> None:
    """The typed fast path and the general path (an extension at the top) agree."""
    blob = serializer.dumps_data(data)
    assert typed(serializer.loads_data(blob)) == typed(data) == typed(loads(blob))


@pytest.mark.parametrize(
    "blob",
    [
        _enc([1, 2]),
        _enc("text"),
        _enc(None),
        _enc({1: "int key"}),
        _enc({"a": 1, 2: "b"}),
        _ext(serializer.MAPPING, _enc([1, "int key"])),  # a dict, but not with str keys
        _ext(serializer.TUPLE, _enc([1])),
        b"\x81\xa1a",  # truncated
        _enc({"a": 1}) + b"x",
        _ext(99, b"\x90"),
    ],
)
def test_loads_data_refuses_anything_but_a_dict_with_str_keys(blob: bytes) -> None:
    with pytest.raises(ValueError):
        serializer.loads_data(blob)


def test_deeply_nested_extensions_raise_value_error() -> None:
    blob = _enc(1)
    for _ in range(5000):
        blob = _ext(serializer.TUPLE, b"\x91" + blob)
    with pytest.raises(ValueError):
        loads(blob)


def test_random_bytes_raise_only_value_error() -> None:
    rng = random.Random(20240501)
    valid = dumps(MIXED)
    for _ in range(3000):
        blob = rng.randbytes(rng.randrange(0, 64))
        flipped = bytearray(valid)
        flipped[rng.randrange(len(valid))] ^= 1 << rng.randrange(8)
        for raw in (blob, bytes(flipped)):
            with contextlib.suppress(ValueError):
                loads(raw)


def test_every_truncation_raises_value_error() -> None:
    data = dumps(MIXED)
    for end in range(len(data)):
        with pytest.raises(ValueError):
            loads(data[:end])


def test_loading_names_no_code() -> None:
    """Class names and dotted paths in the input stay plain strings."""
    for value in [{"__class__": "os.system"}, {"py/object": "os.system"}, "__import__('os')"]:
        assert loads(_enc(value)) == value


def test_foreign_messagepack_timestamps_are_datetimes() -> None:
    """The standard timestamp extension (never written here) reads as an aware datetime."""
    value = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert loads(_enc(value)) == value


# --- hex tokens ----------------------------------------------------------------------------

TOKEN = "3f8a2c61d0b94e7a95c2e4f17b8d06a3c5e9f1247ab8d3e06c91f5a27d4b8e10"


@pytest.mark.parametrize("token", [TOKEN, TOKEN[:32], TOKEN[:40], TOKEN * 2, "0" * 32])
def test_top_level_hex_tokens_are_stored_as_their_bytes(token: str) -> None:
    data = {"csrf": token, "other": 1}
    out = serializer.dumps_data(data)
    assert bytes.fromhex(token) in out and token.encode() not in out
    assert len(out) < len(dumps(data)) - len(token) // 2 + 4
    loaded = loads(out)
    assert loaded == data and type(loaded["csrf"]) is str


@pytest.mark.parametrize(
    "value",
    [
        TOKEN[:30],  # too short
        TOKEN * 2 + "ab",  # too long
        TOKEN[:33],  # odd length
        TOKEN.upper(),  # not lowercase: would not come back as itself
        TOKEN[:31] + "g",
        TOKEN[:31] + "é",
        b"3f8a2c61d0b94e7a95c2e4f17b8d06a3",  # bytes stay bytes
    ],
    ids=repr,
)
def test_other_values_are_not_tokens(value: Any) -> None:
    data = {"v": value}
    assert serializer.dumps_data(data) == dumps(data)
    assert typed(loads(serializer.dumps_data(data))) == typed(data)


def test_only_top_level_values_are_tokens() -> None:
    data = {"nested": [TOKEN], "map": {"t": TOKEN}, "tuple": (TOKEN,)}
    assert serializer.dumps_data(data) == dumps(data)
    assert dumps({"csrf": TOKEN}) == msgspec.msgpack.encode({"csrf": TOKEN})


def test_tokens_next_to_values_that_need_extensions() -> None:
    data = {"csrf": TOKEN, "when": date(2024, 1, 1), "big": 2**70, "s": "\ud800"}
    out = serializer.dumps_data(data)
    assert bytes.fromhex(TOKEN) in out
    assert typed(loads(out)) == typed(data)


# --- is_immutable --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s", True),
        (1, True),
        (10**100, True),
        (1.5, True),
        (True, True),
        (None, True),
        (b"b", True),
        (Decimal("1"), True),
        (UUID(int=1), True),
        (date(2024, 1, 1), True),
        (time(1), True),
        (datetime(2024, 1, 1), True),
        (timedelta(1), True),
        ((), True),
        ((1, "a", (2, (None, b"x"))), True),
        (frozenset({1, (2, 3)}), True),
        (frozenset(), True),
        ((1, [2]), False),
        ((1, (2, {})), False),
        (([],), False),
        (frozenset({(1, Thing())}), False),
        ([], False),
        ({}, False),
        (set(), False),
        (bytearray(), False),
        (Thing(), False),
        (MyStr("s"), False),
        (Point(1, 2), False),
        (collections.OrderedDict(), False),
    ],
    ids=short_id,
)
def test_is_immutable(value: Any, expected: bool) -> None:
    assert is_immutable(value) is expected


def test_sets_encode_identically_in_every_process() -> None:
    """Whatever the hash seed: a session read in one worker and compared in another."""
    import subprocess
    import sys

    code = (
        "import sys; from pyramid_session_redis.serializer import dumps;"
        "v = {'mixed': {1, 'a', None, (1, 'b'), 1.5, b'x', frozenset({'p', 2})},"
        " 'words': {'w%d' % i for i in range(50)}, 'floats': {0.5, -2.0, float('inf')}};"
        "sys.stdout.write(dumps(v).hex())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(outputs) == 1


def test_sessions_of_a_kilobyte_or_more_are_not_searched_for_tokens() -> None:
    """Those are compressed, which halves hex text anyway."""
    small = {"csrf": TOKEN, "pad": "x" * (serializer.TOKENS_BELOW - 120)}
    assert len(dumps(small)) < serializer.TOKENS_BELOW
    assert bytes.fromhex(TOKEN) in serializer.dumps_data(small)
    large = {"csrf": TOKEN, "pad": "x" * serializer.TOKENS_BELOW}
    assert serializer.dumps_data(large) == dumps(large)


@pytest.mark.parametrize("keys", [2, serializer.SCAN_FIRST_UP_TO + 8], ids=["few", "many"])
def test_tokens_are_stored_as_bytes_exactly_when_the_session_is_under_a_kilobyte(
    keys: int,
) -> None:
    """Whichever way the session is searched (before or after encoding, by its number
    of keys), the token form is chosen by the size without tokens, at every size
    around the limit, and both forms load back the same."""
    tokens = [TOKEN[: 32 + 2 * i] for i in range(keys - 1)][:4]
    for pad in range(serializer.TOKENS_BELOW - 400, serializer.TOKENS_BELOW + 40):
        data: dict[str, Any] = {f"t{i}": token for i, token in enumerate(tokens)}
        data.update({f"n{i}": i for i in range(keys - len(data) - 1)})
        data["pad"] = "x" * pad
        plain = dumps(data)
        stored = serializer.dumps_data(data)
        assert (stored != plain) == (len(plain) < serializer.TOKENS_BELOW), pad
        assert serializer.loads_data(stored) == data
