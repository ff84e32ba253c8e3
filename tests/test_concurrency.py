"""Concurrent requests on one session, through a real multi-threaded WSGI server.

Every test runs waitress (8 worker threads) on 127.0.0.1 and talks to it with real
HTTP clients in threads that share one session cookie. Ordering, when a test needs
one, comes from ``threading.Event`` objects that the views and the test share (the
server runs in this process), never from sleeps: a view signals "I have loaded the
session" and blocks until the test releases it, and the test knows that a request's
write is done when its HTTP response has arrived (Pyramid runs the finished
callbacks, where the session is written, before the response is returned).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from pyramid.request import Request

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.codec import SafeCodec
from pyramid_session_redis.exceptions import InvalidSession, SessionGone, SessionWriteConflict
from pyramid_session_redis.lock import lock_key
from pyramid_session_redis.store import CAS_SCRIPT
from pyramid_session_redis.util import log_id, make_log_key
from tests.app import SECRET, build_wsgi_app
from tests.redis_stats import CommandCounter
from tests.servers import RedisServerProcess, has_set_ifeq
from tests.wsgi_server import HttpClient, LiveServer, Reply, is_expiry

CLIENTS = 8
REQUESTS_PER_CLIENT = 200
TOTAL = CLIENTS * REQUESTS_PER_CLIENT
WORKLOAD_DEADLINE = 25.0  # seconds; every loop below is also bounded in count
EVENT_TIMEOUT = 10.0
COOKIE = "session"
# Enough attempts for 8 writers hammering one session (the unluckiest request needed
# 19-25 retries on a quiet machine, 31 once in CI: the default is 50).
CONTENDED_CAS_RETRIES = 100


# --------------------------------------------------------------------------- helpers


@dataclass
class Logged:
    """What ``func_invalid_logger`` received: the request's path, params and cookie."""

    path: str
    key: str | None
    cookie: str | None
    problem: InvalidSession


@dataclass
class Harness:
    server: LiveServer
    logged: list[Logged] = field(default_factory=list)

    def client(self, cookie: str | None = None) -> HttpClient:
        client = self.server.client(COOKIE, timeout=EVENT_TIMEOUT * 2)
        client.cookie = cookie
        return client

    def problems(self, kind: type[InvalidSession]) -> list[Logged]:
        return [entry for entry in self.logged if type(entry.problem) is kind]


@pytest.fixture
def serve(redis_url: str) -> Iterator[Any]:
    """``serve(views, **factory_options)``: a started LiveServer harness, stopped at teardown."""
    started: list[LiveServer] = []

    def start(views: dict[str, Any], **options: Any) -> Harness:
        logged: list[Logged] = []

        def log(request: Request, problem: InvalidSession) -> None:
            cookie = request.cookies.get(COOKIE)
            logged.append(Logged(request.path, request.params.get("key"), cookie, problem))

        factory = RedisSessionFactory(
            secret=SECRET, redis_url=redis_url, func_invalid_logger=log, **options
        )
        server = LiveServer(build_wsgi_app(factory, views), threads=CLIENTS)
        started.append(server)
        return Harness(server.start(), logged)

    yield start
    for server in started:
        server.stop()


def stored(redis_client: redis.Redis, session_id: str) -> dict[str, Any] | None:
    """The session's data as it is in Redis right now (None: no such key)."""
    raw = redis_client.get(session_id)
    return None if raw is None else SafeCodec().decode(raw).data


def open_session(harness: Harness, **values: Any) -> tuple[HttpClient, str, str]:
    """A client holding a new session with ``values``: (client, its cookie, session id).

    Clears the logger's record, so that tests see only what happens afterwards.
    """
    client = harness.client()
    for key, value in values.items():
        assert client.get("/set", {"key": key, "value": json.dumps(value)}).status == 200
    cookie = client.cookie
    assert cookie is not None
    session_id = client.get("/session_id").json
    assert isinstance(session_id, str)
    harness.logged.clear()
    return client, cookie, session_id


@pytest.fixture(scope="module")
def native_ifeq(redis_server: RedisServerProcess) -> bool:
    """Whether the suite's server has ``SET … IFEQ`` (probed once, before any count)."""
    return has_set_ifeq(redis_server)


def script_calls(commands: CommandCounter, native_ifeq: bool) -> int:
    """Compare-and-set attempts the server executed.

    Script runs (EVALSHA that ran + EVAL): the compare-and-set script, or the script that
    appends a patch to a large session (on every server); plus, on a server with
    ``SET … IFEQ``, the native SETs (there the whole compare-and-set runs no script; on
    the others a SET only runs inside the script, already counted).
    """
    stats = commands.stats()
    evalsha, eval_ = stats.get("evalsha"), stats.get("eval")
    ran = (evalsha.calls - evalsha.failed_calls) if evalsha else 0  # failed: NOSCRIPT
    scripts = ran + (eval_.calls if eval_ else 0)
    sets = stats.get("set")
    if not native_ifeq or sets is None:
        return scripts
    return scripts + sets.calls - sets.failed_calls


@contextlib.contextmanager
def server_exceptions() -> Iterator[Counter[str]]:
    """Count, by class name, the exceptions waitress logs, instead of printing them."""
    seen: Counter[str] = Counter()

    class Counting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.exc_info and record.exc_info[0] is not None:
                seen[record.exc_info[0].__name__] += 1

    logger, handler = logging.getLogger("waitress"), Counting()
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def run_in_thread(target: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    """Start ``target(*args)`` in a thread; the list receives its result or exception."""
    out: list[Any] = []

    def runner() -> None:
        try:
            out.append(target(*args))
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    return thread, out


def joined(thread: threading.Thread, out: list[Any]) -> Any:
    thread.join(EVENT_TIMEOUT * 2)
    assert not thread.is_alive(), "client thread did not finish"
    (result,) = out
    if isinstance(result, BaseException):
        raise result
    return result


# --------------------------------------------------------------------------- workload


def work(request: Request) -> Any:
    """Load the session, dawdle 0-2 ms, then set this request's key and bump the counter."""
    session = request.session
    len(session)  # load now: the race window runs from here to the write
    time.sleep(random.uniform(0, 0.002))
    session[f"c{request.params['c']}-{request.params['i']}"] = int(request.params["i"])
    session.incr("counter")
    return "ok"


@dataclass
class WorkloadResult:
    session_id: str
    replies: dict[tuple[int, int], int]  # (client, i) -> HTTP status
    errors: list[BaseException]
    set_cookies: int
    elapsed: float
    data: dict[str, Any] | None
    server_exceptions: Counter[str]

    @property
    def statuses(self) -> Counter[int]:
        return Counter(self.replies.values())

    @property
    def acknowledged(self) -> dict[str, int]:
        """The keys of the requests that answered 200, with their values."""
        return {f"c{c}-{i}": i for (c, i), status in self.replies.items() if status == 200}

    @property
    def lost_keys(self) -> list[str]:
        data = self.data or {}
        expected = {f"c{c}-{i}": i for c in range(CLIENTS) for i in range(REQUESTS_PER_CLIENT)}
        return sorted(key for key, value in expected.items() if data.get(key) != value)


def run_workload(
    harness: Harness, redis_client: redis.Redis, commands: CommandCounter
) -> WorkloadResult:
    """CLIENTS threads x REQUESTS_PER_CLIENT requests of ``work`` on one shared session."""
    starter, shared_cookie, session_id = open_session(harness, counter=0)
    starter.close()
    redis_client.script_load(CAS_SCRIPT)  # so every attempt below is a plain EVALSHA
    commands.reset()

    replies: dict[tuple[int, int], int] = {}
    errors: list[BaseException] = []
    set_cookies = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)
    deadline = time.monotonic() + WORKLOAD_DEADLINE

    def client_loop(number: int) -> None:
        with harness.client(shared_cookie) as client:
            barrier.wait(EVENT_TIMEOUT)
            for i in range(REQUESTS_PER_CLIENT):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"client {number} stopped at request {i}")
                reply = client.get("/work", {"c": number, "i": i})
                client.cookie = shared_cookie  # keep sharing it whatever the reply says
                with lock:
                    replies[number, i] = reply.status
                    set_cookies[0] += len(reply.set_cookies)

    started = time.monotonic()
    with server_exceptions() as exceptions:
        threads = [run_in_thread(client_loop, n) for n in range(CLIENTS)]
        for thread, out in threads:
            thread.join(max(0.1, deadline - time.monotonic() + 5))
            if thread.is_alive():
                errors.append(TimeoutError("client thread still running"))
            errors.extend(r for r in out if isinstance(r, BaseException))
    elapsed = time.monotonic() - started
    data = stored(redis_client, session_id)
    return WorkloadResult(session_id, replies, errors, set_cookies[0], elapsed, data, exceptions)


def assert_consistent(result: WorkloadResult) -> None:
    """Redis holds exactly the work of the acknowledged requests: none lost, none phantom."""
    assert result.errors == []
    assert len(result.replies) == TOTAL
    assert result.set_cookies == 0  # the session id never changed
    assert result.data is not None
    acknowledged = result.acknowledged
    data = {key: value for key, value in result.data.items() if key != "counter"}
    assert sorted(set(data) - set(acknowledged)) == []  # phantom writes
    assert sorted(set(acknowledged) - set(data)) == []  # lost writes
    assert data == acknowledged
    assert result.data["counter"] == len(acknowledged)


def test_cas_loses_no_update_under_concurrency(
    serve: Any, redis_client: redis.Redis, commands: CommandCounter, native_ifeq: bool
) -> None:
    """Every request of the workload is merged in: all 1600 keys, counter == 1600, no 5xx.

    The retry budget is raised well above its default so that this test is only about the
    merge; the next test runs the default budget.
    """
    harness = serve({"work": work}, persistence="cas", cas_retries=CONTENDED_CAS_RETRIES)
    result = run_workload(harness, redis_client, commands)
    counts = commands.counts()
    attempts = script_calls(commands, native_ifeq)

    assert_consistent(result)
    assert result.statuses == Counter({200: TOTAL})  # zero 5xx
    assert result.server_exceptions == Counter()
    assert result.lost_keys == []
    assert result.data is not None and result.data["counter"] == TOTAL
    assert len(result.data) == TOTAL + 1
    assert counts.get("getex") == TOTAL  # one load per request
    # More compare-and-set attempts than requests: conflicts happened and were merged.
    assert attempts > TOTAL, f"no conflict in {TOTAL} concurrent requests ({counts})"
    assert harness.problems(SessionGone) == []
    print(
        f"\ncas: {TOTAL} requests in {result.elapsed:.1f}s, "
        f"{attempts - TOTAL} conflicting attempts retried"
    )


def test_cas_default_retry_budget_under_eight_concurrent_writers(
    serve: Any, redis_client: redis.Redis, commands: CommandCounter, native_ifeq: bool
) -> None:
    """The same workload with the default ``cas_retries`` and backoff: no 5xx.

    (With 5 retries and no backoff, 12-17% of these requests gave up with
    SessionWriteConflict.) The data is checked first: every acknowledged write is in.
    """
    harness = serve({"work": work})
    result = run_workload(harness, redis_client, commands)
    attempts = script_calls(commands, native_ifeq)

    assert_consistent(result)
    failed = TOTAL - result.statuses[200]
    assert result.statuses == Counter({200: TOTAL}), (
        f"{failed}/{TOTAL} requests failed with the default cas_retries: "
        f"{dict(result.server_exceptions)} "
        f"({attempts} compare-and-set attempts for {TOTAL} requests)"
    )


def test_overwrite_loses_updates_under_the_same_workload(
    serve: Any, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    harness = serve({"work": work}, persistence="overwrite")
    result = run_workload(harness, redis_client, commands)

    assert result.errors == []
    assert result.statuses == Counter({200: TOTAL})
    assert result.server_exceptions == Counter()
    assert result.data is not None
    counter = result.data["counter"]
    assert result.lost_keys or counter < TOTAL, "last-writer-wins lost nothing: no race?"
    print(
        f"\noverwrite: {TOTAL} requests in {result.elapsed:.1f}s, "
        f"{len(result.lost_keys)} keys lost, counter {counter}/{TOTAL}"
    )


# --------------------------------------------------------------------------- logout race


@pytest.mark.parametrize("persistence", ["cas", "overwrite"])
def test_logout_during_a_slow_write_is_final(
    persistence: str, serve: Any, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    """A client writes keys (slow views) while another request logs the session out.

    Order, by events: w2 has loaded the session -> the logout has deleted it -> w2 ends.
    w2's write must be dropped (never recreating the key), reported as SessionGone, and
    its response must expire the cookie so that the client stops sending a dead id.
    """
    writer_loaded, logout_done = threading.Event(), threading.Event()

    def slow_write(request: Request) -> Any:
        session = request.session
        len(session)  # loaded
        if request.params.get("race"):
            writer_loaded.set()
            if not logout_done.wait(EVENT_TIMEOUT):
                raise RuntimeError("the logout never happened")
        else:
            time.sleep(0.05)
        session[request.params["key"]] = True
        return "written"

    harness = serve({"slow_write": slow_write}, persistence=persistence)
    writer, old_cookie, session_id = open_session(harness, seed=1)
    commands.reset()

    def write_loop() -> list[tuple[Reply, str | None]]:
        replies = []
        for n in range(5):
            params = {"key": f"w{n}", **({"race": "1"} if n == 2 else {})}
            sent_cookie = writer.cookie
            replies.append((writer.get("/slow_write", params), sent_cookie))
        return replies

    thread, out = run_in_thread(write_loop)
    try:
        assert writer_loaded.wait(EVENT_TIMEOUT), "the racing write never loaded the session"
        # w0 and w1 have landed; w2 has loaded the session and is holding its copy.
        assert stored(redis_client, session_id) == {"seed": 1, "w0": True, "w1": True}
        with harness.client(old_cookie) as logout:
            logout_reply = logout.get("/invalidate")
        assert not redis_client.exists(session_id)
    finally:
        logout_done.set()
    replies = joined(thread, out)

    assert logout_reply.status == 200
    logout_cookie = logout_reply.cookie(COOKIE)
    assert logout_cookie is not None and is_expiry(logout_cookie)
    statuses = [reply.status for reply, _ in replies]
    assert statuses == [200] * 5
    sent = [cookie for _, cookie in replies]
    assert sent == [old_cookie, old_cookie, old_cookie, None, writer.cookie]
    # w0, w1: plain writes, no cookie change.
    assert replies[0][0].set_cookies == [] and replies[1][0].set_cookies == []
    # w2 lost to the logout: it was dropped and the response expires the cookie.
    assert [(m.key, is_expiry(m)) for m in replies[2][0].set_cookies] == [(COOKIE, True)]
    gone = harness.problems(SessionGone)
    assert [(g.path, g.key, g.cookie) for g in gone] == [("/slow_write", "w2", old_cookie)]
    # The client obeyed: w3 went without a cookie and started a new session.
    fresh = replies[3][0].cookie(COOKIE)
    assert fresh is not None and not is_expiry(fresh) and fresh.value != old_cookie
    assert replies[4][0].set_cookies == []

    assert not redis_client.exists(session_id)  # never resurrected
    (new_key,) = redis_client.keys()
    assert new_key.decode() != session_id
    assert stored(redis_client, new_key.decode()) == {"w3": True, "w4": True}

    # A client that kept the dead cookie gets an empty session; the key stays gone.
    with harness.client(old_cookie) as stale:
        assert stale.get("/dump").json == {}
    assert not redis_client.exists(session_id)
    assert commands.counts()["del"] == 1  # the logout's; the lost write deleted nothing


def test_lost_write_that_recookied_sends_one_cookie_header(
    serve: Any, redis_client: redis.Redis
) -> None:
    """A request that re-sends its cookie and then loses its write to a logout.

    Its response should carry one Set-Cookie for the session cookie, the expiry (RFC 6265
    4.1.1: no two Set-Cookie fields with the same name in one response).

    The expiry that ``_gone`` adds in the finished callback replaces the cookie the
    response callback had re-sent (``SessionCookie.expire`` unsets it first), so the
    response is not self-contradictory.
    """
    loaded, logout_done = threading.Event(), threading.Event()

    def recookie_write(request: Request) -> Any:
        session = request.session
        session.please_recookie()  # loads the session; the response will re-send the cookie
        loaded.set()
        if not logout_done.wait(EVENT_TIMEOUT):
            raise RuntimeError("the logout never happened")
        session["x"] = 1
        return "written"

    harness = serve({"recookie_write": recookie_write})
    writer, cookie, session_id = open_session(harness, seed=1)
    thread, out = run_in_thread(writer.get, "/recookie_write")
    try:
        assert loaded.wait(EVENT_TIMEOUT)
        with harness.client(cookie) as logout:
            assert logout.get("/invalidate").status == 200
    finally:
        logout_done.set()
    reply = joined(thread, out)

    assert reply.status == 200
    assert not redis_client.exists(session_id)
    assert [type(entry.problem) for entry in harness.logged] == [SessionGone]
    assert writer.cookie is None  # the last header wins: the client dropped the cookie
    headers = [(m.key, is_expiry(m)) for m in reply.set_cookies]
    assert headers == [(COOKIE, True)]


# --------------------------------------------------------------------------- merges


@dataclass
class Gate:
    loaded: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def gated_apply(gate: Gate) -> Any:
    """A view applying ``ops`` (JSON list) to the session; ``hold=1`` parks it on ``gate``."""

    def apply(request: Request) -> Any:
        session = request.session
        len(session)  # loaded
        for op, key, *arg in json.loads(request.params["ops"]):
            if op == "set":
                session[key] = arg[0]
            elif op == "del":
                del session[key]
            elif op == "incr":
                session.incr(key, arg[0])
            elif op == "append":
                session[key].append(arg[0])
            elif op == "read":  # hands out the (mutable) value without changing it
                _ = session[key]
            elif op == "flash":
                session.flash(arg[0], queue=key)
            elif op == "pop_flash":
                session.pop_flash(queue=key)
            elif op == "nested":  # in place, as s.setdefault("prefs", {})[k] = 1
                session.setdefault(key, {})[arg[0]] = arg[1]
            elif op == "managed_set":
                session.managed_dict[key] = arg[0]
            elif op == "managed_del":
                del session.managed_dict[key]
            elif op == "setof":
                session[key] = set(arg[0])
            elif op == "add":  # to a set, in place
                session[key].add(arg[0])
            elif op == "discard":
                session[key].discard(arg[0])
            elif op == "items_append":  # a value handed out by items(), changed in place
                dict(session.items())[key].append(arg[0])
            elif op == "values_append":  # the (only) list handed out by values()
                next(v for v in session.values() if isinstance(v, list)).append(arg[0])
            elif op == "timeout":
                session.adjust_session_timeout(arg[0])
            elif op == "persist":
                session.do_persist()
            else:
                raise ValueError(op)
        if request.params.get("hold"):
            gate.loaded.set()
            if not gate.release.wait(EVENT_TIMEOUT):
                raise RuntimeError("never released")
        return "applied"

    return apply


def a_then_b(
    harness: Harness,
    gate: Gate,
    cookie: str,
    ops_a: list[Any],
    ops_b: list[Any],
    peek: Any,
) -> tuple[Reply, Reply, Any]:
    """A loads and changes the session and is held; B runs to completion; then A finishes.

    Returns both replies and ``peek()`` taken between B's end and A's release.
    """
    with harness.client(cookie) as client_a, harness.client(cookie) as client_b:
        thread, out = run_in_thread(client_a.get, "/apply", {"ops": json.dumps(ops_a), "hold": "1"})
        try:
            assert gate.loaded.wait(EVENT_TIMEOUT), "A never loaded the session"
            reply_b = client_b.get("/apply", {"ops": json.dumps(ops_b)})  # B's write is done
            after_b = peek()
        finally:
            gate.release.set()
        reply_a = joined(thread, out)
    return reply_a, reply_b, after_b


def test_disjoint_changes_of_two_overlapping_requests_merge(
    serve: Any, redis_client: redis.Redis, commands: CommandCounter, native_ifeq: bool
) -> None:
    gate = Gate()
    harness = serve({"apply": gated_apply(gate)})
    client, cookie, session_id = open_session(harness, z="doomed", n=5)
    redis_client.script_load(CAS_SCRIPT)
    commands.reset()

    reply_a, reply_b, after_b = a_then_b(
        harness,
        gate,
        cookie,
        [["set", "a", "from A"], ["incr", "n", 1]],
        [["set", "b", "from B"], ["del", "z"], ["incr", "n", 10]],
        lambda: stored(redis_client, session_id),
    )

    assert (reply_a.status, reply_b.status) == (200, 200)
    assert reply_a.set_cookies == [] and reply_b.set_cookies == []
    assert after_b == {"b": "from B", "n": 15}  # B wrote first, over the loaded copy
    assert stored(redis_client, session_id) == {"a": "from A", "b": "from B", "n": 16}
    assert client.get("/dump").json == {"a": "from A", "b": "from B", "n": 16}
    # B: one attempt; A: a conflict, then a merged write.
    assert script_calls(commands, native_ifeq) == 3
    assert harness.logged == []


def test_same_key_changed_by_two_overlapping_requests_later_writer_wins(
    serve: Any, redis_client: redis.Redis, commands: CommandCounter, native_ifeq: bool
) -> None:
    gate = Gate()
    harness = serve({"apply": gated_apply(gate)})
    _, cookie, session_id = open_session(harness, k="initial", keep=1)
    redis_client.script_load(CAS_SCRIPT)
    commands.reset()

    _, _, after_b = a_then_b(
        harness,
        gate,
        cookie,
        [["set", "k", "A"]],
        [["set", "k", "B"]],
        lambda: stored(redis_client, session_id),
    )

    assert after_b == {"k": "B", "keep": 1}
    assert stored(redis_client, session_id) == {"k": "A", "keep": 1}  # A wrote last
    assert script_calls(commands, native_ifeq) == 3


APPEND, SET_OTHER = ["append", "items", 2], ["set", "other", "x"]


@pytest.mark.parametrize(
    ("ops_a", "ops_b"),
    [
        pytest.param([APPEND], [SET_OTHER], id="held-request-appends"),
        pytest.param([SET_OTHER], [APPEND], id="first-request-appends"),
        pytest.param([["read", "items"], SET_OTHER], [APPEND], id="held-request-only-reads"),
    ],
)
def test_in_place_mutation_merges_with_a_concurrent_set(
    ops_a: list[Any],
    ops_b: list[Any],
    serve: Any,
    redis_client: redis.Redis,
    commands: CommandCounter,
    native_ifeq: bool,
) -> None:
    """One request appends to the list at "items" in place, the other sets "other".

    When the held request A appended, its in-place change is found by comparing the
    value with the loaded one and replayed onto B's copy. When B appended, A (which set
    "other", and in the last case also read "items" without changing it) must not
    clobber B's append with its stale list.
    """
    gate = Gate()
    harness = serve({"apply": gated_apply(gate)})
    _, cookie, session_id = open_session(harness, items=[1], keep=True)
    redis_client.script_load(CAS_SCRIPT)
    commands.reset()

    reply_a, reply_b, after_b = a_then_b(
        harness, gate, cookie, ops_a, ops_b, lambda: stored(redis_client, session_id)
    )

    assert (reply_a.status, reply_b.status) == (200, 200)
    expected_after_b = {"other": "x"} if APPEND in ops_a else {"items": [1, 2]}
    assert after_b == {"items": [1], "keep": True, **expected_after_b}
    assert stored(redis_client, session_id) == {"items": [1, 2], "keep": True, "other": "x"}
    assert script_calls(commands, native_ifeq) == 3
    assert harness.logged == []


# --------------------------------------------------------------------------- structural merge


class Conflicts(list[tuple[str, tuple[str, ...]]]):
    """A ``func_conflict_logger`` recording (request path, conflicting keys)."""

    def __call__(self, request: Request, conflict: SessionWriteConflict) -> None:
        self.append((request.path, conflict.keys))


def seeded(harness: Harness, gate: Gate, ops: list[Any]) -> tuple[str, str]:
    """A new session prepared by one (unheld) apply request: (cookie, session id)."""
    with harness.client() as client:
        assert client.get("/apply", {"ops": json.dumps(ops)}).status == 200
        cookie = client.cookie
        assert cookie is not None
        session_id = client.get("/session_id").json
    harness.logged.clear()
    return cookie, session_id


MERGES = [
    pytest.param(
        [["flash", "", "a"]],
        [["flash", "", "b"]],
        [["set", "keep", 1]],
        {"_f_": ["b", "a"], "keep": 1},
        id="both-flash-into-an-empty-queue",
    ),
    pytest.param(
        [["pop_flash", ""]],
        [["flash", "", "new"]],
        [["flash", "", "old"], ["set", "user", 7]],
        {"_f_": ["new"], "user": 7},
        id="pop_flash-while-another-flashes",
    ),
    pytest.param(
        [["flash", "", "new"]],
        [["pop_flash", ""]],
        [["flash", "", "old"], ["set", "user", 7]],
        {"_f_": ["new"], "user": 7},
        id="flash-while-another-pops",
    ),
    pytest.param(
        [["nested", "prefs", "a", 1]],
        [["nested", "prefs", "b", 2]],
        [["set", "keep", 1]],
        {"prefs": {"a": 1, "b": 2}, "keep": 1},
        id="nested-dict-keys-added-in-place",
    ),
    pytest.param(
        [["managed_set", "x", 1], ["managed_del", "z"]],
        [["set", "b", 2]],
        [["set", "z", "login"]],
        {"x": 1, "b": 2},
        id="managed_dict-add-and-delete",
    ),
    pytest.param(
        [["set", "b", 1]],
        [["managed_set", "x", 1], ["managed_del", "z"]],
        [["set", "z", "login"]],
        {"x": 1, "b": 1},
        id="managed_dict-change-by-the-first-writer",
    ),
    pytest.param(
        [["add", "tags", "a"], ["discard", "tags", "old"]],
        [["add", "tags", "b"]],
        [["setof", "tags", ["old", "kept"]]],
        {"tags": {"a", "b", "kept"}},
        id="set-elements-added-and-removed",
    ),
]


@pytest.mark.parametrize(("ops_a", "ops_b", "seed", "expected"), MERGES)
def test_structures_changed_by_two_overlapping_requests_merge(
    ops_a: list[Any],
    ops_b: list[Any],
    seed: list[Any],
    expected: dict[str, Any],
    serve: Any,
    redis_client: redis.Redis,
) -> None:
    gate, conflicts = Gate(), Conflicts()
    harness = serve({"apply": gated_apply(gate)}, func_conflict_logger=conflicts)
    cookie, session_id = seeded(harness, gate, seed)

    reply_a, reply_b, _ = a_then_b(harness, gate, cookie, ops_a, ops_b, lambda: None)

    assert (reply_a.status, reply_b.status) == (200, 200)
    assert stored(redis_client, session_id) == expected
    assert conflicts == []
    assert harness.logged == []


def test_delete_then_incr_is_an_assignment_not_an_increment(
    serve: Any, redis_client: redis.Redis
) -> None:
    """A deleted, then incremented, counter holds the amount: it conflicts with B's incr."""
    gate, conflicts = Gate(), Conflicts()
    harness = serve({"apply": gated_apply(gate)}, func_conflict_logger=conflicts)
    cookie, session_id = seeded(harness, gate, [["set", "n", 5]])

    a_then_b(harness, gate, cookie, [["del", "n"], ["incr", "n", 1]], [["incr", "n", 10]], list)

    assert stored(redis_client, session_id) == {"n": 1}  # this request's value, not 5+10+1
    assert conflicts == [("/apply", ("n",))]


def test_a_conflicting_scalar_keeps_this_requests_value_and_is_reported(
    serve: Any, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    gate, conflicts = Gate(), Conflicts()
    harness = serve({"apply": gated_apply(gate)}, func_conflict_logger=conflicts)
    cookie, session_id = seeded(harness, gate, [["set", "k", "initial"], ["set", "m", 0]])
    caplog.set_level(logging.WARNING, logger="pyramid_session_redis")

    a_then_b(harness, gate, cookie, [["set", "k", "A"], ["set", "a", 1]], [["set", "k", "B"]], list)

    assert stored(redis_client, session_id) == {"k": "A", "m": 0, "a": 1}
    assert conflicts == [("/apply", ("k",))]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "pyramid_session_redis"]
    assert "'k'" in line and session_id not in line and "'A'" not in line and "'B'" not in line


def test_a_conflict_report_names_the_keys_and_a_keyed_hash_of_the_id(
    serve: Any, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    reported: list[SessionWriteConflict] = []
    gate = Gate()
    harness = serve(
        {"apply": gated_apply(gate)},
        func_conflict_logger=lambda request, conflict: reported.append(conflict),
    )
    cookie, session_id = seeded(harness, gate, [["set", "k", 0], ["set", "j", 0]])
    caplog.set_level(logging.WARNING, logger="pyramid_session_redis")

    ops_a = [["set", "k", "A"], ["set", "j", "A"]]
    a_then_b(harness, gate, cookie, ops_a, [["set", "k", "B"], ["set", "j", "B"]], list)

    hashed = log_id(make_log_key(SECRET), session_id)
    lines = [r.getMessage() for r in caplog.records if r.name == "pyramid_session_redis"]
    assert lines == [f"session {hashed}: concurrent changes to 'j', 'k'; this request's kept"]
    assert [(str(c), c.keys) for c in reported] == [(f"session {hashed}: 'j', 'k'", ("j", "k"))]


def test_strict_conflicts_raise_and_write_nothing(serve: Any, redis_client: redis.Redis) -> None:
    gate, conflicts = Gate(), Conflicts()
    harness = serve(
        {"apply": gated_apply(gate)}, func_conflict_logger=conflicts, on_conflict="strict"
    )
    cookie, session_id = seeded(harness, gate, [["set", "k", "initial"]])

    with server_exceptions() as raised:
        reply_a, reply_b, _ = a_then_b(
            harness, gate, cookie, [["set", "k", "A"], ["set", "a", 1]], [["set", "k", "B"]], list
        )

    assert (reply_a.status, reply_b.status) == (500, 200)
    assert raised == Counter({"SessionWriteConflict": 1})
    assert stored(redis_client, session_id) == {"k": "B"}  # A wrote nothing, not even "a"
    assert conflicts == []  # raised, not reported


def test_a_write_that_runs_out_of_retries_fails_and_writes_nothing(
    serve: Any, redis_client: redis.Redis
) -> None:
    """``cas_retries=0``: one lost compare-and-set is the end; the request fails (a 500).

    The other request's write stays as it is and nothing of this request's is written.
    """
    gate, conflicts = Gate(), Conflicts()
    harness = serve({"apply": gated_apply(gate)}, cas_retries=0, func_conflict_logger=conflicts)
    cookie, session_id = seeded(harness, gate, [["set", "k", "initial"]])

    with server_exceptions() as raised:
        reply_a, reply_b, _ = a_then_b(
            harness, gate, cookie, [["set", "a", 1]], [["set", "b", 2]], list
        )

    assert (reply_a.status, reply_b.status) == (500, 200)
    assert raised == Counter({"SessionWriteConflict": 1})
    assert stored(redis_client, session_id) == {"k": "initial", "b": 2}
    assert conflicts == []
    assert reply_a.set_cookies == []  # the session and its cookie stay as they were
    with harness.client(cookie) as client:
        assert client.get("/dump").json == {"k": "initial", "b": 2}


def test_disjoint_merges_in_strict_mode_still_write(serve: Any, redis_client: redis.Redis) -> None:
    gate = Gate()
    harness = serve({"apply": gated_apply(gate)}, on_conflict="strict")
    cookie, session_id = seeded(harness, gate, [["set", "k", "initial"]])

    reply_a, reply_b, _ = a_then_b(
        harness, gate, cookie, [["flash", "", "a"]], [["flash", "", "b"]], list
    )

    assert (reply_a.status, reply_b.status) == (200, 200)
    assert stored(redis_client, session_id) == {"k": "initial", "_f_": ["b", "a"]}


SHAPE_CLIENTS, SHAPE_REQUESTS = 8, 100


def shapes(request: Request) -> Any:
    """Every shape of issue 10's workload, changed by one request."""
    session, key = request.session, f"c{request.params['c']}-{request.params['i']}"
    len(session)
    time.sleep(random.uniform(0, 0.002))
    session[key] = 1  # a distinct key
    cart = session.get("cart", [])
    cart.append(key)
    session["cart"] = cart  # read-modify-write of a list
    session.setdefault("prefs", {})[key] = 1  # a nested dict, in place
    session.flash(key)
    session["n"] = session.get("n", 0) + 1  # a plain counter: a real conflict
    session.incr("m")
    return "ok"


def run_shapes(harness: Harness, redis_client: redis.Redis) -> tuple[Counter[int], Any]:
    """SHAPE_CLIENTS threads x SHAPE_REQUESTS requests of ``shapes`` on one session."""
    starter, cookie, session_id = open_session(harness, seed=0)
    starter.close()
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + WORKLOAD_DEADLINE

    def client_loop(number: int) -> None:
        with harness.client(cookie) as client:
            for i in range(SHAPE_REQUESTS):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"client {number} stopped at request {i}")
                reply = client.get("/shapes", {"c": number, "i": i})
                client.cookie = cookie
                with lock:
                    statuses[reply.status] += 1

    threads = [run_in_thread(client_loop, n) for n in range(SHAPE_CLIENTS)]
    for thread, out in threads:
        thread.join(max(0.1, deadline - time.monotonic() + 5))
        assert not thread.is_alive(), "client thread did not finish"
        assert out == [None]
    return statuses, stored(redis_client, session_id)


def test_the_shapes_applications_change_concurrently_lose_nothing(
    serve: Any, redis_client: redis.Redis
) -> None:
    """8 clients x 100 requests: distinct keys, list appends, nested keys, flash, incr."""
    conflicts = Conflicts()
    harness = serve(
        {"shapes": shapes}, cas_retries=CONTENDED_CAS_RETRIES, func_conflict_logger=conflicts
    )
    statuses, data = run_shapes(harness, redis_client)
    total = SHAPE_CLIENTS * SHAPE_REQUESTS
    keys = {f"c{c}-{i}" for c in range(SHAPE_CLIENTS) for i in range(SHAPE_REQUESTS)}

    assert statuses == Counter({200: total})
    assert data is not None
    assert {k for k in data if k[1:2].isdigit()} == keys  # distinct keys
    assert sorted(data["cart"]) == sorted(keys)  # list appends, none twice
    assert set(data["prefs"]) == keys  # nested dict keys
    assert sorted(data["_f_"]) == sorted(keys)  # flash messages
    assert data["m"] == total  # incr
    # The plain counter is a real conflict: reported (never silently), ours kept.
    # (Two requests that both stored the same new value agree: not a conflict.)
    assert data["n"] < total
    assert conflicts and all(keys == ("n",) for _, keys in conflicts)


def test_a_concurrently_emptied_session_is_deleted_like_a_logout(
    serve: Any, redis_client: redis.Redis
) -> None:
    """B pops the last message: the session is empty and deleted (invalidate_empty_session).

    A's write to it is then dropped and reported, as after a logout: a deleted session
    is never written back. With ``invalidate_empty_session=False`` it merges instead.
    """
    for invalidate_empty in (True, False):
        gate = Gate()
        harness = serve({"apply": gated_apply(gate)}, invalidate_empty_session=invalidate_empty)
        cookie, session_id = seeded(harness, gate, [["flash", "", "old"]])

        a_then_b(harness, gate, cookie, [["flash", "", "new"]], [["pop_flash", ""]], list)

        if invalidate_empty:
            assert not redis_client.exists(session_id)
            assert [type(entry.problem) for entry in harness.logged] == [SessionGone]
        else:
            assert stored(redis_client, session_id) == {"_f_": ["new"]}
            assert harness.logged == []


# --------------------------------------------------------------------------- change log


LOG_MERGES = [
    pytest.param(
        [["incr", "n", 1], ["set", "n", 100]],
        [["incr", "n", 10]],
        {"n": 100},
        [("/apply", ("n",))],
        id="incr-then-assignment-is-an-assignment",
    ),
    pytest.param(
        [["set", "n", 3], ["incr", "n", 1]],
        [["incr", "n", 10]],
        {"n": 4},
        [("/apply", ("n",))],
        id="assignment-then-incr-is-an-assignment",
    ),
    pytest.param(
        [["incr", "n", 1], ["del", "n"]],
        [["incr", "n", 10], ["set", "b", 1]],
        {"b": 1},
        [("/apply", ("n",))],
        id="incr-then-del-is-a-deletion",
    ),
    pytest.param(
        [["del", "n"], ["incr", "n", 1]],
        [["set", "b", 1]],
        {"n": 1, "b": 1},
        [],
        id="delete-then-incr-while-the-other-left-it-alone",
    ),
    pytest.param(
        [["incr", "n", 1], ["incr", "n", 2]],
        [["incr", "n", 10]],
        {"n": 18},
        [],
        id="increments-add-up-as-one-delta",
    ),
    pytest.param(
        [["items_append", "cart", "a"]],
        [["append", "cart", "b"]],
        {"n": 5, "cart": [1, "b", "a"]},
        [],
        id="a-list-from-items-changed-in-place",
    ),
    pytest.param(
        [["values_append", "", "a"]],
        [["append", "cart", "b"], ["set", "n", 6]],
        {"n": 6, "cart": [1, "b", "a"]},
        [],
        id="a-list-from-values-changed-in-place",
    ),
]


@pytest.mark.parametrize(("ops_a", "ops_b", "expected", "reported"), LOG_MERGES)
def test_what_a_request_did_to_a_key_decides_its_merge(
    ops_a: list[Any],
    ops_b: list[Any],
    expected: dict[str, Any],
    reported: list[Any],
    serve: Any,
    redis_client: redis.Redis,
) -> None:
    """A (held) and B change the same keys; A's change log decides what A's merge keeps.

    Seeded with ``n = 5`` (and ``cart = [1]`` for the in-place cases).
    """
    gate, conflicts = Gate(), Conflicts()
    harness = serve({"apply": gated_apply(gate)}, func_conflict_logger=conflicts)
    in_place = any(op[0].endswith("_append") for op in ops_a)
    seed = [["set", "n", 5], *([["set", "cart", [1]]] if in_place else [])]
    cookie, session_id = seeded(harness, gate, seed)

    reply_a, reply_b, _ = a_then_b(harness, gate, cookie, ops_a, ops_b, list)

    assert (reply_a.status, reply_b.status) == (200, 200)
    assert stored(redis_client, session_id) == expected
    assert conflicts == reported
    assert harness.logged == []


@pytest.mark.parametrize("op", ["items_append", "values_append"])
def test_a_value_handed_out_by_items_or_values_and_changed_in_place_is_saved(
    op: str, serve: Any, redis_client: redis.Redis
) -> None:
    gate = Gate()
    harness = serve({"apply": gated_apply(gate)})
    cookie, session_id = seeded(harness, gate, [["set", "cart", [1]], ["set", "n", 0]])
    with harness.client(cookie) as client:
        reply = client.get("/apply", {"ops": json.dumps([[op, "cart", 2]])})
    assert reply.status == 200
    assert stored(redis_client, session_id) == {"cart": [1, 2], "n": 0}


@pytest.mark.parametrize(
    ("ops_a", "ops_b", "expected"),
    [
        pytest.param(
            [["read", "items"], ["set", "a", 1]],
            [["set", "items", [1, 2]], ["set", "k", 1]],
            {"items": [1, 2], "k": 1, "a": 1},
            id="read-a-list-then-set-a-key",
        ),
        pytest.param(
            [["append", "items", "a"], ["set", "a", 1]],
            [["set", "items", [1, "b"]]],
            {"items": [1, "b", "a"], "k": 0, "a": 1},
            id="changed-a-list-in-place-and-set-a-key",
        ),
        pytest.param(
            [["read", "items"]],
            [["set", "items", [1, 2]]],
            {"items": [1, 2], "k": 0},
            id="read-only",
        ),
    ],
)
def test_a_merge_without_detect_changes_after_reading_a_mutable_value(
    ops_a: list[Any],
    ops_b: list[Any],
    expected: dict[str, Any],
    serve: Any,
    redis_client: redis.Redis,
) -> None:
    """``detect_changes=False``: A read a list (maybe changed it) and is merged with B's write.

    (B assigns: without ``detect_changes`` its own in-place changes would not be saved.)

    A write of A's (triggered by an assignment) carries the whole session, its in-place
    change included, and is merged like any other; a read alone writes nothing.
    """
    gate, conflicts = Gate(), Conflicts()
    harness = serve(
        {"apply": gated_apply(gate)}, detect_changes=False, func_conflict_logger=conflicts
    )
    cookie, session_id = seeded(harness, gate, [["set", "items", [1]], ["set", "k", 0]])

    with server_exceptions() as raised:
        reply_a, reply_b, _ = a_then_b(harness, gate, cookie, ops_a, ops_b, list)

    assert (reply_a.status, reply_b.status) == (200, 200)
    assert raised == Counter()
    assert stored(redis_client, session_id) == expected
    assert conflicts == []


def session_timeout(request: Request) -> Any:
    return request.session.timeout


@pytest.mark.parametrize(
    ("ops_a", "ops_b"),
    [
        pytest.param([["set", "a", 1]], [["timeout", "", 50]], id="theirs"),
        pytest.param([["timeout", "", 50], ["set", "a", 1]], [["set", "b", 1]], id="ours"),
        pytest.param([["set", "a", 1]], [["set", "b", 1], ["timeout", "", 50]], id="theirs+data"),
    ],
)
def test_an_adjusted_session_timeout_survives_the_merge(
    ops_a: list[Any], ops_b: list[Any], serve: Any, redis_client: redis.Redis
) -> None:
    """Whichever request called ``adjust_session_timeout(50)``, the session keeps it.

    Its stored timeout and its TTL in Redis, after the other request's merged write.
    """
    gate = Gate()
    harness = serve({"apply": gated_apply(gate), "timeout": session_timeout}, timeout=1000)
    cookie, session_id = seeded(harness, gate, [["set", "seed", 0]])

    reply_a, reply_b, _ = a_then_b(harness, gate, cookie, ops_a, ops_b, list)

    assert (reply_a.status, reply_b.status) == (200, 200)
    data = stored(redis_client, session_id)
    assert data is not None and data["a"] == 1
    assert 0 < redis_client.ttl(session_id) <= 50
    assert SafeCodec().decode(redis_client.get(session_id)).timeout == 50
    with harness.client(cookie) as client:
        assert client.get("/timeout").json == 50
    assert 0 < redis_client.ttl(session_id) <= 50


def test_do_persist_then_more_changes_under_a_concurrent_write(
    serve: Any, redis_client: redis.Redis, commands: CommandCounter, native_ifeq: bool
) -> None:
    """A persists mid-request, changes more, is held; B writes; A's end merges once.

    The persisted write is A's new baseline: its increment before ``do_persist`` is
    not counted again, and its key set before it is not a change any more.
    """
    gate, conflicts = Gate(), Conflicts()
    harness = serve({"apply": gated_apply(gate)}, func_conflict_logger=conflicts)
    cookie, session_id = seeded(harness, gate, [["set", "n", 0], ["set", "k", "seed"]])
    redis_client.script_load(CAS_SCRIPT)

    ops_a = [["incr", "n", 1], ["set", "k", "A"], ["persist", ""], ["incr", "n", 1]]
    ops_b = [["incr", "n", 10], ["set", "k", "B"]]
    commands.reset()
    reply_a, reply_b, after_b = a_then_b(
        harness, gate, cookie, ops_a, ops_b, lambda: stored(redis_client, session_id)
    )

    assert (reply_a.status, reply_b.status) == (200, 200)
    assert after_b == {"n": 11, "k": "B"}  # B loaded A's persisted write
    assert stored(redis_client, session_id) == {"n": 12, "k": "B"}
    assert conflicts == []  # k was A's before its persist: B's change is a plain update
    # A's persist, B's write, A's end (lost once, merged, written).
    assert script_calls(commands, native_ifeq) == 4


def test_an_emptied_session_deleted_meanwhile_is_reported_gone(
    serve: Any, redis_client: redis.Redis
) -> None:
    gate = Gate()
    harness = serve({"apply": gated_apply(gate)})
    cookie, _ = seeded(harness, gate, [["set", "k", 1]])

    with harness.client(cookie) as client_a, harness.client(cookie) as client_b:
        thread, out = run_in_thread(
            client_a.get, "/apply", {"ops": json.dumps([["del", "k"]]), "hold": "1"}
        )
        try:
            assert gate.loaded.wait(EVENT_TIMEOUT)
            assert client_b.get("/invalidate").status == 200
        finally:
            gate.release.set()
        reply_a = joined(thread, out)

    assert reply_a.status == 200
    assert redis_client.keys() == []
    assert [(type(e.problem), e.path) for e in harness.logged] == [(SessionGone, "/apply")]


# --------------------------------------------------------------------------- persistence = lock


def test_lock_mode_serializes_even_a_plain_read_modify_write(
    serve: Any, redis_client: redis.Redis
) -> None:
    """With persistence=lock, also the plain counter of the workload is exact."""
    conflicts = Conflicts()
    harness = serve(
        {"shapes": shapes}, persistence="lock", lock_wait=20, func_conflict_logger=conflicts
    )
    statuses, data = run_shapes(harness, redis_client)
    total = SHAPE_CLIENTS * SHAPE_REQUESTS

    assert statuses == Counter({200: total})
    assert data is not None
    assert data["n"] == total  # s["n"] = s.get("n", 0) + 1, 800 times, none lost
    assert data["m"] == total
    assert len(data["cart"]) == len(data["_f_"]) == len(data["prefs"]) == total
    assert conflicts == []
    assert not redis_client.keys("*:lock")  # every lock released


def test_lock_mode_waits_for_the_holder_and_sees_its_write(
    serve: Any, redis_client: redis.Redis
) -> None:
    gate = Gate()
    harness = serve({"apply": gated_apply(gate)}, persistence="lock")
    cookie, session_id = seeded(harness, gate, [["set", "n", 1]])

    with harness.client(cookie) as client_a, harness.client(cookie) as client_b:
        thread_a, out_a = run_in_thread(
            client_a.get, "/apply", {"ops": json.dumps([["incr", "n", 1]]), "hold": "1"}
        )
        assert gate.loaded.wait(EVENT_TIMEOUT)
        thread_b, out_b = run_in_thread(client_b.get, "/read", {"key": "n"})
        thread_b.join(0.3)
        assert thread_b.is_alive()  # B waits for A's lock
        gate.release.set()
        assert joined(thread_a, out_a).status == 200
        assert joined(thread_b, out_b).json == 2  # B loaded after A's write
    assert stored(redis_client, session_id) == {"n": 2}


def test_lock_wait_ends_in_a_typed_error(serve: Any, redis_client: redis.Redis) -> None:
    gate = Gate()
    harness = serve({"apply": gated_apply(gate)}, persistence="lock", lock_wait=0.2)
    cookie, session_id = seeded(harness, gate, [["set", "n", 1]])

    with (
        server_exceptions() as raised,
        harness.client(cookie) as client_a,
        harness.client(cookie) as client_b,
    ):
        thread_a, out_a = run_in_thread(
            client_a.get, "/apply", {"ops": json.dumps([["set", "a", 1]]), "hold": "1"}
        )
        assert gate.loaded.wait(EVENT_TIMEOUT)
        try:
            reply_b = client_b.get("/read", {"key": "n"})
        finally:
            gate.release.set()
        assert joined(thread_a, out_a).status == 200
    assert reply_b.status == 500
    assert raised == Counter({"SessionLockTimeout": 1})
    assert stored(redis_client, session_id) == {"n": 1, "a": 1}


def test_a_dead_lock_holder_blocks_only_until_its_lease_ends(
    serve: Any, redis_client: redis.Redis
) -> None:
    """A worker that died holding the lock left it behind: the lease frees it."""
    gate = Gate()
    harness = serve({"apply": gated_apply(gate)}, persistence="lock", lock_wait=5)
    cookie, session_id = seeded(harness, gate, [["set", "n", 1]])
    redis_client.set(lock_key(session_id), "dead-worker-token", px=400)

    with harness.client(cookie) as client:
        started = time.monotonic()
        reply = client.get("/incr", {"key": "n"})
        waited = time.monotonic() - started
    assert reply.status == 200 and reply.json == 2
    assert waited >= 0.2  # it did wait for the lease (bounds, not precise timing)
    assert stored(redis_client, session_id) == {"n": 2}


def test_a_writer_whose_lease_ran_out_is_fenced_off(serve: Any, redis_client: redis.Redis) -> None:
    """A's lease ends while it works; B takes the lock and writes; A's write is refused."""
    gate = Gate()
    harness = serve({"apply": gated_apply(gate)}, persistence="lock", lock_timeout=0.3)
    cookie, session_id = seeded(harness, gate, [["set", "k", "initial"]])

    with (
        server_exceptions() as raised,
        harness.client(cookie) as client_a,
        harness.client(cookie) as client_b,
    ):
        thread_a, out_a = run_in_thread(
            client_a.get, "/apply", {"ops": json.dumps([["set", "k", "A"]]), "hold": "1"}
        )
        try:
            assert gate.loaded.wait(EVENT_TIMEOUT)
            reply_b = client_b.get("/set", {"key": "k", "value": json.dumps("B")})  # waits
        finally:
            gate.release.set()
        reply_a = joined(thread_a, out_a)
    assert reply_b.status == 200
    assert reply_a.status == 500
    assert raised == Counter({"SessionLockLost": 1})
    assert stored(redis_client, session_id) == {"k": "B"}
    assert not redis_client.exists(lock_key(session_id))
