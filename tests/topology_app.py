"""The test application on a :class:`~tests.topologies.Topology`, configured from ini only.

:func:`topology_app` builds the factory with ``session_factory_from_settings`` from the
topology's ``redis.sessions.*`` settings plus the test's own (:func:`ini_settings`), and
answers every ``SessionBackendError`` with a 503, whether a view raised it (an exception
view) or the end-of-request save did (a WSGI middleware, as the README advises): so a
failover is seen as 503s, and anything else that goes wrong as a 500.

:class:`User` is one browser with the session data it must see: a failover test calls
:meth:`User.read` and :meth:`User.write`, which accept a 503 and nothing else that is
not the user's own data.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import webtest

from pyramid_session_redis import session_factory_from_settings
from pyramid_session_redis.exceptions import InvalidSession, SessionBackendError
from pyramid_session_redis.factory import SessionFactory
from tests.app import SECRET, BackendErrorsAre503, View, build_wsgi_app, unavailable
from tests.topologies import Topology

PREFIX = "redis.sessions."


def ini_settings(topology: Topology, **options: Any) -> dict[str, Any]:
    """The ``redis.sessions.*`` settings of an ini file for the topology, plus ``options``."""
    settings = {"secret": SECRET, **topology.settings(), **options}
    return {PREFIX + name: value for name, value in settings.items()}


def session_factory(topology: Topology, **options: Any) -> SessionFactory:
    """The factory an ini file with the topology's settings and ``options`` would give."""
    return session_factory_from_settings(ini_settings(topology, **options))


@dataclasses.dataclass
class Site:
    wsgi: Any
    factory: SessionFactory
    reports: list[InvalidSession]

    def browser(self) -> webtest.TestApp:
        return webtest.TestApp(self.wsgi)


def serve(
    factory: SessionFactory,
    extra_views: Mapping[str, View] | None = None,
    reports: list[InvalidSession] | None = None,
) -> Site:
    """The test app on ``factory``, every ``SessionBackendError`` a 503 (view and save)."""
    pyramid_app = build_wsgi_app(
        factory,
        extra_views,
        configure=lambda config: config.add_view(unavailable, context=SessionBackendError),
    )
    return Site(BackendErrorsAre503(pyramid_app), factory, [] if reports is None else reports)


def topology_app(
    topology: Topology, extra_views: Mapping[str, View] | None = None, **options: Any
) -> Site:
    reports: list[InvalidSession] = []
    factory = session_factory(
        topology, func_invalid_logger=lambda request, problem: reports.append(problem), **options
    )
    return serve(factory, extra_views, reports)


class Unexpected(AssertionError):
    """A response that is neither the user's data nor the typed 503."""


@dataclasses.dataclass
class User:
    """A browser whose session holds ``{"n": n, "w": <last write>}``.

    ``possible`` holds the values ``w`` may have: a write answered 503 may or may not have
    been stored (its reply may be what was lost), so both stay possible until a read
    tells which.
    """

    browser: webtest.TestApp
    n: int
    possible: set[int] = dataclasses.field(default_factory=lambda: {0})
    cookie: str = ""
    session_id: str = ""

    @classmethod
    def signed_up(cls, site: Site, n: int) -> User:
        browser = site.browser()
        browser.get("/set", {"key": "n", "value": str(n)})
        browser.get("/set", {"key": "w", "value": "0"})
        user = cls(browser, n)
        user.cookie = browser.cookies["session"]
        user.session_id = browser.get("/session_id").json
        return user

    def _checked(self, response: webtest.TestResponse) -> bool:
        """True for a 200, False for the typed 503; Unexpected for anything else."""
        if "Set-Cookie" in response.headers or self.browser.cookies.get("session") != self.cookie:
            raise Unexpected(f"user {self.n}: the cookie changed: {response.headers}")
        if response.status_int == 503 and response.json == {"error": "SessionBackendError"}:
            return False
        if response.status_int != 200:
            raise Unexpected(f"user {self.n}: {response.status} {response.text[:300]}")
        return True

    def read(self) -> bool:
        """Read the session: its own data (True) or the 503 (False)."""
        response = self.browser.get("/dump", expect_errors=True)
        if not self._checked(response):
            return False
        data = response.json
        if data.get("n") != self.n or data.get("w") not in self.possible:
            raise Unexpected(f"user {self.n}: read {data}, expected w in {self.possible}")
        self.possible = {data["w"]}
        return True

    def write(self, value: int) -> bool:
        """Store ``w = value``: True once stored, False for the 503 (maybe stored)."""
        response = self.browser.get("/set", {"key": "w", "value": str(value)}, expect_errors=True)
        if self._checked(response):
            self.possible = {value}
            return True
        self.possible.add(value)
        return False


def all_served(users: Iterable[User], value: int) -> bool:
    """Read and write every user once; True if all were served."""
    return all([user.read() and user.write(value) and user.read() for user in users])


def recovery_window(
    killed: float,
    users: Sequence[User],
    request: Callable[[User], bool],
    deadline: float,
    values: Iterator[int],
    between: Callable[[], None] = lambda: None,
) -> tuple[float, int]:
    """Traffic after a kill (at ``killed``, ``time.monotonic()``) until the users are served.

    Rounds of ``between()`` then ``request(user)`` for each user, until a request was
    served and a round of :func:`all_served` succeeds; AssertionError after ``deadline``
    seconds. ``values`` gives every value written, shared with ``request`` so that no
    value is written twice. Returns (kill -> first request served, requests refused).
    """
    served_at, refused = None, 0
    while served_at is None or not all_served(users, next(values)):
        assert time.monotonic() - killed < deadline, "the users were not served again"
        between()
        for user in users:
            served = request(user)
            refused += not served
            if served and served_at is None:
                served_at = time.monotonic()
    return served_at - killed, refused
