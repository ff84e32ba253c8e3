"""Server-side Redis sessions for Pyramid.

A drop-in for the documented API of ``pyramid_session_redis`` 1.8: one Redis
round trip per read, at most one command per write, compare-and-set writes that
never lose a concurrent update nor resurrect a logged-out session.
"""

from __future__ import annotations

from .cookie import check_response_allow_cookies
from .factory import RedisSessionFactory, SessionFactory, includeme, session_factory_from_settings
from .session import RedisSession
from .users import UserSession, list_user_sessions, revoke_user_session, revoke_user_sessions

__all__ = [
    "RedisSession",
    "RedisSessionFactory",
    "SessionFactory",
    "UserSession",
    "check_response_allow_cookies",
    "includeme",
    "list_user_sessions",
    "revoke_user_session",
    "revoke_user_sessions",
    "session_factory_from_settings",
]
