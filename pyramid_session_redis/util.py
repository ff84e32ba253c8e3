"""Small helpers: session ids and the clock; 1.8's ``SignedSerializerInterface``."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from .cookie import CookieSigner

# 1.8's name for the protocol of a ``cookie_signer`` (custom signers subclass it).
SignedSerializerInterface = CookieSigner


def new_session_id() -> str:
    """A fresh id: 256 random bits as 64 lowercase hex characters."""
    return secrets.token_hex(32)


def make_id_generator(custom: Callable[[], str] | None, prefix: str | None) -> Callable[[], str]:
    """The id generator for a factory: the custom one or ours, with the optional prefix."""
    generate = custom or new_session_id
    if not prefix:
        return _checked(generate)
    return _checked(lambda: prefix + generate())


def _checked(generate: Callable[[], str]) -> Callable[[], str]:
    def generate_id() -> str:
        session_id = generate()
        if not isinstance(session_id, str) or not session_id:
            raise TypeError(f"id_generator must return a non-empty str, got {session_id!r}")
        return session_id

    return generate_id


def make_log_key(secret: str | bytes | None) -> bytes:
    """The key for :func:`log_id`: derived from the secret, so stable across processes."""
    if secret is None:
        return secrets.token_bytes(32)
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hashlib.sha256(b"pyramid_session_redis.log-id:" + raw).digest()


def log_id(key: bytes, session_id: str | None) -> str:
    """A keyed hash of a session id, safe to log (the id itself is a credential)."""
    if session_id is None:
        return "-"
    return hmac.new(key, session_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def now() -> int:
    """Current time in whole epoch seconds (the payload's time unit)."""
    return int(time.time())
