"""Session events for monitoring: what each request did with its session, and its cost.

Listeners are plain callables ``listener(event)`` given to the factory as
``event_listeners`` (ini: whitespace-separated dotted names). With none, no event is
built: the request pays one falsy check per step. Events never carry a session id or a
value: ``session`` is the keyed hash that the logs show.

``log_events`` is a ready-made listener that writes one line per event to the
``pyramid_session_redis.events`` logger (INFO; conflicts and errors at WARNING).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["CountingStore", "EventKind", "Listener", "SessionEvent", "emit", "log_events"]

events_log = logging.getLogger("pyramid_session_redis.events")


class EventKind(enum.Enum):
    LOAD = "load"  # the session was read (or found missing) at request.session
    CREATE = "create"  # a new session was stored
    WRITE = "write"  # a changed session was saved (detail: attempts, conflicts merged)
    REFRESH = "refresh"  # only the expiry was slid
    DELETE = "delete"  # invalidate(), or an emptied session
    CONFLICT = "conflict"  # both requests changed the same keys (detail: keys)
    LOCK_WAIT = "lock_wait"  # persistence=lock: the lock was busy (detail: attempts)
    INVALID = "invalid"  # a fresh session replaced the cookie's (detail: reason)
    BACKEND_ERROR = "backend_error"  # Redis failed (detail: error, during)


@dataclasses.dataclass(frozen=True, slots=True)
class SessionEvent:
    """One step of one request's session."""

    kind: EventKind
    session: str  # keyed hash of the id ("-": no id yet); never the id itself
    duration: float = 0.0  # seconds spent on the step, Redis included
    round_trips: int = 0
    size: int = 0  # bytes read or written (stored form)
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)


Listener = Callable[[SessionEvent], Any]


class CountingStore:
    """A session store that counts its calls: each store operation is one round trip.

    Put in front of the store only when listeners are registered.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return attribute(*args, **kwargs)

        return counted


def emit(listeners: Sequence[Listener], event: SessionEvent) -> None:
    """Hand ``event`` to every listener; a failing listener is logged, never raised."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # monitoring must not take a request down
            events_log.exception("session event listener %r failed", listener)


_WARNINGS = (EventKind.CONFLICT, EventKind.BACKEND_ERROR)


def log_events(event: SessionEvent) -> None:
    """A listener writing each event as one line on ``pyramid_session_redis.events``."""
    level = logging.WARNING if event.kind in _WARNINGS else logging.INFO
    if not events_log.isEnabledFor(level):
        return
    details = " ".join(f"{name}={value}" for name, value in sorted(event.detail.items()))
    events_log.log(
        level,
        "session %s %s %.2fms round_trips=%d bytes=%d%s",
        event.session,
        event.kind.value,
        event.duration * 1000,
        event.round_trips,
        event.size,
        f" {details}" if details else "",
    )
