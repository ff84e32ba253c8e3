"""Session events: what a listener receives for each step, and that it costs nothing without.

Through a real app and the suite's real Redis; the round trips an event reports are
checked against the server's own command counts.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest
import redis
import webtest
from pyramid.request import Request

from pyramid_session_redis import RedisSessionFactory, session_factory_from_settings
from pyramid_session_redis.events import EventKind, SessionEvent, log_events
from pyramid_session_redis.exceptions import ConfigurationError
from tests.app import SECRET, build_wsgi_app
from tests.redis_stats import CommandCounter
from tests.servers import ServerFactory


class Recorder(list[SessionEvent]):
    def __call__(self, event: SessionEvent) -> None:
        self.append(event)

    def kinds(self) -> list[EventKind]:
        return [event.kind for event in self]


def make(redis_url: str, events: Recorder, **options: Any) -> webtest.TestApp:
    factory = RedisSessionFactory(SECRET, redis_url=redis_url, event_listeners=events, **options)
    return webtest.TestApp(build_wsgi_app(factory))


def session_id_of(app: webtest.TestApp) -> str:
    return str(app.get("/session_id").json)


def test_a_session_s_life_as_events(redis_url: str) -> None:
    events = Recorder()
    app = make(redis_url, events)

    app.get("/set", {"key": "a", "value": "1"})
    assert events.kinds() == [EventKind.INVALID, EventKind.LOAD, EventKind.CREATE]
    invalid, load, create = events
    assert invalid.detail == {"reason": "InvalidSession_NoSessionCookie"}
    assert load.detail == {"found": False} and load.round_trips == 0
    assert create.round_trips == 1 and create.size > 0 and create.duration > 0
    session_id = session_id_of(app)

    events.clear()
    app.get("/read", {"key": "a"})
    (load,) = events
    assert (load.kind, load.round_trips, load.detail) == (EventKind.LOAD, 1, {"found": True})
    assert load.size == create.size

    events.clear()
    app.get("/set", {"key": "b", "value": "2"})
    assert events.kinds() == [EventKind.LOAD, EventKind.WRITE]
    assert events[1].round_trips == 1 and events[1].size > create.size

    events.clear()
    app.get("/invalidate")
    assert events.kinds() == [EventKind.LOAD, EventKind.DELETE]
    assert events[1].detail == {"invalidated": True}
    # Never the id itself: the keyed hash the logs show.
    factory_log_id = events[0].session
    assert session_id not in repr(events) and len(factory_log_id) == 16


def test_round_trips_match_the_server_s_count(redis_url: str, commands: CommandCounter) -> None:
    events = Recorder()
    app = make(redis_url, events, persistence="lock")
    app.get("/set", {"key": "a", "value": "1"})
    app.get("/read", {"key": "a"})  # the scripts are cached from here on
    events.clear()
    commands.reset()

    app.get("/set", {"key": "a", "value": "2"})

    assert sum(event.round_trips for event in events) == commands.counts()["evalsha"] == 2


def test_a_conflict_is_an_event_with_the_key_names(
    redis_url: str, redis_client: redis.Redis
) -> None:
    events = Recorder()
    loaded, release = threading.Event(), threading.Event()

    def slow_set(request: Request) -> Any:
        request.session["k"] = "mine"
        loaded.set()
        release.wait(10)
        return "ok"

    factory = RedisSessionFactory(SECRET, redis_url=redis_url, event_listeners=[events])
    app = webtest.TestApp(build_wsgi_app(factory, {"slow_set": slow_set}))
    app.get("/set", {"key": "k", "value": json.dumps("initial")})
    session_id = session_id_of(app)
    events.clear()
    cookie = app.cookies["session"]

    def run() -> None:
        other = webtest.TestApp(app.app)
        other.set_cookie("session", cookie)
        other.get("/slow_set")

    thread = threading.Thread(target=run)
    thread.start()
    assert loaded.wait(10)
    app.get("/set", {"key": "k", "value": json.dumps("theirs")})
    release.set()
    thread.join(10)

    conflicts = [event for event in events if event.kind is EventKind.CONFLICT]
    assert [event.detail for event in conflicts] == [{"keys": "k"}]
    assert redis_client.exists(session_id)


def test_backend_errors_are_events(server_factory: ServerFactory) -> None:
    server = server_factory()
    events = Recorder()
    app = make(server.url, events)
    app.get("/set", {"key": "a", "value": "1"})
    server.stop()
    events.clear()

    with pytest.raises(Exception):  # noqa: B017 - the typed error is tested elsewhere
        app.get("/read", {"key": "a"})

    (error,) = events
    assert error.kind is EventKind.BACKEND_ERROR
    assert error.detail == {"error": "SessionBackendError", "during": "load"}


def test_a_lock_wait_is_an_event(redis_url: str, redis_client: redis.Redis) -> None:
    events = Recorder()
    app = make(redis_url, events, persistence="lock", lock_wait=5)
    app.get("/set", {"key": "a", "value": "1"})
    session_id = session_id_of(app)
    redis_client.set(f"{{{session_id}}}:lock", "someone-else", px=150)
    events.clear()

    app.get("/read", {"key": "a"})

    waits = [event for event in events if event.kind is EventKind.LOCK_WAIT]
    assert len(waits) == 1 and waits[0].detail["acquired"] is True
    assert waits[0].detail["attempts"] > 1 and waits[0].duration >= 0.1


def test_a_failing_listener_never_fails_the_request(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: SessionEvent) -> None:
        raise RuntimeError("listener bug")

    factory = RedisSessionFactory(SECRET, redis_url=redis_url, event_listeners=(broken,))
    app = webtest.TestApp(build_wsgi_app(factory))
    caplog.set_level(logging.ERROR, logger="pyramid_session_redis.events")

    assert app.get("/set", {"key": "a", "value": "1"}).status_int == 200
    assert app.get("/read", {"key": "a"}).json == 1
    assert any("listener" in record.getMessage() for record in caplog.records)


def test_the_logging_adapter_writes_one_line_per_event(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {
        "redis.sessions.secret": SECRET,
        "redis.sessions.redis_url": redis_url,
        "redis.sessions.event_listeners": "pyramid_session_redis.events.log_events",
    }
    factory = session_factory_from_settings(settings)
    assert factory.settings.event_listeners == (log_events,)
    app = webtest.TestApp(build_wsgi_app(factory))
    caplog.set_level(logging.INFO, logger="pyramid_session_redis.events")

    app.get("/set", {"key": "a", "value": "1"})

    lines = [r.getMessage() for r in caplog.records if r.name == "pyramid_session_redis.events"]
    assert [line.split()[2] for line in lines] == ["invalid", "load", "create"]
    assert "round_trips=1" in lines[2]


def test_without_listeners_no_event_machinery_runs(redis_url: str) -> None:
    factory = RedisSessionFactory(SECRET, redis_url=redis_url)
    assert factory.settings.event_listeners == ()
    seen: list[Any] = []

    def view(request: Request) -> Any:
        request.session["a"] = 1
        seen.append(type(request.session._store()).__name__)
        return "ok"

    webtest.TestApp(build_wsgi_app(factory, {"view": view})).get("/view")
    assert seen == ["RedisStore"]  # no counting proxy in front of the store


@pytest.mark.parametrize("bad", [42, "not.a.module.listener", [1]])
def test_listeners_are_validated_at_start_up(bad: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        if isinstance(bad, str):
            session_factory_from_settings(
                {"redis.sessions.secret": SECRET, "redis.sessions.event_listeners": bad}
            )
        else:
            RedisSessionFactory(SECRET, event_listeners=bad)
    assert any("event_listeners" in option for option in info.value.options)
