"""A ``pyramid_debugtoolbar`` panel listing what each request did with its session.

Enabled from the toolbar's own settings (``pip install pyramid_session_redis[debugtoolbar]``)::

    debugtoolbar.includes = pyramid_session_redis.debugtoolbar

:func:`includeme` then registers :class:`SessionEventsPanel` and, once the application is
built, adds :func:`record_event` to the ``event_listeners`` of the application's
pyramid_session_redis factory. Without the toolbar nothing of this runs: the factory keeps
the listeners it was given (with none, sessions measure nothing).

Requests the toolbar tracks get a list in ``request.environ["pyramid_session_redis.events"]``
that :func:`record_event` appends to; other requests (and work outside a request) are
ignored. The panel shows ``SessionEvent.session``, the keyed hash of the id, never the id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyramid.interfaces import ISessionFactory
from pyramid.threadlocal import get_current_request

from .events import SessionEvent
from .exceptions import ConfigurationError
from .factory import SessionFactory

try:
    from pyramid_debugtoolbar.panels import DebugPanel
except ImportError as exc:  # tested in a subprocess without the toolbar
    raise ImportError(
        "pyramid_session_redis.debugtoolbar needs pyramid_debugtoolbar: "
        "pip install 'pyramid_session_redis[debugtoolbar]'"
    ) from exc

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request

__all__ = ["EVENTS_ENVIRON_KEY", "SessionEventsPanel", "includeme", "record_event"]

#: Where a tracked request's list of :class:`~.events.SessionEvent` lives.
EVENTS_ENVIRON_KEY = "pyramid_session_redis.events"


def record_event(event: SessionEvent) -> None:
    """The listener: append ``event`` to the current request's list, if the toolbar keeps one.

    Sessions are saved in a finished callback, while Pyramid still has the request as the
    current one, so the end-of-request event lands on the right request too.
    """
    request = get_current_request()
    events = None if request is None else request.environ.get(EVENTS_ENVIRON_KEY)
    if events is not None:
        events.append(event)


@dataclasses.dataclass(frozen=True, slots=True)
class EventRow:
    """One line of the panel: an event in display units."""

    kind: str
    session: str
    milliseconds: str
    round_trips: int
    size: int
    detail: str

    @classmethod
    def of(cls, event: SessionEvent) -> EventRow:
        detail = ", ".join(f"{name}={value}" for name, value in sorted(event.detail.items()))
        return cls(
            event.kind.value,
            event.session,
            f"{event.duration * 1000:.2f}",
            event.round_trips,
            event.size,
            detail,
        )


class SessionEventsPanel(DebugPanel):  # type: ignore[misc]  # the toolbar is untyped
    """The "Redis session" tab: one row per session event of the request."""

    name = "redis_session"
    title = "Redis session"
    nav_title = title
    template = "pyramid_session_redis:templates/session_events.dbtmako"

    def __init__(self, request: Request) -> None:
        # Filled while the request runs, and after: the save comes in a finished callback,
        # once the toolbar has seen the response; the panel is rendered later, on demand.
        self.events: list[SessionEvent] = []
        request.environ[EVENTS_ENVIRON_KEY] = self.events

    @property
    def has_content(self) -> bool:
        """No tab content for a request that never touched its session."""
        return bool(self.events)

    @property
    def nav_subtitle(self) -> str:
        if not self.events:
            return ""
        trips = sum(event.round_trips for event in self.events)
        return f"{trips} round trip{'' if trips == 1 else 's'}"

    def render_vars(self, request: Request) -> dict[str, Any]:
        return summary(self.events)


def summary(events: Sequence[SessionEvent]) -> dict[str, Any]:
    """What the template shows: the rows and their totals."""
    return {
        "rows": [EventRow.of(event) for event in events],
        "total_milliseconds": f"{sum(event.duration for event in events) * 1000:.2f}",
        "total_round_trips": sum(event.round_trips for event in events),
        "total_size": sum(event.size for event in events),
    }


def listen_to_sessions(config: Configurator) -> None:
    """Add :func:`record_event` to the application's session factory, if it is ours.

    Run on the application's configuration once it is complete (a toolbar "parent
    action"), so it finds the factory however the application set it. The factory is
    rebuilt with one more listener: its settings are immutable.
    """
    factory = config.registry.queryUtility(ISessionFactory)
    if not isinstance(factory, SessionFactory):
        return
    listeners = factory.settings.event_listeners
    if record_event in listeners:
        return
    settings = dataclasses.replace(factory.settings, event_listeners=(*listeners, record_event))
    config.set_session_factory(type(factory)(settings))


def includeme(config: Configurator) -> None:
    """Register the panel; named in the ``debugtoolbar.includes`` setting."""
    if not hasattr(config, "add_debugtoolbar_panel"):
        raise ConfigurationError(
            "pyramid_session_redis.debugtoolbar is included by the toolbar: list it in the "
            "`debugtoolbar.includes` setting, not in pyramid.includes",
            "debugtoolbar.includes",
        )
    config.add_debugtoolbar_panel(SessionEventsPanel)
    config.inject_parent_action(listen_to_sessions)
