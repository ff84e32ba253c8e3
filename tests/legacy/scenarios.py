"""Scenarios of the differential tests, runnable against 1.8.1 and against this package.

The same file runs in two interpreters: imported by the test suite (our package), and
as a script in the 1.8.1 virtualenv (``python scenarios.py NAME`` with a JSON spec on
stdin: ``{"redis_url": ..., "secret": ...}``; it prints the observation as JSON).
It uses only what both libraries document, and reports what an application sees:
events in order (logger calls, exceptions and where they were raised), the session
cookie on each response, what Redis holds, settings and importable names.
"""

from __future__ import annotations

import importlib
import json
import logging
import pickle
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
import webtest
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

COOKIE = "session"
# The exception names of 1.8 an application can catch or receive; anything else is
# reported by its own class name.
LEGACY_EXCEPTIONS = (
    "InvalidSession_NoSessionCookie",
    "InvalidSession_NotInBackend",
    "InvalidSession_DeserializationError",
    "InvalidSession_PayloadTimeout",
    "InvalidSession_PayloadLegacy",
    "InvalidSession_Lazycreate",
    "RawDeserializationError",
    "InvalidSession",
)
UNREACHABLE_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


def exception_name(exc: BaseException) -> str:
    """The most specific 1.8 class ``exc`` is an instance of, else its own class name."""
    names = [cls.__name__ for cls in type(exc).__mro__]
    return next((name for name in names if name in LEGACY_EXCEPTIONS), names[0])


class Context:
    """What a scenario works with: a flushed Redis, an event log, app builders."""

    def __init__(self, redis_url: str, secret: str) -> None:
        self.redis_url = redis_url
        self.secret = secret
        self.client = redis.Redis.from_url(redis_url)
        self.client.flushdb()
        self.events: list[list[Any]] = []
        CURRENT.append(self)

    def log(self, *event: Any) -> None:
        self.events.append(list(event))

    def invalid_logger(self, request: Any, exc: BaseException) -> None:
        self.log("logger", exception_name(exc))

    def factory(self, **options: Any) -> Any:
        from pyramid_session_redis import RedisSessionFactory

        options.setdefault("redis_url", self.redis_url)
        options.setdefault("cookie_name", COOKIE)
        options.setdefault("func_invalid_logger", self.invalid_logger)
        return RedisSessionFactory(self.secret, **options)

    def app(self, view: Callable[[Request], Any], factory: Any = None, **options: Any) -> Any:
        """A TestApp serving ``view`` at ``/`` (the view returns JSON-able data)."""

        def wrapped(request: Request) -> Response:
            return Response(json=view(request))

        with Configurator() as config:
            config.set_session_factory(factory or self.factory(**options))
            config.add_route("view", "/")
            config.add_view(wrapped, route_name="view")
            return webtest.TestApp(config.make_wsgi_app())

    def session_keys(self) -> list[bytes]:
        return sorted(self.client.keys("*"))

    def stored(self) -> dict[str, Any]:
        """The one key in Redis: whether it has a TTL, and its payload's shape."""
        keys = self.session_keys()
        if not keys:
            return {"keys": 0}
        raw = self.client.get(keys[0])
        ttl = self.client.ttl(keys[0])
        out: dict[str, Any] = {"keys": len(keys), "ttl": "none" if ttl == -1 else "set"}
        try:
            payload = pickle.loads(raw)
        except Exception:
            return out
        if isinstance(payload, dict):
            out["data"] = payload.get("m")
            out["fields"] = sorted(payload)
        return out


def cookie_seen(response: Any) -> dict[str, Any]:
    """The session cookie a response sets: absent, set (with attributes) or expired."""
    headers = [h for h in response.headers.getall("Set-Cookie") if h.startswith(COOKIE + "=")]
    if not headers:
        return {"action": "none"}
    parts = [part.strip() for part in headers[-1].split(";")]
    value = parts[0][len(COOKIE) + 1 :]
    attributes = {}
    for part in parts[1:]:
        name, _, attr_value = part.partition("=")
        attributes[name.lower()] = attr_value
    expired = not value or attributes.get("max-age") == "0"
    attributes.pop("expires", None)  # a date: compared through max-age
    return {"action": "expire" if expired else "set", "attributes": attributes}


def cookie_value(response: Any) -> str:
    for header in response.headers.getall("Set-Cookie"):
        if header.startswith(COOKIE + "="):
            return str(header.split(";", 1)[0][len(COOKIE) + 1 :])
    raise AssertionError("no session cookie")


def create_session(ctx: Context, data: dict[str, Any], factory: Any = None, **options: Any) -> str:
    """A stored session holding ``data``; returns its cookie value."""

    def view(request: Request) -> Any:
        request.session.update(data)
        return "ok"

    return cookie_value(ctx.app(view, factory, **options).get("/"))


def request_with(app: Any, cookie: str | None, **kwargs: Any) -> Any:
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    return app.get("/", headers=headers, **kwargs)


# --------------------------------------------------------------------------- scenarios

PICKLE = {"serialize": pickle.dumps, "deserialize": pickle.loads}
SCENARIOS: dict[str, Callable[[Context], Any]] = {}


def scenario(func: Callable[[Context], Any]) -> Callable[[Context], Any]:
    SCENARIOS[func.__name__] = func
    return func


def _loading_view(ctx: Context) -> Callable[[Request], Any]:
    def view(request: Request) -> Any:
        ctx.log("evaluating request.session")
        try:
            session = request.session
        except Exception as exc:
            ctx.log("raised", exception_name(exc))
            return "failed"
        ctx.log("evaluated")
        try:
            session.get("a")
        except Exception as exc:
            ctx.log("raised", exception_name(exc))
            return "failed"
        ctx.log("accessed")
        return "ok"

    return view


@scenario
def load_when_evaluated(ctx: Context) -> Any:
    """Point 1: the logger is called, and errors raise, when request.session is evaluated."""
    app = ctx.app(_loading_view(ctx), **PICKLE)
    ctx.log("no cookie")
    request_with(app, None)
    ctx.log("cookie of a missing session")
    missing = create_session(ctx, {"a": 1}, **PICKLE)
    ctx.client.flushdb()
    request_with(app, missing)
    ctx.log("undecodable payload")
    garbage = create_session(ctx, {"a": 1}, **PICKLE)
    ctx.client.set(ctx.session_keys()[0], b"not a pickle")
    request_with(app, garbage)
    ctx.log("redis unreachable")
    down = ctx.app(_loading_view(ctx), redis_url=UNREACHABLE_URL, **PICKLE)
    request_with(down, garbage)
    return ctx.events


@scenario
def dummy_request_cookies(ctx: Context) -> Any:
    """Point 2: a unit test's DummyRequest(cookies=...) reaches the stored session."""
    from pyramid import testing

    cookie = create_session(ctx, {"user": "alice"}, **PICKLE)
    factory = ctx.factory(**PICKLE)
    session = factory(testing.DummyRequest(cookies={COOKIE: cookie}))
    return {"new": session.new, "user": session.get("user"), "events": ctx.events}


def _timing_options() -> dict[str, dict[str, Any]]:
    return {
        "trigger without python_expires": {"timeout_trigger": 600, "python_expires": False},
        "trigger without timeout": {"timeout": None, "timeout_trigger": 600},
        "pure LRU": {"set_redis_ttl": False, "python_expires": False},
    }


CURRENT: list[Context] = []  # the running scenario's context, for dotted-name callables
sys.modules.setdefault("psr_scenarios", sys.modules[__name__])


def record_invalid(request: Any, exc: BaseException) -> None:
    """``func_invalid_logger`` by dotted name (``psr_scenarios.record_invalid``)."""
    CURRENT[-1].invalid_logger(request, exc)


def ini_factory(ctx: Context, options: dict[str, Any]) -> Any:
    """The factory ``config.include`` builds from ``options`` written as ini strings."""
    from pyramid.interfaces import ISessionFactory

    def ini(value: Any) -> str:
        if value is None:
            return "0"  # the ini form of "no timeout"
        if callable(value):
            return f"pickle.{value.__name__}"
        return str(value).lower() if isinstance(value, bool) else str(value)

    settings = {f"redis.sessions.{name}": ini(value) for name, value in options.items()}
    settings.update(
        {
            "redis.sessions.secret": ctx.secret,
            "redis.sessions.redis_url": ctx.redis_url,
            "redis.sessions.cookie_name": COOKIE,
            "redis.sessions.func_invalid_logger": "psr_scenarios.record_invalid",
        }
    )
    with Configurator(settings=settings) as config:
        config.include("pyramid_session_redis")
    return config.registry.getUtility(ISessionFactory)


def _timing_options() -> dict[str, dict[str, Any]]:
    return {
        "trigger without python_expires": {"timeout_trigger": 600, "python_expires": False},
        "trigger without timeout": {"timeout": None, "timeout_trigger": 600},
        "pure LRU": {"set_redis_ttl": False, "python_expires": False},
    }


def _configurations(ctx: Context, make_factory: Callable[[dict[str, Any]], Any]) -> Any:
    out: dict[str, Any] = {}
    for label, options in _timing_options().items():
        ctx.client.flushdb()
        ctx.events.clear()
        options = {"timeout": 1200, **PICKLE, **options}
        factory = make_factory(options)
        cookie = create_session(ctx, {"a": 1}, factory)
        stored = ctx.stored()
        # the session's payload says it expired an hour ago: does anyone enforce it?
        key = ctx.session_keys()[0]
        payload = pickle.loads(ctx.client.get(key))
        payload["c"] -= 7200
        if "x" in payload:
            payload["x"] = int(time.time()) - 3600
        ctx.client.set(key, pickle.dumps(payload), keepttl=True)

        def view(request: Request) -> Any:
            return request.session.get("a")

        value = request_with(ctx.app(view, factory), cookie).json
        out[label] = {"stored": stored, "after expiry": value, "events": list(ctx.events)}
    return out


@scenario
def configurations_1_8_started_with(ctx: Context) -> Any:
    """Point 3: each configuration starts; what its sessions store and enforce."""
    return _configurations(ctx, lambda options: ctx.factory(**options))


@scenario
def configurations_1_8_started_with_from_ini(ctx: Context) -> Any:
    """Point 3 in the ini form (``config.include``)."""
    return _configurations(ctx, lambda options: ini_factory(ctx, options))


INI_SETTINGS = {
    "redis.sessions.secret": "SECRET",
    "redis.sessions.cookie_name": COOKIE,
    "redis.sessions.timeout": "0",
    "redis.sessions.timeout_trigger": "0",
    "redis.sessions.cookie_max_age": "0",
    "redis.sessions.cookie_secure": "false",
    "redis.sessions.cookie_httponly": "true",
    "redis.sessions.set_redis_ttl": "true",
    "redis.sessions.redis_db": "0",
    "redis.sessions.redis_socket_timeout": "5",
    "redis.sessions.serialize": "pickle.dumps",
    "redis.sessions.deserialize": "pickle.loads",
    "redis.sessions.func_check_response_allow_cookies": (
        "pyramid_session_redis.check_response_allow_cookies"
    ),
    "other.setting": "untouched",
}


def _include(ctx: Context, settings: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    settings = {**settings, "redis.sessions.redis_url": ctx.redis_url}
    settings["redis.sessions.secret"] = ctx.secret

    def view(request: Request) -> Any:
        request.session["a"] = 1
        return "ok"

    with Configurator(settings=settings) as config:
        config.include("pyramid_session_redis")
        config.add_route("view", "/")
        config.add_view(lambda request: Response(json=view(request)), route_name="view")
        app = webtest.TestApp(config.make_wsgi_app())
        return app, dict(config.registry.settings)


def _described(value: Any) -> Any:
    if callable(value):
        return f"callable {value.__qualname__}"
    return [type(value).__name__, value if value is None or isinstance(value, (int, str)) else 0]


@scenario
def ini_zero_means_none(ctx: Context) -> Any:
    """Point 4: ``0`` in the ini file for cookie_max_age, timeout and timeout_trigger."""
    app, _ = _include(ctx, INI_SETTINGS)
    response = app.get("/")
    return {"cookie": cookie_seen(response), "stored": ctx.stored()}


@scenario
def include_coerces_registry_settings(ctx: Context) -> Any:
    """Point 5: config.include leaves the coerced values in registry.settings."""
    settings = {k: v for k, v in INI_SETTINGS.items() if k != "redis.sessions.cookie_max_age"}
    settings["redis.sessions.cookie_max_age"] = "3600"
    _, registry = _include(ctx, settings)
    return {key: _described(registry[key]) for key in sorted(settings)}


PUBLIC_NAMES = {
    "pyramid_session_redis": [
        "RedisSessionFactory",
        "session_factory_from_settings",
        "includeme",
        "check_response_allow_cookies",
        "RedisSession",
    ],
    "pyramid_session_redis.util": ["SignedSerializerInterface"],
    "pyramid_session_redis.exceptions": [
        *LEGACY_EXCEPTIONS,
        "InvalidSessionId_Serialization",
        "InvalidSessionId_Deserialization",
    ],
}


@scenario
def public_names(ctx: Context) -> Any:
    """Point 6: the names applications import, and the session's iter* methods."""
    missing = [
        f"{module}.{name}"
        for module, names in PUBLIC_NAMES.items()
        for name in names
        if not hasattr(importlib.import_module(module), name)
    ]
    cookie = create_session(ctx, {"a": 1, "b": [2]}, **PICKLE)

    def view(request: Request) -> Any:
        session = request.session
        return [
            sorted(session.iterkeys()),
            sorted(map(repr, session.itervalues())),
            sorted(map(repr, session.iteritems())),
        ]

    return {"missing": missing, "iter": request_with(ctx.app(view, **PICKLE), cookie).json}


LEGACY_PAYLOADS: dict[str, Any] = {
    "1.2 layout": {"managed_dict": {"a": 1}, "created": 1_500_000_000, "timeout": 1200},
    "no version marker": {"m": {"a": 1}, "c": 1_500_000_000},
    "version 0": {"m": {"a": 1}, "c": 1_500_000_000, "v": 0},
}


@scenario
def older_payload_formats(ctx: Context) -> Any:
    """Point 7: payloads of older format versions give a fresh session, not a 500."""
    out: dict[str, Any] = {}

    def view(request: Request) -> Any:
        session = request.session
        return {"new": session.new, "data": dict(session)}

    app = ctx.app(view, **PICKLE)
    for label, payload in LEGACY_PAYLOADS.items():
        ctx.events.clear()
        cookie = create_session(ctx, {"a": 0}, **PICKLE)
        ctx.client.set(ctx.session_keys()[0], pickle.dumps(payload))
        response = request_with(app, cookie, expect_errors=True)
        out[label] = {
            "status": response.status_int,
            "seen": response.json if response.status_int == 200 else None,
            "events": list(ctx.events),
            "cookie": cookie_seen(response)["action"],
        }
        ctx.client.flushdb()
    return out


@scenario
def invalidate_then_raise(ctx: Context) -> Any:
    """Point 8: with cookie_on_exception=False, an invalidated session's cookie expires."""
    return _invalidate_then_raise(ctx, lambda: ctx.factory(cookie_on_exception=False, **PICKLE))


@scenario
def invalidate_then_raise_from_ini(ctx: Context) -> Any:
    """Point 8 in the ini form (``config.include``)."""
    return _invalidate_then_raise(
        ctx, lambda: ini_factory(ctx, {"cookie_on_exception": False, **PICKLE})
    )


def _invalidate_then_raise(ctx: Context, make_factory: Callable[[], Any]) -> Any:
    out: dict[str, Any] = {}
    views: dict[str, Callable[[Request], Any]] = {
        "invalidate": lambda request: request.session.invalidate(),
        "invalidate and write": lambda request: (
            request.session.invalidate(),
            request.session.update({"b": 2}),
        ),
        "write": lambda request: request.session.update({"b": 2}),
    }
    for label, action in views.items():

        def view(request: Request, action: Callable[[Request], Any] = action) -> Any:
            action(request)
            raise RuntimeError("the view failed")

        with Configurator() as config:
            factory = make_factory()
            config.set_session_factory(factory)
            config.add_route("view", "/")
            config.add_view(view, route_name="view")
            config.add_view(
                lambda exc, request: Response("error", status=500), context=RuntimeError
            )
            failing = webtest.TestApp(config.make_wsgi_app())
        ctx.client.flushdb()
        cookie = create_session(ctx, {"a": 1}, factory)
        response = request_with(failing, cookie, status=500)
        out[label] = {"cookie": cookie_seen(response)["action"], "stored": ctx.stored()}
    return out


STARTUP_OPTIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "readheavy": {"set_redis_ttl_readheavy": True},
    "readheavy without python_expires": {
        "set_redis_ttl_readheavy": True,
        "python_expires": False,
    },
    "readheavy with a trigger": {
        "set_redis_ttl_readheavy": True,
        "python_expires": False,
        "timeout_trigger": 60,
    },
    "readheavy without a timeout": {
        "set_redis_ttl_readheavy": True,
        "python_expires": False,
        "timeout": None,
    },
    "samesite none, not secure": {"cookie_samesite": "None"},
    "samesite none, secure": {"cookie_samesite": "None", "cookie_secure": True},
    "cookie named path": {"cookie_name": "path"},
    "negative timeout": {"timeout": -1},
    "unknown option": {"no_such_option": 1},
}


@scenario
def configurations_that_start(ctx: Context) -> Any:
    """Which configurations start, and whether a request can then store a session."""
    out: dict[str, Any] = {}
    for label, options in STARTUP_OPTIONS.items():
        try:
            factory = ctx.factory(**options)
        except Exception as exc:
            out[label] = f"refused: {exception_name(exc)}"
            continue
        try:
            create_session(ctx, {"a": 1}, factory=factory)
        except Exception as exc:
            out[label] = f"starts, storing fails: {exception_name(exc)}"
        else:
            out[label] = "runs"
    return out


def _command_counts(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    return {key.split("_", 1)[1]: value["calls"] for key, value in stats.items()}


def _commands_of(ctx: Context, call: Callable[[], Any]) -> dict[str, int]:
    """Commands the server ran during ``call()`` (this function's INFO left out)."""
    before = _command_counts(ctx.client)
    call()
    after = _command_counts(ctx.client)
    after["info"] -= 1
    deltas = {name: calls - before.get(name, 0) for name, calls in after.items()}
    handshake = ("hello", "client|setinfo", "select")
    return {name: n for name, n in deltas.items() if n > 0 and name not in handshake}


@scenario
def commands_per_request(ctx: Context) -> Any:
    """Commands per request in the migration mode (see the deliberate differences)."""
    actions: dict[str, Callable[[Request], Any]] = {
        "untouched": lambda request: None,
        "evaluated": lambda request: request.session and None,
        "read": lambda request: request.session.get("a"),
        "write": lambda request: request.session.update({"b": 2}),
        "invalidate": lambda request: request.session.invalidate(),
    }
    factory = ctx.factory(**PICKLE)
    create_session(ctx, {"warm": "up"}, factory)  # connections made, server features learnt
    request_with(ctx.app(actions["write"], factory), cookie_value_of_stored(ctx))
    ctx.client.flushdb()
    out: dict[str, Any] = {}
    out["create"] = _commands_of(ctx, lambda: create_session(ctx, {"a": 1}, factory))
    cookie = cookie_value_of_stored(ctx)
    for label, action in actions.items():
        app = ctx.app(action, factory)
        out[label] = _commands_of(ctx, lambda app=app: request_with(app, cookie))
    return out


def cookie_value_of_stored(ctx: Context) -> str:
    """A cookie for the one stored session (signed as both libraries sign it)."""
    from webob.cookies import SignedSerializer

    signer = SignedSerializer(
        ctx.secret, "pyramid_session_redis.", "sha512", serializer=_AsciiSerializer()
    )
    return str(signer.dumps(ctx.session_keys()[0].decode()).decode("ascii"))


class _AsciiSerializer:
    def dumps(self, appstruct: str) -> bytes:
        return appstruct.encode("ascii")

    def loads(self, bstruct: bytes) -> str:
        return bstruct.decode("ascii")


@scenario
def default_payload(ctx: Context) -> Any:
    """What the default configuration stores (see the deliberate differences)."""
    create_session(ctx, {"a": 1})
    raw = ctx.client.get(ctx.session_keys()[0])
    try:
        pickle.loads(raw)
    except Exception:
        return {"pickle": False, **ctx.stored()}
    return {"pickle": True, **ctx.stored()}


def main() -> None:
    spec = json.load(sys.stdin)
    logging.basicConfig(level=logging.CRITICAL)
    ctx = Context(spec["redis_url"], spec["secret"])
    json.dump(SCENARIOS[sys.argv[1]](ctx), sys.stdout)


if __name__ == "__main__":
    main()
