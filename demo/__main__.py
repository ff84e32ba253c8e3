"""Run the demo: ``python -m demo [--redis-url URL] [--host HOST] [--port PORT] [--check]``.

Without ``--redis-url`` a throwaway Redis is started (no persistence) and stopped
again on exit. The application is served by waitress until Ctrl-C or SIGTERM.

``--check`` starts everything, makes real HTTP requests to itself (visit counter,
CSRF-protected login, flash, cacheable page, logout), prints the results and exits
with 0 when all of them passed, 1 otherwise: a smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import re
import signal
import sys
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from types import FrameType
from typing import Any

import waitress

from demo.app import INI_PATH, REDIS_URL_SETTING, make_app
from demo.throwaway_redis import ServerNotFoundError, ServerStartError, ThrowawayRedis

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6543


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo", description="The pyramid_session_redis demo application."
    )
    parser.add_argument(
        "--redis-url",
        help="use this Redis (e.g. redis://127.0.0.1:6379/0) instead of a throwaway server",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"default {DEFAULT_PORT}; with --check, a free port",
    )
    parser.add_argument("--ini", type=Path, default=INI_PATH, help="settings file (demo.ini)")
    parser.add_argument(
        "--check", action="store_true", help="make a few requests to itself, then exit 0/1"
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM shuts down like Ctrl-C


def _stop_redis(server: ThrowawayRedis) -> None:
    server.stop()
    print("demo: throwaway Redis stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.ExitStack() as stack:
            redis_url = args.redis_url
            if redis_url is None:
                server = ThrowawayRedis().start()  # cleans up after itself if it fails
                stack.callback(_stop_redis, server)
                redis_url = server.url
                print(f"demo: throwaway Redis ({server.binary}) at {redis_url}", flush=True)
            app = make_app(args.ini, **{REDIS_URL_SETTING: redis_url})
            if args.check:
                return run_check(app, args.host, args.port or 0)
            return serve(app, args.host, DEFAULT_PORT if args.port is None else args.port)
    except (ServerNotFoundError, ServerStartError) as exc:
        print(f"demo: cannot start a throwaway Redis: {exc}", file=sys.stderr)
        print("demo: or pass --redis-url redis://HOST:PORT/DB", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def serve(app: Any, host: str, port: int) -> int:
    """Serve ``app`` with waitress until Ctrl-C / SIGTERM."""
    try:
        server = waitress.create_server(app, host=host, port=port, threads=4)
    except OSError as exc:
        print(f"demo: cannot listen on {host}:{port}: {exc} (try --port)", file=sys.stderr)
        return 1
    port = getattr(server, "effective_port", port)
    print(f"demo: serving on http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.run()  # returns on KeyboardInterrupt (Ctrl-C, or SIGTERM via _interrupt)
    finally:
        server.close()
    print("demo: stopped serving", flush=True)
    return 0


# --------------------------------------------------------------------------- --check


@dataclass
class Reply:
    status: int
    body: str
    headers: http.client.HTTPMessage
    set_cookies: list[str] = field(default_factory=list)


class Client:
    """One HTTP connection with a cookie jar, as a browser (no redirects followed)."""

    def __init__(self, host: str, port: int) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Reply:
        headers: dict[str, str] = {}
        body = None
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        reply = Reply(
            status=response.status,
            body=response.read().decode("utf-8", "replace"),
            headers=response.headers,
            set_cookies=response.headers.get_all("Set-Cookie") or [],
        )
        for header in reply.set_cookies:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return reply

    def close(self) -> None:
        self.connection.close()


def visits(reply: Reply) -> int | None:
    match = re.search(r'id="visits">(\d+)<', reply.body)
    return int(match.group(1)) if match else None


def csrf_token(reply: Reply) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', reply.body)
    return match.group(1) if match else ""


class Checks:
    def __init__(self) -> None:
        self.failed = 0
        self.total = 0

    def __call__(self, ok: bool, label: str, detail: str = "") -> bool:
        self.total += 1
        self.failed += not ok
        suffix = f"  [{detail}]" if detail and not ok else ""
        print(f"{'ok  ' if ok else 'FAIL'}  {label}{suffix}", flush=True)
        return ok


def run_check(app: Any, host: str, port: int) -> int:
    """Serve ``app`` in a background thread and exercise it over real HTTP."""
    server = waitress.create_server(app, host=host, port=port, threads=2)
    port = getattr(server, "effective_port", port)
    # A daemon thread: the process exits right after the checks.
    threading.Thread(target=server.run, name="demo-check-server", daemon=True).start()
    print(f"demo: checking http://{host}:{port}/", flush=True)
    check = Checks()
    browser, anonymous = Client(host, port), Client(host, port)
    try:
        first, second = browser.request("GET", "/"), browser.request("GET", "/")
        check(
            first.status == second.status == 200 and (visits(first), visits(second)) == (1, 2),
            "visit counter: 1 then 2 (session.incr)",
            f"{first.status} {visits(first)}, {second.status} {visits(second)}",
        )
        check(bool(first.set_cookies), "first visit sets the session cookie", "no Set-Cookie")
        old_cookie = dict(browser.cookies)

        form = browser.request("GET", "/login")
        token = csrf_token(form)
        forged = browser.request("POST", "/login", {"name": "alice"})
        check(
            forged.status == 400,
            "login without the CSRF token is refused (400)",
            str(forged.status),
        )
        login = browser.request("POST", "/login", {"name": "alice", "csrf_token": token})
        check(
            login.status == 303 and bool(old_cookie) and browser.cookies != old_cookie,
            "login redirects and gives a new session id (no fixation)",
            f"{login.status}, cookie changed: {browser.cookies != old_cookie}",
        )
        home = browser.request("GET", "/")
        check(
            "Logged in as <b>alice</b>" in home.body and visits(home) == 3,
            "logged in as alice, visit count kept",
            f"visits {visits(home)}",
        )
        check("Welcome, alice!" in home.body, "flash message shown", "no flash")
        again = browser.request("GET", "/")
        check("Welcome, alice!" not in again.body, "flash message shown only once", "shown again")

        page = anonymous.request("GET", "/cached")
        check(
            page.status == 200 and not page.set_cookies and "Cache-Control" in page.headers,
            "cacheable page sets no cookie (check_response_allow_cookies)",
            f"{page.status} {page.set_cookies}",
        )

        logout = browser.request("POST", "/logout", {"csrf_token": csrf_token(again)})
        expired = any("Max-Age=0" in header for header in logout.set_cookies)
        check(
            logout.status == 200 and expired and not browser.cookies,
            "logout invalidates the session and expires the cookie",
            f"{logout.status} {logout.set_cookies}",
        )
        fresh = browser.request("GET", "/")
        check(
            visits(fresh) == 1 and "Not logged in" in fresh.body,
            "after logout: a new session",
            f"visits {visits(fresh)}",
        )
    except (OSError, http.client.HTTPException) as exc:
        check(False, "HTTP requests", repr(exc))
    finally:
        browser.close()
        anonymous.close()
    if check.failed:
        print(f"demo check: {check.failed} of {check.total} checks FAILED", flush=True)
        return 1
    print(f"demo check: all {check.total} checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
