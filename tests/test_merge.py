"""The three-way merge of concurrent session writes, as tables (a pure function, no Redis).

Each row is base (what this request loaded), ours (what it stores), theirs (what another
request stored meanwhile) and the expected merged data and conflicts.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyramid_session_redis import serializer
from pyramid_session_redis.merge import MergeResult, merge, same

ABSENT = object()  # a table cell for "this version does not hold the key"
F = "_f_"  # Pyramid's flash queue key
UTC = timezone.utc
PLUS_ONE = timezone(timedelta(hours=1))


def shape(value: Any) -> Any:
    """An exact, order-free picture of a value for asserting results (independent of same())."""
    kind = type(value)
    if kind is dict:
        items = sorted((repr(shape(k)), shape(v)) for k, v in value.items())
        return "dict", items
    if kind in (list, tuple):
        return kind.__name__, [shape(item) for item in value]
    if kind in (set, frozenset):
        return kind.__name__, sorted(repr(shape(item)) for item in value)
    return kind.__name__, repr(value)


def containers(value: Any) -> list[Any]:
    """The mutable containers inside ``value`` (itself included)."""
    found: list[Any] = []
    if isinstance(value, (dict, list, set)):
        found.append(value)
    if isinstance(value, dict):
        for key, item in value.items():
            found += containers(key) + containers(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            found += containers(item)
    return found


def session(key: str, value: Any) -> dict[str, Any]:
    return {} if value is ABSENT else {key: value}


def check(
    base: dict[str, Any],
    ours: dict[str, Any],
    theirs: dict[str, Any],
    increments: dict[str, int | float] | None = None,
) -> MergeResult:
    """merge(), asserting that no input is modified and base's containers are not shared."""
    before = [copy.deepcopy(version) for version in (base, ours, theirs)]
    if increments is None:
        result = merge(base, ours, theirs)
    else:
        result = merge(base, ours, theirs, increments)
    for version, copied in zip((base, ours, theirs), before, strict=True):
        assert shape(version) == shape(copied)
    shared = {id(c) for c in containers(base)} & {id(c) for c in containers(result.data)}
    assert not shared, "the result shares a mutable container with base"
    serializer.dumps(result.data)  # storable as it is: no placeholder leaked into it
    return result


def row(
    name: str,
    base: Any,
    ours: Any,
    theirs: Any,
    expected: Any,
    conflict: bool = False,
    increment: int | float | None = None,
) -> Any:
    """A one-key table row: ``key`` holds base/ours/theirs/expected (ABSENT: no key)."""
    return pytest.param(base, ours, theirs, expected, conflict, increment, id=name)


# --- top-level keys ------------------------------------------------------------------

ONE_KEY = [
    row("unchanged everywhere", 1, 1, 1, 1),
    row("only we set it", ABSENT, 1, ABSENT, 1),
    row("only they set it", ABSENT, ABSENT, 2, 2),
    row("only we changed it", 1, 2, 1, 2),
    row("only they changed it", 1, 1, 2, 2),
    row("both made the same change", 1, 2, 2, 2),
    row("both added the same value", ABSENT, "x", "x", "x"),
    row("conflicting scalar: ours kept, reported", 1, 2, 3, 2, conflict=True),
    row("conflicting scalar added on both sides", ABSENT, "a", "b", "a", conflict=True),
    row("we deleted it, they did not touch it", 1, ABSENT, 1, ABSENT),
    row("they deleted it (logout), we did not touch it: not revived", "u1", "u1", ABSENT, ABSENT),
    row("both deleted it", 1, ABSENT, ABSENT, ABSENT),
    row("deleted by us, modified by them: ours (deleted)", 1, ABSENT, 2, ABSENT, conflict=True),
    row("modified by us, deleted by them: ours", 1, 2, ABSENT, 2, conflict=True),
    # type-strict comparison: == would call these unchanged or the same change
    row("we changed 1 to 1.0: a change", 1, 1.0, 1, 1.0),
    row("they changed 1 to True: a change", 1, 1, True, True),
    row("1.0 here, True there: conflict", 1, 1.0, True, 1.0, conflict=True),
    row("we changed a list to a tuple", [1], (1,), [1], (1,)),
    row("same dict, other key order: unchanged", {"a": 1, "b": 2}, {"b": 2, "a": 1}, {}, {}),
    # dicts: merged key by key
    row("nested prefs keys added on both sides", {}, {"a": 1}, {"b": 1}, {"a": 1, "b": 1}),
    row("nested prefs created on both sides", ABSENT, {"a": 1}, {"b": 1}, {"a": 1, "b": 1}),
    row(
        "nested key deleted by us, another added by them",
        {"a": 1},
        {},
        {"a": 1, "b": 2},
        {"b": 2},
    ),
    row(
        "nested conflict: ours kept there, the rest merged, top-level key reported",
        {"theme": "light"},
        {"theme": "dark"},
        {"theme": "blue", "lang": "fr"},
        {"theme": "dark", "lang": "fr"},
        conflict=True,
    ),
    row(
        "nested deleted vs modified: reported though nothing is kept",
        {"a": {"x": 1}},
        {},
        {"a": {"x": 2}},
        {},
        conflict=True,
    ),
    row(
        "deep dicts merged at every level",
        {"a": {"b": {"c": 1}}},
        {"a": {"b": {"c": 1, "d": 2}}},
        {"a": {"b": {"c": 1, "e": 3}, "f": 4}},
        {"a": {"b": {"c": 1, "d": 2, "e": 3}, "f": 4}},
    ),
    row(
        "dict deleted by us, edited by them: ours (deleted)",
        {"a": 1},
        ABSENT,
        {"a": 1, "b": 2},
        ABSENT,
        conflict=True,
    ),
    row("dict edited by us, deleted by them: ours", {"a": 1}, {"a": 2}, ABSENT, {"a": 2}, True),
    row("dict replaced by a scalar here, edited there", {"a": 1}, 0, {"a": 2}, 0, conflict=True),
    row("dicts on both sides over a non-dict base", None, {"a": 1}, {"b": 2}, {"a": 1}, True),
    row(
        "non-str nested keys",
        {1: "a"},
        {1: "a", 2: "b"},
        {1: "a", 3: "c"},
        {1: "a", 2: "b", 3: "c"},
    ),
    row(
        "nested key 1 replaced by True (ours)",
        {1: "a"},
        {True: "a"},
        {1: "a", 2: "b"},
        {True: "a", 2: "b"},
    ),
    row(
        "nested key 1 replaced by True (theirs)",
        {1: "a"},
        {1: "a", 2: "b"},
        {True: "a"},
        {True: "a", 2: "b"},
    ),
    row(
        "keys 1 and True added apart: ours kept whole", {}, {True: "a"}, {1: "b"}, {True: "a"}, True
    ),
    # sets: theirs, plus what we added, minus what we removed
    row("set: elements added on both sides", {"a"}, {"a", "b"}, {"a", "c"}, {"a", "b", "c"}),
    row("set: we removed one, they added one", {"a", "b"}, {"a"}, {"a", "b", "c"}, {"a", "c"}),
    row("set: they removed one, we added one", {"a", "b"}, {"a", "b", "c"}, {"b"}, {"b", "c"}),
    row("set: both removed the same", {"a", "b", "c"}, {"a", "c"}, {"a"}, {"a"}),
    row("set: created on both sides", ABSENT, {"a"}, {"b"}, {"a", "b"}),
    row(
        "frozenset stays a frozenset",
        frozenset("a"),
        frozenset("ab"),
        frozenset("ac"),
        frozenset("abc"),
    ),
    row("set here, frozenset there: conflict", set(), {"a"}, frozenset("b"), {"a"}, conflict=True),
    row("set deleted by us, added to by them", {"a"}, ABSENT, {"a", "b"}, ABSENT, conflict=True),
    row("set added to by us, deleted by them", {"a"}, {"a", "b"}, ABSENT, {"a", "b"}, True),
    row("set: they replaced 1 by True, we added 2", {1}, {1, 2}, {True}, {True, 2}),
    row("set: we replaced 1 by True, they added 2", {1}, {True}, {1, 2}, {True, 2}),
    row("set: 1 and True added apart: ours kept", set(), {True}, {1}, {True}, conflict=True),
    # lists are queues: removed from the front, appended at the end
    row("flash on both sides of a queue", ["m"], ["m", "a"], ["m", "b"], ["m", "b", "a"]),
    row("flash into an empty queue on both sides", ABSENT, ["a"], ["b"], ["b", "a"]),
    row("flash into an empty list on both sides", [], ["a"], ["b"], ["b", "a"]),
    row("pop_flash here, flash there: the new message survives", ["m"], ABSENT, ["m", "n"], ["n"]),
    row("flash here, pop_flash there: the new message survives", ["m"], ["m", "n"], ABSENT, ["n"]),
    row("pop_flash on both sides", ["m"], ABSENT, ABSENT, ABSENT),
    row("pop_flash here, they popped one: stays deleted", ["m", "n"], ABSENT, ["n"], ABSENT),
    row("they popped all, we popped one: stays deleted", ["m", "n"], ["n"], ABSENT, ABSENT),
    row("emptied here, one popped there: empty list", ["m", "n"], [], ["n"], []),
    row("carts appended on both sides", [1, 2], [1, 2, 3], [1, 2, 4], [1, 2, 4, 3]),
    row("carts created on both sides", ABSENT, [3], [4, 5], [4, 5, 3]),
    row(
        "capped histories: both dropped the oldest",
        ["a", "b", "c"],
        ["b", "c", "d"],
        ["b", "c", "e"],
        ["b", "c", "e", "d"],
    ),
    row(
        "front removals: the larger applies once",
        ["a", "b", "c"],
        ["b", "c"],
        ["c", "x"],
        ["c", "x"],
    ),
    row(
        "front removals: the larger applies once (ours)",
        ["a", "b", "c"],
        ["c", "x"],
        ["b", "c"],
        ["c", "x"],
    ),
    row(
        "ambiguous reading: fewest removals",
        ["a", "a"],
        ["a", "a", "a"],
        ["a", "a", "b"],
        ["a", "a", "b", "a"],
    ),
    row(
        "ambiguous reading: fewest removals (theirs)",
        ["a", "a"],
        ["a", "a", "b"],
        ["a", "a", "a"],
        ["a", "a", "a", "b"],
    ),
    row(
        "popped everything and appended: a replacement", ["a"], ["a", "b"], ["c"], ["a", "b"], True
    ),
    row("a replacement of ours conflicts with their append", ["a"], ["c"], ["a", "b"], ["c"], True),
    row(
        "item removed in the middle: conflict",
        ["a", "b", "c"],
        ["a", "c"],
        ["a", "b", "c", "d"],
        ["a", "c"],
        True,
    ),
    row("item inserted at the front: conflict", ["a"], ["z", "a"], ["a", "b"], ["z", "a"], True),
    row(
        "shorter than base, not a front removal: conflict",
        ["a", "b", "c"],
        ["a", "b"],
        ["a", "b", "c", "d"],
        ["a", "b"],
        True,
    ),
    row(
        "item edited in place: conflict",
        [{"q": 1}],
        [{"q": 2}],
        [{"q": 1}, {"q": 1}],
        [{"q": 2}],
        True,
    ),
    row("list here, tuple there: conflict", ["a"], ["a", "b"], ("a", "c"), ["a", "b"], True),
    row("tuples are values, not queues", (1, 2), (1, 2, 3), (1, 2, 4), (1, 2, 3), True),
]


@pytest.mark.parametrize(("base", "ours", "theirs", "expected", "conflict", "increment"), ONE_KEY)
def test_one_key(
    base: Any, ours: Any, theirs: Any, expected: Any, conflict: bool, increment: Any
) -> None:
    result = check(session("k", base), session("k", ours), session("k", theirs))
    assert shape(result.data) == shape(session("k", expected))
    assert result.conflicts == (("k",) if conflict else ())


INCREMENTS = [
    row("concurrent incr", 5, 6, 8, 9, increment=1),
    row("incr on both sides of a missing counter", ABSENT, 1, 1, 2, increment=1),
    row("incr where they created the counter", ABSENT, 2, 10, 12, increment=2),
    row("incr while they deleted the counter: counts from 0", 5, 7, ABSENT, 2, increment=2),
    row("incr by a float", 0.5, 1.0, 2.5, 3.0, increment=0.5),
    row(
        "incr with theirs unchanged: our exact value",
        0.1,
        0.1 + 0.2 + 0.3,
        0.1,
        0.1 + 0.2 + 0.3,
        increment=0.5,
    ),
    row("incr onto a string: conflict, ours kept", 5, 6, "x", 6, conflict=True, increment=1),
    row("incr onto a bool: conflict, ours kept", 5, 6, True, 6, conflict=True, increment=1),
    row(
        "incr onto a Decimal: conflict, ours kept", 5, 6, Decimal(7), 6, conflict=True, increment=1
    ),
    row(
        "an increment for a key ours no longer holds is ignored", 5, ABSENT, 5, ABSENT, increment=1
    ),
    # delete-then-incr: ours holds a plain value, so it is not an increment
    row("delete-then-incr, theirs unchanged", 5, 1, 5, 1),
    row("delete-then-incr, theirs changed: conflict", 5, 1, 7, 1, conflict=True),
]


@pytest.mark.parametrize(
    ("base", "ours", "theirs", "expected", "conflict", "increment"), INCREMENTS
)
def test_increments(
    base: Any, ours: Any, theirs: Any, expected: Any, conflict: bool, increment: Any
) -> None:
    increments = {} if increment is None else {"n": increment}
    result = check(session("n", base), session("n", ours), session("n", theirs), increments)
    assert shape(result.data) == shape(session("n", expected))
    assert result.conflicts == (("n",) if conflict else ())


# --- whole sessions -------------------------------------------------------------------

SESSIONS = [
    pytest.param(
        {"user": "u1", "n": 1},
        {"user": "u1", "n": 1, "a": 1},
        {"user": "u1", "n": 1, "b": 2},
        {},
        {"user": "u1", "n": 1, "a": 1, "b": 2},
        (),
        id="distinct keys added on both sides",
    ),
    pytest.param(
        {"logged_in": True, "theme": "light"},
        {"theme": "light", "cart": [1]},
        {"logged_in": True, "theme": "dark"},
        {},
        {"theme": "dark", "cart": [1]},
        (),
        id="managed_dict: a deleted login flag stays deleted, a key added survives",
    ),
    pytest.param(
        {"x": 1},
        {"x": 1, "added": "here"},
        {"y": 2},
        {},
        {"y": 2, "added": "here"},
        (),
        id="managed_dict: a key added while they replaced everything else",
    ),
    pytest.param(
        {F: ["m"], "n": 1, "prefs": {}, "cart": [], "x": 0},
        {"n": 2, "prefs": {"a": 1}, "cart": ["a"], "x": 1},
        {F: ["m", "b"], "n": 5, "prefs": {"b": 1}, "cart": ["b"], "x": 2},
        {"n": 1},
        {F: ["b"], "n": 6, "prefs": {"a": 1, "b": 1}, "cart": ["b", "a"], "x": 1},
        ("x",),
        id="the issue's mix: flash, incr, nested prefs, cart, a conflicting scalar",
    ),
    pytest.param(
        {"b": 0, "a": 0},
        {"b": 1, "a": 1, "c": 1},
        {"b": 2, "a": 2},
        {},
        {"b": 1, "a": 1, "c": 1},
        ("a", "b"),
        id="conflicts are reported sorted",
    ),
]


@pytest.mark.parametrize(
    ("base", "ours", "theirs", "increments", "expected", "conflicts"), SESSIONS
)
def test_sessions(
    base: dict[str, Any],
    ours: dict[str, Any],
    theirs: dict[str, Any],
    increments: dict[str, int],
    expected: dict[str, Any],
    conflicts: tuple[str, ...],
) -> None:
    result = check(base, ours, theirs, increments)
    assert shape(result.data) == shape(expected)
    assert result.conflicts == conflicts


def test_result_keys_follow_theirs_then_ours() -> None:
    result = merge({}, {"o1": 1, "t1": 1, "o2": 2}, {"t1": 1, "t2": 2})
    assert list(result.data) == ["t1", "t2", "o1", "o2"]


def test_values_taken_whole_are_ours_and_theirs_objects() -> None:
    cart, prefs = [1], {"a": 1}
    result = merge(
        {"cart": [], "prefs": {}}, {"cart": cart, "prefs": {}}, {"cart": [], "prefs": prefs}
    )
    assert result.data["cart"] is cart
    assert result.data["prefs"] is prefs


def test_merge_result_is_frozen() -> None:
    result = merge({}, {}, {})
    assert result == MergeResult({}, ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.conflicts = ("x",)  # type: ignore[misc]


# --- same(): == as strict as the serializer -------------------------------------------

NAN = float("nan")
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
AT_PLUS_ONE = datetime(2024, 5, 1, 13, 0, tzinfo=PLUS_ONE)  # the same instant
ID = uuid.UUID(int=7)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param(1, 1, True, id="equal ints"),
        pytest.param(1, 2, False, id="different ints"),
        pytest.param(1, 1.0, False, id="int vs float"),
        pytest.param(1, True, False, id="int vs bool"),
        pytest.param(0, False, False, id="0 vs False"),
        pytest.param(None, None, True, id="None"),
        pytest.param(None, 0, False, id="None vs 0"),
        pytest.param(1.5, 1.5, True, id="equal floats"),
        pytest.param(0.0, -0.0, False, id="0.0 vs -0.0"),
        pytest.param(NAN, float("nan"), True, id="nan vs nan"),
        pytest.param(math.inf, math.inf, True, id="inf"),
        pytest.param("a", "a", True, id="equal str"),
        pytest.param("a", b"a", False, id="str vs bytes"),
        pytest.param(b"a", b"a", True, id="equal bytes"),
        pytest.param(Decimal("1.0"), Decimal("1.0"), True, id="equal Decimal"),
        pytest.param(Decimal("1.0"), Decimal("1.00"), False, id="Decimal 1.0 vs 1.00"),
        pytest.param(Decimal(1), 1, False, id="Decimal vs int"),
        pytest.param(AT, AT.replace(), True, id="equal datetimes"),
        pytest.param(AT, AT_PLUS_ONE, False, id="same instant, other offset"),
        pytest.param(AT.replace(tzinfo=None), AT, False, id="naive vs aware"),
        pytest.param(date(2024, 5, 1), datetime(2024, 5, 1), False, id="date vs datetime"),
        pytest.param(time(12, tzinfo=UTC), time(13, tzinfo=PLUS_ONE), False, id="time offsets"),
        pytest.param(time(12), time(12), True, id="equal times"),
        pytest.param(timedelta(1), timedelta(days=1), True, id="equal timedeltas"),
        pytest.param(ID, uuid.UUID(int=7), True, id="equal UUIDs"),
        pytest.param([1, 2], [1, 2], True, id="equal lists"),
        pytest.param([1, 2], (1, 2), False, id="list vs tuple"),
        pytest.param([1, 2], [2, 1], False, id="list order"),
        pytest.param([1, 2], [1, 2, 3], False, id="list prefix"),
        pytest.param([1, 2, 3], [1, 2], False, id="list longer"),
        pytest.param([1], [1.0], False, id="list items type-strict"),
        pytest.param((1, [2]), (1, [2]), True, id="equal tuples"),
        pytest.param({"a": 1, "b": 2}, {"b": 2, "a": 1}, True, id="dict order irrelevant"),
        pytest.param({"a": 1}, {"a": 1.0}, False, id="dict values type-strict"),
        pytest.param({"a": 1}, {"b": 1}, False, id="dict keys differ"),
        pytest.param({"a": None}, {"b": None}, False, id="dict keys differ, values None"),
        pytest.param({"a": 1}, {"a": 1, "b": 2}, False, id="dict subset"),
        pytest.param({"a": 1, "b": 2}, {"a": 1}, False, id="dict superset"),
        pytest.param({1: "x"}, {True: "x"}, False, id="dict key 1 vs True"),
        pytest.param({1: "x"}, {1.0: "x"}, False, id="dict key 1 vs 1.0"),
        pytest.param({1: "x"}, {1: "x"}, True, id="equal int keys"),
        pytest.param({(1,): "x"}, {(True,): "x"}, False, id="tuple keys type-strict"),
        pytest.param({(1, "a"): "x"}, {(1, "a"): "x"}, True, id="equal tuple keys"),
        pytest.param({frozenset([1]): 0}, {frozenset([True]): 0}, False, id="frozenset keys"),
        pytest.param({frozenset([1]): 0}, {frozenset([1]): 0}, True, id="equal frozenset keys"),
        pytest.param({Decimal("1.0"): 0}, {Decimal("1.00"): 0}, False, id="Decimal keys"),
        pytest.param({AT: 0}, {AT_PLUS_ONE: 0}, False, id="datetime keys"),
        pytest.param({0.0: 0}, {-0.0: 0}, False, id="float keys"),
        pytest.param({1, 2}, {2, 1}, True, id="equal sets"),
        pytest.param({1, 2}, {1}, False, id="set superset"),
        pytest.param({1}, {1, 2}, False, id="set subset"),
        pytest.param({1}, {True}, False, id="set elements type-strict"),
        pytest.param({1}, frozenset([1]), False, id="set vs frozenset"),
        pytest.param({float("nan"), float("nan")}, {NAN}, False, id="two nans vs one"),
        pytest.param(frozenset(["a"]), frozenset(["a"]), True, id="equal frozensets"),
        pytest.param({"a": [1, {"b": {1}}]}, {"a": [1, {"b": {1}}]}, True, id="nested equal"),
        pytest.param({"a": [1, {"b": {1}}]}, {"a": [1, {"b": {True}}]}, False, id="nested differ"),
    ],
)
def test_same(a: Any, b: Any, expected: bool) -> None:
    assert same(a, b) is expected
    assert same(b, a) is expected


# --- properties -----------------------------------------------------------------------

PROPERTY = settings(max_examples=150, deadline=None, database=None, derandomize=True)

# Small domains so that generated versions often share keys, items and values.
KEYS = st.sampled_from("abcd")
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.floats(-2, 2, allow_nan=False).map(lambda f: round(f, 1)),
    st.sampled_from(["", "x", "y"]),
    st.sampled_from([b"", b"x"]),
    st.sampled_from([Decimal("1"), Decimal("1.0")]),
)
HASHABLES = st.recursive(SCALARS, lambda inner: st.tuples(inner, inner), max_leaves=3)
VALUES = st.recursive(
    st.one_of(SCALARS, st.sets(st.integers(0, 3)), st.frozensets(st.sampled_from("xyz"))),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner),
        st.dictionaries(KEYS, inner, max_size=3),
        st.dictionaries(HASHABLES, inner, max_size=2),
    ),
    max_leaves=6,
)
SESSIONS_DATA = st.dictionaries(KEYS, VALUES, max_size=4)


def roundtrip(value: Any) -> Any:
    return serializer.loads(serializer.dumps(value))


def normal_json(value: Any) -> str:
    """The serialized form with dict order normalized (str keys, homogeneous sets only)."""
    return json.dumps(json.loads(serializer.dumps(value)), sort_keys=True)


# Values whose serialized form is canonical up to dict order: str keys, sortable sets.
JSONISH = st.recursive(
    st.one_of(
        SCALARS,
        st.sets(st.integers(0, 3)),
        st.frozensets(st.sampled_from("xyz")),
        st.just(float("nan")),
        st.just(-0.0),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.tuples(inner), st.dictionaries(KEYS, inner, max_size=3)
    ),
    max_leaves=6,
)


@PROPERTY
@given(VALUES)
def test_same_holds_for_a_serializer_roundtrip(value: Any) -> None:
    assert same(value, roundtrip(value))
    assert same(value, copy.deepcopy(value))


@PROPERTY
@given(JSONISH, JSONISH)
def test_same_means_serialized_the_same(a: Any, b: Any) -> None:
    assert same(a, b) is (normal_json(a) == normal_json(b))


@PROPERTY
@given(SESSIONS_DATA, SESSIONS_DATA, SESSIONS_DATA)
def test_each_key_follows_the_side_that_changed_it(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    result = check(base, copy.deepcopy(ours), copy.deepcopy(theirs))
    data = result.data
    for key in {*base, *ours, *theirs}:
        b, o, t = (version.get(key, ABSENT) for version in (base, ours, theirs))
        merged = data.get(key, ABSENT)
        if same(o, b):
            assert same(merged, t), key  # includes: never revived, never dropped
        elif same(t, b) or same(o, t):
            assert same(merged, o), key
        if key in result.conflicts:
            assert not same(o, b) and not same(t, b) and not same(o, t)
    assert list(result.conflicts) == sorted(set(result.conflicts))


@PROPERTY
@given(SESSIONS_DATA, SESSIONS_DATA)
def test_an_unchanged_side_gives_the_other(base: dict[str, Any], other: dict[str, Any]) -> None:
    for result, expected in [
        (check(base, other, copy.deepcopy(base)), other),
        (check(base, copy.deepcopy(base), other), other),
        (check(base, other, copy.deepcopy(other)), other),
    ]:
        assert same(result.data, expected)
        assert result.conflicts == ()


@st.composite
def disjoint_edits(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    base = draw(SESSIONS_DATA)
    ours, theirs = copy.deepcopy(base), copy.deepcopy(base)
    for version, keys in ((ours, "ab"), (theirs, "cd")):
        for key in keys:
            action = draw(st.sampled_from(["keep", "set", "delete"]))
            if action == "set":
                version[key] = draw(VALUES)
            elif action == "delete":
                version.pop(key, None)
    return base, ours, theirs


@PROPERTY
@given(disjoint_edits())
def test_edits_to_different_keys_all_survive(
    versions: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    base, ours, theirs = versions
    expected = {k: v for k, v in theirs.items() if k in "cd"} | {
        k: v for k, v in ours.items() if k in "ab"
    }
    result = check(base, ours, theirs)
    assert same(result.data, expected)
    assert result.conflicts == ()


@st.composite
def queue_edits(draw: st.DrawFn) -> tuple[list[int], int, list[int], int, list[int]]:
    """A queue of distinct items and two edits: (front removals, appends) per side."""
    base = list(range(draw(st.integers(0, 5))))
    fresh = iter(range(100, 200))
    edits = []
    for _ in range(2):
        removed = draw(st.integers(0, len(base)))
        count = draw(st.integers(0, 3))
        if removed == len(base) and base:
            count = 0  # keeping nothing and adding new items would be a replacement
        edits.append((removed, [next(fresh) for _ in range(count)]))
    (ours_removed, ours_added), (theirs_removed, theirs_added) = edits
    return base, ours_removed, ours_added, theirs_removed, theirs_added


@PROPERTY
@given(queue_edits())
def test_queue_edits_keep_every_append_and_apply_removals_once(
    edit: tuple[list[int], int, list[int], int, list[int]],
) -> None:
    base, ours_removed, ours_added, theirs_removed, theirs_added = edit
    ours = base[ours_removed:] + ours_added
    theirs = base[theirs_removed:] + theirs_added
    result = check({"q": base}, {"q": ours}, {"q": theirs})
    expected = base[max(ours_removed, theirs_removed) :] + theirs_added + ours_added
    if ours == base:
        expected = theirs
    elif theirs == base or ours == theirs:
        expected = ours
    assert result.data == {"q": expected}
    assert result.conflicts == ()


COUNTERS = st.one_of(st.integers(-5, 5), st.floats(-5, 5).map(lambda f: round(f, 2)))


@PROPERTY
@given(
    st.one_of(st.just(ABSENT), st.integers(-5, 5)),
    COUNTERS,
    st.one_of(st.just(ABSENT), st.integers(-5, 5)),
)
def test_concurrent_increments_add_up(start: Any, ours_delta: Any, theirs_delta: Any) -> None:
    """incr on both sides: ours' delta lands on theirs (theirs absent: counted from 0)."""
    initial = 0 if start is ABSENT else start
    theirs = ABSENT if theirs_delta is ABSENT else initial + theirs_delta
    result = check(
        session("n", start),
        session("n", initial + ours_delta),
        session("n", theirs),
        {"n": ours_delta},
    )
    expected = ours_delta if theirs is ABSENT else theirs + ours_delta
    if same(session("n", theirs), session("n", start)):
        expected = initial + ours_delta  # they did not touch it: ours, exactly
    assert same(result.data, {"n": expected})
    assert result.conflicts == ()
