"""Faults: Redis down, hung, restarted, or holding corrupt data; and a real server under load.

Every test starts its own Redis-compatible server (``server_factory``) so that it can stop,
pause or restart it without disturbing the rest of the suite. Only 127.0.0.1 is used; every
loop is bounded in count and in time.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import redis
import webtest
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from pyramid_session_redis import RedisSessionFactory, session_factory_from_settings
from pyramid_session_redis.exceptions import (
    BackendUnavailable,
    ConfigurationError,
    InvalidSession,
    InvalidSession_DeserializationError,
    RawDeserializationError,
    SessionBackendError,
)
from pyramid_session_redis.factory import SessionFactory
from tests.app import SECRET, VIEWS, build_wsgi_app
from tests.servers import ServerFactory
from tests.wsgi_server import HttpClient, LiveServer

LOGGER = "pyramid_session_redis"
COOKIE = "session"
View = Callable[[Request], Any]


# --------------------------------------------------------------------------- helpers


class Reports(list[InvalidSession]):
    """A ``func_invalid_logger`` that keeps what it is given."""

    def __call__(self, request: Any, problem: InvalidSession) -> None:
        assert request is not None
        self.append(problem)


class RecordingIds:
    """An ``id_generator`` that remembers the ids it handed out."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def __call__(self) -> str:
        session_id = secrets.token_hex(32)
        self.issued.append(session_id)
        return session_id


def error_response(exc: Exception, status: int, caught: list[Exception]) -> Response:
    caught.append(exc)
    response = Response(json.dumps({"error": type(exc).__name__}), status=status)
    response.content_type = "application/json"
    return response


def fault_app(
    factory: SessionFactory,
    extra_views: Mapping[str, View] | None = None,
    *,
    exception_views: bool = True,
    caught: list[Exception] | None = None,
) -> Any:
    """``tests.app``'s views (JSON-rendered) plus, by default, the documented error mapping.

    The exception views are the pattern an application is told to use:
    ``config.add_view(view, context=SessionBackendError)`` answering 503, and one for
    ``RawDeserializationError`` (answering 500 with its name, so a test can tell it from
    any other failure). No other exception is mapped: anything else propagates.
    """
    seen = caught if caught is not None else []

    def backend_unavailable(exc: SessionBackendError, request: Request) -> Response:
        response = error_response(exc, 503, seen)
        response.retry_after = 5
        return response

    def undecodable_session(exc: RawDeserializationError, request: Request) -> Response:
        return error_response(exc, 500, seen)

    with Configurator() as config:
        config.set_session_factory(factory)
        for name, view in {**VIEWS, **(extra_views or {})}.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name, renderer="json")
        if exception_views:
            config.add_view(backend_unavailable, context=SessionBackendError)
            config.add_view(undecodable_session, context=RawDeserializationError)
        return config.make_wsgi_app()


def set_cookies(response: webtest.TestResponse) -> list[str]:
    return list(response.headers.getall("Set-Cookie"))


def start_session(app: webtest.TestApp, **values: Any) -> tuple[str, str]:
    """Store ``values`` in a new session; return (session id, signed cookie value)."""
    for key, value in values.items():
        app.get("/set", {"key": key, "value": json.dumps(value)})
    return str(app.get("/session_id").json), str(app.cookies[COOKIE])


def share_cookies(source: webtest.TestApp, target: webtest.TestApp) -> None:
    """Give ``target`` the cookies ``source`` holds (same browser, another app object)."""
    for cookie in source.cookiejar:
        target.cookiejar.set_cookie(cookie)


def records(caplog: pytest.LogCaptureFixture, level: int, name: str = LOGGER) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno == level]


# --------------------------------------------------------------------------- 1. down at load


def test_redis_down_at_load_raises_backend_error_mapped_to_503(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    factory = RedisSessionFactory(SECRET, redis_url=server.url)
    bare = webtest.TestApp(fault_app(factory, exception_views=False))
    mapped = webtest.TestApp(fault_app(factory))
    _, cookie = start_session(bare, a=1)
    share_cookies(bare, mapped)
    server.stop()

    with pytest.raises(SessionBackendError) as info:
        bare.get("/dump")
    cause = info.value.__cause__
    assert isinstance(cause, redis.exceptions.ConnectionError), repr(cause)
    assert info.value.error is cause

    # The documented pattern: an exception view for SessionBackendError answers 503.
    response = mapped.get("/dump", status=503)
    assert response.json == {"error": "SessionBackendError"}
    assert response.headers["Retry-After"] == "5"
    assert set_cookies(response) == []
    assert mapped.cookies == {COOKIE: cookie}

    # A view that never touches the session needs no Redis at all.
    response = mapped.get("/untouched", status=200)
    assert response.json == "untouched"
    assert set_cookies(response) == []
    # Neither does reading the (empty) session of a visitor without a cookie.
    response = webtest.TestApp(mapped.app).get("/dump", status=200)
    assert response.json == {}
    assert set_cookies(response) == []


# --------------------------------------------------------------------------- 2. degraded mode


def write_and_dump(request: Request) -> Any:
    before = dict(request.session)
    request.session["x"] = 1
    return {"before": before, "after": dict(request.session)}


def test_degraded_mode_serves_an_empty_session_and_leaves_the_cookie_alone(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_factory(persistence=True)
    reports = Reports()
    factory = RedisSessionFactory(
        SECRET, redis_url=server.url, degraded_mode=True, func_invalid_logger=reports
    )
    app = webtest.TestApp(fault_app(factory, {"write_and_dump": write_and_dump}))
    session_id, cookie = start_session(app, a=1)
    reports.clear()
    server.stop()
    caplog.set_level(logging.WARNING, logger=LOGGER)

    response = app.get("/write_and_dump", status=200)
    assert response.json == {"before": {}, "after": {"x": 1}}
    assert set_cookies(response) == []
    assert app.cookies == {COOKIE: cookie}

    assert [type(problem) for problem in reports] == [BackendUnavailable]
    problem = reports[0]
    assert isinstance(problem, BackendUnavailable)
    assert isinstance(problem.error, SessionBackendError)
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert session_id not in warnings[0]
    assert factory.log_id(session_id) in warnings[0]

    # The degraded write was never stored: the real session is intact once Redis is back.
    server.start()
    assert app.get("/dump").json == {"a": 1}
    assert reports[1:] == []


def test_degraded_mode_is_off_by_default_and_settable_from_ini() -> None:
    assert RedisSessionFactory("s").settings.degraded_mode is False
    base = {"redis.sessions.secret": "s"}
    on = session_factory_from_settings({**base, "redis.sessions.degraded_mode": "true"})
    off = session_factory_from_settings({**base, "redis.sessions.degraded_mode": "false"})
    assert on.settings.degraded_mode is True
    assert off.settings.degraded_mode is False
    with pytest.raises(ConfigurationError):
        session_factory_from_settings({**base, "redis.sessions.degraded_mode": "maybe"})


# --------------------------------------------------------------------------- 3. down at persist


@pytest.mark.parametrize("existing", [False, True], ids=["new-session", "existing-session"])
def test_redis_down_at_persist_fails_the_request_without_a_cookie(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture, existing: bool
) -> None:
    server = server_factory(persistence=True)
    ids = RecordingIds()
    factory = RedisSessionFactory(SECRET, redis_url=server.url, id_generator=ids)

    def write_then_stop(request: Request) -> Any:
        previous = request.session.get("k")  # the session is loaded while Redis is up
        request.session["k"] = "new"
        server.stop()
        return previous

    # The exception views are registered but cannot apply: the write fails in a finished
    # callback, which Pyramid runs outside its exception-view handling, so the error leaves
    # the WSGI app (and the response carrying the new cookie is discarded).
    wsgi_app = fault_app(factory, {"write_then_stop": write_then_stop})
    app = webtest.TestApp(wsgi_app)
    session_id, cookie = start_session(app, k="old") if existing else (None, None)
    caplog.set_level(logging.ERROR, logger=LOGGER)

    with pytest.raises(SessionBackendError) as info:
        app.get("/write_then_stop")
    assert isinstance(info.value.__cause__, redis.exceptions.RedisError)
    assert not server.running
    target = session_id or ids.issued[-1]  # a new session got its id for the cookie
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 1, errors
    assert target not in errors[0]
    assert factory.log_id(target) in errors[0]
    assert app.cookies == ({COOKIE: cookie} if existing else {})

    server.start()
    check = server.client()
    if existing:
        assert app.get("/read", {"key": "k"}).json == "old"
    assert check.exists(ids.issued[-1]) == int(existing)  # nothing new was ever stored

    # The same through a real WSGI server: a 500, and no Set-Cookie reaches the client.
    caplog.clear()
    caplog.set_level(logging.ERROR, logger="waitress")
    with LiveServer(wsgi_app, threads=2) as live, live.client() as client:
        client.cookie = cookie
        reply = client.get("/write_then_stop")
        assert reply.status == 500
        assert reply.set_cookies == []
        assert client.cookie == cookie
        failures = [r for r in caplog.records if r.name == "waitress" and r.exc_info]
        assert [r.exc_info[0] for r in failures if r.exc_info] == [SessionBackendError]
        server.start()
    if existing:
        assert app.get("/read", {"key": "k"}).json == "old"
    assert check.exists(ids.issued[-1]) == int(existing)
    check.close()


# --------------------------------------------------------------------------- 4. hung Redis


def test_hung_redis_fails_fast_with_short_timeouts(server_factory: ServerFactory) -> None:
    server = server_factory()
    options: dict[str, Any] = {
        "redis_url": server.url,
        "redis_socket_timeout": 0.5,
        "redis_socket_connect_timeout": 0.5,
    }
    warm_app = fault_app(RedisSessionFactory(SECRET, **options), exception_views=False)
    warm = webtest.TestApp(warm_app)  # its pool holds an open connection
    start_session(warm, a=1)
    cold = webtest.TestApp(fault_app(RedisSessionFactory(SECRET, **options), exception_views=False))
    share_cookies(warm, cold)  # its first connection is opened to the hung server
    visitor = webtest.TestApp(warm_app)  # no cookie: the session is only touched at persist

    cases: list[tuple[str, webtest.TestApp, str, dict[str, str]]] = [
        ("load, pooled connection", warm, "/dump", {}),
        ("load, new connection", cold, "/dump", {}),
        ("persist a new session", visitor, "/set", {"key": "b", "value": "2"}),
    ]
    server.pause()
    try:
        for label, app, path, params in cases:
            started = time.monotonic()
            with pytest.raises(SessionBackendError) as info:
                app.get(path, params)
            elapsed = time.monotonic() - started
            assert elapsed < 3.0, f"{label}: {elapsed:.2f}s"
            assert isinstance(info.value.__cause__, redis.exceptions.RedisError), label
    finally:
        server.resume()
    assert warm.get("/dump").json == {"a": 1}
    assert cold.get("/dump").json == {"a": 1}


def test_default_timeouts_are_bounded() -> None:
    settings = RedisSessionFactory("s").settings
    for value in (settings.redis_socket_timeout, settings.redis_socket_connect_timeout):
        assert isinstance(value, (int, float))
        assert math.isfinite(value)
        assert 0 < value <= 30


# --------------------------------------------------------------------------- 5. recovery


def test_recovers_after_redis_comes_back_without_rebuilding_the_app(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    reports = Reports()
    factory = RedisSessionFactory(SECRET, redis_url=server.url, func_invalid_logger=reports)
    app = webtest.TestApp(fault_app(factory))
    start_session(app, a=1)
    assert app.get("/read", {"key": "a"}).json == 1

    # Restart: the pooled connection is stale; the next request must just work.
    server.restart()
    reports.clear()
    assert app.get("/read", {"key": "a"}).json is None  # not persistent: the data is gone
    assert [type(problem).__name__ for problem in reports] == ["InvalidSession_NotInBackend"]
    app.get("/set", {"key": "b", "value": "2"})
    assert app.get("/dump").json == {"b": 2}

    # Down for a while (requests fail with 503), then back on the same port.
    server.stop()
    for _ in range(3):
        assert app.get("/dump", status=503).json == {"error": "SessionBackendError"}
    server.start()
    app.get("/set", {"key": "b", "value": "3"})
    assert app.get("/dump").json == {"b": 3}


def test_persistent_session_survives_a_restart(server_factory: ServerFactory) -> None:
    server = server_factory(persistence=True)
    factory = RedisSessionFactory(SECRET, redis_url=server.url)
    app = webtest.TestApp(fault_app(factory))
    session_id, cookie = start_session(app, a=1, b=[1, 2])
    app.get("/set", {"key": "a", "value": "10"})  # a compare-and-set write (script cached)

    server.restart()  # also empties the server's script cache
    assert app.cookies == {COOKIE: cookie}
    assert app.get("/dump").json == {"a": 10, "b": [1, 2]}
    app.get("/set", {"key": "a", "value": "11"})
    assert app.get("/dump").json == {"a": 11, "b": [1, 2]}
    assert app.get("/session_id").json == session_id
    assert app.cookies == {COOKIE: cookie}


# --------------------------------------------------------------------------- 6. corrupt data

UNPICKLED: list[str] = []


def record_unpickling(marker: str) -> str:
    """Called only if somebody unpickles ``Hostile`` (must never happen)."""
    UNPICKLED.append(marker)
    return marker


class Hostile:
    def __reduce__(self) -> tuple[Callable[[str], str], tuple[str]]:
        return record_unpickling, ("unpickled!",)


def header(timeout_code: int = 0, since_code: int = 0) -> bytes:
    """A SafeCodec envelope header (marker, created, varint codes) created now."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while n > 0x7F:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out)

    return b"\x01" + int(time.time()).to_bytes(4, "big") + varint(timeout_code) + varint(since_code)


def corrupt_payloads() -> dict[str, bytes]:
    rng = random.Random(20240611)
    payloads: dict[str, bytes] = {
        "empty string": b"",
        "JSON text": b'{"user_id": 42, "roles": ["admin"]}',
        "JSON list": b"[1, 2, 3]",
        "a counter": b"42",
        "1.8 pickle payload": pickle.dumps({"m": {"a": 1}, "c": 0, "v": 1}, protocol=4),
        "protocol 0 pickle": pickle.dumps({"a": 1}, protocol=0),
        "hostile pickle": pickle.dumps({"m": {"a": Hostile()}, "c": 0, "v": 1}),
        "zlib marker, random bytes": b"\x02" + rng.randbytes(20),
        "zstd marker, random bytes": b"\x03" + rng.randbytes(20),
        "reserved marker": b"\x1f" + rng.randbytes(20),
        "header only": header(),
        "header cut short": header()[:-1],
        "deeply nested body": header() + b'"a":' + b"[" * 100_000,
        "body not UTF-8": header() + b'"a":"\xff\xfe"}',
        "body is a list": header() + b"1, 2]",
        "unknown tag": header() + b'"a":{"~z":1}}',
        "unhashable set item": header() + b'"a":{"~s":[[1]]}}',
        "bad base64 tag": header() + b'"a":{"~b":"!!"}}',
        "trailing data": header() + b'"a":1}garbage',
        "out-of-range timeout": header(timeout_code=2 * 10**15 + 1) + b'"a":1}',
    }
    for size in (1, 2, 5, 16, 100, 4096):
        payloads[f"{size} random bytes"] = rng.randbytes(size)
    for size in range(0, 40, 3):
        payloads[f"marker + {size} random bytes"] = b"\x01" + rng.randbytes(size)
    return payloads


WRONG_TYPES: dict[str, Callable[[redis.Redis, str], Any]] = {
    "a list (RPUSH)": lambda client, key: client.rpush(key, b"a", b"b"),
    "a hash (HSET)": lambda client, key: client.hset(key, "m", "x"),
    "a set (SADD)": lambda client, key: client.sadd(key, b"a"),
    "a sorted set (ZADD)": lambda client, key: client.zadd(key, {b"a": 1.0}),
}


def corrupt_cases() -> dict[str, Callable[[redis.Redis, str], Any]]:
    cases: dict[str, Callable[[redis.Redis, str], Any]] = {}
    for name, payload in corrupt_payloads().items():
        cases[name] = lambda client, key, payload=payload: client.set(key, payload)
    cases.update(WRONG_TYPES)
    return cases


def bit_flips(valid: bytes) -> dict[str, Callable[[redis.Redis, str], Any]]:
    """Every single-bit corruption of a valid stored payload."""
    cases: dict[str, Callable[[redis.Redis, str], Any]] = {}
    for index in range(len(valid)):
        for bit in range(8):
            payload = bytearray(valid)
            payload[index] ^= 1 << bit
            cases[f"bit {bit} of byte {index} flipped"] = (
                lambda client, key, payload=bytes(payload): client.set(key, payload)
            )
    return cases


def corrupt_outcome(
    response: webtest.TestResponse,
    reports: Reports,
    caught: list[Exception],
    *,
    fails_new: bool,
    strict: bool,
    wrong_type: bool,
) -> str | None:
    """What is wrong with the answer to a request over corrupt data (None: all good).

    ``strict``: the payload is certainly undecodable. A bit flip may still decode (into
    other data), so for those only "200, or the documented error" is required.
    """
    if set_cookies(response) and response.status_int != 200:
        return f"Set-Cookie on an error response: {set_cookies(response)}"
    if response.status_int == 200 and (not strict or fails_new):
        if not strict:
            return None
        kinds = [type(problem) for problem in reports]
        if response.json != {}:
            return f"not a fresh session: {response.text[:200]}"
        if InvalidSession_DeserializationError not in kinds:
            return f"reported {kinds}"
        return None
    if fails_new:
        return f"{response.status} {response.text[:200]}"
    if response.status_int != 500 or response.json != {"error": "RawDeserializationError"}:
        return f"{response.status} {response.text[:200]}"
    if len(caught) != 1:
        return f"caught {caught!r}"
    exc = caught[0]
    if type(exc) is not RawDeserializationError or not isinstance(exc.args[0], Exception):
        return f"caught {exc!r}"
    if wrong_type and not isinstance(exc.args[0], redis.exceptions.ResponseError):
        return f"cause {exc.args[0]!r}"
    return None


@pytest.mark.parametrize("fails_new", [True, False], ids=["deserialized_fails_new", "raise"])
def test_corrupt_stored_data_gives_a_new_session_or_the_documented_error(
    server_factory: ServerFactory, fails_new: bool
) -> None:
    server = server_factory()
    reports = Reports()
    caught: list[Exception] = []
    factory = RedisSessionFactory(
        SECRET,
        redis_url=server.url,
        deserialized_fails_new=fails_new,
        func_invalid_logger=reports,
    )
    app = webtest.TestApp(fault_app(factory, caught=caught))
    session_id, cookie = start_session(app, a=1, b=[1, "x"], c={"d": None})
    client = server.client()
    valid = client.get(session_id)
    assert isinstance(valid, bytes)
    headers = {"Cookie": f"{COOKIE}={cookie}"}
    strict_cases = corrupt_cases()
    flips = bit_flips(valid)
    assert len(strict_cases) > 30
    assert len(flips) == 8 * len(valid)

    problems: list[str] = []
    for name, corrupt in {**strict_cases, **flips}.items():
        client.delete(session_id)
        corrupt(client, session_id)
        reports.clear()
        caught.clear()
        try:
            response = app.get("/dump", headers=headers, status="*")
        except Exception as exc:  # an unmapped exception: exactly what must not happen
            problems.append(f"{name}: unhandled {type(exc).__name__}: {exc}")
            continue
        problem = corrupt_outcome(
            response,
            reports,
            caught,
            fails_new=fails_new,
            strict=name in strict_cases,
            wrong_type=name in WRONG_TYPES,
        )
        if problem is not None:
            problems.append(f"{name}: {problem}")

    client.close()
    assert UNPICKLED == []
    assert problems == [], "\n".join(problems)


# --------------------------------------------------------------------------- 7. load

CLIENTS = 16
REQUESTS_PER_CLIENT = 150
POOL_SIZE = 10
WSGI_THREADS = 8
LOAD_DEADLINE = 20.0
OPERATIONS = ("set",) * 7 + ("read",) * 4 + ("dump",) * 3 + ("incr",) * 3 + ("invalidate", "noop")


class LoadClient:
    """One browser: its own connection and cookie, and what it was told was stored."""

    def __init__(self, live: LiveServer, index: int, errors: list[str]) -> None:
        self.http: HttpClient = live.client()
        self.index = index
        self.rng = random.Random(index)
        self.expected: dict[str, Any] = {}
        self.errors = errors
        self.statuses: list[int] = []

    def fail(self, message: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(f"client {self.index}: {message}")

    def call(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        reply = self.http.get(path, params)
        self.statuses.append(reply.status)
        if reply.status != 200:
            raise AssertionError(f"{path} {params}: HTTP {reply.status} {reply.body[:200]!r}")
        return reply.json

    def step(self, step: int) -> None:
        operation = self.rng.choice(OPERATIONS)
        key = self.rng.choice("abc")
        if operation == "set":
            value = [self.index, step]
            assert self.call("/set", {"key": key, "value": json.dumps(value)}) == "set"
            self.expected[key] = value
        elif operation == "read":
            got = self.call("/read", {"key": key})
            assert got == self.expected.get(key), (key, got, self.expected)
        elif operation == "dump":
            got = self.call("/dump")
            assert got == self.expected, (got, self.expected)
        elif operation == "incr":
            got = self.call("/incr", {"key": "n"})
            assert got == self.expected.get("n", 0) + 1, (got, self.expected)
            self.expected["n"] = got
        elif operation == "invalidate":
            assert self.call("/invalidate") == "invalidated"
            assert self.http.cookie is None
            self.expected = {}
        else:
            assert self.call("/untouched") == "untouched"

    def run(self, start: threading.Barrier, deadline: float) -> None:
        try:
            start.wait()
            for step in range(REQUESTS_PER_CLIENT):
                if time.monotonic() > deadline:
                    self.fail(f"deadline reached after {step} requests")
                    return
                self.step(step)
        except Exception as exc:
            self.fail(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("connections", ["own", "user pool"])
def test_real_server_under_concurrent_load(server_factory: ServerFactory, connections: str) -> None:
    server = server_factory()
    pool: redis.BlockingConnectionPool | None = None
    if connections == "user pool":
        pool = redis.BlockingConnectionPool(
            max_connections=POOL_SIZE,
            timeout=5,
            host=server.host,
            port=server.port,
            socket_timeout=5,
            socket_connect_timeout=5,
        )
        factory = RedisSessionFactory(SECRET, redis_connection_pool=pool)
        bound = POOL_SIZE
    else:  # the factory's own connections: at most one per request thread
        factory = RedisSessionFactory(SECRET, redis_url=server.url)
        bound = WSGI_THREADS
    admin = server.client()
    admin_id = admin.client_id()
    accepted_before = int(admin.info("stats")["total_connections_received"])

    errors: list[str] = []
    with LiveServer(build_wsgi_app(factory), threads=WSGI_THREADS) as live:
        clients = [LoadClient(live, index, errors) for index in range(CLIENTS)]
        start = threading.Barrier(CLIENTS, timeout=10)
        deadline = time.monotonic() + LOAD_DEADLINE
        threads = [
            threading.Thread(target=c.run, args=(start, deadline), name=f"load-{c.index}")
            for c in clients
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.1, deadline + 5 - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads), "client threads hung"
        assert errors == [], "\n".join(errors)

        statuses = [status for c in clients for status in c.statuses]
        assert len(statuses) == CLIENTS * REQUESTS_PER_CLIENT
        assert [s for s in statuses if s >= 500] == []
        # Every acknowledged write is readable afterwards, by the client that made it.
        for c in clients:
            assert c.call("/dump") == c.expected, f"client {c.index}"
            c.http.close()

        # No connection leak: the server sees at most the bound's connections, and no
        # reconnection churn (connections accepted during the run stay within the bound).
        app_connections = [c for c in admin.client_list() if int(c["id"]) != admin_id]
        accepted = int(admin.info("stats")["total_connections_received"]) - accepted_before
        assert 1 <= len(app_connections) <= bound, app_connections
        assert accepted <= bound, accepted
    if pool is not None:
        pool.disconnect()
    admin.close()
