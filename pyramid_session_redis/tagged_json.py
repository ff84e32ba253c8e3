"""Reader of payload format 1 (markers 0x01-0x03): tagged JSON, never executing code.

The library no longer writes this format (see :mod:`.serializer`); it reads what earlier
versions stored. The writer that made them is kept with the tests
(``tests/tagged_json_writer.py``).

JSON-native values (str, int, float including nan/inf, bool, None, list, dict with str
keys) are written as themselves; every other supported value is a *tag object*, a
one-member object whose key is ``~`` plus a letter:

======  ==========================  ====================================
tag     type                        payload
======  ==========================  ====================================
``~t``  tuple                       list of items
``~s``  set                         list of items (sorted if orderable)
``~f``  frozenset                   list of items (sorted if orderable)
``~m``  dict with a non-str key     flat list ``[k1, v1, k2, v2, ...]``
``~b``  bytes                       base64 str
``~i``  int too long for JSON       hex str
``~n``  decimal.Decimal             ``str(value)``
``~u``  uuid.UUID                   32 hex digits
``~d``  datetime.datetime           ``isoformat()``
``~D``  datetime.date               ``isoformat()``
``~T``  datetime.time               ``isoformat()``
``~p``  datetime.timedelta          int microseconds
======  ==========================  ====================================

Escaping: a user dict with exactly one key starting with ``~`` was written with one more
``~`` in front of that key (``{"~t": 1}`` as ``{"~~t":1}``) and :func:`loads` strips it.
A one-member object whose key starts with ``~`` is thus always a tag or an escape, never
a user dict in disguise; unknown tags are rejected.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

__all__ = ["loads"]

_ESC = "~"


# --- loads -------------------------------------------------------------------------------


def _build_mapping(flat: list[Any]) -> dict[Any, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))  # odd length: ValueError


# tag -> (required payload type, builder)
_DECODERS: dict[str, tuple[type, Callable[[Any], Any]]] = {
    "~t": (list, tuple),
    "~s": (list, set),
    "~f": (list, frozenset),
    "~m": (list, _build_mapping),
    "~b": (str, lambda s: base64.b64decode(s, validate=True)),
    "~i": (str, lambda s: int(s, 16)),
    "~n": (str, Decimal),
    "~u": (str, lambda s: UUID(hex=s)),
    "~d": (str, datetime.fromisoformat),
    "~D": (str, date.fromisoformat),
    "~T": (str, time.fromisoformat),
    "~p": (int, lambda n: timedelta(microseconds=n)),
}


def _object_hook(obj: dict[str, Any]) -> Any:
    """Turn a decoded JSON object that is a tag or an escape back into its value."""
    if len(obj) != 1:
        return obj
    ((key, payload),) = obj.items()
    if key[:1] != _ESC:
        return obj
    if key[1:2] == _ESC:
        return {key[1:]: payload}
    spec = _DECODERS.get(key)
    if spec is None:
        raise ValueError(f"unknown tag {key!r}")
    kind, build = spec
    if type(payload) is not kind:
        raise ValueError(f"tag {key} needs a {kind.__name__} payload, not {type(payload).__name__}")
    return build(payload)


_DECODER = json.JSONDecoder(object_hook=_object_hook)
# What a tag builder or the JSON scanner may raise on hostile input.
_MALFORMED = (ValueError, TypeError, ArithmeticError, LookupError, RecursionError)


def loads(data: bytes) -> Any:
    """Deserialize the output of :func:`dumps`; ``ValueError`` for any malformed input."""
    try:
        text = str(data, "utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"malformed serialized value: {exc}") from exc
    try:
        value, end = _DECODER.raw_decode(text)
    except _MALFORMED as exc:
        raise ValueError(f"malformed serialized value: {exc}") from exc
    if end != len(text):
        raise ValueError(f"malformed serialized value: trailing data at {end}")
    return value
