"""``judge``: what a loaded payload is worth, as a table (pure: no Redis)."""

from __future__ import annotations

from typing import Any

import pytest

from pyramid_session_redis.codec import SafeCodec, SessionRecord
from pyramid_session_redis.exceptions import (
    InvalidSession_NotInBackend,
    InvalidSession_PastLifetime,
    InvalidSession_PayloadTimeout,
    UserBindingExpired,
)
from pyramid_session_redis.loading import judge
from pyramid_session_redis.settings import build_settings
from pyramid_session_redis.user_index import USER_KEY, binding_value

NOW = 1_700_000_000
SESSION_ID = "a" * 64
CODEC = SafeCodec()


def stored(data: dict[str, Any], created: int = NOW - 10, expires: int | None = None) -> bytes:
    return CODEC.encode(SessionRecord(data, created, None, expires))


def hashed(session_id: str) -> str:
    return "h-" + session_id[:4]


CASES = [
    pytest.param(None, {}, InvalidSession_NotInBackend, False, id="not-in-redis"),
    pytest.param(stored({"a": 1}), {}, None, False, id="usable"),
    pytest.param(
        stored({"a": 1}, expires=NOW - 1),
        {"set_redis_ttl": False},
        InvalidSession_PayloadTimeout,
        False,
        id="payload-expired-in-lru-mode",
    ),
    pytest.param(
        stored({"a": 1}, expires=NOW - 1), {}, None, False, id="payload-expiry-not-enforced"
    ),
    pytest.param(
        stored({"a": 1}, created=NOW - 100),
        {"max_lifetime": 100},
        InvalidSession_PastLifetime,
        True,
        id="past-max-lifetime-is-retired",
    ),
    pytest.param(
        stored({"a": 1}, created=NOW - 99), {"max_lifetime": 100}, None, False, id="within-lifetime"
    ),
    pytest.param(
        stored({USER_KEY: binding_value("alice", NOW)}),
        {},
        UserBindingExpired,
        False,
        id="user-binding-lapsed",
    ),
    pytest.param(
        stored({USER_KEY: binding_value("alice", NOW + 1)}), {}, None, False, id="user-bound"
    ),
]


@pytest.mark.parametrize(("raw", "options", "problem", "retire"), CASES)
def test_judge(raw: bytes | None, options: dict[str, Any], problem: Any, retire: bool) -> None:
    settings = build_settings("secret", **options)
    verdict = judge(raw, CODEC, settings, SESSION_ID, hashed, NOW)
    assert verdict.retire is retire
    assert verdict.undecodable is None
    if problem is None:
        assert verdict.problem is None and verdict.record is not None
        assert verdict.plain == CODEC.unpack(raw or b"")
    else:
        assert type(verdict.problem) is problem and verdict.record is None
        assert verdict.problem.session_id == SESSION_ID
        assert SESSION_ID not in str(verdict.problem) and "h-aaaa" in str(verdict.problem)


@pytest.mark.parametrize("raw", [b"", b"\x00garbage", b"\x04\xff\xff", b"{not json"])
def test_undecodable_bytes_are_left_to_the_policy(raw: bytes) -> None:
    verdict = judge(raw, CODEC, build_settings("secret"), SESSION_ID, hashed, NOW)
    assert verdict.undecodable is not None
    assert verdict.record is None and verdict.problem is None
