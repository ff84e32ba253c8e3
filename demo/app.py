"""The demo's application factory: ``[app:main] use = call:demo.app:main``.

Built like any Pyramid project: PasteDeploy hands the ``[app:main]`` settings of
``demo/development.ini`` to :func:`main`; ``pyramid.includes`` there pulls in
``pyramid_jinja2`` (templates) and ``pyramid_session_redis`` (the session factory from
the ``redis.sessions.*`` keys); the views in :mod:`demo.views` are found by a scan.

Around the Pyramid application sit two WSGI middlewares: :class:`demo.panel.CommandPanel`
fills each page's session panel once the request is over (its write included), and
:class:`demo.errors.BackendErrorMiddleware` turns a failed end-of-request write into a 503.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyramid.config import Configurator
from pyramid.events import BeforeRender, NewRequest

from demo import errors, panel, views
from demo.errors import WSGIApp

INI_PATH = Path(__file__).resolve().with_name("development.ini")
REDIS_URL_SETTING = "redis.sessions.redis_url"
# `pserve development.ini redis_url=redis://...` (and `python3 run.py demo`) pass the
# Redis to use as this PasteDeploy variable; it wins over the ini's own setting.
REDIS_URL_VAR = "redis_url"


def main(global_config: Mapping[str, Any] | None, **settings: Any) -> WSGIApp:
    """PasteDeploy app factory: the demo application from its ini settings."""
    redis_url = (global_config or {}).get(REDIS_URL_VAR)
    if redis_url:
        settings[REDIS_URL_SETTING] = redis_url
    with Configurator(settings=settings) as config:
        # Every POST needs the session's CSRF token (Pyramid's default storage policy
        # keeps it in the session: session.get_csrf_token()).
        config.set_default_csrf_options(require_csrf=True)
        config.add_static_view("static", "demo:static", cache_max_age=3600)
        for name, pattern in views.ROUTES.items():
            config.add_route(name, pattern)
        config.add_subscriber(views.add_template_globals, BeforeRender)
        config.add_subscriber(panel.remember_request, NewRequest)
        config.scan(views)
        config.scan(errors)
        router: WSGIApp = config.make_wsgi_app()
    return errors.BackendErrorMiddleware(panel.CommandPanel(router, config.registry))
