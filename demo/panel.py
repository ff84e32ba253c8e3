"""The panel on every page: this session's keyed hash, TTL, stored size and commands.

Filled in by a WSGI middleware *after* the Pyramid application returned, because the
session is written by a finished callback once the page is rendered: only then are the
request's Redis commands all sent. The page is rendered with placeholders
(``@@psr-commands@@``...) which :class:`CommandPanel` replaces.

The commands are counted by the server: ``INFO commandstats`` before and after the
request, on a connection of the panel's own. The server counts what it ran, so the
commands a script runs (the ``GET`` and ``SET`` inside the compare-and-set script on
servers without ``SET … IFEQ``) appear next to the ``EVALSHA`` that sent them, as does the
handshake of a new connection (``HELLO``, and ``CLIENT SETINFO`` where the server has
it). That count is server-wide, so the panel runs one page request at a time (static
files pass by); it is exact as long as nothing else uses that Redis (the throwaway server
of ``python3 run.py demo``). On a shared Redis other clients' commands show up too. A
demo device, not something to deploy.
"""

from __future__ import annotations

import html
import threading
from collections import Counter
from typing import Any

import redis
from pyramid.events import NewRequest
from pyramid.interfaces import ISessionFactory
from pyramid.registry import Registry
from webob import Request as WebObRequest

from demo.errors import WSGIApp
from pyramid_session_redis.connection import build_client, client_options

REQUEST_KEY = "demo.request"
PLACEHOLDER = "@@psr-{}@@"
FIELDS = ("session", "ttl", "size", "commands")
UNMEASURED = "n/a"


def remember_request(event: NewRequest) -> None:
    """Subscriber: lets the middleware find the Pyramid request (and its session)."""
    event.request.environ[REQUEST_KEY] = event.request


class CommandPanel:
    """WSGI middleware that measures each page request and fills in its panel."""

    def __init__(self, app: WSGIApp, registry: Registry) -> None:
        self.app = app
        self.factory = registry.getUtility(ISessionFactory)
        settings = self.factory.settings
        self.client = build_client(settings, client_options(settings))
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith("/static/"):
            return self.app(environ, start_response)
        request = WebObRequest(environ)
        with self.lock:
            before = self.command_counts()
            response = request.get_response(self.app)  # finished callbacks included
            after = self.command_counts()
            if response.content_type == "text/html" and b"@@psr-" in response.body:
                values = self.values(environ.get(REQUEST_KEY), before, after)
                response.text = fill(response.text, values)
        return response(environ, start_response)

    def command_counts(self) -> Counter[str] | None:
        """Commands the server received so far, by name; None when Redis is unreachable."""
        try:
            stats = self.client.info("commandstats")
        except redis.RedisError:
            return None
        counts: Counter[str] = Counter()
        for name, stat in stats.items():
            counts[name.removeprefix("cmdstat_").upper()] = stat.get("calls", 0) + stat.get(
                "rejected_calls", 0
            )
        counts.pop("INFO", None)  # the panel's own
        return counts

    def values(
        self, request: Any, before: Counter[str] | None, after: Counter[str] | None
    ) -> dict[str, str]:
        values = dict.fromkeys(FIELDS, UNMEASURED)
        if before is not None and after is not None:
            sent = after - before
            listed = ", ".join(f"{name} {n}" for name, n in sorted(sent.items()))
            values["commands"] = f"{sum(sent.values())}: {listed}" if sent else "0"
        session = request.__dict__.get("session") if request is not None else None
        session_id = getattr(session, "session_id", None)
        if session_id is None:
            values.update(session="none stored", ttl="-", size="-")
            return values
        values["session"] = self.factory.log_id(session_id)
        try:
            with self.client.pipeline(transaction=False) as pipe:
                key = self.factory.key(session_id)
                ttl, size = pipe.ttl(key).strlen(key).execute()
        except redis.RedisError:
            return values
        values["ttl"] = "not stored" if ttl == -2 else "none" if ttl == -1 else f"{ttl} s"
        values["size"] = f"{size} bytes" if ttl != -2 else "-"
        return values


def fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace(PLACEHOLDER.format(name), html.escape(value))
    return text
