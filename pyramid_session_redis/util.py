"""Small helpers: session ids and the clock."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable


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


def now() -> int:
    """Current time in whole epoch seconds (the payload's time unit)."""
    return int(time.time())
