"""A session's life inside its request: callbacks, failure isolation, memory.

The session is saved by a finished callback. A save that fails must not stop the
application's own finished callbacks, and once the request is over nothing may keep
the request and its session alive but the application's own references.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.request import Request

from pyramid_session_redis import RedisSession, RedisSessionFactory
from pyramid_session_redis.exceptions import SessionBackendError
from pyramid_session_redis.state import SessionState
from pyramid_session_redis.util import log_id, make_log_key
from tests.app import SECRET
from tests.servers import ServerFactory


def _app(factory: Any, view: Any) -> webtest.TestApp:
    config = Configurator()
    config.set_session_factory(factory)
    config.add_route("view", "/")
    config.add_view(view, route_name="view", renderer="json")
    return webtest.TestApp(config.make_wsgi_app())


def test_a_failed_save_still_runs_the_callbacks_registered_after_it(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    factory = RedisSessionFactory(SECRET, redis_url=server.url)
    cleaned: list[str] = []

    def write_then_stop(request: Request) -> Any:
        request.session["k"] = "v"  # registers the session's callbacks first
        request.add_finished_callback(lambda request: cleaned.append("db session closed"))
        server.stop()
        return "ok"

    app = _app(factory, write_then_stop)
    with pytest.raises(SessionBackendError):  # still escapes the router (503 middleware)
        app.get("/")
    assert cleaned == ["db session closed"]


def test_a_failed_save_is_logged_with_a_keyed_hash_of_the_id(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_factory()
    factory = RedisSessionFactory(SECRET, redis_url=server.url)
    ids: list[str] = []

    def write_then_stop(request: Request) -> Any:
        request.session["k"] = "v"
        ids.append(request.session.ensure_id())
        server.stop()
        return "ok"

    caplog.set_level(logging.ERROR, logger="pyramid_session_redis")
    with pytest.raises(SessionBackendError) as raised:
        _app(factory, write_then_stop).get("/")
    lines = [r.getMessage() for r in caplog.records if r.name == "pyramid_session_redis"]
    hashed = log_id(make_log_key(SECRET), ids[0])
    assert lines == [f"session {hashed}: not saved: {raised.value}"]


def test_a_lock_that_cannot_be_released_is_logged_and_the_request_succeeds(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only request under the lock: the release fails, the lease frees it later."""
    server = server_factory()
    factory = RedisSessionFactory(SECRET, redis_url=server.url, persistence="lock")
    ids: list[str] = []

    def view(request: Request) -> Any:
        if not request.params.get("stop"):
            return request.session.setdefault("k", "v")  # creates the session
        ids.append(request.session.session_id)  # loaded: the lock is ours
        server.stop()
        return request.session["k"]

    app = _app(factory, view)
    app.get("/")
    caplog.set_level(logging.ERROR, logger="pyramid_session_redis")
    assert app.get("/", {"stop": "1"}).json == "v"
    lines = [r.getMessage() for r in caplog.records if r.name == "pyramid_session_redis"]
    hashed = log_id(make_log_key(SECRET), ids[0])
    (line,) = lines
    assert line.startswith(f"session {hashed}: lock not released: Redis unavailable")


def test_the_session_lets_go_of_its_request_at_the_end(redis_url: str) -> None:
    factory = RedisSessionFactory(SECRET, redis_url=redis_url)
    sessions: list[Any] = []

    def write(request: Request) -> Any:
        request.session["k"] = "v"
        sessions.append(request.session)
        return sessions[0].request is request

    assert _app(factory, write).get("/").json is True
    assert sessions[0].request is None


def test_a_successful_save_raises_nothing_and_runs_every_callback(redis_url: str) -> None:
    factory = RedisSessionFactory(SECRET, redis_url=redis_url)
    cleaned: list[str] = []

    def write(request: Request) -> Any:
        request.session["k"] = "v"
        request.add_finished_callback(lambda request: cleaned.append("closed"))
        return "ok"

    assert _app(factory, write).get("/").json == "ok"
    assert cleaned == ["closed"]


def _alive(kind: type) -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


@pytest.mark.parametrize("touch", ["read", "write", "untouched-but-evaluated"])
def test_requests_and_sessions_are_freed_without_the_cycle_collector(
    redis_url: str, touch: str
) -> None:
    factory = RedisSessionFactory(SECRET, redis_url=redis_url)

    def view(request: Request) -> Any:
        session = request.session
        if touch == "write":
            session["n"] = session.get("n", 0) + 1
        elif touch == "read":
            session.get("n")
        return "ok"

    app = _app(factory, view)
    app.get("/")  # warm up: imports, connection, cookie
    gc.collect()
    gc.disable()
    try:
        counts = []
        for _ in range(2):
            for _ in range(100):
                app.get("/")
            counts.append((_alive(RedisSession), _alive(SessionState), _alive(Request)))
    finally:
        gc.enable()
    # The last request may still be referenced by the test client; nothing accumulates.
    assert counts[0] == counts[1], f"alive after 100 and 200 requests: {counts}"
    assert max(counts[1]) <= 1, counts
