"""Benchmark worker: one process, one session library, timed in-process.

Run by either virtualenv's python as a *script* in isolated mode
(``python -I benchmarks/worker.py bench|serve``) so that ``import
pyramid_session_redis`` finds the library installed in that environment (ours,
or 1.8.1), never a copy picked up from the current directory. It imports only
the standard library, Pyramid, WebOb, redis-py and waitress, which both
environments have.

Protocol (``bench``): JSON lines. The first line sets the worker up; each later
line asks for one timed batch and gets one line back; end of input ends it::

    -> {"kind": "redis" | "minimal" | "cookie" | "none" | "raw",
        "options": {...},               # RedisSessionFactory keyword options
        "serializer": null | "pickle",  # ours in migration mode
        "redis_url": "redis://127.0.0.1:PORT/0",
        "stats_module": "/path/to/tests/redis_stats.py",
        "seeds": {"small": {...}, ...},
        "workloads": [{"name", "path", "seed": null | "small" | ...}],
        "warmup": 80, "budget_s": 2.0}
    <- {"ready": true, "workloads": [...], "python": "3.11.7", "versions": {...}}
    -> {"run": "read", "requests": 100, "profile": false}
    <- {"n", "median_us", "mean_us", "p90_us", "cpu_us", "round_trips",
        "commands", "command_mix", "stored_bytes"}

A worker lives for the whole run, so the driver can alternate small batches of
two libraries (A B A B ...) without paying a process start per batch.

``kind`` "redis" is whichever ``pyramid_session_redis`` is installed; "cookie" is
Pyramid's ``SignedCookieSessionFactory``; "none" gives ``request.session`` as a
plain dict from a trivial session factory (the same views with no session
machinery: the framework floor); "minimal" is the least a Redis session can do (one
``GETEX`` to read, one ``SET`` to write; see ``MinimalSessionFactory``: a bound, not a
library);
"raw" times bare redis-py commands (workloads named "GET", "GETEX"...: the wire
floor). The first batch of a workload seeds its session (the cookie is kept)
and warms up; each batch is bounded by ``requests`` and by ``budget_s``.

Round trips are counted client-side: every ``Connection.send_packed_command``
is one (a pipeline sends all its commands in one call; our ``DirectChannel`` sends
each round trip in one call too). Commands are counted
server-side (``INFO commandstats`` through the tests' ``CommandCounter``).

``serve`` reads one setup object and serves the app with waitress (threads=4) on
a free 127.0.0.1 port, printing ``{"port": N}`` once listening; it exits by
itself after ``max_lifetime_s``.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import hmac
import importlib.metadata
import importlib.util
import io
import itertools
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import IO, Any
from urllib.parse import urlsplit

import redis
import redis.connection
from pyramid.config import Configurator
from pyramid.response import Response
from webob import Request as WebObRequest

SECRET = "benchmark-secret"
COOKIE_NAME = "session"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# --- round trips ----------------------------------------------------------------------------


class RoundTrips:
    """Counts round trips: redis-py sends each command, or each pipeline, in one call.

    Ours sends on its own connections (``DirectChannel``) through the same
    ``send_packed_command``, one call per round trip.
    """

    count = 0

    @classmethod
    def install(cls) -> None:
        original: Callable[..., Any] = redis.connection.Connection.send_packed_command

        def counting(self: Any, command: Any, check_health: bool = True) -> Any:
            cls.count += 1
            return original(self, command, check_health)

        redis.connection.Connection.send_packed_command = counting  # type: ignore[method-assign]


# --- the application ------------------------------------------------------------------------


class BenchApp:
    """The benchmark's Pyramid app; ``seeds`` are the session contents a workload starts from."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.seeds: dict[str, dict[str, Any]] = spec.get("seeds", {})
        self.plain_session: dict[str, Any] = {}  # kind "none"
        self.seeded_id: str | None = None  # the Redis key of the last seeded session
        self.counter = itertools.count()
        self.app: WSGIApp = self._build()

    def _build(self) -> WSGIApp:
        views: dict[str, Callable[[Any], str]] = {
            "untouched": lambda request: "ok",
            "read": lambda request: str(request.session.get("user_id")),
            "write": self._write,
            "append": self._append,
        }
        with Configurator(settings={}) as config:
            # Kind "none": the session is a plain dict, no machinery. (Not a request
            # method: Pyramid would build a Request subclass per request for it.)
            factory = session_factory(self.spec) or (lambda request: self.plain_session)
            config.set_session_factory(factory)
            for name, view in views.items():
                config.add_route(name, f"/{name}")
                config.add_view(_text_view(view), route_name=name)
            config.add_route("seed", "/seed/{seed}")
            config.add_view(_text_view(self._seed), route_name="seed")
            return config.make_wsgi_app()  # type: ignore[no-any-return]

    def _write(self, request: Any) -> str:
        request.session["counter"] = next(self.counter)
        return "ok"

    def _append(self, request: Any) -> str:
        items = request.session["items"]
        items.append(next(self.counter))
        del items[:-8]  # stays small: every request mutates, none grows the session
        return "ok"

    def _seed(self, request: Any) -> str:
        # Kind "none" shares one dict between workloads: seeding only adds keys to it.
        request.session.update(copy.deepcopy(self.seeds[request.matchdict["seed"]]))
        # Runs after the session's own callbacks (registered on first access): a new
        # session has its id, and is stored, by then.
        request.add_finished_callback(self._record_seeded_id)
        return "ok"

    def _record_seeded_id(self, request: Any) -> None:
        self.seeded_id = getattr(request.session, "session_id", None)


def _text_view(view: Callable[[Any], str]) -> Callable[[Any], Response]:
    def wrapped(request: Any) -> Response:
        response = request.response
        response.text = view(request)
        return response

    return wrapped


class MinimalSession(dict):  # type: ignore[type-arg]
    """The session of :class:`MinimalSessionFactory`: a dict that notes being written."""

    def __init__(self, factory: MinimalSessionFactory, request: Any, session_id: str | None):
        super().__init__()
        self.factory, self.request, self.session_id = factory, request, session_id
        self.dirty = False

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._written()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._written()

    def _written(self) -> None:
        if not self.dirty:
            self.dirty = True
            self.request.add_response_callback(self.factory.set_cookie)
            self.request.add_finished_callback(self.factory.save)


class MinimalSessionFactory:
    """The least a server-side session can do per request: a bound, not a library.

    An HMAC-signed id in the cookie, one ``GETEX`` (the sliding TTL) on a redis-py
    ``Connection`` of its own, msgspec MessagePack, and one plain ``SET … EX`` when a
    key was set: no compare-and-set, compression, events, size cap, mutation detection,
    error handling or thread safety. Runs in our environment only (msgspec); the
    in-process batches are single-threaded.
    """

    TTL = 1200

    def __init__(self, redis_url: str) -> None:
        import msgspec

        url = urlsplit(redis_url)
        self.connection = redis.connection.Connection(host=url.hostname, port=url.port)
        self.key = hashlib.sha512(b"minimal:" + SECRET.encode()).digest()
        self.encode = msgspec.msgpack.Encoder().encode
        self.decode = msgspec.msgpack.Decoder(dict).decode

    def _command(self, *args: bytes) -> Any:
        packed = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args
        )
        self.connection.send_packed_command((packed,), check_health=False)
        return self.connection.read_response(disable_decoding=True)

    def _signature(self, session_id: str) -> str:
        return hmac.new(self.key, session_id.encode(), "sha256").hexdigest()

    def __call__(self, request: Any) -> MinimalSession:
        cookie = request.cookies.get(COOKIE_NAME)
        session_id, _, signature = (cookie or "").partition(".")
        if not session_id or not hmac.compare_digest(signature, self._signature(session_id)):
            return MinimalSession(self, request, None)
        session = MinimalSession(self, request, session_id)
        raw = self._command(b"GETEX", session_id.encode(), b"EX", b"%d" % self.TTL)
        if raw is not None:
            dict.update(session, self.decode(raw))
        else:
            session.session_id = None
        return session

    def set_cookie(self, request: Any, response: Any) -> None:
        session = request.session
        if session.session_id is None:
            session.session_id = os.urandom(32).hex()
            value = f"{session.session_id}.{self._signature(session.session_id)}"
            response.set_cookie(COOKIE_NAME, value, httponly=True)

    def save(self, request: Any) -> None:
        session = request.session
        payload = self.encode(dict(session))
        self._command(b"SET", session.session_id.encode(), payload, b"EX", b"%d" % self.TTL)


def session_factory(spec: dict[str, Any]) -> Any:
    kind = spec["kind"]
    if kind == "minimal":
        return MinimalSessionFactory(spec["redis_url"])
    if kind == "cookie":
        from pyramid.session import SignedCookieSessionFactory

        return SignedCookieSessionFactory(SECRET, cookie_name=COOKIE_NAME)
    if kind != "redis":
        return None
    from pyramid_session_redis import RedisSessionFactory

    options = dict(spec.get("options", {}))
    if spec.get("serializer") == "pickle":
        import pickle

        options.update(serialize=pickle.dumps, deserialize=pickle.loads)
    return RedisSessionFactory(SECRET, redis_url=spec["redis_url"], **options)


# --- driving the app in-process -------------------------------------------------------------


class Client:
    """Calls the WSGI app directly (no HTTP, no WebTest): one fresh environ per request."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.headers: list[tuple[str, str]] = []
        self.status = ""

    def _start_response(self, status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        self.status, self.headers = status, headers
        return None

    def environ(self, path: str, cookie: str | None) -> dict[str, Any]:
        headers = {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else {}
        return dict(WebObRequest.blank(path, headers=headers).environ)

    def call(self, base: dict[str, Any]) -> None:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(b"")
        result = self.app(environ, self._start_response)
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not self.status.startswith("200"):
            raise RuntimeError(f"{environ['PATH_INFO']}: HTTP {self.status}")

    def set_cookie(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "set-cookie" and value.startswith(f"{COOKIE_NAME}="):
                return value.split(";", 1)[0].split("=", 1)[1]
        return None


class Samples:
    """Per-call wall-clock and thread CPU times, in nanoseconds."""

    def __init__(self) -> None:
        self.wall: list[int] = []
        self.cpu: list[int] = []

    def __len__(self) -> int:
        return len(self.wall)

    def summary(self) -> dict[str, Any]:
        wall = sorted(self.wall)
        return {
            "n": len(wall),
            "median_us": statistics.median(wall) / 1000,
            "mean_us": statistics.fmean(wall) / 1000,
            "p90_us": wall[int(len(wall) * 0.9)] / 1000,
            # CPU time of this thread only: waiting for Redis (or for a busy machine's
            # scheduler) is not in it, the client's own work (syscalls included) is.
            "cpu_us": statistics.median(self.cpu) / 1000,
        }


def timed(call: Callable[[], Any], count: int, budget_s: float) -> Samples:
    """At most ``count`` calls, stopping once ``budget_s`` is spent."""
    samples = Samples()
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    deadline = clock() + int(budget_s * 1e9)
    for _ in range(count):
        start, cpu_start = clock(), cpu_clock()
        call()
        cpu_end, end = cpu_clock(), clock()
        samples.wall.append(end - start)
        samples.cpu.append(cpu_end - cpu_start)
        if end > deadline:
            break
    return samples


class ServerStats:
    """Server-side command counts through the tests' ``CommandCounter``, loaded by path."""

    def __init__(self, spec: dict[str, Any]) -> None:
        module_spec = importlib.util.spec_from_file_location("redis_stats", spec["stats_module"])
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules["redis_stats"] = module  # dataclasses look their module up
        module_spec.loader.exec_module(module)
        url = urlsplit(spec["redis_url"])
        self.counter = module.CommandCounter.for_port(url.port, url.hostname)
        self.client = redis.Redis(host=url.hostname, port=url.port)

    def reset(self) -> None:
        self.counter.reset()

    def counts(self) -> dict[str, int]:
        return self.counter.counts()  # type: ignore[no-any-return]


class Runner:
    """Runs timed batches of one workload; prepares each workload on first use.

    Preparing seeds the session (one request, its cookie kept for the batches) and
    warms up. For kind "raw" the workloads are redis-py commands instead.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.workloads = {w["name"]: w for w in spec["workloads"]}
        self.stats = ServerStats(spec) if spec["kind"] in ("redis", "minimal", "raw") else None
        self.prepared: dict[str, tuple[Callable[[], Any], int | None]] = {}
        if spec["kind"] == "raw":
            self.raw_ops = raw_ops(spec["redis_url"])
        else:
            self.bench = BenchApp(spec)
            self.client = Client(self.bench.app)

    def prepare(self, name: str) -> tuple[Callable[[], Any], int | None]:
        """The call to time for workload ``name`` and its session's stored size."""
        if name in self.prepared:
            return self.prepared[name]
        stored_bytes = None
        if self.spec["kind"] == "raw":
            call = self.raw_ops[name]
        else:
            workload, client = self.workloads[name], self.client
            cookie = None
            if workload["seed"]:
                self.bench.seeded_id = None
                client.call(client.environ(f"/seed/{workload['seed']}", None))
                cookie = client.set_cookie()
                if self.stats is not None and self.bench.seeded_id:
                    stored_bytes = self.stats.client.strlen(self.bench.seeded_id)
            base = client.environ(workload["path"], cookie)

            def call() -> None:
                client.call(base)

        timed(call, self.spec["warmup"], self.spec["budget_s"])
        gc.collect()
        self.prepared[name] = (call, stored_bytes)
        return call, stored_bytes

    def run(self, name: str, requests: int, profile: bool = False) -> dict[str, Any]:
        """One timed batch, with its round trips and server-side command counts."""
        call, stored_bytes = self.prepare(name)
        if self.stats is not None:
            self.stats.reset()
        trips_before = RoundTrips.count
        profiler = _start_profiler() if profile else None
        samples = timed(call, requests, self.spec["budget_s"])
        result = samples.summary()
        if profiler is not None:
            profiler.stop()
            result["profile"] = profiler.output_text(unicode=True, color=False, show_all=False)
        result["round_trips"] = (RoundTrips.count - trips_before) / len(samples)
        if self.stats is not None:
            counts = self.stats.counts()
            result["commands"] = sum(counts.values()) / len(samples)
            result["command_mix"] = {c: n / len(samples) for c, n in sorted(counts.items())}
        result["stored_bytes"] = stored_bytes
        return result


def _start_profiler() -> Any:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002)
    profiler.start()
    return profiler


# --- the raw redis-py floor -----------------------------------------------------------------

RAW_KEY = "bench:raw"


def raw_ops(redis_url: str) -> dict[str, Callable[[], Any]]:
    """Bare redis-py commands on a 100-byte value, one round trip each."""
    client = redis.Redis.from_url(redis_url)
    value = os.urandom(100)
    client.set(RAW_KEY, value)

    def pipelined() -> None:
        pipe = client.pipeline(transaction=False)
        pipe.get(RAW_KEY)
        pipe.expire(RAW_KEY, 1200)
        pipe.execute()

    # The cost of a server-side script doing a GET and a SET EX (a compare-and-set's shape).
    script = client.register_script(
        "redis.call('GET', KEYS[1]); return redis.call('SET', KEYS[1], ARGV[1], 'EX', 1200)"
    )
    return {
        "GET": lambda: client.get(RAW_KEY),
        "SET EX": lambda: client.set(RAW_KEY, value, ex=1200),
        "EXPIRE": lambda: client.expire(RAW_KEY, 1200),
        "GET+EXPIRE pipeline": pipelined,
        "GETEX": lambda: client.getex(RAW_KEY, ex=1200),
        "EVALSHA (GET + SET EX script)": lambda: script(keys=[RAW_KEY], args=[value]),
    }


# --- entry points ---------------------------------------------------------------------------


def bench(stdin: IO[str], stdout: IO[str]) -> None:
    """The line protocol: a setup line, then one line per batch; EOF ends it."""
    RoundTrips.install()
    setup = json.loads(stdin.readline())
    runner = Runner(setup)
    names = list(runner.raw_ops) if setup["kind"] == "raw" else list(runner.workloads)
    _reply(stdout, {"ready": True, "workloads": names, **_versions()})
    for line in stdin:
        request = json.loads(line)
        result = runner.run(request["run"], request["requests"], request.get("profile", False))
        _reply(stdout, result)


def _reply(stdout: IO[str], message: dict[str, Any]) -> None:
    stdout.write(json.dumps(message) + "\n")
    stdout.flush()


def _versions() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in ("pyramid_session_redis", "redis", "pyramid", "WebOb"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.version.split()[0], "versions": versions}


def serve(spec: dict[str, Any]) -> None:
    import waitress

    app = BenchApp(spec)
    server = waitress.create_server(
        app.app, host="127.0.0.1", port=0, threads=spec.get("threads", 4), backlog=64
    )
    # Bounded lifetime: the parent stops us, but never let a server outlive the run.
    timer = threading.Timer(spec.get("max_lifetime_s", 600), os._exit, args=(0,))
    timer.daemon = True
    timer.start()
    print(json.dumps({"port": server.effective_port}), flush=True)
    server.run()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("bench", "serve"):
        print("usage: python -I worker.py bench|serve  (JSON on stdin)", file=sys.stderr)
        return 2
    if argv[0] == "serve":
        serve(json.load(sys.stdin))
    else:
        bench(sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
