"""Exceptions raised or reported by pyramid_session_redis.

Everything derives from :class:`SessionError`. The ``InvalidSession_*`` names are
the public names of version 1.8 and stay importable; each has a readable alias.
``InvalidSession`` instances are *reported* to ``func_invalid_logger`` (the user
gets a fresh session); the other classes are raised.

No message names a session id: a session id is a credential. Where an exception is
about one session, ``str()`` shows ``log_id`` (a keyed hash, the same the package's log
lines show) and the id itself is the attribute ``session_id``: sensitive, never log it.
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
    "InvalidSession_PastLifetime",
    "InvalidSession_PayloadLegacy",
    "InvalidSession_PayloadTampered",
    "InvalidSession_PayloadTimeout",
    "InvalidSession_PayloadUnsigned",
    "LifetimeExceeded",
    "NoSessionCookie",
    "NotInBackend",
    "PayloadExpired",
    "PayloadLegacy",
    "PayloadTampered",
    "PayloadUndecodable",
    "PayloadUnsigned",
    "RawDeserializationError",
    "SessionBackendError",
    "SessionError",
    "SessionGone",
    "SessionLockLost",
    "SessionLockTimeout",
    "SessionTooLarge",
    "SessionWriteConflict",
    "UserBindingExpired",
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
    """The request's session could not be used; a fresh session replaces it.

    ``session_id``: the id the request's cookie named, when the report is about one
    (else None). It is a credential: never log it. ``log_id``: its keyed hash, which
    ``str()`` shows (``session 1f0c…: is not in Redis``).
    """

    reason = "cannot be used"  # the message of a report about one session

    def __init__(
        self, *args: object, session_id: str | None = None, log_id: str | None = None
    ) -> None:
        if not args and log_id is not None:
            args = (f"session {log_id}: {self.reason}",)
        super().__init__(*args)
        self.session_id = session_id
        self.log_id = log_id


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

    reason = "is not in Redis"


class SessionGone(InvalidSession_NotInBackend):
    """The session was deleted in Redis while this request was using it.

    Reported instead of writing the session back (no resurrection).
    """

    reason = "was deleted while this request used it; its write was dropped"


class InvalidSession_DeserializationError(InvalidSession):
    """The stored payload could not be decoded (``deserialized_fails_new=True``)."""


class InvalidSession_PayloadTimeout(InvalidSession):
    """The payload's own expiry time has passed."""

    reason = "its payload's expiry time has passed"


class InvalidSession_PastLifetime(InvalidSession):
    """The session is older than ``max_lifetime`` (seconds since its creation, whatever
    the activity); it was deleted and a fresh session replaces it.

    ``created`` is the session's creation time (epoch seconds).
    """

    def __init__(
        self,
        message: str,
        created: int,
        *,
        session_id: str | None = None,
        log_id: str | None = None,
    ) -> None:
        super().__init__(message, session_id=session_id, log_id=log_id)
        self.created = created


class InvalidSession_PayloadTampered(InvalidSession):
    """``sign_payloads``: the stored value's MAC does not match; it was changed in Redis
    by someone other than this library (or belongs to another session). Never loaded.
    """


class InvalidSession_PayloadUnsigned(InvalidSession_PayloadTampered):
    """``sign_payloads`` with ``unsigned_payloads = reject``: the stored value carries
    no MAC (written before signing was switched on, or by someone else). Never loaded.
    """


class UserBindingExpired(InvalidSession_PayloadTimeout):
    """The session was bound to a user (``bind_user``) longer ago than
    ``user_index_lifetime``: the user index no longer covers it, so it is replaced by a
    fresh session (the user logs in again).
    """


class BackendUnavailable(InvalidSession):
    """Redis could not be reached while loading; ``degraded_mode`` gave an empty session.

    ``error`` is the :class:`SessionBackendError`.
    """

    def __init__(
        self,
        message: str,
        error: BaseException | None = None,
        *,
        session_id: str | None = None,
        log_id: str | None = None,
    ) -> None:
        super().__init__(message, session_id=session_id, log_id=log_id)
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
    up after ``cas_retries``. A reported conflict's ``session_id`` is the session's id
    (sensitive: never log it; its message shows a keyed hash instead).
    """

    def __init__(
        self, message: str, keys: tuple[str, ...] = (), *, session_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.keys = keys
        self.session_id = session_id


class SessionLockLost(SessionWriteConflict):
    """``persistence = lock``: the lock's lease (``lock_timeout``) ran out before this
    request saved, so another request may have taken it; nothing was written.
    """


class SessionTooLarge(SessionError):
    """The session's serialized payload is larger than ``max_payload_bytes``.

    Raised when the session is saved; nothing is written (the stored session, if any,
    stays as it was). ``size`` and ``limit`` are in bytes, before compression.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"session payload of {size} bytes exceeds max_payload_bytes={limit}")
        self.size = size
        self.limit = limit


# Readable aliases for the 1.8 names.
NoSessionCookie = InvalidSession_NoSessionCookie
NotInBackend = InvalidSession_NotInBackend
PayloadUndecodable = InvalidSession_DeserializationError
PayloadExpired = InvalidSession_PayloadTimeout
PayloadLegacy = InvalidSession_PayloadLegacy
LifetimeExceeded = InvalidSession_PastLifetime
PayloadTampered = InvalidSession_PayloadTampered
PayloadUnsigned = InvalidSession_PayloadUnsigned
