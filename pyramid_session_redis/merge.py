"""Three-way merge of session data after a lost compare-and-set: pure, no I/O.

``base`` is the data this request loaded, ``ours`` what it wants to store, ``theirs``
what Redis holds now. :func:`merge` combines them key by key (recursively inside dicts):

- unchanged by us: theirs (a key they deleted stays deleted); unchanged by them: ours;
  the same change on both sides: that change;
- dicts on both sides: merged key by key; sets on both sides (both ``set`` or both
  ``frozenset``): theirs, plus the elements we added, minus the elements we removed. A
  missing base counts as empty; a base of another type, or a side that deleted the key
  while the other edited it, is a conflict;
- lists are queues: where each side only removed items from the front and/or appended
  at the end of base, the result is base minus the larger front removal, then their
  appends, then ours. A missing base counts as an empty list; a deleted key counts as
  "removed everything" (and stays deleted if nothing is left). A list that keeps no item
  of a non-empty base but holds new ones was replaced, not edited, and so is any other
  change (an item inserted at the front, removed in the middle, edited in place);
- tuples, like every other value, are merged only as wholes;
- ``increments`` (top-level keys only changed by ``incr`` in this request, with the
  summed amount) are added as a delta onto theirs; if they deleted the key the delta
  counts from 0, as ``incr`` on a missing key does; onto anything but an int or float
  (a bool, a str, a Decimal) it is a conflict;
- anything else both sides changed differently is a conflict: ours is kept at that place,
  the rest is still merged, and the top-level key is reported in ``conflicts``.

Values are compared with :func:`same`, which is ``==`` made as strict as the serializer
(``1``, ``1.0`` and ``True`` differ, as do a list and a tuple). The result reuses values
of ``ours`` and ``theirs`` where it takes them whole and never shares a mutable container
with ``base``; no input is modified.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, time
from decimal import Decimal
from types import MappingProxyType
from typing import Any

__all__ = ["MergeResult", "merge", "same"]


class _Absent(enum.Enum):
    """A key one version does not hold (deleted, or never set)."""

    ABSENT = "absent"


_ABSENT = _Absent.ABSENT
_NO_INCREMENTS: Mapping[str, int | float] = MappingProxyType({})
_NUMBERS = (int, float)  # what a delta is added to (exact types: bool is not a counter)

# Leaf types whose == is looser than their serialized form: compared by that form.
_TEXT_FORM: dict[type, Callable[[Any], str]] = {
    float: repr,  # -0.0 vs 0.0; nan equals nan
    Decimal: str,  # Decimal("1.0") vs Decimal("1.00")
    datetime: datetime.isoformat,  # same instant, other UTC offset
    time: time.isoformat,
}


@dataclasses.dataclass(frozen=True)
class MergeResult:
    """The merged session data and the top-level keys where ours overrode theirs."""

    data: dict[str, Any]
    conflicts: tuple[str, ...]


def merge(
    base: Mapping[str, Any],
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    increments: Mapping[str, int | float] = _NO_INCREMENTS,
) -> MergeResult:
    """Merge this request's changes (base -> ours) with another's (base -> theirs)."""
    data: dict[str, Any] = {}
    conflicts: list[str] = []
    for key in dict.fromkeys([*theirs, *ours]):
        b, o, t = base.get(key, _ABSENT), ours.get(key, _ABSENT), theirs.get(key, _ABSENT)
        if key in increments and o is not _ABSENT and not same(t, b):
            value, conflicted = _add_delta(t, increments[key], o)
        else:
            value, conflicted = _merge_values(b, o, t)
        if value is not _ABSENT:
            data[key] = value
        if conflicted:
            conflicts.append(key)
    return MergeResult(data, tuple(sorted(conflicts)))


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` serialize the same: ``==``, but type-strict.

    ``1``, ``1.0`` and ``True`` differ, a list differs from a tuple, ``-0.0`` from
    ``0.0``, ``Decimal("1.0")`` from ``Decimal("1.00")``; ``nan`` is the same as ``nan``.
    Dict order does not matter, dict keys and set elements are matched type-strictly too.
    """
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        return _same_dict(a, b)
    if kind is list or kind is tuple:
        return len(a) == len(b) and all(map(same, a, b))
    if kind is set or kind is frozenset:
        return len(a) == len(b) and {_canon(x) for x in a} == {_canon(x) for x in b}
    form = _TEXT_FORM.get(kind)
    if form is not None:
        return form(a) == form(b)
    return bool(a == b)


def _same_dict(a: dict[Any, Any], b: dict[Any, Any]) -> bool:
    if len(a) != len(b):
        return False
    values_of_b = _values_by_canon(b)
    return all(same(value, values_of_b.get(_canon(key), _ABSENT)) for key, value in a.items())


def _canon(value: Any) -> object:
    """A hashable stand-in for a key or set element, equal only where :func:`same` is."""
    kind = type(value)
    if kind is str:  # the common case: a str is only ever equal to a str
        return value
    if kind is tuple:
        return tuple, tuple(map(_canon, value))
    if kind is frozenset:
        return frozenset, frozenset(map(_canon, value))
    form = _TEXT_FORM.get(kind)
    return kind, (value if form is None else form(value))


def _values_by_canon(mapping: Mapping[Any, Any]) -> dict[object, Any]:
    return {_canon(key): value for key, value in mapping.items()}


# --- the recursive merge --------------------------------------------------------------
# Each helper takes base, ours, theirs (any of them possibly _ABSENT) and returns the
# merged value (or _ABSENT: the key is gone) and whether a conflict was resolved as ours.

Merged = tuple[Any, bool]


def _merge_values(b: Any, o: Any, t: Any) -> Merged:
    if same(o, b):
        return t, False
    if same(t, b) or same(o, t):
        return o, False
    kinds = {type(value) for value in (b, o, t) if value is not _ABSENT}
    combine = _COMBINE.get(kinds.pop()) if len(kinds) == 1 else None
    if combine is None:
        return o, True
    return combine(b, o, t)


def _add_delta(t: Any, delta: int | float, o: Any) -> Merged:
    """``incr`` replayed: the delta onto theirs (from 0 if they deleted the key)."""
    if t is _ABSENT:
        return delta, False
    if type(t) in _NUMBERS:
        return t + delta, False
    return o, True


def _merge_dicts(b: Any, o: Any, t: Any) -> Merged:
    if o is _ABSENT or t is _ABSENT:
        return o, True  # deleted on one side, edited on the other
    base: dict[Any, Any] = {} if b is _ABSENT else b
    keys = {_canon(key): key for key in [*t, *o]}  # their order; our key objects
    values_of_b, values_of_o, values_of_t = map(_values_by_canon, (base, o, t))
    merged: dict[Any, Any] = {}
    conflicted = False
    for canon, key in keys.items():
        value, clash = _merge_values(
            values_of_b.get(canon, _ABSENT),
            values_of_o.get(canon, _ABSENT),
            values_of_t.get(canon, _ABSENT),
        )
        conflicted |= clash
        if value is _ABSENT:
            continue
        if key in merged:  # two keys Python treats as one (1 and True): keep ours whole
            return o, True
        merged[key] = value
    return merged, conflicted


def _merge_sets(b: Any, o: Any, t: Any) -> Merged:
    if o is _ABSENT or t is _ABSENT:
        return o, True
    in_base = set() if b is _ABSENT else {_canon(x) for x in b}
    in_ours = {_canon(x): x for x in o}
    merged = {c: x for c, x in ((_canon(x), x) for x in t) if c in in_ours or c not in in_base}
    merged.update((c, x) for c, x in in_ours.items() if c not in in_base)
    result = type(o)(merged.values())
    if len(result) != len(merged):  # two elements Python treats as one: keep ours
        return o, True
    return result, False


def _merge_lists(b: Any, o: Any, t: Any) -> Merged:
    base: Sequence[Any] = [] if b is _ABSENT else b
    ours: Sequence[Any] = [] if o is _ABSENT else o
    theirs: Sequence[Any] = [] if t is _ABSENT else t
    ours_edit, theirs_edit = _queue_edit(base, ours), _queue_edit(base, theirs)
    if ours_edit is None or theirs_edit is None:
        return o, True
    (ours_removed, ours_added), (theirs_removed, theirs_added) = ours_edit, theirs_edit
    removed = max(ours_removed, theirs_removed)
    kept = ours[removed - ours_removed : len(base) - ours_removed]
    merged = [*kept, *theirs_added, *ours_added]
    if not merged and (o is _ABSENT or t is _ABSENT):
        return _ABSENT, False
    return merged, False


def _queue_edit(base: Sequence[Any], items: Sequence[Any]) -> tuple[int, Sequence[Any]] | None:
    """``items`` read as (count removed from the front of base, items appended).

    The reading with the fewest removals wins. None if ``items`` keeps nothing of a
    non-empty base yet holds items: a replacement, not a queue edit.
    """
    for removed in range(len(base)):
        kept = len(base) - removed
        if kept <= len(items) and all(map(same, base[removed:], items[:kept])):
            return removed, items[kept:]
    if base and items:
        return None
    return len(base), items


_COMBINE: dict[type, Callable[[Any, Any, Any], Merged]] = {
    dict: _merge_dicts,
    set: _merge_sets,
    frozenset: _merge_sets,
    list: _merge_lists,
}
