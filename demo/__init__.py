"""Demo application for pyramid_session_redis: ``python3 run.py demo`` or ``python -m demo``.

Not part of the installed library: it runs from the repository root.
See :mod:`demo.app` for the pages and :mod:`demo.throwaway_redis` for the private
Redis server it starts when no ``--redis-url`` is given.
"""
