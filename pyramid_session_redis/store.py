"""Storage: the few Redis operations a session needs, behind one small interface.

Every operation costs one round trip and touches one key, or (``persistence = lock``)
the session's key and its lock key, which share a hash slot (Cluster-safe); ``move``
(``regenerate_id()``) touches the old and the new key (and the old lock key), which the
caller puts in one slot too. The user index operations (:mod:`.users`) touch one index
key per command; ``peek_many`` and ``delete_many`` send one single-key command per
session, pipelined in one round trip.
Errors from redis-py become :class:`SessionBackendError`.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from redis.exceptions import ClusterError, NoScriptError, RedisError, ResponseError

from .channel import CommandChannel
from .exceptions import SessionBackendError
from .lock import (
    ACQUIRE_SCRIPT,
    DELETE_SCRIPT,
    OUTCOMES,
    REFRESH_SCRIPT,
    RELEASE_SCRIPT,
    WRITE_SCRIPT,
    LockedLoad,
    LockOutcome,
    Script,
    lock_key,
)


class CasOutcome(enum.Enum):
    WRITTEN = "written"
    CONFLICT = "conflict"  # the stored payload changed since it was loaded
    GONE = "gone"  # the key no longer exists: never recreate it


class MoveOutcome(enum.Enum):
    """How a move of a session to a new key (``regenerate_id()``) ended."""

    MOVED = "moved"  # the new key holds the payload, the old key (and our lock) is gone
    CONFLICT = "conflict"  # compare-and-set: the old key's bytes changed; nothing done
    GONE = "gone"  # the old key no longer exists: nothing written (our lock released)
    TAKEN = "taken"  # the new key exists already (an id collision): nothing done
    FENCED = "fenced"  # persistence = lock: our lease ran out; nothing done


class WrongTypeError(ValueError):
    """The key holds a non-string Redis value (a list, a hash...)."""


class SessionStore(Protocol):
    """What a session needs from storage. ``ttl=None`` means no TTL."""

    def load(self, key: str, refresh_ttl: int | None) -> bytes | None: ...
    def create(self, key: str, payload: bytes, ttl: int | None) -> bool: ...
    def overwrite(self, key: str, payload: bytes, ttl: int | None) -> bool: ...
    def compare_and_set(
        self,
        key: str,
        expected: bytes,
        payload: bytes,
        ttl: int | None,
        stamp: bytes | None = None,
    ) -> tuple[CasOutcome, bytes | None]: ...
    def append_if_unchanged(
        self, key: str, stamp: bytes, length: int, frame: bytes, ttl: int | None
    ) -> tuple[CasOutcome, bytes | None]: ...
    def compare_and_delete(self, key: str, expected: bytes) -> tuple[CasOutcome, bytes | None]: ...
    def refresh(self, key: str, ttl: int) -> None: ...
    def delete(self, key: str) -> None: ...
    def move(
        self,
        old_key: str,
        new_key: str,
        payload: bytes,
        ttl: int | None,
        *,
        expected: bytes | None = None,
        token: str | None = None,
    ) -> tuple[MoveOutcome, bytes | None]: ...

    # persistence = lock (see lock.py); ``token`` is the lock holder's.
    def load_locked(
        self, key: str, token: str, lease_ms: int, refresh_ttl: int | None
    ) -> LockedLoad: ...
    def write_unlock(
        self, key: str, token: str, payload: bytes, ttl: int | None
    ) -> LockOutcome: ...
    def refresh_unlock(self, key: str, token: str, ttl: int) -> LockOutcome: ...
    def delete_unlock(self, key: str, token: str) -> bool: ...
    def release(self, key: str, token: str) -> bool: ...

    # the user index (see users.py): a sorted set of session keys scored by deadline.
    def index_update(
        self, index: str, now: int, add: tuple[str, int] | None, remove: Sequence[str]
    ) -> int: ...
    def index_entries(self, index: str, now: int) -> list[tuple[str, int]]: ...
    def peek_many(self, keys: Sequence[str]) -> list[tuple[bytes | None, int]]: ...
    def delete_many(self, keys: Sequence[str]) -> int: ...


# Writes ARGV[2] only if the stored bytes are still ARGV[1]; the TTL rides along.
# Returns 1 (written), 0 (key gone) or the current bytes (conflict: saves a re-read).
# Comparing the bytes themselves is cheaper for the server than redis.sha1hex() of the
# stored value (measured: 89 vs 112 us per call for a 20 KB session) and saves the
# client a hash; the price is sending the loaded payload once more over the socket.
CAS_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current ~= ARGV[1] then return current end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
"""
CAS_SCRIPT_SHA = hashlib.sha1(CAS_SCRIPT.encode()).hexdigest()

# Deletes KEYS[1] only if it still holds ARGV[1]; same replies as CAS_SCRIPT.
CAD_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current ~= ARGV[1] then return current end
redis.call('DEL', KEYS[1])
return 1
"""
CAD_SCRIPT_SHA = hashlib.sha1(CAD_SCRIPT.encode()).hexdigest()
CAS, CAD = Script(CAS_SCRIPT, CAS_SCRIPT_SHA), Script(CAD_SCRIPT, CAD_SCRIPT_SHA)

# A stamped value (codec.py: its first bytes are random, new at every whole write, and
# later writes only append to it) is identified by those bytes and its length, so these
# compare ARGV[1] with its first bytes and ARGV[2] with STRLEN instead of taking the
# whole loaded value into Lua (measured on Redis 7.0: most of the compare-and-set's cost
# on a 10 KB value). ARGV[3] is the new value (STAMP_CAS) or the frame to append
# (APPEND_IF), ARGV[4] the TTL ('0': none). Same replies as CAS_SCRIPT.
_STAMP_COMPARE = """
local size = redis.call('STRLEN', KEYS[1])
if size == 0 then return 0 end
if size ~= tonumber(ARGV[2]) or redis.call('GETRANGE', KEYS[1], 0, #ARGV[1] - 1) ~= ARGV[1] then
  return redis.call('GET', KEYS[1])
end
"""
STAMP_CAS_SCRIPT = (
    _STAMP_COMPARE
    + """if ARGV[4] == '0' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
end
return 1
"""
)
APPEND_IF_SCRIPT = (
    _STAMP_COMPARE
    + """redis.call('APPEND', KEYS[1], ARGV[3])
if ARGV[4] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
"""
)
STAMP_CAS = Script(STAMP_CAS_SCRIPT, hashlib.sha1(STAMP_CAS_SCRIPT.encode()).hexdigest())
APPEND_IF = Script(APPEND_IF_SCRIPT, hashlib.sha1(APPEND_IF_SCRIPT.encode()).hexdigest())

# regenerate_id(): KEYS[1] the old key, KEYS[2] the new one, KEYS[3] the old key's lock
# (persistence = lock only); all in one hash slot. ARGV[1] the mode: 'cas' (ARGV[2] the
# bytes loaded), 'lock' (ARGV[2] our token) or 'overwrite'; ARGV[3] the payload, ARGV[4]
# the TTL ('0': none). Writes the new key and deletes the old one together, or nothing:
# never both ids alive, never neither. Returns 1 moved, 0 old key gone, 3 new key taken,
# 2 fenced (lock), or the old key's current bytes (cas conflict).
MOVE_SCRIPT_TEXT = """
local locked = ARGV[1] == 'lock'
if locked and redis.call('GET', KEYS[3]) ~= ARGV[2] then return 2 end
local current = redis.call('GET', KEYS[1])
if not current then
  if locked then redis.call('DEL', KEYS[3]) end
  return 0
end
if ARGV[1] == 'cas' and current ~= ARGV[2] then return current end
if redis.call('EXISTS', KEYS[2]) == 1 then return 3 end
if ARGV[4] == '0' then
  redis.call('SET', KEYS[2], ARGV[3])
else
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
end
redis.call('DEL', KEYS[1])
if locked then redis.call('DEL', KEYS[3]) end
return 1
"""
MOVE_SCRIPT = Script(MOVE_SCRIPT_TEXT, hashlib.sha1(MOVE_SCRIPT_TEXT.encode()).hexdigest())
_MOVE_CODES = {
    1: MoveOutcome.MOVED,
    0: MoveOutcome.GONE,
    2: MoveOutcome.FENCED,
    3: MoveOutcome.TAKEN,
}
# The user index KEYS[1], a sorted set of session keys scored by their binding's
# deadline: removes ARGV[4...], adds ARGV[2] with score ARGV[3] (if ARGV[2] ~= ''),
# drops the entries whose deadline is <= ARGV[1] (now), and makes the key expire at the
# latest deadline left (Redis deletes an emptied sorted set by itself). Returns the
# number of entries left.
INDEX_UPDATE_SCRIPT = """
for i = 4, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('EXPIREAT', KEYS[1], last[2]) end
return redis.call('ZCARD', KEYS[1])
"""
# Drops the lapsed entries of the index KEYS[1] and returns the others with their scores.
INDEX_ENTRIES_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
"""
INDEX_UPDATE = Script(INDEX_UPDATE_SCRIPT, hashlib.sha1(INDEX_UPDATE_SCRIPT.encode()).hexdigest())
INDEX_ENTRIES = Script(
    INDEX_ENTRIES_SCRIPT, hashlib.sha1(INDEX_ENTRIES_SCRIPT.encode()).hexdigest()
)


# Redis Cluster: while a slot migrates, a command on several of its keys (a script on a
# session and its lock, or on the old and new id of regenerate_id()) is refused with
# TRYAGAIN as long as some of those keys are on one node and some not there (yet).
# redis-py's RedisCluster retries for about 0.4 s, then raises ClusterError("TTL
# exhausted."), exactly that class, raised only when every attempt was refused (MOVED,
# ASK, TRYAGAIN), so the command never ran: it is sent again after a pause, for at most
# this many seconds, so that a slowly migrating slot delays such requests, not fail them.
SLOT_MIGRATION_PATIENCE = 5.0
SLOT_MIGRATION_PAUSE = 0.05


def _patient(call: Callable[[], Any]) -> Any:
    """``call()``, sent again while a Cluster slot migration refuses it (see above)."""
    deadline = None
    while True:
        try:
            return call()
        except ClusterError as exc:
            if type(exc) is not ClusterError:  # ClusterDownError and others: not ours
                raise
            now = time.monotonic()
            deadline = deadline or now + SLOT_MIGRATION_PATIENCE
            if now >= deadline:
                raise
            time.sleep(SLOT_MIGRATION_PAUSE)


class ServerFeatures:
    """What the server supports, learnt once per factory (shared across requests).

    With several servers (shards, Cluster nodes, a Sentinel failover to a server of
    another version) one set of flags serves them all. That is correct: a flag only ever
    goes from True to False, when a server refuses the command, and every fallback
    (``GET`` + ``EXPIRE``, the compare-and-set script) runs on every server; the price
    is that the newer servers then get the fallback too (tests/test_sharding.py).
    """

    def __init__(self) -> None:
        self.getex = True
        # SET ... IFEQ (Valkey 8.1+, Redis 8.4+): a native compare-and-set, no script.
        self.set_ifeq = True


class _backend_errors:
    """``with _backend_errors(action):`` turns redis-py errors into ours.

    A class rather than a ``@contextmanager`` generator: it is on every command's path.
    """

    __slots__ = ("action",)

    def __init__(self, action: str) -> None:
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if exc is None or not isinstance(exc, RedisError):
            return
        action = self.action
        if isinstance(exc, ResponseError):
            if str(exc).startswith("WRONGTYPE"):
                raise WrongTypeError(f"{action}: the key holds a non-string value") from exc
            raise SessionBackendError(f"Redis refused to {action}: {exc}", exc) from exc
        raise SessionBackendError(f"Redis unavailable ({action}): {exc}", exc) from exc


class RedisStore:
    """:class:`SessionStore` over a command channel; one string key per session."""

    def __init__(self, channel: CommandChannel, features: ServerFeatures) -> None:
        self.channel = channel
        self.features = features

    def load(self, key: str, refresh_ttl: int | None) -> bytes | None:
        """GET the payload; with ``refresh_ttl`` slide the TTL in the same round trip."""
        with _backend_errors("load the session"):
            if refresh_ttl is None:
                return _as_bytes(self.channel.execute("GET", key))
            if self.features.getex:
                try:
                    return _as_bytes(self.channel.execute("GETEX", key, "EX", refresh_ttl))
                except ResponseError as exc:
                    if "unknown command" not in str(exc).lower():
                        raise
                    self.features.getex = False  # Redis < 6.2: pipeline from now on
            payload, _ = self.channel.execute_many((("GET", key), ("EXPIRE", key, refresh_ttl)))
            return _as_bytes(payload)

    def create(self, key: str, payload: bytes, ttl: int | None) -> bool:
        """SET NX: False if the id is taken (a collision: the caller picks another)."""
        with _backend_errors("create the session"):
            return bool(self.channel.execute("SET", key, payload, *_ex(ttl), "NX"))

    def overwrite(self, key: str, payload: bytes, ttl: int | None) -> bool:
        """SET XX: last writer wins, but a deleted session is never recreated."""
        with _backend_errors("save the session"):
            return bool(self.channel.execute("SET", key, payload, *_ex(ttl), "XX"))

    def compare_and_set(
        self,
        key: str,
        expected: bytes,
        payload: bytes,
        ttl: int | None,
        stamp: bytes | None = None,
    ) -> tuple[CasOutcome, bytes | None]:
        """Write ``payload`` only if the key still holds ``expected``.

        One ``SET … IFEQ`` where the server has it (a ``GET`` follows only when it
        refused, to tell a conflict from a deleted session), else one script call,
        which compares only ``stamp`` and the length when ``expected`` is stamped.
        """
        if self.features.set_ifeq:
            outcome = self._set_ifeq(key, expected, payload, ttl)
            if outcome is not None:
                return outcome
        if stamp is not None:
            args: tuple[Any, ...] = (stamp, len(expected), payload, ttl or 0)
            return _compared(self._script(STAMP_CAS, (key,), args, "save the session"))
        args = (expected, payload, ttl or 0)
        return _compared(self._script(CAS, (key,), args, "save the session"))

    def append_if_unchanged(
        self, key: str, stamp: bytes, length: int, frame: bytes, ttl: int | None
    ) -> tuple[CasOutcome, bytes | None]:
        """Append ``frame`` to the stamped value at ``key`` if it still starts with
        ``stamp`` and is ``length`` bytes long (nobody wrote since); replies as
        :meth:`compare_and_set`."""
        args = (stamp, length, frame, ttl or 0)
        return _compared(self._script(APPEND_IF, (key,), args, "save the session"))

    def compare_and_delete(self, key: str, expected: bytes) -> tuple[CasOutcome, bytes | None]:
        """Delete the key only if it still holds ``expected`` (an emptied session)."""
        return _compared(self._script(CAD, (key,), (expected,), "delete the session"))

    def _set_ifeq(
        self, key: str, expected: bytes, payload: bytes, ttl: int | None
    ) -> tuple[CasOutcome, bytes | None] | None:
        """The native compare-and-set; None if the server does not know ``IFEQ``."""
        with _backend_errors("save the session"):
            try:
                written = self.channel.execute("SET", key, payload, "IFEQ", expected, *_ex(ttl))
            except ResponseError as exc:
                if "syntax" not in str(exc).lower():
                    raise
                self.features.set_ifeq = False  # an older server: the script from now on
                return None
            if written:
                return CasOutcome.WRITTEN, None
            current = _as_bytes(self.channel.execute("GET", key))
        if current is None:
            return CasOutcome.GONE, None
        return CasOutcome.CONFLICT, current

    def refresh(self, key: str, ttl: int) -> None:
        """EXPIRE: slides the TTL; a no-op on a missing key (never resurrects)."""
        with _backend_errors("refresh the session"):
            self.channel.execute("EXPIRE", key, ttl)

    def delete(self, key: str) -> None:
        with _backend_errors("delete the session"):
            self.channel.execute("DEL", key)

    def move(
        self,
        old_key: str,
        new_key: str,
        payload: bytes,
        ttl: int | None,
        *,
        expected: bytes | None = None,
        token: str | None = None,
    ) -> tuple[MoveOutcome, bytes | None]:
        """Store ``payload`` at ``new_key`` and delete ``old_key``, atomically (one script).

        Only if ``old_key`` exists, ``new_key`` does not, and: ``token`` holds the old
        key's lock (then released), or ``old_key`` still holds ``expected``
        (compare-and-set; on a conflict the current bytes come back), or neither is given
        (``persistence = overwrite``). The keys must share a hash slot (Cluster).
        """
        if token is not None:
            keys: tuple[str, ...] = (old_key, new_key, lock_key(old_key))
            mode, check = "lock", token.encode()
        else:
            keys = (old_key, new_key)
            mode, check = ("overwrite", b"") if expected is None else ("cas", expected)
        args = (mode, check, payload, ttl or 0)
        reply = self._script(MOVE_SCRIPT, keys, args, "move the session to its new id")
        if isinstance(reply, int):
            return _MOVE_CODES[reply], None
        return MoveOutcome.CONFLICT, _as_bytes(reply)

    # -- persistence = lock: one script call each (lock.py has the scripts) --

    def load_locked(
        self, key: str, token: str, lease_ms: int, refresh_ttl: int | None
    ) -> LockedLoad:
        """Take the lock (lease ``lease_ms``) and load, as ``load`` does; or find it busy.

        A missing session takes no lock: ``LockedLoad(busy=False, payload=None)``.
        """
        args = (token, lease_ms, refresh_ttl or 0)
        reply = self._script(ACQUIRE_SCRIPT, (key, lock_key(key)), args, "lock the session")
        if reply[0] == 1:
            return LockedLoad(False, _as_bytes(reply[1]))
        return LockedLoad(reply[0] == 0, None)

    def write_unlock(self, key: str, token: str, payload: bytes, ttl: int | None) -> LockOutcome:
        """SET (XX, with ``ttl``) and release, only while ``token`` holds the lock."""
        keys = (key, lock_key(key))
        reply = self._script(WRITE_SCRIPT, keys, (token, payload, ttl or 0), "save the session")
        return OUTCOMES[reply]

    def refresh_unlock(self, key: str, token: str, ttl: int) -> LockOutcome:
        """EXPIRE and release, only while ``token`` holds the lock."""
        keys = (key, lock_key(key))
        return OUTCOMES[self._script(REFRESH_SCRIPT, keys, (token, ttl), "refresh the session")]

    def delete_unlock(self, key: str, token: str) -> bool:
        """DEL the session in any case; release the lock if ``token`` still holds it."""
        keys = (key, lock_key(key))
        return bool(self._script(DELETE_SCRIPT, keys, (token,), "delete the session"))

    def release(self, key: str, token: str) -> bool:
        """Release the lock if ``token`` still holds it (a read-only request)."""
        return bool(self._script(RELEASE_SCRIPT, (lock_key(key),), (token,), "unlock the session"))

    # -- the user index (users.py) --

    def index_update(
        self, index: str, now: int, add: tuple[str, int] | None, remove: Sequence[str]
    ) -> int:
        """Remove ``remove``, add ``add`` (session key, deadline), drop lapsed entries.

        One script call on the index key; it expires at the latest deadline left.
        """
        member, deadline = add if add is not None else ("", 0)
        args = (now, member, deadline, *remove)
        return int(self._index_script(INDEX_UPDATE, index, args, "update the user index"))

    def index_entries(self, index: str, now: int) -> list[tuple[str, int]]:
        """Drop lapsed entries; the others as (session key, deadline), oldest first."""
        flat = self._index_script(INDEX_ENTRIES, index, (now,), "read the user index")
        return [(_as_text(flat[i]), int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]

    def _index_script(self, script: Script, index: str, args: tuple[Any, ...], action: str) -> Any:
        try:
            return self._script(script, (index,), args, action)
        except WrongTypeError as exc:  # not a sorted set: not ours to repair silently
            raise SessionBackendError(
                f"cannot {action}: {index!r} is not a sorted set", exc
            ) from exc

    def peek_many(self, keys: Sequence[str]) -> list[tuple[bytes | None, int]]:
        """``GET`` and ``TTL`` of each key (no TTL refresh), pipelined in one round trip."""
        if not keys:
            return []
        commands = [command for key in keys for command in (("GET", key), ("TTL", key))]
        try:
            with _backend_errors("read the user's sessions"):
                replies = self.channel.execute_many(commands)
        except WrongTypeError:  # some key holds a list, a hash...: one by one, rarely
            return [self._peek(key) for key in keys]
        return [
            (_as_bytes(payload), int(ttl))
            for payload, ttl in zip(replies[::2], replies[1::2], strict=True)
        ]

    def _peek(self, key: str) -> tuple[bytes | None, int]:
        try:
            with _backend_errors("read the user's sessions"):
                payload, ttl = self.channel.execute_many((("GET", key), ("TTL", key)))
        except WrongTypeError:  # not a session of ours: as good as gone
            return None, -2
        return _as_bytes(payload), int(ttl)

    def delete_many(self, keys: Sequence[str]) -> int:
        """``DEL`` each key (one command per key: Cluster-safe), in one round trip."""
        if not keys:
            return 0
        with _backend_errors("delete the user's sessions"):
            replies = self.channel.execute_many([("DEL", key) for key in keys])
        return sum(int(reply) for reply in replies)

    def _script(
        self, script: Script, keys: tuple[str, ...], args: tuple[Any, ...], action: str
    ) -> Any:
        """EVALSHA, or EVAL when the server does not have the script cached.

        A script on several keys waits for a Cluster slot migration (:func:`_patient`).
        """
        with _backend_errors(action):
            if len(keys) > 1:
                return _patient(lambda: self._run_script(script, keys, args))
            return self._run_script(script, keys, args)

    def _run_script(self, script: Script, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        try:
            return self.channel.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self.channel.execute("EVAL", script.text, len(keys), *keys, *args)


def _compared(result: Any) -> tuple[CasOutcome, bytes | None]:
    """The outcome of CAS or CAD: 1 done, 0 no such key, else the bytes stored now."""
    if result == 1:
        return CasOutcome.WRITTEN, None
    if result == 0:
        return CasOutcome.GONE, None
    return CasOutcome.CONFLICT, _as_bytes(result)


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _ex(ttl: int | None) -> tuple[Any, ...]:
    return ("EX", ttl) if ttl else ()


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):  # a client built with decode_responses=True
        return value.encode("utf-8", "surrogateescape")
    raise WrongTypeError(f"unexpected reply type {type(value).__name__}")
