"""Log out everywhere: list and revoke the sessions bound to a user.

A session enters its user's index with ``session.bind_user(userid)`` (see
:mod:`.user_index` for the layout). Both functions take the request, or the registry
when there is no request (a script, a console tool): the session factory configured
with ``config.set_session_factory`` is found as Pyramid's ``ISessionFactory`` utility.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyramid.interfaces import ISessionFactory

from .codec import DecodeError, LegacyPayloadError, SessionRecord
from .factory import SessionFactory
from .store import WrongTypeError
from .user_index import binding_of, settled, userid_text
from .util import now

if TYPE_CHECKING:
    from pyramid.request import Request

__all__ = ["UserSession", "list_user_sessions", "revoke_user_session", "revoke_user_sessions"]


@dataclasses.dataclass(frozen=True)
class UserSession:
    """One live session of a user, as :func:`list_user_sessions` reports it.

    Holds no session id: ``handle`` is a keyed hash of the session's Redis key, stable
    for the session's life (where the key is the id, the value log lines show).
    """

    handle: str
    created: int
    """Epoch seconds at which the session was created."""
    expires: int | None
    """Epoch seconds at which it expires unless used again (None: no expiry)."""
    bound_until: int
    """Epoch seconds at which its binding to the user lapses (``user_index_lifetime``)."""
    current: bool
    """It is the session of the request passed in."""


def list_user_sessions(request_or_registry: Any, userid: str | int) -> list[UserSession]:
    """The user's live sessions, oldest first.

    Two round trips (the index; then each session's payload and TTL, pipelined), plus
    one that prunes entries of sessions that are gone, if any.
    """
    factory, request = _factory_of(request_or_registry)
    user = userid_text(userid)
    store, index, current = factory.store_for(request), factory.user_index(user), now()
    entries = store.index_entries(index, current)
    peeked = store.peek_many([key for key, _ in entries])
    current_key = _current_key(factory, request)
    lifetime = factory.settings.user_index_lifetime
    sessions, stale = [], []
    for (key, until), (raw, ttl) in zip(entries, peeked, strict=True):
        record = _decoded(factory, raw)
        binding = None if record is None else binding_of(record.data)
        if record is None or binding is None or binding[0] != user or binding[1] <= current:
            if settled(until, lifetime, current):
                stale.append(key)
            continue
        expires = current + ttl if ttl >= 0 else record.expires
        if expires is not None and expires <= current:
            continue
        handle = factory.log_id(key)
        sessions.append(
            UserSession(handle, record.created, expires, binding[1], key == current_key)
        )
    if stale:
        store.index_update(index, current, None, stale)
    return sorted(sessions, key=lambda session: (session.created, session.handle))


def revoke_user_sessions(
    request_or_registry: Any, userid: str | int, except_current: bool = False
) -> int:
    """Delete every session bound to the user; return how many were deleted.

    ``except_current=True`` keeps the session of the request passed in. The request's
    own session, if revoked, is invalidated (its cookie is expired on the response).
    A request still using a revoked session cannot write it back (no resurrection).
    Two round trips: the index, then one ``DEL`` per session (pipelined); a third
    takes the entries of the deleted sessions out of the index.
    """
    factory, request = _factory_of(request_or_registry)
    if except_current and request is None:
        raise TypeError("except_current=True needs the request, not the registry")
    current_key = _current_key(factory, request)
    return _revoke(factory, request, userid, lambda key: not except_current or key != current_key)


def revoke_user_session(request_or_registry: Any, userid: str | int, handle: str) -> bool:
    """Delete the one session of the user whose :attr:`UserSession.handle` is ``handle``.

    For a "your sessions" page: False if no live session of the user has that handle
    (a handle of another user's session never matches).
    """
    factory, request = _factory_of(request_or_registry)
    return _revoke(factory, request, userid, lambda key: factory.log_id(key) == handle) > 0


def _revoke(
    factory: SessionFactory,
    request: Request | None,
    userid: str | int,
    chosen: Callable[[str], bool],
) -> int:
    """Delete the user's indexed sessions whose key ``chosen(key)`` accepts."""
    user = userid_text(userid)
    store, index, current = factory.store_for(request), factory.user_index(user), now()
    entries = [(key, until) for key, until in store.index_entries(index, current) if chosen(key)]
    current_key = _current_key(factory, request)
    others = [key for key, _ in entries if key != current_key]
    revoked = store.delete_many(others)
    if len(others) < len(entries):
        assert request is not None
        request.session.invalidate()  # deletes it and takes it out of the index
        revoked += 1
    lifetime = factory.settings.user_index_lifetime
    done = set(others)
    gone = [key for key, until in entries if key in done and settled(until, lifetime, current)]
    if gone:
        store.index_update(index, current, None, gone)
    return revoked


def _factory_of(request_or_registry: Any) -> tuple[SessionFactory, Request | None]:
    """This package's session factory, and the request if one was passed."""
    if hasattr(request_or_registry, "queryUtility"):
        registry, request = request_or_registry, None
    else:
        registry, request = getattr(request_or_registry, "registry", None), request_or_registry
    factory = None if registry is None else registry.queryUtility(ISessionFactory)
    if not isinstance(factory, SessionFactory):
        raise TypeError(
            "expected a request or registry whose session factory is pyramid_session_redis's"
        )
    return factory, request


def _current_key(factory: SessionFactory, request: Request | None) -> str | None:
    """The Redis key of the request's session (loading it), if it has one."""
    if request is None:
        return None
    session_id = request.session.session_id
    return None if session_id is None else factory.key(session_id)


def _decoded(factory: SessionFactory, raw: bytes | None) -> SessionRecord | None:
    if raw is None:
        return None
    codec = factory.codec
    try:
        return codec.decode_plain(codec.unpack(raw))
    except (DecodeError, LegacyPayloadError, WrongTypeError):
        return None
