"""``RedisSession``: Pyramid's ``ISession`` over one Redis key.

Constructing a session does no I/O. The first access loads the payload in one
round trip (the sliding TTL refresh rides on it); the end of the request sends
at most one command, chosen by :mod:`pyramid_session_redis.plan`.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from typing import TYPE_CHECKING, Any

from pyramid.interfaces import ISession
from zope.interface import implementer

from .codec import SessionRecord
from .events import EventKind, EventRecorder
from .exceptions import (
    BackendUnavailable,
    CookieInvalid,
    InvalidSession,
    InvalidSession_DeserializationError,
    RawDeserializationError,
    SessionBackendError,
    SessionGone,
    SessionLockTimeout,
    SessionTooLarge,
    SessionWriteConflict,
)
from .expiry import (
    capped_ttl,
    expiry_enforced,
    normalize,
    plan_refresh,
    session_timeout,
)
from .integrity import (
    codec_for_key,
    needs_resigning,
)
from .keys import same_slot_id
from .loading import judge
from .lock import acquire_and_load
from .persist import MoveTarget, Saved, SessionWriter
from .plan import Cookie, Write, plan_cookie, plan_write
from .session_dict import SessionDict
from .state import SessionState
from .store import SessionStore, WrongTypeError
from .user_index import (
    USER_KEY,
    Entry,
    IndexUpdate,
    binding_of,
    binding_value,
    entry_of,
    remove,
)
from .util import now

if TYPE_CHECKING:
    from pyramid.request import Request
    from webob import Response

    from .factory import SessionFactory

log = logging.getLogger("pyramid_session_redis")
SAVE_EVENTS = {
    Write.CREATE: EventKind.CREATE,
    Write.WRITE: EventKind.WRITE,
    Write.REFRESH: EventKind.REFRESH,
    Write.DELETE: EventKind.DELETE,
}


class Phase(enum.Enum):
    """Where a session stands; ``RedisSession`` moves through these."""

    UNLOADED = "unloaded"  # nothing read yet
    NEW = "new"  # no Redis key backs it (yet)
    LOADED = "loaded"  # read from Redis by this request
    CREATED = "created"  # created in Redis by this request
    DEGRADED = "degraded"  # Redis was down at load time (degraded_mode): never stored


STORED = frozenset((Phase.LOADED, Phase.CREATED))


@dataclasses.dataclass
class Pending:
    """What the request asked for beyond data changes; ``invalidate()`` starts over."""

    force_store: bool = False  # ensure_id(): store even an empty new session
    invalidated: bool = False
    recookie: bool = False
    cookie_sent: bool = False  # the response carries a cookie with the session's id
    refresh_due: bool = False
    ttl_override: int | None = None
    resign: bool = False  # sign_payloads: the value was loaded unsigned; write it signed
    index_touched: bool = False  # bind_user()/unbind_user() called (user_index.py)
    index_before: Entry | None = None  # the session's index entry before that


@implementer(ISession)
class RedisSession(SessionDict):
    """A lazily loaded session; see the module docstring."""

    def __init__(
        self,
        request: Request,
        factory: SessionFactory,
        cookie_id: str | None,
        cookie_problem: InvalidSession | None,
        stale_cookie: bool = False,
    ) -> None:
        self.request: Request | None = request  # dropped at the end of the request
        self._factory = factory
        self._settings = factory.settings
        self._cookie_id = cookie_id  # the verified id the request's cookie carried
        self._cookie_problem = cookie_problem
        self._had_cookie = cookie_id is not None or isinstance(cookie_problem, CookieInvalid)
        self._phase = Phase.UNLOADED
        self._state: SessionState | None = None
        self._storage: SessionStore | None = None
        self._session_id: str | None = None
        # regenerate_id(): the id whose key holds the session until the move is written
        self._moving_from: str | None = None
        # A cookie signed with an older secret is re-sent, signed with the current one.
        self._pending = Pending(recookie=stale_cookie)
        self._lock: str | None = None  # persistence = lock: our token, while held
        self._locked_key: str | None = None
        self._events = EventRecorder(self._settings.event_listeners)
        self._callbacks = False
        self._response: Response | None = None
        self._cookie_max_age = self._settings.cookie_max_age
        self._cookie_expires = self._settings.cookie_expires

    # -- loading ------------------------------------------------------------------
    @property
    def _st(self) -> SessionState:
        state = self._state
        return state if state is not None else self._load()

    @property
    def _stored(self) -> bool:
        """A Redis key backs this session."""
        return self._phase in STORED

    def _store(self) -> SessionStore:
        if self._storage is None:
            store = self._factory.store_for(self.request)
            self._storage = self._events.wrap(store)
        return self._storage

    def _writer(self) -> SessionWriter:
        return SessionWriter(self._store(), self._factory.codec, self._settings, self._conflicted)

    def _conflicted(self, keys: tuple[str, ...]) -> None:
        """Another request changed the same keys: ours were kept; say so, never the values."""
        log_id = self._log_id()
        names = ", ".join(repr(key) for key in keys)
        log.warning("session %s: concurrent changes to %s; this request's kept", log_id, names)
        if self._events.listeners:
            self._events.emit(
                EventKind.CONFLICT, self._events.mark(), self._log_id, keys=",".join(keys)
            )
        logger = self._settings.func_conflict_logger
        if logger is not None:
            conflict = SessionWriteConflict(
                f"session {log_id}: {names}", keys, session_id=self._session_id
            )
            logger(self.request, conflict)

    def _load(self) -> SessionState:
        mark = self._events.mark()
        try:
            state = self._read()
        except (SessionBackendError, RawDeserializationError) as exc:
            self._events.error(mark, exc, "load", self._log_id)
            raise
        if mark is not None:
            found = self._phase is Phase.LOADED
            self._events.emit(
                EventKind.LOAD, mark, self._log_id, len(state.loaded or b""), found=found
            )
        return state

    def _read(self) -> SessionState:
        """Read the cookie's session (or start a fresh one); see ``_load``."""
        self._register_callbacks()
        session_id = self._cookie_id
        if session_id is None:
            return self._start_new(self._cookie_problem)
        s = self._settings
        ttl = s.timeout if s.refresh_on_read else None
        key = self._factory.key(session_id)
        try:
            raw = self._load_locked(key, ttl) if s.lock_mode else self._store().load(key, ttl)
        except WrongTypeError as exc:
            return self._undecodable(exc)
        except SessionBackendError as exc:
            if not s.degraded_mode or isinstance(exc, SessionLockTimeout):
                raise
            return self._degrade(session_id, exc)
        current = now()
        codec = codec_for_key(self._factory.codec, key)
        verdict = judge(raw, codec, s, session_id, self._factory.log_id, current)
        if verdict.undecodable is not None:
            return self._undecodable(verdict.undecodable)
        if verdict.retire:
            return self._retire(key, verdict.problem)
        if verdict.record is None:
            return self._start_new(verdict.problem)
        record = verdict.record
        assert raw is not None  # a record was decoded from it
        stored_meta = (record.timeout, record.expires)
        normalize(s, record)
        state = SessionState(record, raw, verdict.plain)
        # Stored under other settings: a change rewrites it whole, in these settings' form.
        state.normalized = stored_meta != (record.timeout, record.expires)
        self._state, self._session_id, self._phase = state, session_id, Phase.LOADED
        self._pending.resign = needs_resigning(self._factory.codec, raw)
        refresh = plan_refresh(s, record, current)
        self._pending.refresh_due = refresh.due
        if refresh.expires is not None:
            state.touch_meta(expires=refresh.expires)
        return state

    def _retire(self, key: str, problem: InvalidSession | None) -> SessionState:
        """A session past ``max_lifetime``: delete it, report it, start a fresh one."""
        lock = self._take_lock()
        try:
            if lock is not None:
                self._store().delete_unlock(key, lock)
            else:
                self._store().delete(key)
        except SessionBackendError as exc:  # refused at every load anyway; the TTL ends it
            log.error("session %s: over-age session not deleted: %s", self._log_id(), exc)
        state = self._start_new(problem)
        self._pending.invalidated = True  # the cookie goes, unless a new session replaces it
        return state

    def _load_locked(self, key: str, ttl: int | None) -> bytes | None:
        """Wait for the session's lock and load; the lock is held until the end."""
        s, mark = self._settings, self._events.mark()
        try:
            lock, raw = acquire_and_load(self._store(), key, s.lock_lease_ms, s.lock_wait, ttl)
        except SessionLockTimeout as exc:
            self._events.emit(
                EventKind.LOCK_WAIT, mark, self._log_id, attempts=exc.attempts, acquired=False
            )
            raise
        if mark is not None and self._events.round_trips() - mark[1] > 1:
            attempts = self._events.round_trips() - mark[1]
            self._events.emit(
                EventKind.LOCK_WAIT, mark, self._log_id, attempts=attempts, acquired=True
            )
        if lock is not None:
            self._lock, self._locked_key = lock, key
        return raw

    def _take_lock(self) -> str | None:
        """The lock token, which the caller's command releases; None if none is held."""
        lock, self._lock = self._lock, None
        return lock

    def _release_lock(self) -> None:
        """Release a lock that no write, refresh or delete has released."""
        lock = self._take_lock()
        if lock is None or self._locked_key is None:
            return
        try:
            self._store().release(self._locked_key, lock)
        except SessionBackendError as exc:  # the lease frees it soon anyway
            log.error("session %s: lock not released: %s", self._log_id(), exc)

    def _log_id(self) -> str:
        return self._factory.log_id(self._session_id or self._cookie_id)

    def _degrade(self, session_id: str, exc: SessionBackendError) -> SessionState:
        """Serve an empty session that is never stored and leaves the cookie alone."""
        log.warning(
            "session %s: Redis unavailable, degraded: %s", self._factory.log_id(session_id), exc
        )
        state = self._start_new(BackendUnavailable(str(exc), exc))
        self._phase = Phase.DEGRADED
        return state

    def _undecodable(self, exc: Exception) -> SessionState:
        if not self._settings.deserialized_fails_new:
            raise RawDeserializationError(exc.__cause__ or exc) from exc
        return self._start_new(InvalidSession_DeserializationError(exc))

    def _start_new(self, problem: InvalidSession | None) -> SessionState:
        if problem is not None:
            self._report(problem)
        s, current = self._settings, now()
        expires = current + s.timeout if s.timeout and s.payload_expiry else None
        timeout = s.timeout if s.legacy_layout else None
        state = SessionState(SessionRecord({}, current, timeout, expires))
        self._state, self._session_id, self._phase = state, None, Phase.NEW
        return state

    def _invalid(self, kind: type[InvalidSession], session_id: str | None) -> InvalidSession:
        """A report about ``session_id`` whose message shows only its keyed hash."""
        return kind(session_id=session_id, log_id=self._factory.log_id(session_id))

    def _report(self, problem: InvalidSession) -> None:
        if self._events.listeners:
            self._events.emit(
                EventKind.INVALID, self._events.mark(), self._log_id, reason=type(problem).__name__
            )
        logger = self._settings.func_invalid_logger
        if logger is not None:
            logger(self.request, problem)

    def _register_callbacks(self) -> None:
        request = self.request
        if not self._callbacks and request is not None:
            self._callbacks = True
            request.add_response_callback(self._on_response)
            request.add_finished_callback(self._on_finished)

    # -- end of request -------------------------------------------------------------
    def _untouched(self, state: SessionState) -> bool:
        """The request left the session as it found it and asked for nothing: the end of
        the request has nothing to send (no cookie, no command). The common read, decided
        without the plans."""
        pending = self._pending
        return (
            (self._phase is Phase.LOADED or self._phase is Phase.NEW)
            and self._session_id == self._cookie_id
            and self._moving_from is None
            and not (state.touched or state.exposed)
            and not (pending.recookie or pending.refresh_due or pending.resign)
            and not (pending.force_store or pending.invalidated or pending.index_touched)
            and pending.ttl_override is None
        )

    def _on_response(self, request: Request, response: Response) -> None:
        self._response = response
        state = self._state
        if state is None or self._phase is Phase.DEGRADED or self._untouched(state):
            return
        s, pending = self._settings, self._pending
        cookie = self._factory.cookie
        failed = not s.cookie_on_exception and getattr(request, "exception", None) is not None
        stored = self._stored
        will_create = not stored and (bool(state.data) or pending.force_store)
        emptied = stored and s.invalidate_empty_session and state.had_data and not state.data
        action = plan_cookie(
            allowed=cookie.allowed(response),
            failed=failed,
            had_cookie=self._had_cookie,
            will_create=will_create,
            will_delete=pending.invalidated or emptied,
            id_changed=stored and not emptied and self._session_id != self._cookie_id,
            recookie=pending.recookie and (stored or will_create),
        )
        if action is Cookie.SET:
            session_id = self._session_id or self._assign_id()
            cookie.set(response, session_id, self._cookie_max_age, self._cookie_expires)
            pending.cookie_sent = True
        elif action is Cookie.EXPIRE:
            cookie.expire(response)

    def _on_finished(self, request: Request) -> None:
        """Save the session; a failure is logged and re-raised after the other callbacks."""
        state, mark = self._state, self._events.mark()
        try:
            if state is not None and self._phase is not Phase.DEGRADED:
                if self._untouched(state):
                    return  # (the lock, if held, is released below)
                index = self._index_update(state)
                action = self._finish(state)
                self._index_saved(index, state)
                if mark is not None and action is not Write.NOTHING:
                    self._events.emit(
                        SAVE_EVENTS[action], mark, self._log_id, len(state.loaded or b"")
                    )
        except (SessionBackendError, SessionWriteConflict, SessionTooLarge) as exc:
            self._events.error(mark, exc, "save", self._log_id)
            log.error("session %s: not saved: %s", self._log_id(), exc)
            if self._pending.cookie_sent and self._response is not None:
                # The data never reached Redis: take back the cookie that points to it.
                self._response.unset_cookie(self._factory.cookie.name, strict=False)
            # Raised from a callback of its own, queued last: the application's finished
            # callbacks (database clean-up...) still run, and the error still leaves the
            # router for a WSGI middleware to turn into a 503.
            request.add_finished_callback(_Reraise(exc))
        finally:
            self._release_lock()
            self.request = None  # no request <-> session cycle once the request is over

    def _finish(self, state: SessionState) -> Write:
        """Send the request's one storage command; return which it was (a move: WRITE)."""
        s, pending, stored = self._settings, self._pending, self._stored
        if self._moving_from is not None and not pending.cookie_sent:
            # No cookie with the new id reached this response (the view raised with
            # cookie_on_exception off, or the CDN hook refused cookies): moving would
            # strand the client, so the session stays under its id.
            log.warning("session %s: regenerate_id() not applied: no cookie", self._log_id())
            self._session_id, self._moving_from = self._moving_from, None
        codec, plain, patch = self._factory.codec, None, None
        if stored and self._moving_from is None and self._writer().can_patch(state):
            patch = state.patch_if_changed(codec, s.detect_changes)
        elif stored:
            plain = state.encode_if_changed(codec, s.detect_changes)
            if plain is None and pending.resign:
                plain = codec.encode_plain(state.record)  # rewritten signed
        action = plan_write(
            stored=stored,
            cookie_sent=pending.cookie_sent,
            has_data=bool(state.data),
            had_data=state.had_data,
            force_store=pending.force_store,
            dirty=plain is not None or patch is not None,
            invalidate_empty=s.invalidate_empty_session,
            refresh_due=pending.refresh_due or pending.ttl_override is not None,
        )
        if self._moving_from is not None and action is not Write.DELETE:
            self._move(state, plain)
            return Write.WRITE
        if action is Write.CREATE:
            self._create(state)
        elif action is Write.WRITE and patch is not None:
            key = self._factory.key(self._require_id())
            self._saved(self._writer().save_patch(state, key, *patch, self._write_ttl))
        elif action is Write.WRITE:
            assert plain is not None
            self._write(state, plain)
        elif action is Write.REFRESH:
            self.do_refresh()
        elif action is Write.DELETE:
            key = self._factory.key(self._stored_id())
            self._moving_from = None  # emptied: deleted, not moved
            saved = self._writer().delete_emptied(state, key, self._write_ttl, self._take_lock())
            self._saved(saved)
        return action

    def _assign_id(self) -> str:
        self._session_id = self._factory.new_id()
        return self._session_id

    def _require_id(self) -> str:
        return self._session_id or self._assign_id()

    def _stored_id(self) -> str:
        """The id whose key holds the session (the old one while a move is pending)."""
        return self._moving_from or self._require_id()

    def _write_ttl(self) -> int | None:
        if self._pending.ttl_override is not None:
            return self._capped(self._pending.ttl_override)
        return self._capped(self.timeout if self._settings.redis_ttl else None)

    def _capped(self, ttl: int | None) -> int | None:
        """``ttl``, never reaching past the session's ``max_lifetime``."""
        state = self._state
        return capped_ttl(self._settings, None if state is None else state.record, ttl, now())

    def _create(self, state: SessionState) -> None:
        factory, pending = self._factory, self._pending
        first = self._require_id()
        session_id = self._writer().create(
            state, factory.key, factory.new_id, first, self._write_ttl()
        )
        self._session_id, self._phase = session_id, Phase.CREATED
        if session_id != first and pending.cookie_sent:
            self._recookie_now()  # the id the response carries was taken: send the new one
        pending.force_store, pending.ttl_override = False, None

    def _write(self, state: SessionState, plain: bytes) -> None:
        """Store the plain form ``plain`` of the state's record (see ``Codec``)."""
        if self._moving_from is not None:
            self._move(state, plain)
            return
        key = self._factory.key(self._require_id())
        self._saved(self._writer().save(state, key, plain, self._write_ttl, self._take_lock()))

    def _move(self, state: SessionState, plain: bytes | None) -> None:
        """Write the session under its new id and delete the old key (regenerate_id())."""
        factory, old_id = self._factory, self._moving_from
        assert old_id is not None
        if plain is None:
            plain = factory.codec.encode_plain(state.record)
        first = self._require_id()
        target = MoveTarget(first, factory.key(first), lambda: self._id_and_key_near(old_id))
        lock = self._take_lock()
        saved = self._writer().move(
            state, factory.key(old_id), target, plain, self._write_ttl, lock
        )
        self._moving_from = None
        if saved is Saved.GONE:
            self._session_id = old_id  # the id the session had: reported, then dropped
        else:
            self._session_id = target.session_id
            if target.session_id != first and self._pending.cookie_sent:
                self._recookie_now()
        self._saved(saved)

    def _id_and_key_near(self, old_id: str) -> tuple[str, str]:
        """A fresh id whose key shares the Cluster hash slot of ``old_id``'s key."""
        factory = self._factory
        new_id = same_slot_id(
            factory.new_id, factory.key, factory.key(old_id), self._settings.prefix
        )
        return new_id, factory.key(new_id)

    def _recookie_now(self) -> None:
        """The response already went out with another id: set the cookie again."""
        if self._response is not None and self._session_id is not None:
            self._factory.cookie.set(
                self._response, self._session_id, self._cookie_max_age, self._cookie_expires
            )

    def _saved(self, saved: Saved) -> None:
        if saved is Saved.GONE:
            self._gone()
        elif saved is Saved.DELETED:
            self._phase = Phase.NEW
        else:
            self._pending.ttl_override, self._pending.refresh_due = None, False

    def _gone(self) -> None:
        """The session was deleted under us: drop the write, never recreate it."""
        self._report(self._invalid(SessionGone, self._session_id))
        response = self._response
        if response is not None and self._factory.cookie.allowed(response):
            self._factory.cookie.expire(response)
        self._start_new(None)

    # -- ISession -------------------------------------------------------------------
    @property
    def new(self) -> bool:
        """True if the session was created by this request."""
        self._st  # noqa: B018 - loading decides
        return self._phase is not Phase.LOADED

    @property
    def created(self) -> int:
        return self._st.record.created

    def changed(self) -> None:
        """Mark the session changed (after mutating a value in place)."""
        self._st.forced = True

    def invalidate(self) -> None:
        """Delete the stored session now; later writes go to a new session id."""
        if self._state is None:
            self._register_callbacks()
            session_id, stored = self._cookie_id, self._cookie_id is not None
        else:
            session_id, stored = self._moving_from or self._session_id, self._stored
        self._moving_from = None
        mark = self._events.mark()
        if stored and session_id:
            key, lock = self._factory.key(session_id), self._take_lock()
            if lock is not None:
                self._store().delete_unlock(key, lock)
            else:
                self._store().delete(key)
            self._unindex(key)
            self._events.emit(EventKind.DELETE, mark, self._log_id, invalidated=True)
        self._pending = Pending(invalidated=True)
        self._start_new(None)

    # -- log out everywhere: the user index (user_index.py) ---------------------------
    def bind_user(self, userid: str | int) -> None:
        """Bind the session to ``userid``: call on login, after ``regenerate_id()``.

        When the session is saved its key enters the user's index, where
        ``list_user_sessions`` and ``revoke_user_sessions`` find it. The binding holds
        for ``user_index_lifetime`` seconds; after that the session is replaced by a
        fresh one.
        """
        state = self._st
        self._index_touch(state)
        until = now() + self._settings.user_index_lifetime
        state.assign(USER_KEY, binding_value(userid, until))

    def unbind_user(self) -> None:
        """Take the session out of its user's index when it is saved (``invalidate()``
        does this too)."""
        state = self._st
        self._index_touch(state)
        if USER_KEY in state.data:
            state.remove(USER_KEY)

    @property
    def bound_userid(self) -> str | None:
        """The user id the session is bound to (as a str), or None."""
        binding = binding_of(self._st.data)
        return None if binding is None else binding[0]

    def _index_touch(self, state: SessionState) -> None:
        pending = self._pending
        if not pending.index_touched:
            pending.index_touched = True
            pending.index_before = self._index_entry(state.data)

    def _index_entry(self, data: dict[str, Any]) -> Entry | None:
        session_id = self._session_id
        return entry_of(data, None if session_id is None else self._factory.key(session_id))

    def _index_update(self, state: SessionState) -> IndexUpdate | None:
        """Before the save: an entry the save will need is added first (no window in
        which a stored binding is missing from the index)."""
        pending = self._pending
        if not pending.index_touched:
            before = self._moved_from(state)
            if before is None:
                if USER_KEY not in state.written and USER_KEY not in state.deleted:
                    return None
                # Changed through the dict API (clear(), del...): compare with the loaded copy.
                before = self._index_entry(state.base(self._factory.codec).data)
            pending.index_touched, pending.index_before = True, before
        update = IndexUpdate(self._store(), self._factory.user_index, pending.index_before)
        update.before_write(self._index_entry(state.data))
        return update

    def _index_saved(self, update: IndexUpdate | None, state: SessionState) -> None:
        """After the save: the index follows what was stored (also a bound session the
        save stored under a new id); stale entries go. No command when nothing changed."""
        if update is None:
            moved_from = self._moved_from(state)
            if moved_from is None:
                return  # the common case: nothing bound, unbound or moved
            update = IndexUpdate(self._store(), self._factory.user_index, moved_from)
        update.after_write(self._index_entry(state.data) if self._stored else None)

    def _moved_from(self, state: SessionState) -> Entry | None:
        """The entry under the request's id, if a bound stored session has another id."""
        cookie_id, session_id = self._cookie_id, self._session_id
        if cookie_id is None or session_id in (None, cookie_id) or not self._stored:
            return None
        return entry_of(state.data, self._factory.key(cookie_id))

    def _unindex(self, key: str) -> None:
        """``invalidate()``: the deleted session leaves its user's index (when known)."""
        pending, state = self._pending, self._state
        if pending.index_touched:
            entry = pending.index_before
        elif state is not None:
            entry = entry_of(state.data, key)
        else:  # never loaded: the entry goes at the next listing or revocation
            return
        if entry is not None:
            remove(self._store(), self._factory.user_index(entry.userid), entry.key)

    def regenerate_id(self) -> None:
        """Give the session a new id, keeping its data: call it on login and on any
        change of privilege (session fixation).

        ``session_id`` is the new id at once; at the end of the request (or at
        ``do_persist()``) one round trip writes the session, with this request's changes,
        under the new id and deletes the old key (never both alive, never neither), and
        the response's cookie carries the new id. The creation time, and so
        ``max_lifetime``, is kept: the lifetime is the user's, not the id's. A request
        still carrying the old id then finds no session, as after ``invalidate()``.
        """
        self._st  # noqa: B018 - loading decides
        if self._phase is Phase.DEGRADED:
            return  # never stored: nothing to move
        if not self._stored:
            if self._session_id is not None:
                self._assign_id()  # not stored yet: a fresh id is all it takes
            return
        self._moving_from = self._moving_from or self._session_id
        assert self._moving_from is not None
        self._session_id = self._id_and_key_near(self._moving_from)[0]

    # -- 1.8 extras -------------------------------------------------------------------
    @property
    def session_id(self) -> str | None:
        """The session id (its Redis key); None for a new session not given one yet."""
        self._st  # noqa: B018 - loading decides
        return self._session_id

    def ensure_id(self) -> str:
        """Give the session an id now; a new session is then stored and cookied."""
        self._st  # noqa: B018 - loading decides
        if not self._stored:
            self._pending.force_store = True
        return self._require_id()

    @property
    def session_id_safecheck(self) -> str | None:
        """None for an empty session, else its id (assigned if needed)."""
        return self.ensure_id() if self._st.data else None

    @property
    def timeout(self) -> int | None:
        """This session's sliding timeout in seconds (None: no timeout)."""
        return session_timeout(self._settings, self._st.record)

    @property
    def expires(self) -> int | None:
        """Epoch seconds at which the payload itself expires, if it tracks that."""
        return self._st.record.expires

    def adjust_session_timeout(self, timeout_seconds: int) -> None:
        """Change this session's timeout for as long as it lives."""
        if not isinstance(timeout_seconds, int) or timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be a positive int")
        state = self._st
        s = self._settings
        same = timeout_seconds == s.timeout and not s.legacy_layout
        stored_timeout = None if same else timeout_seconds
        state.touch_meta(timeout=stored_timeout)
        if state.record.expires is not None:
            state.touch_meta(expires=now() + timeout_seconds)

    def adjust_session_expires(self, expires_epoch: int) -> None:
        """Make the session expire at ``expires_epoch`` (until activity slides it again)."""
        state = self._st
        if expiry_enforced(self._settings):
            state.touch_meta(expires=int(expires_epoch))
        if self._settings.redis_ttl:
            self._pending.ttl_override = max(1, int(expires_epoch) - now())

    def adjust_cookie_expires(self, expires: Any) -> None:
        """Re-send the cookie with this ``Expires`` (cookie only, not the session)."""
        self._st  # noqa: B018 - loading decides
        self._cookie_expires, self._pending.recookie = expires, True

    def adjust_cookie_max_age(self, max_age: Any) -> None:
        """Re-send the cookie with this ``Max-Age`` (cookie only, not the session)."""
        self._st  # noqa: B018 - loading decides
        self._cookie_max_age, self._pending.recookie = max_age, True

    def please_recookie(self) -> None:
        """Re-send the session cookie on this response."""
        self._st  # noqa: B018 - loading decides
        self._pending.recookie = True

    adjust_expires_for_session = adjust_session_expires
    adjust_timeout_for_session = adjust_session_timeout

    def do_persist(self) -> None:
        """Write the session to Redis now (a new one gets an id and a cookie)."""
        state = self._st
        index = self._index_update(state)
        if not self._stored:
            self._create(state)
        else:
            self._write(state, self._factory.codec.encode_plain(state.record))
        self._index_saved(index, state)
        self._pending.index_touched = False  # the index is in step with what is stored

    def do_refresh(self, force_redis_ttl: int | None = None) -> None:
        """Slide the TTL in Redis now (``force_redis_ttl`` seconds if given)."""
        self._st  # noqa: B018 - loading decides
        ttl = self._capped(force_redis_ttl) if force_redis_ttl is not None else self._write_ttl()
        if self._stored and ttl is not None:
            key, lock = self._factory.key(self._stored_id()), self._take_lock()
            if lock is not None:
                self._store().refresh_unlock(key, lock, ttl)
            else:
                self._store().refresh(key, ttl)
        self._pending.refresh_due, self._pending.ttl_override = False, None


class _Reraise:
    """A finished callback that raises ``error`` (a save that failed earlier)."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __call__(self, request: Request) -> None:
        raise self.error
