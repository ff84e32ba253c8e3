"""A session's life inside its request: callbacks, failure isolation, memory.

The session is saved by a finished callback. A save that fails must not stop the
application's own finished callbacks, and once the request is over nothing may keep
the request and its session alive but the application's own references.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.request import Request

from pyramid_session_redis import RedisSession, RedisSessionFactory
from pyramid_session_redis.exceptions import SessionBackendError
from pyramid_session_redis.state import SessionState
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
