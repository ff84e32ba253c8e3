"""The per-user index of sessions ("log out everywhere"): its layout in Redis, no policy.

A session bound with ``session.bind_user(userid)`` carries ``[userid, bound_until]``
under the reserved key :data:`USER_KEY` of its data (so the binding is merged, copied
and deleted with the rest of the payload). Each user has one sorted set,
``psr:user:{<digest>}`` (see :func:`index_key`), whose members are the Redis keys of
the user's sessions, scored by the binding's deadline ``bound_until`` (epoch seconds).

Every command touches one key: the index (its own hash slot, by its hash tag) or one
session. So nothing here needs the index and a session in one slot (Redis Cluster).

Invariants:

- an entry is added *before* the payload that carries its binding is stored, and
  removed only *after* the payload no longer carries it; so every stored binding is
  in the index (a failed request leaves at most an entry too many, never one too few).
  Where the id is only known once written (a new session stored by ``do_persist()``,
  an id the write itself changes), the entry follows right after the write;
- a binding is honoured only until ``bound_until`` (the session is replaced by a fresh
  one at load after that), and the index key expires at its latest deadline: no
  session that can still be used outlives it;
- an entry whose session is gone (or no longer bound to the user) is removed by the
  next listing or revocation, unless it was added in the last :data:`PENDING_GRACE`
  seconds (its request may still be about to store the session).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .util import now

if TYPE_CHECKING:
    from .store import SessionStore

USER_KEY = "_psr_user_"  # reserved, like Pyramid's "_csrft_" and "_f_"
PENDING_GRACE = 60  # seconds during which a gone session's entry is kept (see above)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One session in a user's index: who, which Redis key, until when."""

    userid: str
    key: str
    until: int


def userid_text(userid: object) -> str:
    """The index's form of a user id: a non-empty str (an int is taken as its digits)."""
    if isinstance(userid, bool) or not isinstance(userid, (str, int)):
        raise TypeError(f"userid must be a str or an int, not {type(userid).__name__}")
    text = str(userid)
    if not text:
        raise ValueError("userid must not be empty")
    return text


def binding_value(userid: object, until: int) -> list[Any]:
    """What :data:`USER_KEY` holds for a session bound to ``userid`` until ``until``."""
    return [userid_text(userid), until]


def binding_of(data: Mapping[str, Any]) -> tuple[str, int] | None:
    """``(userid, bound_until)`` of session data; None if unbound (or not ours to read)."""
    value = data.get(USER_KEY)
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and type(value[1]) is int
    ):
        return value[0], value[1]
    return None


def entry_of(data: Mapping[str, Any], key: str | None) -> Entry | None:
    """The index entry that session data stored under ``key`` calls for, if any."""
    binding = binding_of(data) if key is not None else None
    if binding is None or key is None:
        return None
    return Entry(binding[0], key, binding[1])


def lapsed(data: Mapping[str, Any], current: int) -> bool:
    """The data is bound to a user and the binding's deadline has passed."""
    binding = binding_of(data) if USER_KEY in data else None
    return binding is not None and binding[1] <= current


def index_key(prefix: str | None, userid: str) -> str:
    """The Redis key of ``userid``'s index; ``prefix`` (the session id prefix) namespaces it.

    The user id appears only as a hash, which is also the key's hash tag.
    """
    material = f"{prefix or ''}\0{userid}".encode("utf-8", "surrogatepass")
    return "psr:user:{" + hashlib.sha256(material).hexdigest()[:32] + "}"


def settled(until: int, lifetime: int, current: int) -> bool:
    """An entry of deadline ``until`` was added more than :data:`PENDING_GRACE` ago."""
    return until - lifetime <= current - PENDING_GRACE


class IndexUpdate:
    """What one request's save does to the user index.

    ``before`` is the entry the session had when the request first bound, unbound or
    moved it. :meth:`before_write` adds the planned entry, :meth:`after_write` adds the
    entry the write actually produced (if the id changed meanwhile) and removes
    ``before`` when it no longer applies. One script call on one index key each.
    """

    def __init__(
        self, store: SessionStore, index_of: Callable[[str], str], before: Entry | None
    ) -> None:
        self.store = store
        self.index_of = index_of
        self.before = before
        self.added: Entry | None = None

    def before_write(self, planned: Entry | None) -> None:
        """Add ``planned`` even if the index should hold it already (it heals an index
        that lost it: evicted, flushed)."""
        if planned is not None:
            self._add(planned)

    def after_write(self, final: Entry | None) -> None:
        """``final``: the entry of the session as stored now (None: unbound or not stored).

        Adds it if the write stored it elsewhere than planned (a new session whose id
        was taken, an id changed by the write), then removes the entries that no longer
        apply: the one before, and a planned one the write did not use.
        """
        added, before = self.added, self.before
        if final is not None and final != added and final != before:
            self._add(final)
        for stale in (before, added):
            if stale is None or (final is not None and _place(stale) == _place(final)):
                continue
            if stale is added and before is not None and _place(stale) == _place(before):
                continue
            remove(self.store, self.index_of(stale.userid), stale.key)

    def _add(self, entry: Entry) -> None:
        self.store.index_update(self.index_of(entry.userid), now(), (entry.key, entry.until), ())
        self.added = entry


def remove(store: SessionStore, index: str, key: str) -> None:
    """Take the session stored at ``key`` out of ``index`` (one script call)."""
    store.index_update(index, now(), None, (key,))


def _place(entry: Entry) -> tuple[str, str]:
    return entry.userid, entry.key
