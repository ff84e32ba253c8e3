"""The write path: what happens to a request's session when it is saved.

``SessionWriter`` takes a request's :class:`~.state.SessionState` to Redis in one
command where it can:

- a new session is created with ``SET … NX`` (another id on a collision);
- a changed session is written with a compare-and-set (``persistence="cas"``): if
  another request wrote in between, the three parts (what this request loaded, what it
  wants to store, what Redis holds now) are merged and the write retried, backing off
  under heavy contention; a session deleted meanwhile is never written back;
- ``persistence="overwrite"`` writes with ``SET … XX`` (last writer wins, no
  resurrection either).

Nothing here knows about cookies or responses: the session acts on the outcome.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .codec import Codec, DecodeError
from .exceptions import SessionBackendError, SessionWriteConflict
from .store import CasOutcome, SessionStore, WrongTypeError

if TYPE_CHECKING:
    from .settings import SessionSettings
    from .state import SessionState

CREATE_ATTEMPTS = 3
BACKOFF_AFTER = 2  # compare-and-set conflicts merged at once before backing off
MAX_BACKOFF = 0.05  # seconds


class Saved(enum.Enum):
    """How a write of an existing session ended."""

    WRITTEN = "written"
    GONE = "gone"  # deleted (or replaced by foreign data) meanwhile: not written back


def backoff_limit(attempt: int) -> float:
    """Upper bound of the random pause before retry ``attempt`` (0-based), in seconds.

    No pause for the first ``BACKOFF_AFTER`` retries (a conflict is usually one other
    request), then 1 ms doubling per attempt, capped at ``MAX_BACKOFF``.
    """
    if attempt < BACKOFF_AFTER:
        return 0.0
    return min(MAX_BACKOFF, 0.001 * 2.0**attempt)


class SessionWriter:
    """Saves sessions for one request through ``store``; see the module docstring."""

    def __init__(
        self,
        store: SessionStore,
        codec: Codec,
        settings: SessionSettings,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.codec = codec
        self.settings = settings
        self.sleep = sleep

    def create(
        self,
        state: SessionState,
        key_of: Callable[[str], str],
        ids: Callable[[], str],
        first: str,
        ttl: int | None,
    ) -> str:
        """Store a new session under ``first`` (or a fresh id on a collision); return the id."""
        codec = self.codec
        plain = codec.encode_plain(state.record)
        payload = codec.pack(plain)
        session_id = first
        for _ in range(CREATE_ATTEMPTS):
            if self.store.create(key_of(session_id), payload, ttl):
                state.mark_persisted(payload, plain)
                return session_id
            session_id = ids()  # id collision: never touch someone else's session
        raise SessionBackendError("could not find a free session id")

    def save(self, state: SessionState, key: str, plain: bytes, ttl: int | None) -> Saved:
        """Write ``plain`` (the state's record, encoded) over the stored session at ``key``."""
        payload = self.codec.pack(plain)
        if self.settings.persistence == "overwrite":
            if not self.store.overwrite(key, payload, ttl):
                return Saved.GONE
            state.mark_persisted(payload, plain)
            return Saved.WRITTEN
        return self._compare_and_set(state, key, plain, payload, ttl)

    def _compare_and_set(
        self, state: SessionState, key: str, plain: bytes, payload: bytes, ttl: int | None
    ) -> Saved:
        store, codec, s = self.store, self.codec, self.settings
        for attempt in range(s.cas_retries + 1):
            assert state.loaded is not None
            try:
                outcome, current = store.compare_and_set(key, state.loaded, payload, ttl)
            except WrongTypeError:  # replaced by a non-string value: not ours to keep
                return Saved.GONE
            if outcome is CasOutcome.WRITTEN:
                state.mark_persisted(payload, plain)
                return Saved.WRITTEN
            if outcome is CasOutcome.GONE or current is None:
                return Saved.GONE
            try:
                pause = backoff_limit(attempt)
                if pause:
                    # Heavy contention: let the other writers through, then merge onto a
                    # fresh copy (the one the server returned has aged meanwhile).
                    self.sleep(random.uniform(0, pause))
                    current = store.load(key, None)
                    if current is None:
                        return Saved.GONE
                fresh_plain = codec.unpack(current)
                fresh = codec.decode_plain(fresh_plain)
            except (DecodeError, WrongTypeError):  # replaced by garbage: not ours to keep
                return Saved.GONE
            state.rebase(fresh, current, fresh_plain, codec, s.detect_changes)
            plain = codec.encode_plain(state.record)
            if plain == fresh_plain:  # our changes are in Redis already
                state.mark_persisted(current, plain)
                return Saved.WRITTEN
            payload = codec.pack(plain)
        raise SessionWriteConflict(f"gave up after {s.cas_retries + 1} conflicting writes")
