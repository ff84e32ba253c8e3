"""The write path: what happens to a request's session when it is saved.

``SessionWriter`` takes a request's :class:`~.state.SessionState` to Redis in one
command where it can:

- a new session is created with ``SET … NX`` (another id on a collision);
- a changed session is written with a compare-and-set (``persistence="cas"``): if
  another request wrote in between, the three parts (what this request loaded, what it
  wants to store, what Redis holds now) are merged and the write retried, backing off
  under heavy contention; a session deleted meanwhile is never written back;
- a stamped session (codec.py) that the request changed only a few keys of gets those
  keys appended as a patch frame, compared by its stamp and length (no rewrite, no
  recompression; the frames are folded in by a later whole write);
- ``persistence="overwrite"`` writes with ``SET … XX`` (last writer wins, no
  resurrection either);
- ``persistence="lock"``: the request holds the session's lock since it loaded it, so
  nothing can have changed: the write (or refresh, or delete) releases the lock in the
  same round trip, and is refused if the lock's lease ran out (:mod:`.lock`);
- a session moved to a new id (``regenerate_id()``) is written under the new key and
  deleted under the old one by one script, with the same rules per mode (compare-and-set
  and merge, overwrite, or under the lock, which the move releases).

With ``sign_payloads`` the stored bytes carry a MAC bound to their key: they are packed
and unpacked by the codec bound to that key (:func:`~.integrity.codec_for_key`).

Nothing here knows about cookies or responses: the session acts on the outcome.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .codec import Codec, DecodeError, SafeCodec, SessionRecord
from .exceptions import (
    SessionBackendError,
    SessionLockLost,
    SessionTooLarge,
    SessionWriteConflict,
)
from .integrity import codec_for_key
from .lock import LockOutcome
from .merge import merge
from .store import CasOutcome, MoveOutcome, SessionStore, WrongTypeError

if TYPE_CHECKING:
    from .settings import SessionSettings
    from .state import SessionState

Ttl = Callable[[], "int | None"]  # the TTL to write the state's current record with
CREATE_ATTEMPTS = 3
BACKOFF_AFTER = 2  # compare-and-set conflicts merged at once before backing off
MAX_BACKOFF = 0.05  # seconds


class Saved(enum.Enum):
    """How a write of an existing session ended."""

    WRITTEN = "written"
    DELETED = "deleted"  # emptied, and deleted
    GONE = "gone"  # deleted (or replaced by foreign data) meanwhile: not written back


class MoveTarget:
    """Where ``regenerate_id()`` moves a session: an id and its key; ``fresh`` gives
    another pair should the key be taken (an id collision)."""

    __slots__ = ("fresh", "key", "session_id")

    def __init__(self, session_id: str, key: str, fresh: Callable[[], tuple[str, str]]) -> None:
        self.session_id, self.key, self.fresh = session_id, key, fresh

    def retarget(self) -> None:
        self.session_id, self.key = self.fresh()


_MOVED_AS_CAS = {
    MoveOutcome.MOVED: CasOutcome.WRITTEN,
    MoveOutcome.CONFLICT: CasOutcome.CONFLICT,
    MoveOutcome.GONE: CasOutcome.GONE,
}


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
        # Stamps and patches are SafeCodec's own (unsigned: a MAC covers a whole value).
        self.patches = codec if isinstance(codec, SafeCodec) else None

    def can_patch(self, state: SessionState) -> bool:
        """Whether a compare-and-set of ``state`` may append a patch (see the module)."""
        return (
            self.patches is not None
            and self.settings.persistence == "cas"
            and state.loaded is not None
            and self.patches.stamp(state.loaded) is not None
            and state.patchable
        )

    def save_patch(
        self, state: SessionState, key: str, sets: dict[str, Any], deletes: list[str], ttl: Ttl
    ) -> Saved:
        """Store the request's changes to a few keys (:meth:`can_patch`) as a patch frame,
        or, when the stored value has no room for it, the whole record."""
        codec = self.patches
        assert codec is not None and state.loaded is not None
        frame = codec.patch_frame(sets, deletes)
        # A deleted value is gone from the stored bytes at once (a frame would only hide it).
        plain = state.loaded_plain or b""
        if deletes or not codec.can_append(state.loaded, plain, frame):
            return self.save(state, key, codec.encode_plain(state.record), ttl, None)
        return self._compare_and_set(state, key, None, ttl, frame=frame)

    def create(
        self,
        state: SessionState,
        key_of: Callable[[str], str],
        ids: Callable[[], str],
        first: str,
        ttl: int | None,
    ) -> str:
        """Store a new session under ``first`` (or a fresh id on a collision); return the id."""
        plain = self.codec.encode_plain(state.record)
        session_id = first
        for _ in range(CREATE_ATTEMPTS):
            key = key_of(session_id)
            payload = self._pack(key, plain)
            if self.store.create(key, payload, ttl):
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
            try:
                payload = self._pack(key, plain)
            except SessionTooLarge:  # nothing is written: free the session at once
                self.store.release(key, lock)
                raise
            outcome = self.store.write_unlock(key, lock, payload, ttl())
            if outcome is LockOutcome.FENCED:
                raise SessionLockLost("the session lock's lease ran out before the write")
            if outcome is LockOutcome.GONE:
                return Saved.GONE
            state.mark_persisted(payload, plain)
            return Saved.WRITTEN
        if self.settings.persistence == "overwrite":
            payload = self._pack(key, plain)
            if not self.store.overwrite(key, payload, ttl()):
                return Saved.GONE
            state.mark_persisted(payload, plain)
            return Saved.WRITTEN
        return self._compare_and_set(state, key, plain, ttl)

    def move(
        self,
        state: SessionState,
        key: str,
        target: MoveTarget,
        plain: bytes,
        ttl: Ttl,
        lock: str | None,
    ) -> Saved:
        """Write ``plain`` at ``target`` and delete ``key`` in one round trip.

        As :meth:`save` (the lock, overwrite, or compare-and-set with merge), never
        leaving both keys or neither; ``target`` ends on the id actually used.
        """
        if lock is not None or self.settings.persistence == "overwrite":
            outcome, _, payload = self._move_once(key, target, plain, ttl(), None, lock)
            if outcome is MoveOutcome.FENCED:
                raise SessionLockLost("the session lock's lease ran out before the write")
            if outcome is not MoveOutcome.MOVED:
                return Saved.GONE
            state.mark_persisted(payload, plain)
            return Saved.WRITTEN
        return self._compare_and_set(state, key, plain, ttl, target=target)

    def _move_once(
        self,
        key: str,
        target: MoveTarget,
        plain: bytes,
        ttl: int | None,
        expected: bytes | None,
        lock: str | None,
    ) -> tuple[MoveOutcome, bytes | None, bytes]:
        """One move attempt, retried on a taken new key; the outcome, old bytes, payload."""
        for _ in range(CREATE_ATTEMPTS):
            payload = self._pack(target.key, plain)
            outcome, current = self.store.move(
                key, target.key, payload, ttl, expected=expected, token=lock
            )
            if outcome is not MoveOutcome.TAKEN:
                return outcome, current, payload
            target.retarget()  # id collision: never touch someone else's session
        raise SessionBackendError("could not find a free session id")

    def _pack(self, key: str, plain: bytes) -> bytes:
        return codec_for_key(self.codec, key).pack(plain)

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
        self,
        state: SessionState,
        key: str,
        plain: bytes | None,
        ttl: Ttl,
        target: MoveTarget | None = None,
        frame: bytes | None = None,
    ) -> Saved:
        """Write ``plain`` (delete, if None) unless another request wrote; then merge, retry.

        A deletion that loses stays one while the merge is empty too. With a ``target``
        the write goes there and ``key`` is deleted (a move). With a ``frame`` the first
        attempt appends it (:meth:`save_patch`); after a conflict the merge is written whole.
        """
        store, codec, s = self.store, self.codec, self.settings
        delete = plain is None and frame is None
        conflicts: set[str] = set()
        for attempt in range(s.cas_retries + 1):
            assert state.loaded is not None
            stamp = None if self.patches is None else self.patches.stamp(state.loaded)
            try:
                if frame is not None:
                    assert self.patches is not None and stamp is not None
                    payload = state.loaded + frame
                    patched = self.patches.patched_plain(state.loaded_plain or b"", frame)
                    outcome, current = store.append_if_unchanged(
                        key, stamp, len(state.loaded), frame, ttl()
                    )
                elif plain is None:
                    outcome, current = store.compare_and_delete(key, state.loaded)
                elif target is not None:
                    moved, current, payload = self._move_once(
                        key, target, plain, ttl(), state.loaded, None
                    )
                    outcome = _MOVED_AS_CAS[moved]
                else:
                    payload = self._pack(key, plain)
                    outcome, current = store.compare_and_set(
                        key, state.loaded, payload, ttl(), stamp=stamp
                    )
            except WrongTypeError:  # replaced by a non-string value: not ours to keep
                return Saved.GONE
            if outcome is CasOutcome.WRITTEN:
                self._report(conflicts)
                if frame is not None:
                    state.mark_persisted(payload, patched)
                    return Saved.WRITTEN
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
                fresh_plain = codec_for_key(codec, key).unpack(current)
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
            frame = None  # the merge is written whole
            if delete and not merged.data:
                plain = None
                continue
            plain = codec.encode_plain(merged)
            if plain == fresh_plain and target is None:  # our changes are in Redis already
                expiry = ttl()
                if expiry is not None:  # the skipped write would have set our TTL
                    store.refresh(key, expiry)
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
