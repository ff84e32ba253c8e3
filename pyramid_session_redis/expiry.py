"""When a session expires, and what a request must do about it: pure, no I/O.

A session expires by Redis' TTL on its key (the default), by an expiry time carried in
its payload (LRU mode, ``timeout_trigger``, 1.8's layout), at the end of its
``max_lifetime``, or never. These functions read a record and the settings and say
what holds; the session acts on the answer.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .codec import SessionRecord
    from .settings import SessionSettings

_NEVER = -(2**62)


def expiry_enforced(s: SessionSettings) -> bool:
    """A payload's expiry time counts (with no timeout, one set explicitly does too)."""
    return s.payload_expiry or s.timeout is None


def session_timeout(s: SessionSettings, record: SessionRecord) -> int | None:
    """The session's sliding timeout: its own (``adjust_session_timeout``) or the factory's."""
    return record.timeout or s.timeout


def lifetime_left(s: SessionSettings, record: SessionRecord, current: int) -> float:
    """Seconds until ``max_lifetime`` ends the session (infinity without one)."""
    lifetime = s.max_lifetime
    return math.inf if lifetime is None else record.created + lifetime - current


def capped_ttl(
    s: SessionSettings, record: SessionRecord | None, ttl: int | None, current: int
) -> int | None:
    """``ttl`` for the key, never reaching past the session's ``max_lifetime``."""
    if record is None or s.max_lifetime is None:
        return ttl
    left = max(1, int(lifetime_left(s, record, current)))
    return left if ttl is None else min(ttl, left)


def normalize(s: SessionSettings, record: SessionRecord) -> None:
    """Bring a loaded record to what these settings store.

    The safe codec stores ``timeout`` only when it differs from the factory's, and an
    expiry only when the payload tracks one; 1.8's layout always carries both.
    """
    if s.legacy_layout:
        record.timeout = record.timeout or s.timeout
    elif record.timeout == s.timeout:
        record.timeout = None
    if not expiry_enforced(s):
        record.expires = None


@dataclasses.dataclass(frozen=True)
class Refresh:
    """What a request that loaded a session must do about its expiry.

    ``due``: slide the key's TTL at the end (a refresh, or ride on a write);
    ``expires``: write this new expiry time into the payload (None: leave it).
    """

    due: bool = False
    expires: int | None = None


def plan_refresh(s: SessionSettings, record: SessionRecord, current: int) -> Refresh:
    """The expiry work of a request that loaded ``record`` at ``current``."""
    timeout = session_timeout(s, record)
    if timeout is None or not (s.redis_ttl or s.payload_expiry):
        return Refresh()  # no expiry at all (1.8's pure LRU mode): nothing to refresh
    remaining = _NEVER if record.expires is None else record.expires - current
    if s.refresh_on_read:
        # GETEX slid the TTL by the factory's timeout: fix a per-session one, or one
        # that reaches past max_lifetime (capped when written).
        due = timeout != s.timeout or lifetime_left(s, record, current) < timeout
        # 1.8's layout: keep ``x`` ahead for 1.8 readers, rewriting at most once per
        # half timeout (1.8 itself rewrote on every read).
        slide = s.payload_expiry and remaining < timeout // 2
        return Refresh(due, current + timeout if slide else None)
    trigger = s.timeout_trigger
    slide = remaining <= trigger if trigger is not None else remaining < timeout
    return Refresh(False, current + timeout if slide else None)
