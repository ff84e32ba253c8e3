"""The pyramid_debugtoolbar panel: a real app with the toolbar, the toolbar's own pages.

Each test makes a request to an application that includes pyramid_debugtoolbar with
``debugtoolbar.includes = pyramid_session_redis.debugtoolbar``, then fetches the page the
toolbar links that request to, as a browser would, and reads the "Redis session" tab.
Round trips shown are checked against the suite's Redis server's own command counts.
"""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import webtest
from bs4 import BeautifulSoup
from pyramid.config import Configurator
from pyramid.interfaces import ISessionFactory
from pyramid.request import Request
from pyramid.response import Response

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.debugtoolbar import EVENTS_ENVIRON_KEY, includeme, record_event
from pyramid_session_redis.events import EventKind, SessionEvent
from pyramid_session_redis.exceptions import ConfigurationError
from tests.app import SECRET
from tests.redis_stats import CommandCounter

README = (Path(__file__).parent.parent / "README.md").read_text()
LOCAL = {"REMOTE_ADDR": "127.0.0.1"}  # the toolbar serves only the hosts it is told to
TOOLBAR = {"debugtoolbar.includes": "pyramid_session_redis.debugtoolbar"}


class Recorder(list[SessionEvent]):
    def __call__(self, event: SessionEvent) -> None:
        self.append(event)


def html(text: str) -> Response:
    return Response(f"<html><body>{text}</body></html>", content_type="text/html")


def write(request: Request) -> Response:
    request.session["greeting"] = request.params.get("value", "hi")
    return html("written")


def read(request: Request) -> Response:
    return html(str(request.session.get("greeting")))


def session_id(request: Request) -> Response:
    return html(request.session.session_id)


def untouched(request: Request) -> Response:
    return html("no session here")


def hostile_detail(request: Request) -> Response:
    """An event whose detail carries markup (conflict details name the session's keys)."""
    record_event(SessionEvent(EventKind.CONFLICT, "-", detail={"keys": "<script>x()</script>"}))
    return html("recorded")


VIEWS = {
    "write": write,
    "read": read,
    "session_id": session_id,
    "untouched": untouched,
    "hostile": hostile_detail,
}


def build(settings: Mapping[str, Any], factory: Any = None, include: str = "") -> webtest.TestApp:
    with Configurator(settings=dict(settings)) as config:
        if factory is not None:
            config.set_session_factory(factory)
        for name in include.split():
            config.include(name)
        config.include("pyramid_debugtoolbar")
        for name, view in VIEWS.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
    return webtest.TestApp(config.make_wsgi_app(), extra_environ=LOCAL)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def app(redis_url: str, recorder: Recorder) -> webtest.TestApp:
    factory = RedisSessionFactory(SECRET, redis_url=redis_url, event_listeners=recorder)
    return build(TOOLBAR, factory)


class Panel:
    """The "Redis session" tab of the toolbar page of one request."""

    def __init__(self, page: webtest.TestResponse) -> None:
        self.page = page
        soup: BeautifulSoup = page.html
        self.tab = soup.select_one("#pDebugPanel-redis_session")
        self.content = soup.select_one("#pDebugPanel-redis_session-content")

    @property
    def rows(self) -> list[list[str]]:
        assert self.content is not None
        rows = self.content.select("tr.redis-session-event")
        return [[cell.get_text(strip=True) for cell in row.find_all("td")] for row in rows]

    @property
    def totals(self) -> list[str]:
        assert self.content is not None
        return [cell.get_text(strip=True) for cell in self.content.select("tfoot th")]

    @property
    def badge(self) -> str:
        assert self.tab is not None
        badge = self.tab.select_one(".badge")
        return badge.get_text(strip=True) if badge is not None else ""


def panel_of(app: webtest.TestApp, response: webtest.TestResponse) -> Panel:
    """Follow the toolbar button the toolbar injected into ``response``."""
    (url,) = re.findall(r'href="([^"]*/_debug_toolbar/[0-9a-f]+)"', response.text)
    return Panel(app.get(urlsplit(url).path))


def row_of(event: SessionEvent) -> list[str]:
    """The cells the panel should show for ``event``."""
    detail = ", ".join(f"{name}={value}" for name, value in sorted(event.detail.items()))
    milliseconds = f"{event.duration * 1000:.2f}"
    trips, size = str(event.round_trips), str(event.size)
    return [event.kind.value, event.session, milliseconds, trips, size, detail]


def test_a_new_session_s_events_are_listed(
    app: webtest.TestApp, recorder: Recorder, commands: CommandCounter
) -> None:
    with commands.measure() as sent:
        response = app.get("/write")
    panel = panel_of(app, response)

    kinds = [EventKind.INVALID, EventKind.LOAD, EventKind.CREATE]
    assert [event.kind for event in recorder] == kinds
    assert panel.rows == [row_of(event) for event in recorder]
    invalid, load, create = panel.rows
    assert invalid[5] == "reason=InvalidSession_NoSessionCookie" and load[5] == "found=False"
    assert int(create[4]) > 0 and create[3] == "1"
    assert sent.total == 1 == int(panel.totals[3])  # what Redis received: one command
    assert panel.totals[4] == create[4]
    assert panel.badge == "1 round trip"
    # The keyed hash only, never the id (the toolbar's own panels show the cookie).
    session_id = app.get("/session_id").text.removeprefix("<html><body>")[:64]
    assert len(session_id) == 64 and session_id not in str(panel.content)
    assert create[1] == recorder[2].session and len(create[1]) == 16


def test_a_stored_session_s_load_and_write(
    app: webtest.TestApp, recorder: Recorder, commands: CommandCounter, native_cas: bool
) -> None:
    app.get("/write")
    recorder.clear()

    with commands.measure() as sent:
        response = app.get("/read")
    panel = panel_of(app, response)
    assert response.text.startswith("<html><body>hi")
    ((kind, _, _, trips, size, detail),) = panel.rows
    assert (kind, trips, detail) == ("load", "1", "found=True") and int(size) > 0
    assert sent.total == 1

    app.get("/write", {"value": "changed"})  # the compare-and-set script is cached from here on
    recorder.clear()
    with commands.measure() as sent:
        response = app.get("/write", {"value": "changed again"})
    panel = panel_of(app, response)
    assert [row[0] for row in panel.rows] == ["load", "write"]
    assert panel.rows == [row_of(event) for event in recorder]
    # Redis counts the commands a script runs too: the compare-and-set script's GET and SET.
    in_script = 0 if native_cas else sent.counts["evalsha"] * 2
    assert sent.total - in_script == 2 == int(panel.totals[3])
    assert panel.badge == "2 round trips"


def test_a_request_that_never_touches_the_session_shows_nothing(
    app: webtest.TestApp, recorder: Recorder, commands: CommandCounter
) -> None:
    app.get("/write")
    with commands.measure() as sent:
        response = app.get("/untouched")
    panel = panel_of(app, response)

    assert recorder[3:] == [] and sent.total == 0
    assert panel.tab is not None and "disabled" in panel.tab["class"]
    assert panel.content is None and panel.badge == ""


def test_each_request_keeps_its_own_events(app: webtest.TestApp) -> None:
    first = app.get("/write")
    second = app.get("/untouched")
    third = app.get("/read")
    assert [row[0] for row in panel_of(app, third).rows] == ["load"]
    assert panel_of(app, second).content is None
    assert [row[0] for row in panel_of(app, first).rows] == ["invalid", "load", "create"]


def test_details_are_escaped(app: webtest.TestApp) -> None:
    panel = panel_of(app, app.get("/hostile"))
    assert panel.rows == [["conflict", "-", "0.00", "0", "0", "keys=<script>x()</script>"]]
    assert "&lt;script&gt;x()&lt;/script&gt;" in panel.page.text
    assert "<script>x()" not in panel.page.text


def test_the_factory_gets_the_listener_after_its_own(redis_url: str, recorder: Recorder) -> None:
    factory = RedisSessionFactory(SECRET, redis_url=redis_url, event_listeners=recorder)
    app = build(TOOLBAR, factory)
    registered = app.app.registry.getUtility(ISessionFactory)
    assert registered.settings.event_listeners == (recorder, record_event)
    assert factory.settings.event_listeners == (recorder,)  # the application's, untouched

    listed = RedisSessionFactory(SECRET, redis_url=redis_url, event_listeners=record_event)
    app = build(TOOLBAR, listed)
    assert app.app.registry.getUtility(ISessionFactory) is listed  # never twice


def test_a_factory_from_the_ini_settings(redis_url: str) -> None:
    settings = {**TOOLBAR, "redis.sessions.secret": SECRET, "redis.sessions.redis_url": redis_url}
    app = build(settings, include="pyramid_session_redis")
    assert [row[0] for row in panel_of(app, app.get("/write")).rows] == [
        "invalid",
        "load",
        "create",
    ]


def test_nothing_is_added_without_the_panel(redis_url: str) -> None:
    """The toolbar alone, or no toolbar: the factory keeps exactly its own listeners."""
    factory = RedisSessionFactory(SECRET, redis_url=redis_url)
    app = build({}, factory)
    assert app.app.registry.getUtility(ISessionFactory) is factory
    assert factory.settings.event_listeners == ()
    assert "redis_session" not in panel_of(app, app.get("/write")).page.text


def test_requests_the_toolbar_does_not_track_are_left_alone(app: webtest.TestApp) -> None:
    tracked = app.get("/write")
    assert [event.kind.value for event in tracked.request.environ[EVENTS_ENVIRON_KEY]] == [
        "invalid",
        "load",
        "create",
    ]
    response = app.get("/write", extra_environ={"REMOTE_ADDR": "192.0.2.7"})
    assert response.text == "<html><body>written</body></html>"  # no toolbar: not a local host
    assert EVENTS_ENVIRON_KEY not in response.request.environ
    record_event(SessionEvent(EventKind.LOAD, "-"))  # outside any request: ignored


def test_included_from_the_application_it_says_where_it_belongs() -> None:
    with Configurator() as config, pytest.raises(ConfigurationError) as raised:
        includeme(config)
    assert raised.value.options == ("debugtoolbar.includes",)


def test_the_readme_block_enables_the_panel(redis_url: str) -> None:
    block = re.search(r"```ini debugtoolbar\n(.*?)```", README, flags=re.DOTALL)
    assert block is not None
    parser = configparser.ConfigParser()
    parser.read_string(block.group(1))
    settings = dict(parser["app:main"])
    includes = settings.pop("pyramid.includes").split()
    assert includes[-1] == "pyramid_debugtoolbar"  # build() includes the toolbar itself
    settings["redis.sessions.redis_url"] = redis_url
    app = build(settings, include=" ".join(includes[:-1]))
    assert [row[0] for row in panel_of(app, app.get("/write")).rows][-1] == "create"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# Every module of the package except the panel's (and the command line's __main__).
IMPORT_ALL = textwrap.dedent("""
    import importlib, pkgutil, sys
    import pyramid_session_redis as package
    names = [
        module.name
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
        if module.name != "pyramid_session_redis.debugtoolbar"
        and not module.name.endswith(".__main__")
    ]
    for name in names:
        importlib.import_module(name)
    assert len(names) > 20, names
""")


def test_the_library_never_imports_the_toolbar() -> None:
    result = run_python(IMPORT_ALL + 'print(sorted(m for m in sys.modules if "debugtoolbar" in m))')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_the_toolbar_the_library_works_and_the_panel_says_what_to_install() -> None:
    blocked = 'import sys\nsys.modules["pyramid_debugtoolbar"] = None  # as if not installed\n'
    result = run_python(blocked + IMPORT_ALL + 'print("imported")')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"

    result = run_python(blocked + "import pyramid_session_redis.debugtoolbar")
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        "ImportError: pyramid_session_redis.debugtoolbar needs pyramid_debugtoolbar: "
        "pip install 'pyramid_session_redis[debugtoolbar]'"
    )
