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
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "CountingStore",
    "EventKind",
    "EventRecorder",
    "Listener",
    "SessionEvent",
    "emit",
    "log_events",
]

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


Mark = tuple[float, int]  # where a step started: (perf_counter, round trips so far)


class EventRecorder:
    """One request's events: with no listener it measures and builds nothing."""

    __slots__ = ("counter", "listeners")

    def __init__(self, listeners: Sequence[Listener]) -> None:
        self.listeners = listeners
        self.counter: CountingStore | None = None

    def wrap(self, store: Any) -> Any:
        """The store to use: counted when someone listens."""
        if not self.listeners:
            return store
        self.counter = CountingStore(store)
        return self.counter

    def round_trips(self) -> int:
        return 0 if self.counter is None else self.counter.calls

    def mark(self) -> Mark | None:
        """Where a step starts; None without listeners."""
        return (time.perf_counter(), self.round_trips()) if self.listeners else None

    def emit(
        self,
        kind: EventKind,
        mark: Mark | None,
        session: Callable[[], str],
        size: int = 0,
        **detail: Any,
    ) -> None:
        """Hand the step begun at ``mark`` to the listeners (``session()``: the log id)."""
        if mark is None:
            return
        started, trips = mark
        duration, trips = time.perf_counter() - started, self.round_trips() - trips
        emit(self.listeners, SessionEvent(kind, session(), duration, trips, size, detail))

    def error(
        self, mark: Mark | None, exc: Exception, during: str, session: Callable[[], str]
    ) -> None:
        """A failed load or save: a raised conflict, or a backend error."""
        keys = getattr(exc, "keys", None)
        if isinstance(keys, tuple):  # SessionWriteConflict (on_conflict="strict")
            self.emit(EventKind.CONFLICT, mark, session, keys=",".join(keys), raised=True)
        else:
            self.emit(
                EventKind.BACKEND_ERROR, mark, session, error=type(exc).__name__, during=during
            )


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
