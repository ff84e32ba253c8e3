"""Storage: the few Redis operations a session needs, behind one small interface.

Every operation touches exactly one key (Cluster-safe) and costs one round trip.
Errors from redis-py become :class:`SessionBackendError`.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any, Protocol

from redis.exceptions import NoScriptError, RedisError, ResponseError

from .channel import CommandChannel
from .exceptions import SessionBackendError


class CasOutcome(enum.Enum):
    WRITTEN = "written"
    CONFLICT = "conflict"  # the stored payload changed since it was loaded
    GONE = "gone"  # the key no longer exists: never recreate it


class WrongTypeError(ValueError):
    """The key holds a non-string Redis value (a list, a hash...)."""


class SessionStore(Protocol):
    """What a session needs from storage. ``ttl=None`` means no TTL."""

    def load(self, key: str, refresh_ttl: int | None) -> bytes | None: ...
    def create(self, key: str, payload: bytes, ttl: int | None) -> bool: ...
    def overwrite(self, key: str, payload: bytes, ttl: int | None) -> bool: ...
    def compare_and_set(
        self, key: str, expected: bytes, payload: bytes, ttl: int | None
    ) -> tuple[CasOutcome, bytes | None]: ...
    def compare_and_delete(self, key: str, expected: bytes) -> tuple[CasOutcome, bytes | None]: ...
    def refresh(self, key: str, ttl: int) -> None: ...
    def delete(self, key: str) -> None: ...


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


class ServerFeatures:
    """What the server supports, learnt once per factory (shared across requests)."""

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
        self, key: str, expected: bytes, payload: bytes, ttl: int | None
    ) -> tuple[CasOutcome, bytes | None]:
        """Write ``payload`` only if the key still holds ``expected``.

        One ``SET … IFEQ`` where the server has it (a ``GET`` follows only when it
        refused, to tell a conflict from a deleted session), else one script call.
        """
        if self.features.set_ifeq:
            outcome = self._set_ifeq(key, expected, payload, ttl)
            if outcome is not None:
                return outcome
        return self._script(
            "save the session", CAS_SCRIPT, CAS_SCRIPT_SHA, key, expected, payload, ttl or 0
        )

    def compare_and_delete(self, key: str, expected: bytes) -> tuple[CasOutcome, bytes | None]:
        """Delete the key only if it still holds ``expected`` (an emptied session)."""
        return self._script("delete the session", CAD_SCRIPT, CAD_SCRIPT_SHA, key, expected)

    def _script(
        self, action: str, script: str, sha: str, key: str, *args: Any
    ) -> tuple[CasOutcome, bytes | None]:
        """Run a compare-then-act script by SHA (EVAL if the server lacks it)."""
        with _backend_errors(action):
            try:
                result = self.channel.execute("EVALSHA", sha, 1, key, *args)
            except NoScriptError:  # script cache flushed or a new server: EVAL caches it
                result = self.channel.execute("EVAL", script, 1, key, *args)
        if result == 1:
            return CasOutcome.WRITTEN, None
        if result == 0:
            return CasOutcome.GONE, None
        return CasOutcome.CONFLICT, _as_bytes(result)

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


def _ex(ttl: int | None) -> tuple[Any, ...]:
    return ("EX", ttl) if ttl else ()


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):  # a client built with decode_responses=True
        return value.encode("utf-8", "surrogateescape")
    raise WrongTypeError(f"unexpected reply type {type(value).__name__}")
