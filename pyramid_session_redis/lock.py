"""``persistence = lock``: one request of a session at a time.

A per-session lock is a second string key beside the session's, holding a random
token with a lease (``SET … NX PX``). The store (:class:`~.store.RedisStore`) takes it
in the round trip that loads the payload and drops it in the round trip that writes,
refreshes or deletes (one Lua script each, below); a read-only request drops it with
one command. Every drop checks the token first (fencing): a request whose lease ran
out cannot write over the data of the request that took the lock after it.

This module holds the pure parts (the lock key, the scripts, the outcomes) and the
bounded wait of :func:`acquire_and_load`.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import random
import secrets
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from .exceptions import SessionLockTimeout

if TYPE_CHECKING:
    from .store import SessionStore

LOCK_SUFFIX = ":lock"


class LockOutcome(enum.Enum):
    """What a write (or refresh) under the lock did; the lock is ours no longer in all cases."""

    WRITTEN = "written"  # applied, and our lock released
    FENCED = "fenced"  # not applied: our lease ran out (the lock expired or is another's)
    GONE = "gone"  # not applied: the session key no longer exists (never recreated)


class LockedLoad(NamedTuple):
    """Result of one acquire-and-load attempt.

    ``busy``: another request holds the lock (nothing was read, nothing taken).
    Otherwise ``payload`` is the session's bytes with the lock now held, or ``None``
    when the session does not exist: then no lock is taken (there is nothing to guard,
    nothing to release).
    """

    busy: bool
    payload: bytes | None


# -- the lock key -------------------------------------------------------------


def hash_tag(key: str) -> str | None:
    """The part of ``key`` that Redis Cluster hashes instead of the whole key, if any.

    The text between the first ``{`` and the first ``}`` after it, when not empty.
    """
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]


def lock_key(session_key: str) -> str:
    """The lock's key: in the same Redis Cluster hash slot as ``session_key``, always.

    - a key with a hash tag (``{shop}:abc``) keeps it: ``{shop}:abc:lock``;
    - a key without one becomes the tag: ``abc`` -> ``{abc}:lock``;
    - a key that cannot be a tag (a ``}`` but no tag, or empty) gets a tag chosen to hash
      to its slot, followed by the key itself for uniqueness: ``{psr123}:lock:a}b``.
      (This last case hashes the key as UTF-8, the default ``redis_encoding``.)
    """
    if hash_tag(session_key) is not None:
        return session_key + LOCK_SUFFIX
    if session_key and "}" not in session_key:
        return "{" + session_key + "}" + LOCK_SUFFIX
    slot = key_slot(session_key.encode("utf-8", "surrogateescape"))
    return "{" + tag_for_slot(slot) + "}" + LOCK_SUFFIX + ":" + session_key


# ``psr0``, ``psr1``... cover every one of the 16384 slots before this bound (tested).
TAG_SEARCH_LIMIT = 200_000


@functools.lru_cache(maxsize=256)
def tag_for_slot(slot: int) -> str:
    """The first of ``psr0``, ``psr1``... that hashes to ``slot`` (a few ms, then cached)."""
    for n in range(TAG_SEARCH_LIMIT):
        tag = f"psr{n}"
        if key_slot(tag.encode()) == slot:
            return tag
    raise ValueError(f"not a cluster slot: {slot!r} (0-{REDIS_CLUSTER_HASH_SLOTS - 1})")


def new_token() -> str:
    """A fresh lock token: 128 random bits, unique to one request's hold of the lock."""
    return secrets.token_urlsafe(16)


# -- scripts: KEYS[1] the session, KEYS[2] its lock (same slot), ARGV[1] the token ----


class Script(NamedTuple):
    text: str
    sha: str


def _script(text: str) -> Script:
    return Script(text, hashlib.sha1(text.encode()).hexdigest())


# Returns {2} (no session: no lock taken), {0} (busy) or {1, payload} (locked). With
# ARGV[3] ~= '0' the session's TTL slides to ARGV[3] seconds, as ``load`` does.
ACQUIRE_SCRIPT = _script("""
local payload = redis.call('GET', KEYS[1])
if not payload then return {2} end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
if ARGV[3] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return {1, payload}
""")

# Codes shared by the write and refresh scripts: 1 written, 0 gone, 2 fenced.
OUTCOMES = {1: LockOutcome.WRITTEN, 0: LockOutcome.GONE, 2: LockOutcome.FENCED}

# ARGV[2] the payload, ARGV[3] the TTL (seconds, '0' for none). SET XX: never recreates.
WRITE_SCRIPT = _script("""
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 2 end
redis.call('DEL', KEYS[2])
local written
if ARGV[3] == '0' then
  written = redis.call('SET', KEYS[1], ARGV[2], 'XX')
else
  written = redis.call('SET', KEYS[1], ARGV[2], 'XX', 'EX', ARGV[3])
end
if written then return 1 end
return 0
""")

# ARGV[2] the TTL (seconds).
REFRESH_SCRIPT = _script("""
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 2 end
redis.call('DEL', KEYS[2])
return redis.call('EXPIRE', KEYS[1], ARGV[2])
""")

# The session is deleted whoever holds the lock (a logout is never refused, and a
# deletion cannot overwrite newer data); the lock only if it is ours. Returns 1 if it was.
DELETE_SCRIPT = _script("""
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[2])
""")

# KEYS[1] the lock only. Returns 1 if it was ours (and is now released).
RELEASE_SCRIPT = _script("""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
""")


# -- waiting for the lock -------------------------------------------------------

FIRST_DELAY = 0.002  # seconds
MAX_DELAY = 0.05


def poll_delays(jitter: Callable[[], float] = random.random) -> Iterator[float]:
    """Pauses between attempts: 2, 4, 8, 16, 32 ms, then 50 ms each, every one scaled
    by a random factor in [0.5, 1) so that waiters of one session do not move in step.

    Short first pauses because most holders are a request of a few ms; the 50 ms cap
    bounds both the extra latency after a release and the load a waiter puts on Redis
    (at most ~20-40 attempts a second).
    """
    delay = FIRST_DELAY
    while True:
        yield delay * (0.5 + jitter() / 2)
        delay = min(delay * 2, MAX_DELAY)


def acquire_and_load(
    store: SessionStore,
    key: str,
    lease_ms: int,
    wait: float,
    refresh_ttl: int | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> tuple[str | None, bytes | None]:
    """Take the session's lock and load its payload; wait at most ``wait`` seconds.

    Returns ``(token, payload)``: the lock is held with ``token`` until one of the
    store's ``*_unlock`` / ``release`` calls (or until ``lease_ms`` runs out). When the
    session does not exist it returns ``(None, None)``: no lock is held.

    Attempts follow :func:`poll_delays`, never sleeping past the deadline; one last
    attempt is made at the deadline. Raises :class:`SessionLockTimeout` after it, and
    :class:`SessionBackendError` as any store call does.
    """
    token = new_token()
    start = clock()
    deadline = start + wait
    attempts = 0
    for delay in poll_delays(jitter):
        attempts += 1
        result = store.load_locked(key, token, lease_ms, refresh_ttl)
        if not result.busy:
            return (token if result.payload is not None else None), result.payload
        left = deadline - clock()
        if left <= 0:
            break
        sleep(min(delay, left))
    waited = clock() - start
    raise SessionLockTimeout(
        f"the session stayed locked by another request ({waited:.3f} s, {attempts} attempts)",
        waited,
        attempts,
    )
