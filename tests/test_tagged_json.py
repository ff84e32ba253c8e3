"""Payload format 1 (tagged JSON): what its writer stored, the reader reads exactly; hostile
input is refused. The writer is ``tests/tagged_json_writer.py``."""

from __future__ import annotations

import collections
import contextlib
import enum
import json
import math
import random
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

import pytest

from pyramid_session_redis.tagged_json import _DECODERS, loads

from .tagged_json_writer import dumps

UTC = timezone.utc
IST = timezone(timedelta(hours=5, minutes=30))
NEG = timezone(-timedelta(hours=3, minutes=15, seconds=7))
TAGS = sorted(_DECODERS)


def typed(value: Any) -> Any:
    """A hashable picture of ``value`` that also captures every type, recursively."""
    kind = type(value)
    if kind is float:
        return (kind, repr(value))  # tells nan, inf and -0.0 apart
    if kind is Decimal:
        return (kind, str(value))  # keeps the exponent: 1.0 vs 1.00
    if kind in (list, tuple):
        return (kind, tuple(map(typed, value)))
    if kind in (set, frozenset):
        return (kind, frozenset(map(typed, value)))
    if kind is dict:
        return (kind, tuple((typed(k), typed(v)) for k, v in value.items()))
    if kind in (datetime, time):
        return (kind, value.isoformat(), value.utcoffset())
    return (kind, value)


def short_id(value: Any) -> str:
    """A short test id (repr of a very long int raises)."""
    if type(value) is int and value.bit_length() > 64:
        return f"int_{value.bit_length()}_bits{'_neg' if value < 0 else ''}"
    return repr(value)[:40]


def roundtrip(value: Any) -> Any:
    return loads(dumps(value))


def assert_roundtrips(value: Any) -> None:
    assert typed(roundtrip(value)) == typed(value)


SCALARS = [
    "",
    "plain",
    "héllo ☃ 😀 \u2028",
    '\x00\x1f control \n \t " \\ /',
    "\ud800 lone surrogate \udfff",
    "~t",
    0,
    -1,
    42,
    2**63,
    -(2**64) - 1,
    10**399,  # 400 digits
    -(10**399),
    2**2000,  # widest int written as a JSON number
    2**2000 + 1,
    2**2001,  # written as hex
    -(2**2001),
    10**5000,  # beyond CPython's default 4300-digit limit for decimal strings
    0.0,
    -0.0,
    1.5,
    1e308,
    5e-324,
    float("nan"),
    float("inf"),
    float("-inf"),
    True,
    False,
    None,
    datetime(2024, 2, 29, 23, 59, 58),
    datetime(2024, 2, 29, 23, 59, 58, 123456),
    datetime(1, 1, 1),
    datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime(2024, 1, 1, 12, 0, 0, 1, tzinfo=UTC),
    datetime(2024, 1, 1, 12, 0, 0, 500, tzinfo=IST),
    datetime(2024, 1, 1, 12, 0, 0, tzinfo=NEG),
    date(2024, 2, 29),
    date(1, 1, 1),
    time(0, 0),
    time(23, 59, 59, 999999),
    time(12, 30, tzinfo=IST),
    timedelta(0),
    timedelta(days=-1, microseconds=1),
    timedelta(days=3, seconds=7, microseconds=11),
    timedelta.max,
    timedelta.min,
    UUID("12345678-1234-5678-1234-567812345678"),
    UUID(int=0),
    Decimal("1.10"),
    Decimal("-0"),
    Decimal("1E+1000"),
    Decimal("3.141592653589793238462643383279502884197"),
    Decimal("NaN"),
    Decimal("-Infinity"),
    b"",
    b"\x00\xff binary",
    bytes(range(256)),
]

CONTAINERS = [
    [],
    {},
    (),
    (1,),
    set(),
    frozenset(),
    [1, "a", None, [2.5, [True]]],
    {"a": 1, "b": [1, {"c": None}]},
    (1, (2, (3, ())), [4]),
    {1, 2, 3},
    {"a", (1, 2), frozenset({3})},
    {1, "mixed", None},
    frozenset({1, frozenset({2, frozenset()})}),
    {1: "a", 2: "b"},
    {0: {1: {2: "deep"}}},
    {(1, 2): "tuple key", (): "empty tuple key"},
    {None: 1, True: 2, 1.5: 3, -7: 4},
    {"a": 1, 2: "b"},
    {datetime(2024, 1, 1): "dt key", date(2024, 1, 1): "date key"},
    {b"k": 1, frozenset({1}): 2, Decimal("1.0"): 3, UUID(int=1): 4},
    [(1, 2), [3, (4, [5])]],
    {"nested": {"tuple": (1, {"set": {1, 2}}), "map": {1: (2, 3)}}},
    {"~": 1, "a": 2},
    {"~t": [1], "other": 2},
]

MIXED = {
    "user": {"id": 42, "roles": ("admin", "staff"), "tags": {"x", "y"}},
    "when": datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=UTC),
    "day": date(2024, 5, 6),
    "at": time(7, 8, 9),
    "ttl": timedelta(minutes=20),
    "id": UUID("0f0e0d0c-0b0a-0908-0706-050403020100"),
    "price": Decimal("19.990"),
    "blob": b"\x00\x01\x02",
    "by_id": {1: "one", 2: ("two", 2.0)},
    "by_pair": {(1, "a"): [None, True]},
    "frozen": frozenset({(1, 2), "z"}),
    "big": 10**450,
    "huge": -(10**4500),
    "floats": [float("inf"), -0.0, 1e-300],
    "~t": "looks like a tag",
    "text": "ünïcödé ✓",
}


@pytest.mark.parametrize("value", SCALARS + CONTAINERS, ids=short_id)
def test_roundtrip(value: Any) -> None:
    assert_roundtrips(value)


@pytest.mark.parametrize("value", SCALARS + CONTAINERS, ids=short_id)
def test_roundtrip_nested(value: Any) -> None:
    """Every value also survives inside lists, tuples, dict values, one-key dicts and maps."""
    assert_roundtrips([value, (value,), {"k": value}, {"~k": value}, {0: value}])


def test_roundtrip_mixed() -> None:
    assert_roundtrips(MIXED)
    assert_roundtrips([MIXED, (MIXED, [MIXED])])


def test_int_of_400_digits() -> None:
    n = int("9" * 400)
    assert roundtrip(n) == n
    assert dumps(n) == b"9" * 400  # still a plain JSON number


def test_int_beyond_json_digit_limit_uses_hex() -> None:
    n = 10**5000
    assert dumps(n) == b'{"~i":"' + format(n, "x").encode() + b'"}'
    assert roundtrip({"a": n, "b": [n]}) == {"a": n, "b": [n]}


def test_int_keys_come_back_as_ints() -> None:
    loaded = roundtrip({1: "a", 2: {3: "b"}})
    assert loaded == {1: "a", 2: {3: "b"}}
    assert [type(k) for k in loaded] == [int, int]
    assert [type(k) for k in loaded[2]] == [int]


def test_tuple_keys() -> None:
    loaded = roundtrip({(1, (2, "x")): "v"})
    (key,) = loaded
    assert key == (1, (2, "x")) and type(key) is tuple and type(key[1]) is tuple


def test_aware_datetime_keeps_instant_and_offset() -> None:
    value = datetime(2024, 3, 31, 1, 30, 15, 999, tzinfo=IST)
    loaded = roundtrip(value)
    assert loaded == value
    assert loaded.utcoffset() == value.utcoffset()
    assert loaded.microsecond == 999
    assert roundtrip(datetime(2024, 1, 1, tzinfo=UTC)).tzinfo is UTC


def test_nan_roundtrips() -> None:
    assert math.isnan(roundtrip(float("nan")))
    assert Decimal.is_nan(roundtrip(Decimal("NaN")))


# --- wire format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": [1, 2], "b": {"c": "d é"}}, '{"a":[1,2],"b":{"c":"d é"}}'),
        ((1, 2), '{"~t":[1,2]}'),
        ({1: 2}, '{"~m":[1,2]}'),
        ({3, 1, 2}, '{"~s":[1,2,3]}'),
        (b"hi", '{"~b":"aGk="}'),
        (timedelta(seconds=1), '{"~p":1000000}'),
        (date(2024, 1, 2), '{"~D":"2024-01-02"}'),
        ({"~t": 1}, '{"~~t":1}'),
        ({"~": 1}, '{"~~":1}'),
        ({"~t": 1, "x": 2}, '{"~t":1,"x":2}'),
    ],
)
def test_wire_format(value: Any, expected: str) -> None:
    assert dumps(value) == expected.encode()


def test_output_is_compact_utf8() -> None:
    spaceless = {k: v for k, v in MIXED.items() if k not in ("~t", "text")}
    out = dumps([spaceless, {"text": "ünïcödé✓"}])
    assert b" " not in out and b"\n" not in out
    assert "ünïcödé✓".encode() in out  # raw UTF-8, not \\u escapes
    out.decode("utf-8")


def test_plain_json_is_written_as_json_does() -> None:
    value = {"a": 1, "b": ["x", 2.5, None, True, {"c": []}], "é": "ü"}
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert dumps(value) == expected


def test_lone_surrogate_output_stays_valid_utf8() -> None:
    out = dumps({"s": "a\ud800b", "t": (1,)})
    out.decode("utf-8")
    assert loads(out) == {"s": "a\ud800b", "t": (1,)}


def test_equal_sets_encode_identically() -> None:
    """Change detection compares encodings: a reloaded set must encode as before."""
    words = {f"w{i}" for i in range(100)}
    assert dumps(words) == dumps(set(sorted(words, reverse=True))) == dumps(roundtrip(words))
    mixed = {1, "a", None}
    assert loads(dumps(mixed)) == mixed


# --- escaping ------------------------------------------------------------------------------

TAG_LIKE_KEYS = [*TAGS, "~", "~~", "~~~", "~~t", "~~~t", "~x", "~tt", "~ t", "~\u00e9", "~0"]
PAYLOADS: list[Any] = [
    None,
    1,
    "x",
    "2024-01-01",
    "aGk=",
    "ff",
    [],
    [1, 2],
    [1],
    {"a": 1},
    {"~t": [1]},
    (1, 2),
    {1, 2},
    b"raw",
    {1: 2},
]


@pytest.mark.parametrize("key", TAG_LIKE_KEYS)
@pytest.mark.parametrize("payload", PAYLOADS, ids=short_id)
def test_tag_lookalike_dicts_roundtrip(key: str, payload: Any) -> None:
    value = {key: payload}
    assert_roundtrips(value)
    assert_roundtrips([value, {"outer": value}, {key: value}, (value,), {1: value}])


def test_tag_lookalike_nested_in_itself() -> None:
    value: Any = "core"
    for key in [*TAGS, "~", "~~"] * 3:
        value = {key: value}
    assert_roundtrips(value)


# --- unsupported types ---------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1


class Point(NamedTuple):
    x: int
    y: int


class MyStr(str):
    pass


class Thing:
    pass


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (Thing(), "Thing"),
        (object(), "object"),
        (1j, "complex"),
        (bytearray(b"x"), "bytearray"),
        (collections.OrderedDict(a=1), "OrderedDict"),
        (collections.defaultdict(list), "defaultdict"),
        (Color.RED, "Color"),
        (Point(1, 2), "Point"),
        (MyStr("s"), "MyStr"),
        (range(3), "range"),
        (print, "builtin_function_or_method"),
    ],
)
def test_unsupported_type_raises_type_error_naming_it(value: Any, name: str) -> None:
    for container in (value, [value], {"k": value}, (value,), {1: value}, {"~t": value}):
        with pytest.raises(TypeError, match=name):
            dumps(container)
    try:
        hash(value)
    except TypeError:
        return
    for container in ({value: 1}, {value}, frozenset({value}), {value: 1, "k": 2}):
        with pytest.raises(TypeError, match=name):
            dumps(container)


def test_reference_cycle_raises_value_error() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError):
        dumps(cycle)


# --- malformed input -----------------------------------------------------------------------


def test_random_bytes_raise_only_value_error() -> None:
    rng = random.Random(20240501)
    for _ in range(3000):
        blob = rng.randbytes(rng.randrange(0, 64))
        with contextlib.suppress(ValueError):
            loads(blob)


def test_random_json_like_text_raises_only_value_error() -> None:
    rng = random.Random(7)
    pieces = [*'"{}[],:1-.ex', "null", "true", "\\u", "NaN", '"~~', '"a":', "2024-01-01"]
    pieces += [f'{{"{tag}":' for tag in TAGS]
    for _ in range(5000):
        text = "".join(rng.choices(pieces, k=rng.randrange(1, 20)))
        with contextlib.suppress(ValueError):
            loads(text.encode())


def test_every_truncation_raises_value_error() -> None:
    data = dumps(MIXED)
    for end in range(len(data)):
        with pytest.raises(ValueError):
            loads(data[:end])


@pytest.mark.parametrize(
    "blob",
    [b"\xff", b'"\xff"', b'"\xc3"', b'{"a":"\xed\xa0\x80"}', b'"\xc3\x28"', b"\x80abc"],
)
def test_invalid_utf8_raises_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        loads(blob)


@pytest.mark.parametrize(
    ("opening", "closing"),
    [("[", "]"), ('{"a":', "}"), ('{"~t":[', "]}"), ('{"~m":[1,', "]}"), ('{"~~":', "}")],
)
def test_deep_nesting_raises_value_error(opening: str, closing: str) -> None:
    depth = 100_000
    blob = (opening * depth + "1" + closing * depth).encode()
    with pytest.raises(ValueError) as info:
        loads(blob)
    assert type(info.value) is ValueError


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        " 1",
        "1 ",
        "{}{}",
        "[1]x",
        "{'a':1}",
        "{1:2}",
        "[1,]",
        "1" * 5000,  # more digits than int() accepts
        '{"~d":5}',
        '{"~d":"not a date"}',
        '{"~d":"2024-02-30T00:00:00"}',
        '{"~d":null}',
        '{"~D":"2024-13-01"}',
        '{"~D":20240101}',
        '{"~T":"25:00"}',
        '{"~T":[12]}',
        '{"~b":"!!!!"}',
        '{"~b":"abc"}',
        '{"~b":"é"}',
        '{"~b":1}',
        '{"~i":"xyz"}',
        '{"~i":"12.5"}',
        '{"~i":16}',
        '{"~n":"abc"}',
        '{"~n":"1e999999999999999999999"}',
        '{"~n":1.5}',
        '{"~u":"abc"}',
        '{"~u":"12345678123456781234567812345678ff"}',
        '{"~u":5}',
        '{"~p":"1"}',
        '{"~p":1.5}',
        '{"~p":true}',
        '{"~p":1000000000000000000000000000}',
        '{"~t":"ab"}',
        '{"~t":{}}',
        '{"~t":null}',
        '{"~s":[[1]]}',
        '{"~s":[{"a":1}]}',
        '{"~s":1}',
        '{"~f":[{}]}',
        '{"~m":[1]}',
        '{"~m":[[1],2]}',
        '{"~m":[{"a":1},2]}',
        '{"~m":"ab"}',
        '{"~m":{"a":1}}',
        '{"~x":1}',
        '{"~":1}',
        '{"~TT":"12:00"}',
        '[1,{"~d":5}]',
        '{"a":{"~u":"zz"}}',
    ],
)
def test_malformed_input_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        loads(text.encode())


def test_malformed_input_chains_cause() -> None:
    with pytest.raises(ValueError) as info:
        loads(b'{"~p":1000000000000000000000000000}')
    assert isinstance(info.value.__cause__, OverflowError)


def test_loading_names_no_code() -> None:
    """Class names and dotted paths in the input stay plain strings."""
    for value in [{"__class__": "os.system"}, {"py/object": "os.system"}, "__import__('os')"]:
        assert loads(json.dumps(value).encode()) == value
