"""What the demo answers when Redis is down (503) or a form's CSRF token is wrong (400).

``SessionBackendError`` raised inside a view is answered by an exception view. The
session is written by a Pyramid *finished callback*, after the response is made and out
of reach of exception views: :class:`BackendErrorMiddleware` answers an error there
(Redis went away between reading and writing, or a new session cannot be stored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pyramid.exceptions import BadCSRFToken
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import exception_view_config

from pyramid_session_redis.exceptions import SessionBackendError

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

UNAVAILABLE_TITLE = "Session store unavailable"
UNAVAILABLE_TEXT = (
    "The session store (Redis) cannot be reached right now. Please try again in a moment."
)
UNAVAILABLE_HEADERS = [("Retry-After", "5"), ("Cache-Control", "no-store")]


def unavailable_html() -> str:
    """A self-contained page: no template, no session, nothing that needs Redis."""
    return (
        "<!doctype html>\n"
        f'<html><head><meta charset="utf-8"><title>{UNAVAILABLE_TITLE}</title></head>\n'
        f"<body><h1>503 {UNAVAILABLE_TITLE}</h1><p>{UNAVAILABLE_TEXT}</p></body></html>\n"
    )


@exception_view_config(SessionBackendError)
def backend_error(exc: SessionBackendError, request: Request) -> Response:
    """Redis is down or failing while a view uses the session: 503, never a 500."""
    response = Response(unavailable_html(), status=503, content_type="text/html", charset="utf-8")
    response.headers.update(UNAVAILABLE_HEADERS)
    return response


@exception_view_config(BadCSRFToken, renderer="demo:templates/bad_csrf.jinja2")
def bad_csrf(exc: BadCSRFToken, request: Request) -> dict[str, Any]:
    request.response.status = 400
    return {"title": "Bad CSRF token"}


class BackendErrorMiddleware:
    """A 503 for a ``SessionBackendError`` raised after the views have run."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            return self.app(environ, start_response)
        except SessionBackendError:
            body = unavailable_html().encode("utf-8")
            headers = [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                *UNAVAILABLE_HEADERS,
            ]
            start_response("503 Service Unavailable", headers)
            return [body]
