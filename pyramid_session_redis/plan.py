"""What to do at the end of a request: pure decisions, no I/O.

``plan_cookie`` runs in the response callback, ``plan_write`` in the finished
callback; each returns the single action to take. Both are tested as tables.
"""

from __future__ import annotations

import enum


class Write(enum.Enum):
    """The one storage command a request ends with."""

    NOTHING = "nothing"
    CREATE = "create"  # SET key payload NX [EX ttl]
    WRITE = "write"  # compare-and-set (or SET XX) of the whole payload
    REFRESH = "refresh"  # EXPIRE key ttl
    DELETE = "delete"  # DEL key


class Cookie(enum.Enum):
    """What the response does with the session cookie."""

    KEEP = "keep"  # no Set-Cookie header
    SET = "set"
    EXPIRE = "expire"


def plan_write(
    *,
    stored: bool,
    cookie_sent: bool,
    has_data: bool,
    had_data: bool,
    force_store: bool,
    dirty: bool,
    invalidate_empty: bool,
    refresh_due: bool,
) -> Write:
    """The storage action for a session at the end of its request.

    ``stored``: a Redis key backs this session (it was loaded, or persisted earlier
    in the request). ``cookie_sent``: the response carries a cookie with its id.
    A new session is stored only if a cookie points to it and it has data (or
    ``ensure_id()`` asked for it): nothing is ever stored that no client can reach.
    """
    if not stored:
        if cookie_sent and (has_data or force_store):
            return Write.CREATE
        return Write.NOTHING
    if invalidate_empty and had_data and not has_data:
        return Write.DELETE
    if dirty:
        return Write.WRITE
    if refresh_due:
        return Write.REFRESH
    return Write.NOTHING


def plan_cookie(
    *,
    allowed: bool,
    failed: bool = False,
    had_cookie: bool,
    will_create: bool,
    will_delete: bool,
    id_changed: bool,
    recookie: bool,
) -> Cookie:
    """The cookie action for a response.

    ``allowed``: the CDN hook lets this response carry cookies. ``failed``: the view
    raised and ``cookie_on_exception`` is off: no cookie is set, but one whose session
    is deleted is still expired (as in 1.8).
    ``will_delete``: the session is invalidated or emptied.
    ``id_changed``: a stored session's id differs from the one the request sent.
    ``recookie``: the application asked to re-send the cookie of a live session.
    """
    if not allowed:
        return Cookie.KEEP
    if failed:
        return Cookie.EXPIRE if will_delete and had_cookie else Cookie.KEEP
    if will_create or id_changed:
        return Cookie.SET
    if will_delete:
        return Cookie.EXPIRE if had_cookie else Cookie.KEEP
    if recookie:
        return Cookie.SET
    return Cookie.KEEP
