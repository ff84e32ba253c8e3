"""The write path: what happens to a request's session when it is saved.

``SessionWriter`` takes a request's :class:`~.state.SessionState` to Redis in one
command where it can:

- a new session is created with ``SET … NX`` (another id on a collision);
- a changed session is written with a compare-and-set (``persistence="cas"``): if
  another request wrote in between, the three parts (what this request loaded, what it
  wants to store, what Redis holds now) are merged and the write retried, backing off
  under heavy contention; a session deleted meanwhile is never written back;
- ``persistence="overwrite"`` writes with ``SET … XX`` (last writer wins, no
  resurrection either);
- ``persistence="lock"``: the request holds the session's lock since it loaded it, so
  nothing can have changed: the write (or refresh, or delete) releases the lock in the
  same round trip, and is refused if the lock's lease ran out (:mod:`.lock`).

Nothing here knows about cookies or responses: the session acts on the outcome.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .codec import Codec, DecodeError, SessionRecord
from .exceptions import SessionBackendError, SessionLockLost, SessionWriteConflict
from .lock import LockOutcome
from .merge import merge
from .store import CasOutcome, SessionStore, WrongTypeError

if TYPE_CHECKING:
    from .settings import SessionSettings
    from .state import SessionState

CREATE_ATTEMPTS = 3
BACKOFF_AFTER = 2  # compare-and-set conflicts merged at once before backing off
MAX_BACKOFF = 0.05  # seconds
Ttl = Callable[[], "int | None"]  # the TTL to write the state's current record with


class Saved(enum.Enum):
    """How a write of an existing session ended."""

    WRITTEN = "written"
    DELETED = "deleted"  # emptied, and deleted
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
        on_conflict: Callable[[tuple[str, ...]], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.codec = codec
        self.settings = settings
        self.on_conflict = on_conflict  # told the keys both requests changed (ours kept)
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

    def save(
        self, state: SessionState, key: str, plain: bytes, ttl: Ttl, lock: str | None
    ) -> Saved:
        """Write ``plain`` (the state's record, encoded) over the stored session at ``key``.

        ``ttl()``: the TTL for the state's record, asked again after a merge (which may
        adopt a timeout the other request set). ``lock``: the token of the session lock
        this request holds (``persistence = lock``): the write releases it, and is
        refused if the lease ran out.
        """
        if lock is not None:
            payload = self.codec.pack(plain)
            outcome = self.store.write_unlock(key, lock, payload, ttl())
            if outcome is LockOutcome.FENCED:
                raise SessionLockLost("the session lock's lease ran out before the write")
            if outcome is LockOutcome.GONE:
                return Saved.GONE
            state.mark_persisted(payload, plain)
            return Saved.WRITTEN
        if self.settings.persistence == "overwrite":
            payload = self.codec.pack(plain)
            if not self.store.overwrite(key, payload, ttl()):
                return Saved.GONE
            state.mark_persisted(payload, plain)
            return Saved.WRITTEN
        return self._compare_and_set(state, key, plain, ttl)

    def delete_emptied(self, state: SessionState, key: str, ttl: Ttl, lock: str | None) -> Saved:
        """Delete a session this request emptied (``invalidate_empty_session``).

        With compare-and-set, only if nobody wrote meanwhile: else the merged data is
        written (or, if the merge is empty too, deleted). Under the lock, at once.
        """
        if lock is not None:
            self.store.delete_unlock(key, lock)
            return Saved.DELETED
        if self.settings.persistence == "overwrite":
            self.store.delete(key)
            return Saved.DELETED
        return self._compare_and_set(state, key, None, ttl)

    def _compare_and_set(
        self, state: SessionState, key: str, plain: bytes | None, ttl: Ttl
    ) -> Saved:
        """Write ``plain`` (delete, if None) unless another request wrote; then merge, retry.

        A deletion that loses stays one while the merge is empty too.
        """
        store, codec, s = self.store, self.codec, self.settings
        delete = plain is None
        conflicts: set[str] = set()
        for attempt in range(s.cas_retries + 1):
            assert state.loaded is not None
            try:
                if plain is None:
                    outcome, current = store.compare_and_delete(key, state.loaded)
                else:
                    payload = codec.pack(plain)
                    outcome, current = store.compare_and_set(key, state.loaded, payload, ttl())
            except WrongTypeError:  # replaced by a non-string value: not ours to keep
                return Saved.GONE
            if outcome is CasOutcome.WRITTEN:
                self._report(conflicts)
                if plain is None:
                    return Saved.DELETED
                state.mark_persisted(payload, plain)
                return Saved.WRITTEN
            if current is None:  # CasOutcome.GONE: deleted meanwhile, never written back
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
                theirs = codec.decode_plain(fresh_plain)
            except (DecodeError, WrongTypeError):  # replaced by garbage: not ours to keep
                return Saved.GONE
            merged, clashes = merge_records(
                state.base(codec), state.record, theirs, state.increments
            )
            if clashes and s.on_conflict == "strict":
                raise SessionWriteConflict(
                    f"both requests changed {_names(clashes)}", keys=tuple(sorted(clashes))
                )
            conflicts.update(clashes)
            state.adopt(merged, current, fresh_plain)
            if delete and not merged.data:
                plain = None
                continue
            plain = codec.encode_plain(merged)
            if plain == fresh_plain:  # our changes are in Redis already
                state.mark_persisted(current, plain)
                self._report(conflicts)
                return Saved.WRITTEN
        raise SessionWriteConflict(f"gave up after {s.cas_retries + 1} conflicting writes")

    def _report(self, conflicts: set[str]) -> None:
        if conflicts:
            self.on_conflict(tuple(sorted(conflicts)))


def merge_records(
    base: SessionRecord, ours: SessionRecord, theirs: SessionRecord, increments: Mapping[str, Any]
) -> tuple[SessionRecord, tuple[str, ...]]:
    """Three-way merge of whole records: the data by :func:`~.merge.merge`, then the metadata.

    ``created`` is the stored one; ``timeout`` and ``expires`` are taken from the side
    that changed them (this request's when both did, except that a timeout adjusted only
    by the other request brings its expiry along).
    """
    result = merge(base.data, ours.data, theirs.data, increments)
    if ours.timeout == base.timeout and theirs.timeout != base.timeout:
        timeout, expires = theirs.timeout, theirs.expires
    else:
        timeout = ours.timeout
        expires = theirs.expires if ours.expires == base.expires else ours.expires
    return SessionRecord(result.data, theirs.created, timeout, expires), result.conflicts


def _names(keys: Iterable[str]) -> str:
    return ", ".join(repr(key) for key in sorted(keys))
