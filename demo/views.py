"""The demo's pages, each showing one feature of the library.

``/``          visit counter (``session.incr``), flash messages, who is logged in
``/login``     CSRF-protected form; the session id changes at login (no fixation)
``/logout``    ``session.invalidate()``: deletes the session and expires the cookie
``/note``      CSRF-protected form whose message is flashed across a redirect
``/session``   this session's keyed hash, created time, timeout and keys
``/cached``    a cacheable response: ``check_response_allow_cookies`` keeps the cookie off
``/sessions``  "your sessions" and log out everywhere, when the library has a user index
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

from pyramid.csrf import get_csrf_token
from pyramid.events import BeforeRender
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.interfaces import ISessionFactory
from pyramid.request import Request
from pyramid.view import view_config

import pyramid_session_redis

CACHE_CONTROL = "public, max-age=60"

# The user index (log out everywhere) is another part of the library; the demo shows
# its page only when the library has it.
list_user_sessions = getattr(pyramid_session_redis, "list_user_sessions", None)
revoke_user_sessions = getattr(pyramid_session_redis, "revoke_user_sessions", None)
HAS_USER_INDEX = list_user_sessions is not None and revoke_user_sessions is not None

ROUTES = {
    "home": "/",
    "login": "/login",
    "logout": "/logout",
    "note": "/note",
    "session": "/session",
    "cached": "/cached",
    **({"sessions": "/sessions"} if HAS_USER_INDEX else {}),
}
NAVIGATION = [
    ("home", "Home"),
    ("note", "Flash a note"),
    ("session", "This session"),
    ("cached", "Cacheable page"),
    *([("sessions", "Your sessions")] if HAS_USER_INDEX else []),
]


def add_template_globals(event: BeforeRender) -> None:
    """Every template gets the navigation, the user and a lazy CSRF token."""
    request = event["request"]
    if request is None:
        return
    event["navigation"] = NAVIGATION
    event["user"] = request.session.get("user")
    # Called only by templates with a form: asking for a token stores a session.
    event["get_csrf_token"] = functools.partial(get_csrf_token, request)


def flashes(request: Request) -> list[str]:
    """The pending flash messages; popping them means they are shown once."""
    return [str(message) for message in request.session.pop_flash()]


def change_session_id(session: Any) -> None:
    """A new session id with the same data: what to do at login (no session fixation).

    ``regenerate_id()`` where the library has it; otherwise ``invalidate()`` (which
    deletes the old key) and the data put back, which stores it under a new id.
    """
    regenerate = getattr(session, "regenerate_id", None)
    if regenerate is not None:
        regenerate()
        return
    kept = dict(session)
    session.invalidate()
    session.update(kept)


@view_config(route_name="home", request_method="GET", renderer="demo:templates/home.jinja2")
def home(request: Request) -> dict[str, Any]:
    visits = request.session.incr("visits")
    return {"title": "pyramid_session_redis demo", "visits": visits, "flashes": flashes(request)}


@view_config(
    route_name="login", request_method=("GET", "POST"), renderer="demo:templates/login.jinja2"
)
def login(request: Request) -> Any:
    if request.method == "POST":  # Pyramid checked the CSRF token before the view ran
        name = request.POST.get("name", "").strip()
        if name:
            session = request.session
            change_session_id(session)
            session.new_csrf_token()
            session["user"] = name
            bind_user = getattr(session, "bind_user", None)
            if HAS_USER_INDEX and bind_user is not None:
                bind_user(name)
            session.flash(f"Welcome, {name}!")
            return HTTPSeeOther(request.route_path("home"))
        request.session.flash("Please enter a name.")
    return {"title": "Log in", "flashes": flashes(request)}


@view_config(
    route_name="logout", request_method="POST", renderer="demo:templates/logged_out.jinja2"
)
def logout(request: Request) -> dict[str, Any]:
    request.session.invalidate()  # deletes the Redis key now; the cookie is expired
    return {"title": "Logged out"}


@view_config(
    route_name="note", request_method=("GET", "POST"), renderer="demo:templates/note.jinja2"
)
def note(request: Request) -> Any:
    if request.method == "POST":  # Pyramid checked the CSRF token before the view ran
        text = request.POST.get("text", "").strip() or "(empty note)"
        request.session.flash(f"Saved note: {text}")
        return HTTPSeeOther(request.route_path("note"))
    return {"title": "Flash a note", "flashes": flashes(request)}


def _moment(epoch: int | None) -> str:
    if epoch is None:
        return "none"
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


@view_config(route_name="session", request_method="GET", renderer="demo:templates/session.jinja2")
def session_info(request: Request) -> dict[str, Any]:
    session = request.session
    factory = request.registry.getUtility(ISessionFactory)
    rows = {
        "id (keyed hash, as logs show it)": (
            factory.log_id(session.session_id) if session.session_id else "none yet"
        ),
        "new (created by this request)": "yes" if session.new else "no",
        "created": _moment(session.created),
        "timeout (seconds, sliding)": str(session.timeout),
        "keys": ", ".join(sorted(session.keys())) or "(empty)",
    }
    return {"title": "This session", "rows": rows}


@view_config(route_name="cached", request_method="GET", renderer="demo:templates/cached.jinja2")
def cached(request: Request) -> dict[str, Any]:
    # The view writes to the session, but the response is cacheable: the hook
    # (func_check_response_allow_cookies) keeps Set-Cookie off it, so a new visitor
    # gets no cookie and nothing is stored.
    request.session["saw_cached_page"] = True
    request.response.headers["Cache-Control"] = CACHE_CONTROL
    return {"title": "A cacheable page", "cache_control": CACHE_CONTROL}


if HAS_USER_INDEX:

    @view_config(
        route_name="sessions", request_method="GET", renderer="demo:templates/sessions.jinja2"
    )
    def your_sessions(request: Request) -> Any:
        """The user's sessions (``list_user_sessions``), each with an End button."""
        user = request.session.get("user")
        if user is None:
            return HTTPSeeOther(request.route_path("login"))
        assert list_user_sessions is not None
        rows = [
            {
                "handle": listed.handle,
                "created": _moment(listed.created),
                "expires": _moment(listed.expires),
                "current": listed.current,
            }
            for listed in list_user_sessions(request, user)
        ]
        return {"title": "Your sessions", "sessions": rows, "flashes": flashes(request)}

    @view_config(
        route_name="sessions",
        request_method="POST",
        renderer="demo:templates/logged_out.jinja2",
    )
    def end_sessions(request: Request) -> Any:
        """End one session (``revoke_user_session``) or all (``revoke_user_sessions``)."""
        user = request.session.get("user")
        if user is None:
            return HTTPSeeOther(request.route_path("login"))
        handle = request.POST.get("handle")
        if handle is None:  # log out everywhere, this browser included
            assert revoke_user_sessions is not None
            revoke_user_sessions(request, user)  # invalidates this request's session too
            return {"title": "Logged out everywhere"}
        revoke_one = getattr(pyramid_session_redis, "revoke_user_session", None)
        if revoke_one is not None and revoke_one(request, user, handle):
            if "user" not in request.session:  # it was this one: invalidated
                return {"title": "Logged out"}
            request.session.flash("That session was ended.")
        return HTTPSeeOther(request.route_path("sessions"))
