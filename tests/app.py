"""A small real Pyramid application for the behaviour tests.

Each view does one thing to ``request.session`` and answers JSON. Tests add
their own views with ``extra_views={"name": callable}`` (served at ``/name``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import webtest
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.exceptions import SessionBackendError

SECRET = "test-secret"
View = Callable[[Request], Any]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))


def untouched(request: Request) -> Any:
    return "untouched"


def read(request: Request) -> Any:
    return request.session.get(request.params["key"])


def dump(request: Request) -> Any:
    return dict(request.session)


def set_value(request: Request) -> Any:
    request.session[request.params["key"]] = json.loads(request.params["value"])
    return "set"


def append(request: Request) -> Any:
    request.session[request.params["key"]].append(json.loads(request.params["value"]))
    return "appended"


def delete(request: Request) -> Any:
    del request.session[request.params["key"]]
    return "deleted"


def incr(request: Request) -> Any:
    return request.session.incr(request.params["key"], int(request.params.get("by", 1)))


def invalidate(request: Request) -> Any:
    request.session.invalidate()
    return "invalidated"


def clear(request: Request) -> Any:
    request.session.clear()
    return "cleared"


def session_id(request: Request) -> Any:
    return request.session.session_id


def ensure_id(request: Request) -> Any:
    return request.session.ensure_id()


def flash(request: Request) -> Any:
    request.session.flash(request.params["msg"])
    return "flashed"


def pop_flash(request: Request) -> Any:
    return request.session.pop_flash()


def set_and_raise(request: Request) -> Any:
    request.session["k"] = "v"
    raise RuntimeError("boom")


def cacheable(request: Request) -> Any:
    request.session["k"] = "v"
    request.response.cache_control.max_age = 60
    return "cacheable"


VIEWS: dict[str, View] = {
    "untouched": untouched,
    "read": read,
    "dump": dump,
    "set": set_value,
    "append": append,
    "delete": delete,
    "incr": incr,
    "invalidate": invalidate,
    "clear": clear,
    "session_id": session_id,
    "ensure_id": ensure_id,
    "flash": flash,
    "pop_flash": pop_flash,
    "raise": set_and_raise,
    "cacheable": cacheable,
}


def _wrap(view: View) -> Callable[[Request], Response]:
    def wrapped(request: Request) -> Response:
        result = view(request)
        if isinstance(result, Response):
            return result
        response = request.response
        response.content_type = "application/json"
        response.text = json.dumps(_jsonable(result))
        return response

    return wrapped


def error_view(exc: Exception, request: Request) -> Response:
    response = Response(json.dumps({"error": type(exc).__name__}), status=500)
    response.content_type = "application/json"
    return response


def unavailable(exc: Exception, request: Request | None = None) -> Response:
    """503 ``{"error": "SessionBackendError"}``: an exception view, and the middleware's."""
    response = Response(json.dumps({"error": type(exc).__name__}), status=503)
    response.content_type = "application/json"
    return response


class BackendErrorsAre503:
    """WSGI middleware: a ``SessionBackendError`` raised by the end-of-request save (after
    the views ran, out of exception views' reach) becomes a 503, as the README advises."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            return self.app(environ, start_response)
        except SessionBackendError as exc:
            return unavailable(exc)(environ, start_response)


def build_wsgi_app(
    session_factory: Any,
    extra_views: Mapping[str, View] | None = None,
    error_views: bool = True,
    configure: Callable[[Configurator], None] | None = None,
) -> Any:
    """The application; ``configure(config)`` may add to it (e.g. exception views)."""
    with Configurator() as config:
        config.set_session_factory(session_factory)
        for name, view in {**VIEWS, **(extra_views or {})}.items():
            config.add_route(name, f"/{name}")
            config.add_view(_wrap(view), route_name=name)
        if error_views:
            config.add_view(error_view, context=RuntimeError)
        if configure is not None:
            configure(config)
        return config.make_wsgi_app()


def make_app(
    redis_url: str,
    extra_views: Mapping[str, View] | None = None,
    *,
    error_views: bool = True,
    **options: Any,
) -> webtest.TestApp:
    """A TestApp whose sessions live in the Redis at ``redis_url``."""
    options.setdefault("secret", SECRET)
    factory = RedisSessionFactory(redis_url=redis_url, **options)
    return webtest.TestApp(build_wsgi_app(factory, extra_views, error_views))
