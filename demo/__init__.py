"""The demo Pyramid project of pyramid_session_redis: ``python3 run.py demo``.

Not part of the installed library: it runs from the repository root. ``development.ini``
configures it (served by ``pserve``, or by ``python -m demo`` with a throwaway Redis);
:mod:`demo.app` is the application factory, :mod:`demo.views` the pages,
:mod:`demo.panel` the session panel, :mod:`demo.errors` the 503 and CSRF pages,
:mod:`demo.check` the smoke test and :mod:`demo.throwaway_redis` the private Redis server.
"""
