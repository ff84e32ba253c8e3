"""The demo project (``demo/``), built from ``demo/development.ini`` by PasteDeploy.

Also the project's "application configured from an ini file" test: every session
option the demo uses comes from ``redis.sessions.*`` keys of that file, only the
Redis URL (and, for the outage tests, the timeouts) is overridden.
Browser tests of the same pages: ``tests/test_browser.py``.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
import webtest
from pyramid.interfaces import ISessionFactory
from pyramid.paster import get_app, get_appsettings

import pyramid_session_redis
from demo.app import INI_PATH, main
from demo.throwaway_redis import ThrowawayRedis, free_port, ping
from demo.views import change_session_id
from pyramid_session_redis.exceptions import SessionBackendError
from tests.redis_stats import HANDSHAKE_COMMANDS
from tests.servers import ServerFactory

REPO_ROOT = Path(__file__).resolve().parents[1]
COOKIE = "demo_session"
FAST_TIMEOUTS = {
    "redis.sessions.redis_socket_timeout": "0.5",
    "redis.sessions.redis_socket_connect_timeout": "0.5",
}


def demo_app(redis_url: str, **overrides: str) -> webtest.TestApp:
    """The app as PasteDeploy builds it: the ini's settings (some overridden), ``redis_url``."""
    settings = {**get_appsettings(str(INI_PATH)), **overrides}
    return webtest.TestApp(main({"redis_url": redis_url}, **settings))


def router(app: webtest.TestApp) -> Any:
    """The Pyramid router inside the two middlewares (503 page, session panel)."""
    return app.app.app.app


@pytest.fixture
def app(redis_url: str, redis_client: redis.Redis) -> webtest.TestApp:
    """The demo against the (emptied) session server."""
    return demo_app(redis_url)


def visits(response: webtest.TestResponse) -> int:
    match = re.search(r'id="visits">(\d+)<', response.text)
    assert match is not None, response.text
    return int(match.group(1))


def token(response: webtest.TestResponse) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert match is not None, response.text
    return match.group(1)


def set_cookies(response: webtest.TestResponse) -> list[str]:
    return response.headers.getall("Set-Cookie")


USER_INDEX_PREFIX = b"psr:user:"


def session_keys(client: redis.Redis) -> list[bytes]:
    """The stored sessions (leaving out the user index's keys: the demo binds at login)."""
    return sorted(key for key in client.scan_iter() if not key.startswith(USER_INDEX_PREFIX))


def log_id(app: webtest.TestApp, session_id: str) -> str:
    """The keyed hash the demo shows instead of the session id."""
    factory = router(app).registry.getUtility(ISessionFactory)
    return str(factory.log_id(session_id))


def panel(response: webtest.TestResponse) -> dict[str, str]:
    """The fields of the session panel: session, ttl, size, commands."""
    return dict(re.findall(r'<dd id="panel-(\w+)">([^<]*)</dd>', response.text))


def commands(field: str) -> dict[str, int]:
    """``"3: GETEX 1, SET 2"`` -> ``{"GETEX": 1, "SET": 2}``; ``"0"`` -> ``{}``."""
    total, _, listed = field.partition(": ")
    counts = {name: int(n) for name, n in re.findall(r"([A-Z|]+) (\d+)", listed)}
    assert sum(counts.values()) == int(total), field
    return counts


def without_handshake(sent: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Split panel counts into (the request's commands, a new connection's handshake)."""
    handshake = {name: n for name, n in sent.items() if name.lower() in HANDSHAKE_COMMANDS}
    return {name: n for name, n in sent.items() if name not in handshake}, handshake


def log_in(app: webtest.TestApp, name: str = "alice") -> webtest.TestResponse:
    form = app.get("/login")
    return app.post("/login", {"name": name, "csrf_token": token(form)}, status=303)


# --------------------------------------------------------------------------- settings


def test_pastedeploy_builds_the_app_with_redis_url_as_a_variable(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = webtest.TestApp(get_app(str(INI_PATH), "main", options={"redis_url": redis_url}))
    assert visits(app.get("/")) == 1
    assert len(session_keys(redis_client)) == 1  # stored in the Redis given as the variable
    settings = get_appsettings(str(INI_PATH))
    assert "redis.sessions.redis_url" not in settings  # so run.py demo starts its own
    assert settings["pyramid.includes"].split() == ["pyramid_jinja2", "pyramid_session_redis"]


def test_session_factory_comes_from_the_ini_via_include(app: webtest.TestApp) -> None:
    registry = router(app).registry
    factory = registry.queryUtility(ISessionFactory)
    assert isinstance(factory, pyramid_session_redis.SessionFactory)
    s = factory.settings
    assert s.secret == "demo-only-secret-change-me-in-production"
    assert (s.timeout, s.cookie_name, s.cookie_samesite) == (1200, COOKIE, "lax")
    assert (s.cookie_httponly, s.cookie_secure) == (True, False)
    assert (s.redis_socket_timeout, s.redis_socket_connect_timeout) == (2.0, 2.0)
    assert s.func_check_response_allow_cookies is pyramid_session_redis.check_response_allow_cookies


# --------------------------------------------------------------------------- pages


def test_visit_counter_increments_across_requests(
    app: webtest.TestApp, redis_client: redis.Redis, redis_url: str
) -> None:
    first = app.get("/")
    assert visits(first) == 1
    [cookie] = set_cookies(first)
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    second, third = app.get("/"), app.get("/")
    assert (visits(second), visits(third)) == (2, 3)
    assert set_cookies(second) == set_cookies(third) == []  # the cookie is set once
    assert len(session_keys(redis_client)) == 1
    other_browser = demo_app(redis_url)
    assert visits(other_browser.get("/")) == 1
    assert len(session_keys(redis_client)) == 2


def test_login_then_logout_clears_the_session_and_expires_the_cookie(
    app: webtest.TestApp, redis_client: redis.Redis
) -> None:
    app.get("/")
    app.get("/")
    before = app.cookies[COOKIE]
    login = log_in(app)
    assert login.location.endswith("/")
    assert app.cookies[COOKIE] != before  # a new session id at login
    home = app.get("/")
    assert "Logged in as <b>alice</b>" in home.text
    assert visits(home) == 3  # the counter survived the id change
    assert len(session_keys(redis_client)) == 1  # the pre-login session is gone
    [key] = session_keys(redis_client)
    page = app.get("/session").text
    assert key.decode() not in page  # the id is a credential: never on a page
    assert page.count(log_id(app, key.decode())) == 2  # the table and the panel

    logout = app.post("/logout", {"csrf_token": token(home)})
    [expired] = set_cookies(logout)
    assert expired.startswith(f"{COOKIE}=;")
    assert "Max-Age=0" in expired
    assert COOKIE not in app.cookies
    assert redis_client.keys() == []  # the session, and its entry in alice's index
    fresh = app.get("/")
    assert visits(fresh) == 1
    assert "Not logged in" in fresh.text


def test_your_sessions_lists_them_and_ends_one_or_all(
    app: webtest.TestApp, redis_client: redis.Redis
) -> None:
    laptop, phone = app, webtest.TestApp(app.app)
    log_in(laptop, "alice")
    log_in(phone, "alice")
    page = laptop.get("/sessions")
    rows = re.findall(r"<td>([0-9a-f]{16})( \(this browser\))?</td>", page.text)
    assert len(rows) == 2 and sorted(bool(mine) for _, mine in rows) == [False, True]
    [mine] = [handle for handle, current in rows if current]
    [other] = [handle for handle, current in rows if not current]
    assert mine == log_id(laptop, session_keys(redis_client)[0].decode()) or mine == log_id(
        laptop, session_keys(redis_client)[1].decode()
    )  # the keyed hash of the key, as in the panel and the logs

    ended = laptop.post("/sessions", {"csrf_token": token(page), "handle": other}, status=303)
    assert "That session was ended." in ended.follow().text
    assert "Not logged in" in phone.get("/login").text  # the phone is logged out
    assert "Logged in as <b>alice</b>" in laptop.get("/").text

    log_in(phone, "alice")
    page = laptop.get("/sessions")
    everywhere = laptop.post("/sessions", {"csrf_token": token(page)})
    assert "<h1>Logged out everywhere</h1>" in everywhere.text
    assert COOKIE not in laptop.cookies
    assert session_keys(redis_client) == []  # both sessions
    assert "Not logged in" in phone.get("/login").text


def test_forms_need_the_csrf_token(app: webtest.TestApp, redis_client: redis.Redis) -> None:
    app.get("/login")
    refused = app.post("/login", {"name": "mallory"}, status=400)
    assert "Bad CSRF token" in refused.text
    app.post("/login", {"name": "mallory", "csrf_token": "0" * 64}, status=400)
    assert "Logged in" not in app.get("/").text
    app.post("/logout", status=400)


def test_flash_message_shows_once(app: webtest.TestApp) -> None:
    form = app.get("/note")
    saved = app.post("/note", {"text": "hello <b>", "csrf_token": token(form)}, status=303)
    shown = saved.follow()
    assert shown.text.count("Saved note: hello &lt;b&gt;") == 1  # escaped, shown
    assert "Saved note" not in app.get("/note").text  # and only once


def test_cacheable_page_sets_no_cookie(app: webtest.TestApp, redis_client: redis.Redis) -> None:
    page = app.get("/cached")
    assert page.headers["Cache-Control"] == "public, max-age=60"
    assert set_cookies(page) == []
    assert len(session_keys(redis_client)) == 0  # the view wrote, but nothing is stored
    app.get("/")  # a real session now
    page = app.get("/cached")
    assert set_cookies(page) == []
    assert set_cookies(app.get("/session")) == []


def test_session_page_shows_id_created_and_timeout(
    app: webtest.TestApp, redis_client: redis.Redis
) -> None:
    assert "<td>none yet</td>" in app.get("/session").text
    app.get("/")
    page = app.get("/session").text
    [key] = session_keys(redis_client)
    assert key.decode() not in page
    assert f"<td>{log_id(app, key.decode())}</td>" in page
    assert "<th>timeout (seconds, sliding)</th><td>1200</td>" in page
    assert re.search(r"<th>created</th><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)


def test_panel_shows_keyed_hash_ttl_size_and_the_commands_of_the_request(
    app: webtest.TestApp, redis_client: redis.Redis
) -> None:
    first = panel(app.get("/"))
    [key] = session_keys(redis_client)
    assert first["session"] == log_id(app, key.decode())
    assert first["ttl"] in ("1200 s", "1199 s")
    assert first["size"] == f"{redis_client.strlen(key)} bytes"
    sent, handshake = without_handshake(commands(first["commands"]))
    # Left out: the app's first connection's handshake, as far as the server counts it,
    # which depends on both: HELLO where redis-py speaks RESP3 (redis-py 5.0 does not by
    # default), CLIENT SETINFO on Valkey and Redis 7.2+ (Redis 7.0 refuses it uncounted).
    assert sent == {"SET": 1}  # a new session: one SET NX EX, written after the page

    second = panel(app.get("/"))
    sent, handshake = without_handshake(commands(second["commands"]))
    assert sent["GETEX"] == 1  # the load; then the compare-and-set write of the counter
    assert handshake == {}  # the connection is reused
    assert second["size"] == f"{redis_client.strlen(key)} bytes"

    untouched = panel(app.get("/static/demo.css"))  # static files are not measured
    assert untouched == {}
    cached = panel(demo_app_like(app).get("/cached"))
    assert cached["session"] == "none stored" and commands(cached["commands"]) == {}

    form = app.get("/note")
    logged_out = panel(app.post("/logout", {"csrf_token": token(form)}))
    assert logged_out["ttl"] in ("-", "not stored")
    assert commands(logged_out["commands"])["DEL"] == 1


def demo_app_like(app: webtest.TestApp) -> webtest.TestApp:
    """Another browser on the same application."""
    return webtest.TestApp(app.app)


class Rotating(dict[str, Any]):
    """A session-like dict that has ``regenerate_id()``, as the library will."""

    def __init__(self, **data: Any) -> None:
        super().__init__(data)
        self.calls: list[str] = []

    def regenerate_id(self) -> None:
        self.calls.append("regenerate_id")

    def invalidate(self) -> None:
        self.calls.append("invalidate")
        self.clear()


class NotRotating(Rotating):
    regenerate_id = None  # type: ignore[assignment]  # a library without it


def test_login_uses_regenerate_id_when_the_session_has_it() -> None:
    session = Rotating(visits=2)
    change_session_id(session)
    assert session.calls == ["regenerate_id"] and session == {"visits": 2}
    older = NotRotating(visits=2, _f_=["hi"])
    change_session_id(older)
    assert older.calls == ["invalidate"] and older == {"visits": 2, "_f_": ["hi"]}


# --------------------------------------------------------------------------- outage


def test_redis_unreachable_gives_the_503_page(server_factory: ServerFactory) -> None:
    server = server_factory()
    app = demo_app(server.url, **FAST_TIMEOUTS)
    assert visits(app.get("/")) == 1
    server.stop()  # its port is now closed
    assert not ping(server.port)

    # The session is loaded inside the view: the exception view answers.
    down = app.get("/", status=503)
    assert "Session store unavailable" in down.text
    assert down.headers["Retry-After"] == "5"
    assert set_cookies(down) == []
    inner = webtest.TestApp(app.app.app, cookiejar=app.cookiejar)  # without the 503 middleware
    assert "Session store unavailable" in inner.get("/", status=503).text

    # A new visitor's session is only written after the view ran, out of reach of
    # exception views: BackendErrorMiddleware answers.
    newcomer = demo_app(server.url, **FAST_TIMEOUTS)
    down = newcomer.get("/", status=503)
    assert "Session store unavailable" in down.text
    assert set_cookies(down) == []
    with pytest.raises(SessionBackendError):
        webtest.TestApp(newcomer.app.app).get("/")

    server.start()  # same port
    assert visits(app.get("/")) == 1  # that server kept nothing: a new session
    assert visits(newcomer.get("/")) == 1


# --------------------------------------------------------------------------- processes


def demo_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def throwaway_port(output: str) -> int:
    match = re.search(r"throwaway Redis \(.*\) at redis://127\.0\.0\.1:(\d+)/0", output)
    assert match is not None, output
    return int(match.group(1))


def test_demo_check_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--check"],
        cwd=REPO_ROOT,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for line in (
        "ok    visit counter: 1 then 2 (session.incr)",
        "ok    login without the CSRF token is refused (400)",
        "ok    logged in as alice, visit count kept",
        "ok    flash message shown only once",
        "ok    the panel shows the request's Redis commands",
        "ok    cacheable page sets no cookie (check_response_allow_cookies)",
        "ok    logout invalidates the session and expires the cookie",
    ):
        assert line in result.stdout, output
    assert "FAIL" not in output
    assert re.search(r"demo check: all \d+ checks passed", result.stdout), output
    assert result.stdout.rstrip().endswith("demo: throwaway Redis stopped"), output
    assert not ping(throwaway_port(result.stdout))


def test_pserve_serves_the_demo(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> None:
    """``pserve`` itself, with the demo's ``[app:main]`` and a free port."""
    port = free_port()
    ini = tmp_path / "pserve.ini"
    ini.write_text(
        f"[app:main]\nuse = config:{INI_PATH}#main\n\n"
        f"[server:main]\nuse = egg:waitress#main\nlisten = 127.0.0.1:{port}\n"
    )
    command = [sys.executable, "-m", "pyramid.scripts.pserve", str(ini), f"redis_url={redis_url}"]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=demo_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
                    assert 'id="visits">1<' in response.read().decode()
                    assert f"{COOKIE}=" in response.headers["Set-Cookie"]
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert len(session_keys(redis_client)) == 1
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_demo_uses_the_redis_the_ini_configures(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    ini = tmp_path / "configured.ini"
    ini.write_text(
        INI_PATH.read_text().replace(
            "# redis.sessions.redis_url = redis://127.0.0.1:6379/0",
            f"redis.sessions.redis_url = {redis_url}",
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--ini", str(ini), "--check"],
        cwd=REPO_ROOT,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "throwaway" not in result.stdout
    assert len(session_keys(redis_client)) >= 1  # the check's sessions are in the configured Redis


class DemoProcess:
    """A demo started as a subprocess; its output is read line by line in a thread."""

    def __init__(self, command: list[str], **popen: Any) -> None:
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=demo_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            **popen,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.output = ""

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str) -> None:
        while text not in self.output:
            self.output += self.lines.get(timeout=60)

    def finish(self) -> str:
        """All the output, once the process has ended (the reader ends at EOF)."""
        self.reader.join(timeout=10)
        while not self.lines.empty():
            self.output += self.lines.get()
        return self.output


def test_demo_serves_until_sigterm_then_stops_redis() -> None:
    demo = DemoProcess([sys.executable, "-m", "demo", "--port", "0"])
    process = demo.process
    try:
        demo.wait_for("serving on")
        match = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", demo.output)
        assert match is not None, demo.output
        with urllib.request.urlopen(match.group(1), timeout=30) as response:
            assert response.status == 200
            assert 'id="visits">1<' in response.read().decode()
            assert f"{COOKIE}=" in response.headers["Set-Cookie"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = demo.finish()
    assert "demo: throwaway Redis stopped" in output, output
    assert not ping(throwaway_port(output))


def _default_sigint_new_group() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal
    os.setsid()


def test_ctrl_c_on_run_py_demo_stops_the_throwaway_redis() -> None:
    """``python3 run.py demo`` and Ctrl-C: the terminal sends SIGINT to both processes;
    run.py waits while the demo stops its Redis (run.py's own venv step skipped here)."""
    script = (
        "import sys, run; run.ensure_venv = lambda: None; run.PYTHON = sys.executable; "
        "sys.exit(run.cmd_demo(['--port', '0']))"
    )
    demo = DemoProcess([sys.executable, "-c", script], preexec_fn=_default_sigint_new_group)
    process = demo.process
    try:
        demo.wait_for("serving on")
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) in (0, 130)  # 130: interrupted before serving
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = demo.finish()
    assert "demo: throwaway Redis stopped" in output, output
    assert "Traceback" not in output, output
    assert not ping(throwaway_port(output))


def test_throwaway_redis_starts_and_stops() -> None:
    with ThrowawayRedis() as server:
        assert server.port is not None and ping(server.port)
        client = redis.Redis.from_url(server.url)
        try:
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            assert client.config_get("bind") == {"bind": "127.0.0.1"}
        finally:
            client.close()
        process = server.process
    assert process is not None and process.poll() is not None
    assert not ping(server.port)
