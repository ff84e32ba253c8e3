"""The writer of payload format 1 (tagged JSON), kept with the tests.

The library only reads this format now (``pyramid_session_redis.tagged_json``); this is
the writer that stored it, unchanged, so that tests can still make payloads of that
format (see ``tests/data/`` and ``tests/test_tagged_json.py``) and benchmarks can compare
it with the current serializer.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

__all__ = ["dumps"]

_NoneType = type(None)
_ESC = "~"
# JSON writes ints in decimal, which CPython caps at 4300 digits by default
# (sys.set_int_max_str_digits, minimum 640). The exact path writes ints wider than this as
# hex; the fast path leaves ints to json, which raises past the cap, and then falls back.
_MAX_PLAIN_INT_BITS = 2000
_MICROSECOND = timedelta(microseconds=1)
_STR_ONLY = frozenset({str})

# --- dumps -------------------------------------------------------------------------------

# Types json's C encoder writes natively and exactly, and the ones it hands to ``default``.
_NATIVE = frozenset({str, int, float, bool, _NoneType})
_AS_IS = _NATIVE - {int}
_VIA_DEFAULT = frozenset({bytes, Decimal, UUID, datetime, date, time, timedelta, set, frozenset})
_LEAVES = _NATIVE | _VIA_DEFAULT
_TREE = _LEAVES | {list, dict}


def _unsupported(value: Any) -> TypeError:
    kind = type(value)
    return TypeError(f"cannot serialize a value of type {kind.__module__}.{kind.__qualname__}")


def _to_json(value: Any) -> Any:
    """Return ``value`` as a JSON-native tree with tag objects (the exact, slower path)."""
    kind = type(value)
    if kind in _AS_IS:
        return value
    encode = _ENCODERS.get(kind)
    if encode is None:
        raise _unsupported(value)
    return encode(value)


def _items(values: Iterable[Any]) -> list[Any]:
    return [_to_json(item) for item in values]


def _sorted_items(values: Iterable[Any]) -> list[Any]:
    """Items in sorted order when they are orderable, so equal sets encode identically."""
    try:
        ordered = sorted(values)
    except (TypeError, ValueError, ArithmeticError):  # mixed types, sNaN, ...
        ordered = list(values)
    return _items(ordered)


def _encode_int(value: int) -> Any:
    return value if value.bit_length() <= _MAX_PLAIN_INT_BITS else {"~i": format(value, "x")}


def _encode_dict(value: dict[Any, Any]) -> Any:
    if not set(map(type, value)) <= _STR_ONLY:
        return {"~m": [_to_json(part) for pair in value.items() for part in pair]}
    if len(value) == 1:
        ((key, item),) = value.items()
        if key[:1] == _ESC:
            return {_ESC + key: _to_json(item)}
    return {key: _to_json(item) for key, item in value.items()}


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    int: _encode_int,
    list: _items,
    dict: _encode_dict,
    tuple: lambda v: {"~t": _items(v)},
    set: lambda v: {"~s": _sorted_items(v)},
    frozenset: lambda v: {"~f": _sorted_items(v)},
    bytes: lambda v: {"~b": base64.b64encode(v).decode("ascii")},
    Decimal: lambda v: {"~n": str(v)},
    UUID: lambda v: {"~u": v.hex},
    datetime: lambda v: {"~d": v.isoformat()},
    date: lambda v: {"~D": v.isoformat()},
    time: lambda v: {"~T": v.isoformat()},
    timedelta: lambda v: {"~p": v // _MICROSECOND},
}


def _default(value: Any) -> Any:
    """``json.JSONEncoder`` hook for the non-JSON leaves that :func:`_is_plain` lets through."""
    encode = _ENCODERS.get(type(value))
    if encode is None:
        raise _unsupported(value)
    return encode(value)


def _is_plain(value: Any) -> bool:
    """True if json's C encoder plus :func:`_default` write ``value`` exactly as is.

    That rules out tuples, dicts with a non-str key or whose only key starts with ``~``,
    and subclasses of the JSON types.
    Whole dicts and lists are checked with ``set(map(type, ...))``, which runs in C.
    """
    kind = type(value)
    if kind is dict:
        return _is_plain_dict(value)
    if kind is list:
        return _all_plain(value)
    return kind in _LEAVES


def _is_plain_dict(value: dict[Any, Any]) -> bool:
    if len(value) == 1:
        for key in value:
            if type(key) is not str or key[:1] == _ESC:
                return False
    elif not set(map(type, value)) <= _STR_ONLY:
        return False
    return _all_plain(value.values())


def _all_plain(values: Collection[Any]) -> bool:
    kinds = set(map(type, values))
    if kinds <= _LEAVES:
        return True
    if not kinds <= _TREE:
        return False
    for value in values:
        kind = type(value)
        if kind is dict:
            if not _is_plain_dict(value):
                return False
        elif kind is list and not _all_plain(value):
            return False
    return True


_SEPARATORS = (",", ":")
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, separators=_SEPARATORS, default=_default
)
_ASCII_ENCODER = json.JSONEncoder(check_circular=False, separators=_SEPARATORS, default=_default)


def _encode(value: Any) -> tuple[str, Any]:
    """Return the JSON text of ``value`` and the tree it was written from."""
    if _is_plain(value):
        try:
            return _ENCODER.encode(value), value
        except ValueError:  # an int too long for a decimal literal: take the exact path
            pass
    tree = _to_json(value)
    return _ENCODER.encode(tree), tree


def dumps(value: Any) -> bytes:
    """Serialize ``value`` to compact UTF-8 JSON; ``TypeError`` for an unsupported type."""
    try:
        text, tree = _encode(value)
    except RecursionError as exc:
        raise ValueError("value is nested too deeply or contains a reference cycle") from exc
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate: write it as a JSON \uXXXX escape
        return _ASCII_ENCODER.encode(tree).encode("ascii")
