"""The ``pyramid-session-redis`` console tool: look at and manage stored sessions.

``pyramid-session-redis --config development.ini stats`` (see :mod:`.main` for every
command). Nothing here is imported by the library itself.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
