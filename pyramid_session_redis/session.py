"""``RedisSession``: Pyramid's ``ISession`` over one Redis key.

Constructing a session does no I/O. The first access loads the payload in one
round trip (the sliding TTL refresh rides on it); the end of the request sends
at most one command, chosen by :mod:`pyramid_session_redis.plan`.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import secrets
from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from typing import TYPE_CHECKING, Any

from pyramid.interfaces import ISession
from zope.interface import implementer

from .codec import DecodeError, LegacyPayloadError, SessionRecord
from .exceptions import (
    BackendUnavailable,
    CookieInvalid,
    InvalidSession,
    InvalidSession_DeserializationError,
    InvalidSession_NotInBackend,
    InvalidSession_PayloadLegacy,
    InvalidSession_PayloadTimeout,
    RawDeserializationError,
    SessionBackendError,
    SessionGone,
    SessionLockTimeout,
    SessionWriteConflict,
)
from .lock import acquire_and_load
from .persist import Saved, SessionWriter
from .plan import Cookie, Write, plan_cookie, plan_write
from .state import SessionState
from .store import SessionStore, WrongTypeError
from .util import now

if TYPE_CHECKING:
    from pyramid.request import Request
    from webob import Response

    from .factory import SessionFactory

log = logging.getLogger("pyramid_session_redis")
_MISSING: Any = object()
CSRF_KEY = "_csrft_"
FLASH_PREFIX = "_f_"


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


def _remaining(state: SessionState, current: int) -> int:
    """Seconds until the payload's expiry (minus infinity when it has none)."""
    expires = state.record.expires
    return -(2**62) if expires is None else expires - current


@implementer(ISession)
class RedisSession:
    """A lazily loaded session; see the module docstring."""

    def __init__(
        self,
        request: Request,
        factory: SessionFactory,
        cookie_id: str | None,
        cookie_problem: InvalidSession | None,
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
        self._pending = Pending()
        self._lock: str | None = None  # persistence = lock: our token, while held
        self._locked_key: str | None = None
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
            self._storage = self._factory.store_for(self.request)
        return self._storage

    def _writer(self) -> SessionWriter:
        return SessionWriter(self._store(), self._factory.codec, self._settings, self._conflicted)

    def _conflicted(self, keys: tuple[str, ...]) -> None:
        """Another request changed the same keys: ours were kept; say so, never the values."""
        log_id = self._factory.log_id(self._session_id)
        names = ", ".join(repr(key) for key in keys)
        log.warning("session %s: concurrent changes to %s; this request's kept", log_id, names)
        logger = self._settings.func_conflict_logger
        if logger is not None:
            logger(self.request, SessionWriteConflict(f"session {log_id}: {names}", keys))

    def _load(self) -> SessionState:
        self._register_callbacks()
        session_id = self._cookie_id
        if session_id is None:
            return self._start_new(self._cookie_problem)
        s = self._settings
        ttl = s.timeout if s.refresh_on_read else None
        key = self._factory.key(session_id)
        try:
            raw = self._load_locked(key, ttl) if s.lock_mode else self._store().load(key, ttl)
            if raw is None:
                return self._start_new(InvalidSession_NotInBackend(session_id))
            plain = self._factory.codec.unpack(raw)
            record = self._factory.codec.decode_plain(plain)
        except LegacyPayloadError as exc:
            return self._start_new(InvalidSession_PayloadLegacy(str(exc)))
        except (DecodeError, WrongTypeError) as exc:
            return self._undecodable(exc)
        except SessionBackendError as exc:
            if not s.degraded_mode or isinstance(exc, SessionLockTimeout):
                raise
            return self._degrade(session_id, exc)
        current = now()
        if record.expires is not None and record.expires <= current and self._expiry_enforced:
            return self._start_new(InvalidSession_PayloadTimeout(session_id))
        self._normalize(record)
        state = SessionState(record, raw, plain)
        self._state, self._session_id, self._phase = state, session_id, Phase.LOADED
        self._schedule_refresh(state, current)
        return state

    def _load_locked(self, key: str, ttl: int | None) -> bytes | None:
        """Wait for the session's lock and load; the lock is held until the end."""
        s = self._settings
        lock, raw = acquire_and_load(self._store(), key, s.lock_lease_ms, s.lock_wait, ttl)
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

    @property
    def _expiry_enforced(self) -> bool:
        """A payload's expiry time counts (with no timeout, one set explicitly does too)."""
        return self._settings.payload_expiry or self._settings.timeout is None

    def _normalize(self, record: SessionRecord) -> None:
        """Bring a loaded record to what these settings store.

        The safe codec stores ``timeout`` only when it differs from the factory's, and an
        expiry only when the payload tracks one; 1.8's layout always carries both.
        """
        s = self._settings
        if s.legacy_layout:
            record.timeout = record.timeout or s.timeout
        elif record.timeout == s.timeout:
            record.timeout = None
        if not self._expiry_enforced:
            record.expires = None

    def _schedule_refresh(self, state: SessionState, current: int) -> None:
        """Decide at load time whether this request must refresh the expiry."""
        s = self._settings
        timeout = self.timeout
        if timeout is None or not (s.redis_ttl or s.payload_expiry):
            return  # no expiry at all (1.8's pure LRU mode): nothing to refresh
        if s.refresh_on_read:  # GETEX used the default timeout; fix a per-session one
            self._pending.refresh_due = timeout != s.timeout
            if s.payload_expiry and _remaining(state, current) < timeout // 2:
                # 1.8's layout: keep ``x`` ahead for 1.8 readers, rewriting at most
                # once per half timeout (1.8 itself rewrote on every read).
                state.touch_meta(expires=current + timeout)
            return
        trigger = s.timeout_trigger
        remaining = _remaining(state, current)
        if remaining <= trigger if trigger is not None else remaining < timeout:
            state.touch_meta(expires=current + timeout)

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

    def _report(self, problem: InvalidSession) -> None:
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
    def _on_response(self, request: Request, response: Response) -> None:
        self._response = response
        state = self._state
        if state is None or self._phase is Phase.DEGRADED:
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
        state = self._state
        try:
            if state is not None and self._phase is not Phase.DEGRADED:
                self._finish(state)
        except (SessionBackendError, SessionWriteConflict) as exc:
            log.error("session %s: not saved: %s", self._factory.log_id(self._session_id), exc)
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

    def _finish(self, state: SessionState) -> None:
        s, pending, stored = self._settings, self._pending, self._stored
        plain = state.encode_if_changed(self._factory.codec, s.detect_changes) if stored else None
        action = plan_write(
            stored=stored,
            cookie_sent=pending.cookie_sent,
            has_data=bool(state.data),
            had_data=state.had_data,
            force_store=pending.force_store,
            dirty=plain is not None,
            invalidate_empty=s.invalidate_empty_session,
            refresh_due=pending.refresh_due or pending.ttl_override is not None,
        )
        if action is Write.CREATE:
            self._create(state)
        elif action is Write.WRITE:
            assert plain is not None
            self._write(state, plain)
        elif action is Write.REFRESH:
            self.do_refresh()
        elif action is Write.DELETE:
            key = self._factory.key(self._require_id())
            saved = self._writer().delete_emptied(state, key, self._write_ttl, self._take_lock())
            self._saved(saved)

    def _assign_id(self) -> str:
        self._session_id = self._factory.new_id()
        return self._session_id

    def _require_id(self) -> str:
        return self._session_id or self._assign_id()

    def _write_ttl(self) -> int | None:
        if self._pending.ttl_override is not None:
            return self._pending.ttl_override
        return self.timeout if self._settings.redis_ttl else None

    def _create(self, state: SessionState) -> None:
        factory, pending = self._factory, self._pending
        first = self._require_id()
        session_id = self._writer().create(
            state, factory.key, factory.new_id, first, self._write_ttl()
        )
        self._session_id, self._phase = session_id, Phase.CREATED
        if session_id != first and pending.cookie_sent and self._response is not None:
            factory.cookie.set(
                self._response, session_id, self._cookie_max_age, self._cookie_expires
            )
        pending.force_store, pending.ttl_override = False, None

    def _write(self, state: SessionState, plain: bytes) -> None:
        """Store the plain form ``plain`` of the state's record (see ``Codec``)."""
        key = self._factory.key(self._require_id())
        self._saved(self._writer().save(state, key, plain, self._write_ttl, self._take_lock()))

    def _saved(self, saved: Saved) -> None:
        if saved is Saved.GONE:
            self._gone()
        elif saved is Saved.DELETED:
            self._phase = Phase.NEW
        else:
            self._pending.ttl_override, self._pending.refresh_due = None, False

    def _gone(self) -> None:
        """The session was deleted under us: drop the write, never recreate it."""
        self._report(SessionGone(self._session_id))
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
            session_id, stored = self._session_id, self._stored
        if stored and session_id:
            key, lock = self._factory.key(session_id), self._take_lock()
            if lock is not None:
                self._store().delete_unlock(key, lock)
            else:
                self._store().delete(key)
        self._pending = Pending(invalidated=True)
        self._start_new(None)

    # dict API: reads
    def __getitem__(self, key: str) -> Any:
        state = self._st
        return state.expose(key, state.data[key])

    def get(self, key: str, default: Any = None) -> Any:
        state = self._st
        value = state.data.get(key, _MISSING)
        return default if value is _MISSING else state.expose(key, value)

    def __contains__(self, key: object) -> bool:
        return key in self._st.data

    def has_key(self, key: str) -> bool:
        return key in self._st.data

    def __len__(self) -> int:
        return len(self._st.data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._st.data)

    def keys(self) -> KeysView[str]:
        return self._st.data.keys()

    def iterkeys(self) -> Iterator[str]:
        return iter(self.keys())

    def itervalues(self) -> Iterator[Any]:
        return iter(self.values())

    def iteritems(self) -> Iterator[tuple[str, Any]]:
        return iter(self.items())

    def values(self) -> ValuesView[Any]:
        state = self._st
        state.expose_all()
        return state.data.values()

    def items(self) -> ItemsView[str, Any]:
        state = self._st
        state.expose_all()
        return state.data.items()

    # dict API: writes
    def __setitem__(self, key: str, value: Any) -> None:
        self._st.assign(key, value)

    def __delitem__(self, key: str) -> None:
        self._st.remove(key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        state = self._st
        if key not in state.data:
            state.assign(key, default)
        return state.expose(key, state.data[key])

    def pop(self, key: str, *default: Any) -> Any:
        state = self._st
        if key in state.data:
            value = state.data[key]
            state.remove(key)
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[str, Any]:
        state = self._st
        if not state.data:
            raise KeyError("popitem(): session is empty")
        key = next(reversed(state.data))
        return key, self.pop(key)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        state = self._st
        for key, value in dict(other, **kwargs).items():
            state.assign(key, value)

    def clear(self) -> None:
        state = self._st
        for key in list(state.data):
            state.remove(key)

    def incr(self, key: str, amount: int | float = 1) -> Any:
        """Add ``amount`` to a counter; concurrent increments are never lost."""
        return self._st.incr(key, amount)

    # flash messages and CSRF (same keys as Pyramid's own sessions)
    def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
        state, key = self._st, FLASH_PREFIX + queue
        messages = list(state.data.get(key, ()))
        if allow_duplicate or msg not in messages:
            state.assign(key, [*messages, msg])

    def peek_flash(self, queue: str = "") -> list[Any]:
        return list(self._st.data.get(FLASH_PREFIX + queue, ()))

    def pop_flash(self, queue: str = "") -> list[Any]:
        return list(self.pop(FLASH_PREFIX + queue, ()))

    def new_csrf_token(self) -> str:
        token = secrets.token_hex(32)
        self[CSRF_KEY] = token
        return token

    def get_csrf_token(self) -> str:
        token = self.get(CSRF_KEY)
        return token if isinstance(token, str) else self.new_csrf_token()

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
    def managed_dict(self) -> dict[str, Any]:
        """The raw data dict; any change to it is detected at the end of the request."""
        state = self._st
        state.expose_all()
        state.forced = True
        return state.data

    @property
    def timeout(self) -> int | None:
        """This session's sliding timeout in seconds (None: no timeout)."""
        return self._st.record.timeout or self._settings.timeout

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
        if self._expiry_enforced:
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
        if not self._stored:
            self._create(state)
        else:
            self._write(state, self._factory.codec.encode_plain(state.record))

    def do_refresh(self, force_redis_ttl: int | None = None) -> None:
        """Slide the TTL in Redis now (``force_redis_ttl`` seconds if given)."""
        self._st  # noqa: B018 - loading decides
        ttl = force_redis_ttl if force_redis_ttl is not None else self._write_ttl()
        if self._stored and ttl is not None:
            key, lock = self._factory.key(self._require_id()), self._take_lock()
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
