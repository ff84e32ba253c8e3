"""A session's data and what the current request did to it; no I/O.

``SessionState`` owns the managed dict and records, per top-level key, what the
request changed: keys set, keys deleted, counter increments, and keys whose
mutable values were handed out (they may be mutated in place). From that it
answers "did the payload change?" (re-serializing only when needed) and can
replay the request's changes onto a fresher copy (compare-and-set merge).
"""

from __future__ import annotations

from typing import Any

from .codec import Codec, SessionRecord
from .serializer import is_immutable

_ABSENT: Any = object()
# A request that touched more top-level keys than this is written whole: comparing each
# key alone would cost more than encoding the session once.
MAX_PATCH_KEYS = 16
Patch = tuple[dict[str, Any], list[str]]  # the keys set (with their values), deleted


class SessionState:
    """The managed dict of one session plus this request's change log."""

    __slots__ = (
        "data",
        "deleted",
        "exposed",
        "forced",
        "had_data",
        "increments",
        "loaded",
        "loaded_plain",
        "meta_changed",
        "normalized",
        "originals",
        "record",
        "written",
    )

    def __init__(
        self, record: SessionRecord, loaded: bytes | None = None, plain: bytes | None = None
    ) -> None:
        self.record = record
        self.data: dict[str, Any] = record.data
        self.loaded = loaded  # the exact bytes read from Redis; None for a new session
        # Their plain form (see Codec): what a re-encoded record is compared with.
        self.loaded_plain = loaded if plain is None else plain
        self.had_data = bool(record.data)
        self.written: set[str] = set()
        self.deleted: set[str] = set()
        self.exposed: set[str] = set()
        self.increments: dict[str, Any] = {}
        # The value each key changed by this request had before its first change.
        self.originals: dict[str, Any] = {}
        self.meta_changed = False
        self.normalized = False  # the record's metadata was brought to the settings' form
        self.forced = False

    # -- reads ------------------------------------------------------------------
    def expose(self, key: str, value: Any) -> Any:
        """Return ``value`` read at ``key``, remembering it if it is mutable."""
        if not is_immutable(value):
            self.exposed.add(key)
        return value

    def expose_all(self) -> None:
        """Every value is being handed out (items(), values(), copies...)."""
        for key, value in self.data.items():
            self.expose(key, value)

    # -- writes -----------------------------------------------------------------
    def assign(self, key: str, value: Any) -> None:
        if key not in self.originals:
            self.originals[key] = self.data.get(key, _ABSENT)
        self.data[key] = value
        self.written.add(key)
        self.deleted.discard(key)
        self.increments.pop(key, None)

    def remove(self, key: str) -> None:
        if key not in self.originals:
            self.originals[key] = self.data[key]
        del self.data[key]
        self.deleted.add(key)
        self.written.discard(key)
        self.increments.pop(key, None)

    def incr(self, key: str, amount: Any) -> Any:
        """Add ``amount``: a delta to merge, unless this request set or deleted the key."""
        value = self.data.get(key, 0) + amount
        if key not in self.originals:
            self.originals[key] = self.data.get(key, _ABSENT)
        if key in self.written or key in self.deleted:
            self.assign(key, value)  # the value is this request's own, not an increment
        else:
            self.data[key] = value
            self.increments[key] = self.increments.get(key, 0) + amount
        return value

    def touch_meta(self, **fields: Any) -> None:
        """Change the record's metadata (timeout, expires)."""
        for name, value in fields.items():
            setattr(self.record, name, value)
        self.meta_changed = True

    # -- end of request -----------------------------------------------------------
    @property
    def touched(self) -> bool:
        """The request did something that may have changed the payload."""
        return bool(
            self.written or self.deleted or self.increments or self.meta_changed or self.forced
        )

    def encode_if_changed(self, codec: Codec, detect_changes: bool) -> bytes | None:
        """The new plain form if it differs from what was loaded, else None.

        Serializes only when the request wrote, or handed out a mutable value
        (with ``detect_changes``); a read-only request costs no serialization.
        """
        if not (self.touched or (detect_changes and self.exposed)):
            return None
        plain = codec.encode_plain(self.record)
        return None if plain == self.loaded_plain else plain

    @property
    def patchable(self) -> bool:
        """The request's changes are all to a few top-level keys (see
        :meth:`patch_if_changed`)."""
        changed_meta = self.forced or self.meta_changed or self.normalized
        touched = len(self.written) + len(self.deleted) + len(self.increments)
        few = touched + len(self.exposed) <= MAX_PATCH_KEYS
        return few and not changed_meta and self.loaded_plain is not None

    def patch_if_changed(self, codec: Codec, detect_changes: bool) -> Patch | None:
        """The keys whose stored form this request changed, else None (only if
        :attr:`patchable`).

        The same answer as :meth:`encode_if_changed`, key by key: a key counts as
        changed when its value serializes differently from the one loaded, so writing
        back an equal value changes nothing. The loaded values are the ones kept at a
        key's first change, or, for a key whose value was handed out (it may have been
        mutated in place), decoded again from the loaded bytes.
        """
        keys = self.written | self.deleted | self.increments.keys()
        if detect_changes or keys:  # as a whole write would store mutated values too
            keys |= self.exposed
        if not keys:
            return None
        loaded = self.originals
        if not keys.isdisjoint(self.exposed):
            assert self.loaded_plain is not None
            loaded = codec.decode_plain(self.loaded_plain).data
        encode, data = codec.encode_value, self.data
        sets: dict[str, Any] = {}
        deletes: list[str] = []
        for key in sorted(keys, key=str):  # a non-str key is refused by the frame
            before, after = loaded.get(key, _ABSENT), data.get(key, _ABSENT)
            if after is _ABSENT:
                if before is not _ABSENT:
                    deletes.append(key)
            elif before is _ABSENT or encode(before) != encode(after):
                sets[key] = after
        return (sets, deletes) if sets or deletes else None

    def mark_persisted(self, payload: bytes, plain: bytes) -> None:
        """``payload`` (packed from ``plain``) is now stored: it becomes the new baseline."""
        self.loaded, self.loaded_plain = payload, plain
        self.had_data = bool(self.data)
        for log in (self.written, self.deleted, self.exposed, self.increments, self.originals):
            log.clear()
        self.meta_changed = self.forced = self.normalized = False

    # -- compare-and-set merge ----------------------------------------------------
    def base(self, codec: Codec) -> SessionRecord:
        """A fresh copy of the record as loaded (the merge base); empty for a new session."""
        if self.loaded_plain is None:
            return SessionRecord({}, self.record.created)
        return codec.decode_plain(self.loaded_plain)

    def adopt(self, record: SessionRecord, raw: bytes, plain: bytes) -> None:
        """Continue from ``record``, merged onto the copy now in Redis (``raw``, ``plain``).

        That copy becomes the baseline of the next compare-and-set; increments stay
        pending, as deltas over it.
        """
        self.record, self.data = record, record.data
        self.loaded, self.loaded_plain = raw, plain
        self.originals.clear()
        self.forced = True
