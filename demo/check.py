"""``python -m demo --check``: the demo served on a free port and exercised over real HTTP.

A smoke test with nothing but the standard library as the client: visit counter,
CSRF-protected login with a new session id, flash, the session panel, a cacheable page,
logout. Prints one line per check; exit code 0 when all passed.
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any


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


def run_check(server: Any) -> int:
    """Serve with ``server`` (waitress) in a background thread and exercise it over HTTP."""
    host, port = server.effective_host, server.effective_port
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
        panel = re.search(r'id="panel-commands">(\d+): ', home.body)
        check(
            panel is not None and "@@psr-" not in home.body,
            "the panel shows the request's Redis commands",
            "placeholders left",
        )
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
