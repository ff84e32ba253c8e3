"""The demo application: a few pages, each showing one feature of the library.

Built like any Pyramid application that uses ``pyramid_session_redis``: the
settings come from an ini file (``demo/demo.ini``, keys ``redis.sessions.*``) and
``config.include("pyramid_session_redis")`` turns them into the session factory.

Pages (plain HTML strings, no template engine):

``/``          visit counter (``session.incr``), flash messages, who is logged in
``/login``     CSRF-protected form; the new session id at login prevents fixation
``/logout``    ``session.invalidate()``: deletes the session and expires the cookie
``/note``      CSRF-protected form that flashes a message (shown exactly once)
``/session``   the session id, created time, timeout and keys
``/cached``    a cacheable response: ``check_response_allow_cookies`` keeps the cookie off

``SessionBackendError`` (Redis down) becomes a 503 page: an exception view for
errors raised inside views, and :class:`BackendErrorMiddleware` for a write that
fails at the end of the request, after the views have run.
"""

from __future__ import annotations

import configparser
import datetime
import html
import importlib.util
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pyramid.config import Configurator
from pyramid.exceptions import BadCSRFToken
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.response import Response

from pyramid_session_redis.exceptions import SessionBackendError

INI_PATH = Path(__file__).resolve().with_name("demo.ini")
REDIS_URL_SETTING = "redis.sessions.redis_url"
CACHE_CONTROL = "public, max-age=60"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# --------------------------------------------------------------------------- settings


def load_settings(path: str | Path = INI_PATH, name: str = "main") -> dict[str, str]:
    """The ``[app:NAME]`` settings of a PasteDeploy-style ini file.

    Read with PasteDeploy (``pyramid.paster.get_appsettings``) when it is installed,
    as it is with Pyramid; else with :func:`read_ini_settings`.
    """
    if importlib.util.find_spec("paste.deploy") is None:
        return read_ini_settings(path, name)
    from pyramid.paster import get_appsettings

    return dict(get_appsettings(str(Path(path).resolve()), name=name))


def read_ini_settings(path: str | Path = INI_PATH, name: str = "main") -> dict[str, str]:
    """The ``[app:NAME]`` settings read with ``configparser``, as PasteDeploy reads them.

    Keys keep their case, ``%(here)s`` and ``%(__file__)s`` are interpolated, and
    ``use`` (PasteDeploy's pointer to the app factory) and those two are left out.
    """
    path = Path(path).resolve()
    parser = configparser.ConfigParser(defaults={"here": str(path.parent), "__file__": str(path)})
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    if not parser.read(path, encoding="utf-8"):
        raise FileNotFoundError(f"cannot read {path}")
    section = parser[f"app:{name}"]
    defaults = parser.defaults()
    return {key: section[key] for key in section if key != "use" and key not in defaults}


# --------------------------------------------------------------------------- pages


def page(request: Request, title: str, body: str, status: int = 200) -> Response:
    """A complete HTML page around ``body`` (already escaped HTML)."""
    nav = " | ".join(
        f'<a href="{request.route_path(route)}">{label}</a>'
        for route, label in (
            ("home", "home"),
            ("login", "login"),
            ("note", "note"),
            ("session", "session"),
            ("cached", "cached page"),
        )
    )
    text = (
        "<!doctype html>\n"
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>\n'
        f"<body>\n<nav>{nav}</nav>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    return Response(text, status=status, content_type="text/html", charset="utf-8")


def flashes(request: Request) -> str:
    """The pending flash messages as HTML; popping them means they show only once."""
    messages = request.session.pop_flash()
    items = "".join(f'<li class="flash">{html.escape(str(m))}</li>' for m in messages)
    return f"<ul>{items}</ul>" if items else ""


def csrf_field(request: Request) -> str:
    token = html.escape(request.session.get_csrf_token())
    return f'<input type="hidden" name="csrf_token" value="{token}">'


def home(request: Request) -> Response:
    visits = request.session.incr("visits")
    user = request.session.get("user")
    if user:
        who = (
            f"<p>Logged in as <b>{html.escape(user)}</b>.</p>\n"
            f'<form method="post" action="{request.route_path("logout")}">'
            f'{csrf_field(request)}<button type="submit">Log out</button></form>'
        )
    else:
        who = f'<p>Not logged in. <a href="{request.route_path("login")}">Log in</a>.</p>'
    body = (
        f"{flashes(request)}\n"
        f'<p>Visits in this session: <b id="visits">{visits}</b> '
        '(<code>request.session.incr("visits")</code>; reload to count).</p>\n'
        f"{who}"
    )
    return page(request, "pyramid_session_redis demo", body)


def login(request: Request) -> Response:
    if request.method == "POST":  # the CSRF token was checked before the view ran
        name = request.POST.get("name", "").strip()
        if name:
            session = request.session
            session.regenerate_id()  # a new id, the same data: no session fixation
            session["user"] = name
            session.flash(f"Welcome, {name}!")
            return HTTPSeeOther(request.route_path("home"))
        request.session.flash("Please enter a name.")
    body = (
        f"{flashes(request)}\n"
        f'<form method="post" action="{request.route_path("login")}">\n'
        f"{csrf_field(request)}\n"
        '<label>Name <input name="name" autofocus></label>\n'
        '<button type="submit">Log in</button>\n</form>'
    )
    return page(request, "Log in", body)


def logout(request: Request) -> Response:
    request.session.invalidate()  # deletes the Redis key now; the cookie is expired
    body = (
        "<p>Logged out: the session was deleted from Redis and the cookie expired.</p>\n"
        f'<p><a href="{request.route_path("home")}">Start again</a>.</p>'
    )
    return page(request, "Logged out", body)


def note(request: Request) -> Response:
    if request.method == "POST":  # the CSRF token was checked before the view ran
        text = request.POST.get("text", "").strip() or "(empty note)"
        request.session.flash(f"Saved note: {text}")
        return HTTPSeeOther(request.route_path("note"))
    body = (
        f"{flashes(request)}\n"
        "<p>Posting this form needs the session's CSRF token; the message is flashed "
        "and shown once (<code>flash</code> / <code>pop_flash</code>).</p>\n"
        f'<form method="post" action="{request.route_path("note")}">\n'
        f"{csrf_field(request)}\n"
        '<label>Note <input name="text"></label>\n'
        '<button type="submit">Save</button>\n</form>'
    )
    return page(request, "Flash a note", body)


def _epoch(value: int | None) -> str:
    if value is None:
        return "none"
    moment = datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    return f"{value} ({moment:%Y-%m-%d %H:%M:%S} UTC)"


def session_info(request: Request) -> Response:
    session = request.session
    session_id = session.session_id
    no_id = "none yet: a new session is stored only once it holds data"
    rows = {
        "session id (the Redis key)": session_id or no_id,
        "new (created by this request)": session.new,
        "created": _epoch(session.created),
        "timeout (seconds, sliding)": session.timeout,
        "keys": ", ".join(sorted(session.keys())) or "(empty)",
    }
    cells = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>\n"
        for key, value in rows.items()
    )
    return page(request, "This session", f"<table>\n{cells}</table>")


def cached(request: Request) -> Response:
    # The view writes to the session, but the response is cacheable: the hook
    # (func_check_response_allow_cookies) keeps Set-Cookie off it, so a new visitor
    # gets no cookie and nothing is stored.
    request.session["saw_cached_page"] = True
    body = (
        f"<p>This response carries <code>Cache-Control: {CACHE_CONTROL}</code>, so "
        "<code>pyramid_session_redis.check_response_allow_cookies</code> keeps the session "
        "cookie off it: a shared cache never stores one visitor's cookie for everyone.</p>"
    )
    response = page(request, "A cacheable page", body)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


# --------------------------------------------------------------------------- errors

UNAVAILABLE_TITLE = "Session store unavailable"
UNAVAILABLE_TEXT = (
    "The session store (Redis) cannot be reached right now. Please try again in a moment."
)


def unavailable_html() -> str:
    return (
        "<!doctype html>\n"
        f'<html><head><meta charset="utf-8"><title>{UNAVAILABLE_TITLE}</title></head>\n'
        f"<body><h1>503 {UNAVAILABLE_TITLE}</h1><p>{UNAVAILABLE_TEXT}</p></body></html>\n"
    )


def backend_error(exc: SessionBackendError, request: Request) -> Response:
    """Exception view: Redis is down or erroring -> 503, never a 500."""
    response = Response(unavailable_html(), status=503, content_type="text/html", charset="utf-8")
    response.headers["Retry-After"] = "5"
    response.headers["Cache-Control"] = "no-store"
    return response


def bad_csrf(exc: BadCSRFToken, request: Request) -> Response:
    body = "<p>The form's CSRF token is missing or wrong. Reload the form and try again.</p>"
    return page(request, "Bad CSRF token", body, status=400)


class BackendErrorMiddleware:
    """A 503 for a ``SessionBackendError`` raised after the views have run.

    The session is written by a Pyramid *finished callback*, which runs after the
    response is made and outside the reach of exception views: an error there (Redis
    went away between reading and writing, or a new session cannot be created)
    propagates out of the Pyramid application before anything is sent.
    """

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            return self.app(environ, start_response)
        except SessionBackendError:
            body = unavailable_html().encode("utf-8")
            start_response(
                "503 Service Unavailable",
                [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("Retry-After", "5"),
                    ("Cache-Control", "no-store"),
                ],
            )
            return [body]


# --------------------------------------------------------------------------- factory


def main(global_config: Mapping[str, Any] | None, **settings: Any) -> WSGIApp:
    """PasteDeploy app factory: the demo application from its ini settings."""
    with Configurator(settings=settings) as config:
        config.include("pyramid_session_redis")  # the session factory from redis.sessions.*
        config.set_default_csrf_options(require_csrf=True)  # every POST needs the token
        routes = {
            "home": "/",
            "login": "/login",
            "logout": "/logout",
            "note": "/note",
            "session": "/session",
            "cached": "/cached",
        }
        for name, pattern in routes.items():
            config.add_route(name, pattern)
        config.add_view(home, route_name="home", request_method="GET")
        config.add_view(login, route_name="login", request_method=("GET", "POST"))
        config.add_view(logout, route_name="logout", request_method="POST")
        config.add_view(note, route_name="note", request_method=("GET", "POST"))
        config.add_view(session_info, route_name="session", request_method="GET")
        config.add_view(cached, route_name="cached", request_method="GET")
        config.add_exception_view(backend_error, context=SessionBackendError)
        config.add_exception_view(bad_csrf, context=BadCSRFToken)
        app: WSGIApp = config.make_wsgi_app()
    return BackendErrorMiddleware(app)


def make_app(path: str | Path = INI_PATH, **overrides: Any) -> WSGIApp:
    """The demo application from an ini file, with some settings overridden."""
    settings: dict[str, Any] = load_settings(path)
    settings.update(overrides)
    return main({"__file__": str(Path(path).resolve())}, **settings)
