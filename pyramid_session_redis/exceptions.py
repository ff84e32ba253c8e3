"""Exceptions raised or reported by pyramid_session_redis.

Everything derives from :class:`SessionError`. The ``InvalidSession_*`` names are
the public names of version 1.8 and stay importable; each has a readable alias.
``InvalidSession`` instances are *reported* to ``func_invalid_logger`` (the user
gets a fresh session); the other classes are raised.
"""

from __future__ import annotations

from pyramid.exceptions import ConfigurationError as _PyramidConfigurationError

__all__ = [
    "BackendUnavailable",
    "ConfigurationError",
    "CookieInvalid",
    "InvalidSession",
    "InvalidSessionId_Deserialization",
    "InvalidSessionId_Serialization",
    "InvalidSession_DeserializationError",
    "InvalidSession_Lazycreate",
    "InvalidSession_NoSessionCookie",
    "InvalidSession_NotInBackend",
    "InvalidSession_PayloadLegacy",
    "InvalidSession_PayloadTimeout",
    "NoSessionCookie",
    "NotInBackend",
    "PayloadExpired",
    "PayloadLegacy",
    "PayloadUndecodable",
    "RawDeserializationError",
    "SessionBackendError",
    "SessionError",
    "SessionGone",
    "SessionLockLost",
    "SessionLockTimeout",
    "SessionWriteConflict",
]


class SessionError(Exception):
    """Root of every exception of this package."""


class ConfigurationError(SessionError, ValueError, _PyramidConfigurationError):  # type: ignore[misc]
    """An option, or a combination of options, is invalid; raised at start-up.

    ``options`` names the offending option(s).
    """

    def __init__(self, message: str, *options: str) -> None:
        super().__init__(message)
        self.options = options


class InvalidSession(SessionError):
    """The request's session could not be used; a fresh session replaces it."""


class InvalidSession_NoSessionCookie(InvalidSession):
    """The request carried no session cookie."""


class CookieInvalid(InvalidSession_NoSessionCookie):
    """A session cookie was sent but is tampered, truncated, oversized or not ASCII.

    A subclass of ``InvalidSession_NoSessionCookie`` because, as in 1.8, such a
    request is treated as one without a cookie.
    """


class InvalidSession_Lazycreate(InvalidSession):
    """Kept for 1.8 compatibility; never reported by this version."""


class InvalidSession_NotInBackend(InvalidSession):
    """The cookie's session id has no data in Redis (expired, deleted, never stored)."""


class SessionGone(InvalidSession_NotInBackend):
    """The session was deleted in Redis while this request was using it.

    Reported instead of writing the session back (no resurrection).
    """


class InvalidSession_DeserializationError(InvalidSession):
    """The stored payload could not be decoded (``deserialized_fails_new=True``)."""


class InvalidSession_PayloadTimeout(InvalidSession):
    """The payload's own expiry time has passed."""


class BackendUnavailable(InvalidSession):
    """Redis could not be reached while loading; ``degraded_mode`` gave an empty session.

    ``error`` is the :class:`SessionBackendError`.
    """

    def __init__(self, message: str, error: BaseException | None = None) -> None:
        super().__init__(message)
        self.error = error


class InvalidSession_PayloadLegacy(InvalidSession):
    """The payload was written with an unsupported layout version."""


class InvalidSessionId_Serialization(SessionError):
    """Kept for 1.8 compatibility; never raised by this version."""


class InvalidSessionId_Deserialization(SessionError):
    """Kept for 1.8 compatibility; never raised by this version."""


class RawDeserializationError(SessionError):
    """The stored payload could not be decoded and ``deserialized_fails_new`` is off.

    As in 1.8, ``args[0]`` is the original exception (also chained as ``__cause__``).
    """


class SessionBackendError(SessionError):
    """Redis could not be reached or answered with an error.

    The redis-py exception is chained as ``__cause__`` and kept as ``.error``.
    Map it to a 503 with an exception view.
    """

    def __init__(self, message: str, error: BaseException | None = None) -> None:
        super().__init__(message)
        self.error = error


class SessionLockTimeout(SessionBackendError):
    """``persistence = lock``: another request of the session held the lock for longer
    than ``lock_wait``; the request gave up waiting.

    ``waited`` is how long it waited (seconds), ``attempts`` how often it tried. Map it
    to a 503 (or a 429) with an exception view.
    """

    def __init__(self, message: str, waited: float, attempts: int) -> None:
        super().__init__(message)
        self.waited = waited
        self.attempts = attempts


class SessionWriteConflict(SessionError):
    """Two requests changed the same part of a session in ways that cannot be merged.

    ``keys`` names the top-level keys (never their values). With the default
    ``on_conflict="ours"`` this request's values are kept and an instance is *reported*
    to ``func_conflict_logger``; with ``on_conflict="strict"`` it is raised and nothing
    is written. Also raised, with no ``keys``, when a write keeps losing races and gives
    up after ``cas_retries``.
    """

    def __init__(self, message: str, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.keys = keys


class SessionLockLost(SessionWriteConflict):
    """``persistence = lock``: the lock's lease (``lock_timeout``) ran out before this
    request saved, so another request may have taken it; nothing was written.
    """


# Readable aliases for the 1.8 names.
NoSessionCookie = InvalidSession_NoSessionCookie
NotInBackend = InvalidSession_NotInBackend
PayloadUndecodable = InvalidSession_DeserializationError
PayloadExpired = InvalidSession_PayloadTimeout
PayloadLegacy = InvalidSession_PayloadLegacy
