"""Drive ``pyramid_session_redis`` 1.8.1 for the interop tests; runs in the legacy venv.

Usage: ``python legacy_client.py`` with a JSON request on stdin::

    {"redis_url": "redis://...", "secret": "...", "cookie_name": "session",
     "cookie": "<signed value or null>", "ops": [["set", "k", "<b64 pickle>"], ["get", "k"]]}

All ops run in ONE request against an app built with the old factory. Values travel as
base64 pickles so that tuples, datetimes etc. keep their types. Prints JSON::

    {"version": "1.8.1", "cookie": "<cookie after the request>", "set_cookie": bool,
     "results": [...]}

Ops: ``set K B64``, ``get K`` (B64 or null), ``del K``, ``dump`` (B64 of the dict),
``new``, ``session_id``, ``flash MSG``, ``pop_flash``, ``csrf``, ``invalidate``.
"""

from __future__ import annotations

import base64
import json
import pickle
import sys
from importlib.metadata import version
from typing import Any

import webtest
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

import pyramid_session_redis
from pyramid_session_redis import RedisSessionFactory

EXPECTED_VERSION = "1.8.1"


def b64(value: Any) -> str:
    return base64.b64encode(pickle.dumps(value)).decode("ascii")


def unb64(text: str) -> Any:
    return pickle.loads(base64.b64decode(text))


def run_op(session: Any, op: list[Any]) -> Any:
    name, args = op[0], op[1:]
    if name == "set":
        session[args[0]] = unb64(args[1])
        return None
    if name == "get":
        return b64(session[args[0]]) if args[0] in session else None
    if name == "del":
        del session[args[0]]
        return None
    if name == "dump":
        return b64(dict(session))
    if name == "new":
        return bool(session.new)
    if name == "session_id":  # a lazily created 1.8 session has a placeholder, not an id
        session_id = session.session_id
        return session_id if isinstance(session_id, str) else None
    if name == "flash":
        session.flash(args[0])
        return None
    if name == "pop_flash":
        return session.pop_flash()
    if name == "csrf":
        return session.get_csrf_token()
    if name == "invalidate":
        session.invalidate()
        return None
    raise ValueError(f"unknown op {name!r}")


def main() -> None:
    found = version("pyramid_session_redis")
    if found != EXPECTED_VERSION:  # the import names collide: make sure we got the old one
        raise SystemExit(f"expected {EXPECTED_VERSION}, got {found} ({pyramid_session_redis})")
    spec = json.load(sys.stdin)
    ops: list[list[Any]] = spec["ops"]

    def view(request: Request) -> Response:
        results = [run_op(request.session, op) for op in ops]
        return Response(body=json.dumps(results).encode(), content_type="application/json")

    factory = RedisSessionFactory(
        secret=spec["secret"],
        redis_url=spec["redis_url"],
        cookie_name=spec["cookie_name"],
        serialize=pickle.dumps,
        deserialize=pickle.loads,
        timeout=1200,
    )
    with Configurator() as config:
        config.set_session_factory(factory)
        config.add_route("ops", "/ops")
        config.add_view(view, route_name="ops")
        app = webtest.TestApp(config.make_wsgi_app())
    if spec.get("cookie"):
        app.set_cookie(spec["cookie_name"], spec["cookie"])
    response = app.get("/ops")
    prefix = spec["cookie_name"] + "="
    issued = [
        header.split(";", 1)[0][len(prefix) :]
        for header in response.headers.getall("Set-Cookie")
        if header.startswith(prefix)
    ]
    out = {
        "version": found,
        "cookie": issued[-1] if issued else spec.get("cookie"),
        "set_cookie": bool(issued),
        "results": response.json,
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
