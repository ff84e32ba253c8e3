"""Safe, compact value serializer: MessagePack (msgspec) that never executes code when loading.

:func:`dumps` writes MessagePack with msgspec's encoder. Values MessagePack represents
exactly are written as themselves: str, int from -2**63 to 2**64 - 1, float (64-bit; nan,
inf and -0.0 included), bool, None, bytes, list, and dict with str keys. Every other
supported value is an *extension* (a MessagePack ext type), whose payload is more
MessagePack or ASCII text:

====  ==============================  ===================================================
ext   type                            payload
====  ==============================  ===================================================
1     tuple                           array of the items
2     set                             array of the items (sorted, see below)
3     frozenset                       array of the items (sorted, see below)
4     dict with a key that is not     flat array ``[k1, v1, k2, v2, ...]``
      a str (or has a lone surrogate)
5     int beyond 64 bits              big-endian two's complement bytes
6     str with a lone surrogate       UTF-8, surrogates kept (``surrogatepass``)
7     decimal.Decimal                 ``str(value)``
8     uuid.UUID                       the 16 bytes
9     datetime.datetime               ``isoformat()``
10    datetime.date                   ``isoformat()``
11    datetime.time                   ``isoformat()``
12    datetime.timedelta              array ``[days, seconds, microseconds]``
13    str of lowercase hex digits     the bytes they spell (half the size)
====  ==============================  ===================================================

The items of a set or frozenset are sorted, ints, strs or bytes alone by value and any
other mix by their encoding, so that equal sets encode identically in every process
(changes are detected by comparing encodings; iteration order follows hash
randomization).

Extension 13 is written by :func:`dumps_data` only, for the top-level values of a
session that look like tokens (a CSRF token, an id from ``secrets.token_hex``): a str
of 32 to 128 lowercase hex digits, an even number of them, in a session whose encoding
is under :data:`TOKENS_BELOW` bytes without them. Larger sessions are compressed, which
halves hex text anyway; one with many keys is encoded before any search for tokens (a
loop over every value), one with few is searched first, so that it is encoded once.

Only exact types are supported: subclasses (IntEnum, OrderedDict, namedtuple, ...) and
other types (bytearray, ...) raise ``TypeError`` rather than coming back as something
else. Aware datetimes and times come back with a fixed-offset ``datetime.timezone``
(same offset and instant; a zoneinfo name and ``fold`` are not kept).

:func:`loads` builds extension values from the table only: nothing in the input names a
type or a function. Malformed input raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import compress
from typing import Any, Final
from uuid import UUID

from msgspec import DecodeError, ValidationError
from msgspec.msgpack import Decoder, Encoder, Ext

__all__ = ["dumps", "dumps_data", "is_immutable", "loads", "loads_data"]

TUPLE: Final = 1
SET: Final = 2
FROZENSET: Final = 3
MAPPING: Final = 4
BIG_INT: Final = 5
SURROGATE_STR: Final = 6
DECIMAL: Final = 7
UUID_BYTES: Final = 8
DATETIME: Final = 9
DATE: Final = 10
TIME: Final = 11
TIMEDELTA: Final = 12
HEX_TOKEN: Final = 13

_NoneType = type(None)
_STR_ONLY = frozenset({str})
# Written by MessagePack exactly as they are (ints and strs within its limits, see _exact).
_LEAVES = frozenset({str, int, float, bool, _NoneType, bytes})
_CONTAINERS = frozenset({list, dict})
_TREE = _LEAVES | _CONTAINERS
_INT_RANGE = range(-(2**63), 2**64)
_TOTALLY_ORDERED = frozenset({int, str, bytes})
_encode = Encoder().encode

# --- dumps -------------------------------------------------------------------------------


def _unsupported(value: Any) -> TypeError:
    kind = type(value)
    return TypeError(f"cannot serialize a value of type {kind.__module__}.{kind.__qualname__}")


def _is_plain(value: Any) -> bool:
    """True if ``value`` is a tree of :data:`_LEAVES`, lists and dicts with str keys.

    Whole dicts and lists are checked with ``set(map(type, ...))``, which runs in C.
    """
    kind = type(value)
    if kind is dict:
        return set(map(type, value)) <= _STR_ONLY and _all_plain(value.values())
    if kind is list:
        return _all_plain(value)
    return kind in _LEAVES


def _all_plain(values: Collection[Any]) -> bool:
    kinds = set(map(type, values))
    if kinds <= _LEAVES:
        return True
    if not kinds <= _TREE:
        return False
    # Only the lists and dicts among the values need a look inside (selected in C).
    containers = compress(values, map(_CONTAINERS.__contains__, map(type, values)))
    return all(map(_is_plain, containers))


def _utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _exact(value: Any) -> Any:
    """A leaf, or its extension when MessagePack cannot hold it (huge int, lone surrogate)."""
    kind = type(value)
    if kind is int and value not in _INT_RANGE:
        size = value.bit_length() // 8 + 1
        return Ext(BIG_INT, value.to_bytes(size, "big", signed=True))
    if kind is str and not _utf8(value):
        return Ext(SURROGATE_STR, value.encode("utf-8", "surrogatepass"))
    return value


def _tree(value: Any, exact: bool) -> Any:
    """``value`` with every non-MessagePack value replaced by its extension.

    Not ``exact``: plain subtrees are kept as they are (msgspec then raises for a huge
    int or a lone surrogate in them, and :func:`dumps` starts over, exact).
    """
    kind = type(value)
    if kind in _LEAVES:
        return _exact(value) if exact else value
    if not exact and kind in (list, dict) and _is_plain(value):
        return value
    convert = _CONVERTERS.get(kind)
    if convert is None:
        raise _unsupported(value)
    return convert(value, exact)


def _items(values: Iterable[Any], exact: bool) -> list[Any]:
    return [_tree(item, exact) for item in values]


def _sorted_items(values: Collection[Any], exact: bool) -> list[Any]:
    """A set's items in an order that depends on the items alone, so that equal sets
    encode identically in every process (iteration order follows hash randomization).

    Ints, strs or bytes alone are sorted; anything else (mixed types, floats with a nan,
    tuples...) is sorted by encoding.
    """
    kinds = set(map(type, values))
    if len(kinds) == 1 and kinds <= _TOTALLY_ORDERED:
        return _items(sorted(values), exact)
    return sorted(_items(values, exact), key=_encode)


def _ext(code: int, tree: Any) -> Ext:
    return Ext(code, _encode(tree))


def _dict(value: dict[Any, Any], exact: bool) -> Any:
    if set(map(type, value)) <= _STR_ONLY and all(map(_utf8, value)):
        return {key: _tree(item, exact) for key, item in value.items()}
    return _ext(MAPPING, [_tree(part, exact) for pair in value.items() for part in pair])


def _text(code: int) -> Callable[[Any, bool], Ext]:
    return lambda value, exact: Ext(code, value.isoformat().encode())


_CONVERTERS: dict[type, Callable[[Any, bool], Any]] = {
    list: _items,
    dict: _dict,
    tuple: lambda value, exact: _ext(TUPLE, _items(value, exact)),
    set: lambda value, exact: _ext(SET, _sorted_items(value, exact)),
    frozenset: lambda value, exact: _ext(FROZENSET, _sorted_items(value, exact)),
    Decimal: lambda value, exact: Ext(DECIMAL, str(value).encode()),
    UUID: lambda value, exact: Ext(UUID_BYTES, value.bytes),
    datetime: _text(DATETIME),
    date: _text(DATE),
    time: _text(TIME),
    timedelta: lambda value, exact: _ext(
        TIMEDELTA, [value.days, value.seconds, value.microseconds]
    ),
}


def dumps(value: Any) -> bytes:
    """Serialize ``value`` to MessagePack; ``TypeError`` for an unsupported type."""
    return _dumps(value, _is_plain)


def dumps_data(data: dict[str, Any]) -> bytes:
    """:func:`dumps` of a session's data, a dict whose keys the caller has checked are all
    ``str``; in a small session, top-level hex tokens are stored as their bytes."""
    if len(data) > SCAN_FIRST_UP_TO:  # encoded first; searched only if that is small
        out = _dumps(data, _values_plain)
        if len(out) < TOKENS_BELOW and any(map(_is_token, data.values())):
            return _dumps(data, _values_plain, _with_tokens)
        return out
    token_chars = sum(len(value) for value in data.values() if _is_token(value))
    if not token_chars:
        return _dumps(data, _values_plain)
    # A token stored as its bytes saves at most half its characters: when the token form
    # is this far under the limit, so is the plain form, and it is the only one encoded.
    out = _dumps(data, _values_plain, _with_tokens)
    if len(out) + token_chars // 2 < TOKENS_BELOW:
        return out
    plain = _dumps(data, _values_plain)
    return out if len(plain) < TOKENS_BELOW else plain


def _values_plain(data: dict[str, Any]) -> bool:
    return _all_plain(data.values())


TOKENS_BELOW: Final = 1024
# A session with at most this many top-level keys is searched for tokens before it is
# encoded, so that one with tokens is encoded once; a larger one is encoded first.
SCAN_FIRST_UP_TO: Final = 32
_TOKEN_LENGTHS = frozenset(range(32, 129, 2))
_HEX_DIGITS = str.maketrans("", "", "0123456789abcdef")


def _is_token(value: Any) -> bool:
    return type(value) is str and len(value) in _TOKEN_LENGTHS and not value.translate(_HEX_DIGITS)


def _with_tokens(tree: Any) -> Any:
    """``tree`` with its hex-token values replaced by extension 13 (a copy if any).

    A dict with a key that MessagePack cannot hold is an extension already: as it is.
    """
    if type(tree) is not dict:
        return tree
    found = None
    for key, value in tree.items():
        if _is_token(value):
            if found is None:
                found = dict(tree)
            found[key] = Ext(HEX_TOKEN, bytes.fromhex(value))
    return tree if found is None else found


def _same(tree: Any) -> Any:
    return tree


def _dumps(
    value: Any, is_plain: Callable[[Any], bool], finish: Callable[[Any], Any] = _same
) -> bytes:
    try:
        if is_plain(value):
            try:
                return _encode(finish(value))
            except (OverflowError, UnicodeEncodeError):
                return _encode(finish(_tree(value, exact=True)))
        try:
            return _encode(finish(_tree(value, exact=False)))
        except (OverflowError, UnicodeEncodeError):  # a huge int or lone surrogate in it
            return _encode(finish(_tree(value, exact=True)))
    except RecursionError as exc:
        raise ValueError("value is nested too deeply or contains a reference cycle") from exc


# --- loads -------------------------------------------------------------------------------


def _array(data: memoryview) -> list[Any]:
    value = _decode(data)
    if type(value) is not list:
        raise ValueError(f"extension payload is a {type(value).__name__}, not an array")
    return value


def _mapping(data: memoryview) -> dict[Any, Any]:
    flat = _array(data)
    return dict(zip(flat[::2], flat[1::2], strict=True))  # odd length: ValueError


def _timedelta(data: memoryview) -> timedelta:
    parts = _array(data)
    if len(parts) != 3 or {type(part) for part in parts} != {int}:
        raise ValueError("a timedelta needs [days, seconds, microseconds]")
    return timedelta(*parts)


def _ascii(data: memoryview) -> str:
    return str(data, "ascii")


_BUILDERS: dict[int, Callable[[memoryview], Any]] = {
    TUPLE: lambda data: tuple(_array(data)),
    SET: lambda data: set(_array(data)),
    FROZENSET: lambda data: frozenset(_array(data)),
    MAPPING: _mapping,
    BIG_INT: lambda data: int.from_bytes(data, "big", signed=True),
    SURROGATE_STR: lambda data: str(data, "utf-8", "surrogatepass"),
    DECIMAL: lambda data: Decimal(_ascii(data)),
    UUID_BYTES: lambda data: UUID(bytes=bytes(data)),
    DATETIME: lambda data: datetime.fromisoformat(_ascii(data)),
    DATE: lambda data: date.fromisoformat(_ascii(data)),
    TIME: lambda data: time.fromisoformat(_ascii(data)),
    TIMEDELTA: _timedelta,
    HEX_TOKEN: lambda data: data.hex(),
}


def _ext_hook(code: int, data: memoryview) -> Any:
    build = _BUILDERS.get(code)
    if build is None:
        raise ValueError(f"unknown extension type {code}")
    return build(data)


_decode = Decoder(ext_hook=_ext_hook).decode
# What msgspec or an extension builder may raise on hostile input (msgspec's DecodeError
# is no ValueError in msgspec 0.18, the oldest supported).
_MALFORMED = (ValueError, TypeError, ArithmeticError, LookupError, RecursionError, DecodeError)


def loads(data: bytes | memoryview) -> Any:
    """Deserialize the output of :func:`dumps`; ``ValueError`` for any malformed input."""
    try:
        return _decode(data)
    except _MALFORMED as exc:
        raise ValueError(f"malformed serialized value: {exc}") from exc


# A session's data is a map with str keys: msgspec checks the keys while decoding, in C,
# instead of a scan of the decoded keys (about 4 µs for 200 keys).
_decode_data = Decoder(dict[str, Any], ext_hook=_ext_hook).decode


def loads_data(data: bytes | memoryview) -> dict[str, Any]:
    """:func:`loads` of a session's data: a dict with str keys, else ``ValueError``.

    Data with a key MessagePack cannot hold (a lone surrogate) is stored as extension
    4, not as a map: it takes the general path, and is checked after decoding.
    """
    try:
        return _decode_data(data)
    except ValidationError:
        value = loads(data)  # an extension at the top, or not a session's data at all
    except _MALFORMED as exc:
        raise ValueError(f"malformed serialized value: {exc}") from exc
    if type(value) is not dict or not set(map(type, value)) <= _STR_ONLY:
        raise ValueError("session data is not a dict with str keys")
    return value


# --- is_immutable ------------------------------------------------------------------------

_IMMUTABLE = frozenset(
    {str, int, float, bool, _NoneType, bytes, Decimal, UUID, date, time, datetime, timedelta}
)


def is_immutable(value: Any) -> bool:
    """True if ``value`` cannot be changed in place (tuples/frozensets: all items too)."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return True
    if kind is tuple or kind is frozenset:
        return all(map(is_immutable, value))
    return False
