"""What a loaded payload is worth: a usable record, or why a fresh session replaces it.

:func:`judge` decodes the bytes the load returned and checks them against the settings
(payload expiry, ``max_lifetime``, the user binding's deadline). No I/O: the session
loads, then acts on the :class:`Verdict`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from .codec import Codec, DecodeError, LegacyPayloadError, SessionRecord
from .exceptions import (
    InvalidSession,
    InvalidSession_NotInBackend,
    InvalidSession_PastLifetime,
    InvalidSession_PayloadLegacy,
    InvalidSession_PayloadTampered,
    InvalidSession_PayloadTimeout,
    InvalidSession_PayloadUnsigned,
    UserBindingExpired,
)
from .expiry import expiry_enforced, lifetime_left
from .integrity import PayloadTamperedError, PayloadUnsignedError
from .store import WrongTypeError
from .user_index import lapsed

if TYPE_CHECKING:
    from .settings import SessionSettings


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of a load: exactly one of ``record``, ``problem``, ``undecodable``.

    ``retire``: the session is past ``max_lifetime`` (``problem`` says so): its key is
    to be deleted. ``undecodable``: the bytes cannot be read; ``deserialized_fails_new``
    decides between a fresh session and ``RawDeserializationError``.
    """

    record: SessionRecord | None = None
    plain: bytes | None = None
    problem: InvalidSession | None = None
    retire: bool = False
    undecodable: Exception | None = None


def judge(
    raw: bytes | None,
    codec: Codec,
    settings: SessionSettings,
    session_id: str,
    log_id: Callable[[str], str],
    current: int,
) -> Verdict:
    """Decode ``raw`` (what the load of ``session_id`` returned) and check it."""

    def report(kind: type[InvalidSession], message: str | None = None) -> InvalidSession:
        hashed = log_id(session_id)
        text = () if message is None else (f"session {hashed}: {message}",)
        return kind(*text, session_id=session_id, log_id=hashed)

    if raw is None:
        return Verdict(problem=report(InvalidSession_NotInBackend))
    try:
        plain = codec.unpack(raw)
        record = codec.decode_plain(plain)
    except LegacyPayloadError as exc:
        return Verdict(problem=InvalidSession_PayloadLegacy(str(exc)))
    except PayloadUnsignedError as exc:
        return Verdict(problem=report(InvalidSession_PayloadUnsigned, f"{exc}; not loaded"))
    except PayloadTamperedError as exc:
        return Verdict(problem=report(InvalidSession_PayloadTampered, f"{exc}; not loaded"))
    except (DecodeError, WrongTypeError) as exc:
        return Verdict(undecodable=exc)
    if record.expires is not None and record.expires <= current and expiry_enforced(settings):
        return Verdict(problem=report(InvalidSession_PayloadTimeout))
    if lifetime_left(settings, record, current) <= 0:
        hashed = log_id(session_id)
        past = InvalidSession_PastLifetime(
            f"session {hashed}: older than max_lifetime",
            record.created,
            session_id=session_id,
            log_id=hashed,
        )
        return Verdict(problem=past, retire=True)
    if lapsed(record.data, current):
        return Verdict(problem=report(UserBindingExpired, "user binding lapsed"))
    return Verdict(record=record, plain=plain)
