"""The end-of-request decisions, as tables (pure functions, no Redis)."""

from __future__ import annotations

from typing import Any

import pytest

from pyramid_session_redis.plan import Cookie, Write, plan_cookie, plan_write

WRITE_BASE: dict[str, Any] = {
    "stored": True,
    "cookie_sent": False,
    "has_data": True,
    "had_data": True,
    "force_store": False,
    "dirty": False,
    "invalidate_empty": True,
    "refresh_due": False,
}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, Write.NOTHING),
        ({"dirty": True}, Write.WRITE),
        ({"refresh_due": True}, Write.REFRESH),
        ({"dirty": True, "refresh_due": True}, Write.WRITE),
        ({"has_data": False, "dirty": True}, Write.DELETE),
        ({"has_data": False, "dirty": True, "invalidate_empty": False}, Write.WRITE),
        ({"has_data": False, "had_data": False}, Write.NOTHING),
        # new sessions: stored only when a cookie points to them
        ({"stored": False, "cookie_sent": True}, Write.CREATE),
        ({"stored": False, "cookie_sent": False}, Write.NOTHING),
        ({"stored": False, "cookie_sent": True, "has_data": False}, Write.NOTHING),
        (
            {"stored": False, "cookie_sent": True, "has_data": False, "force_store": True},
            Write.CREATE,
        ),
        ({"stored": False, "cookie_sent": False, "force_store": True}, Write.NOTHING),
        ({"stored": False, "cookie_sent": False, "dirty": True}, Write.NOTHING),
    ],
)
def test_plan_write(changes: dict[str, Any], expected: Write) -> None:
    assert plan_write(**{**WRITE_BASE, **changes}) is expected


COOKIE_BASE: dict[str, Any] = {
    "allowed": True,
    "failed": False,
    "had_cookie": True,
    "will_create": False,
    "will_delete": False,
    "id_changed": False,
    "recookie": False,
}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, Cookie.KEEP),
        ({"will_create": True}, Cookie.SET),
        ({"will_create": True, "allowed": False}, Cookie.KEEP),
        ({"id_changed": True}, Cookie.SET),
        ({"will_delete": True}, Cookie.EXPIRE),
        ({"will_delete": True, "had_cookie": False}, Cookie.KEEP),
        ({"will_delete": True, "allowed": False}, Cookie.KEEP),
        ({"will_delete": True, "will_create": True}, Cookie.SET),
        ({"recookie": True}, Cookie.SET),
        ({"recookie": True, "allowed": False}, Cookie.KEEP),
        # the view raised with cookie_on_exception off: only a deleted session's cookie
        # is expired (as in 1.8); nothing is set
        ({"failed": True, "will_create": True}, Cookie.KEEP),
        ({"failed": True, "id_changed": True}, Cookie.KEEP),
        ({"failed": True, "recookie": True}, Cookie.KEEP),
        ({"failed": True, "will_delete": True}, Cookie.EXPIRE),
        ({"failed": True, "will_delete": True, "will_create": True}, Cookie.EXPIRE),
        ({"failed": True, "will_delete": True, "had_cookie": False}, Cookie.KEEP),
        ({"failed": True, "will_delete": True, "allowed": False}, Cookie.KEEP),
    ],
)
def test_plan_cookie(changes: dict[str, Any], expected: Cookie) -> None:
    assert plan_cookie(**{**COOKIE_BASE, **changes}) is expected
