"""``RedisSession``: Pyramid's ``ISession`` over one Redis key.

Constructing a session does no I/O. The first access loads the payload in one
round trip (the sliding TTL refresh rides on it); the end of the request sends
at most one command, chosen by :mod:`pyramid_session_redis.plan`.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
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
    SessionWriteConflict,
)
from .plan import Cookie, Write, plan_cookie, plan_write
from .state import SessionState
from .store import CasOutcome, SessionStore, WrongTypeError
from .util import now

if TYPE_CHECKING:
    from pyramid.request import Request
    from webob import Response

    from .factory import SessionFactory

log = logging.getLogger("pyramid_session_redis")
_MISSING: Any = object()
CSRF_KEY = "_csrft_"
FLASH_PREFIX = "_f_"
CREATE_ATTEMPTS = 3
BACKOFF_AFTER = 2  # compare-and-set conflicts merged at once before backing off
MAX_BACKOFF = 0.05  # seconds


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
        self.request = request
        self._factory = factory
        self._settings = factory.settings
        self._cookie_id = cookie_id  # the verified id the request's cookie carried
        self._cookie_problem = cookie_problem
        self._had_cookie = cookie_id is not None or isinstance(cookie_problem, CookieInvalid)
        self._state: SessionState | None = None
        self._storage: SessionStore | None = None
        self._session_id: str | None = None
        self._stored = False  # a Redis key backs this session
        self._new = True
        self._callbacks = False
        self._response: Response | None = None
        self._cookie_sent = False
        self._force_store = False  # ensure_id(): store even an empty new session
        self._invalidated = False
        self._recookie = False
        self._cookie_max_age = self._settings.cookie_max_age
        self._cookie_expires = self._settings.cookie_expires
        self._refresh_due = False
        self._ttl_override: int | None = None
        self._degraded = False  # Redis was down at load time and degraded_mode is on

    # -- loading ------------------------------------------------------------------
    @property
    def _st(self) -> SessionState:
        state = self._state
        return state if state is not None else self._load()

    def _store(self) -> SessionStore:
        if self._storage is None:
            self._storage = self._factory.store_for(self.request)
        return self._storage

    def _load(self) -> SessionState:
        self._register_callbacks()
        session_id = self._cookie_id
        if session_id is None:
            return self._start_new(self._cookie_problem)
        s = self._settings
        ttl = s.timeout if s.refresh_on_read else None
        try:
            raw = self._store().load(self._factory.key(session_id), ttl)
            if raw is None:
                return self._start_new(InvalidSession_NotInBackend(session_id))
            plain = self._factory.codec.unpack(raw)
            record = self._factory.codec.decode_plain(plain)
        except LegacyPayloadError as exc:
            return self._start_new(InvalidSession_PayloadLegacy(str(exc)))
        except (DecodeError, WrongTypeError) as exc:
            return self._undecodable(exc)
        except SessionBackendError as exc:
            if not s.degraded_mode:
                raise
            return self._degrade(session_id, exc)
        current = now()
        if record.expires is not None and record.expires <= current and self._expiry_enforced:
            return self._start_new(InvalidSession_PayloadTimeout(session_id))
        self._normalize(record)
        state = SessionState(record, raw, plain)
        self._state, self._session_id, self._stored, self._new = state, session_id, True, False
        self._schedule_refresh(state, current)
        return state

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
            self._refresh_due = timeout != s.timeout
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
        self._degraded = True
        return self._start_new(BackendUnavailable(str(exc), exc))

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
        self._state, self._session_id, self._stored, self._new = state, None, False, True
        return state

    def _report(self, problem: InvalidSession) -> None:
        logger = self._settings.func_invalid_logger
        if logger is not None:
            logger(self.request, problem)

    def _register_callbacks(self) -> None:
        if not self._callbacks:
            self._callbacks = True
            self.request.add_response_callback(self._on_response)
            self.request.add_finished_callback(self._on_finished)

    # -- end of request -------------------------------------------------------------
    def _on_response(self, request: Request, response: Response) -> None:
        self._response = response
        state = self._state
        if state is None or self._degraded:
            return
        s = self._settings
        cookie = self._factory.cookie
        failed = not s.cookie_on_exception and getattr(request, "exception", None) is not None
        will_create = not self._stored and (bool(state.data) or self._force_store)
        emptied = self._stored and s.invalidate_empty_session and state.had_data and not state.data
        action = plan_cookie(
            allowed=cookie.allowed(response),
            failed=failed,
            had_cookie=self._had_cookie,
            will_create=will_create,
            will_delete=self._invalidated or emptied,
            id_changed=self._stored and self._session_id != self._cookie_id,
            recookie=self._recookie and (self._stored or will_create),
        )
        if action is Cookie.SET:
            session_id = self._session_id or self._assign_id()
            cookie.set(response, session_id, self._cookie_max_age, self._cookie_expires)
            self._cookie_sent = True
        elif action is Cookie.EXPIRE:
            cookie.expire(response)

    def _on_finished(self, request: Request) -> None:
        state = self._state
        if state is None or self._degraded:
            return
        try:
            self._finish(state)
        except (SessionBackendError, SessionWriteConflict) as exc:
            log.error("session %s: not saved: %s", self._factory.log_id(self._session_id), exc)
            if self._cookie_sent and self._response is not None:
                # The data never reached Redis: take back the cookie that points to it.
                self._response.unset_cookie(self._factory.cookie.name, strict=False)
            raise

    def _finish(self, state: SessionState) -> None:
        s = self._settings
        plain = (
            state.encode_if_changed(self._factory.codec, s.detect_changes) if self._stored else None
        )
        action = plan_write(
            stored=self._stored,
            cookie_sent=self._cookie_sent,
            has_data=bool(state.data),
            had_data=state.had_data,
            force_store=self._force_store,
            dirty=plain is not None,
            invalidate_empty=s.invalidate_empty_session,
            refresh_due=self._refresh_due or self._ttl_override is not None,
        )
        if action is Write.CREATE:
            self._create(state)
        elif action is Write.WRITE:
            assert plain is not None
            self._write(state, plain)
        elif action is Write.REFRESH:
            self.do_refresh()
        elif action is Write.DELETE:
            self._store().delete(self._factory.key(self._require_id()))
            self._stored = False

    def _assign_id(self) -> str:
        self._session_id = self._factory.new_id()
        return self._session_id

    def _require_id(self) -> str:
        return self._session_id or self._assign_id()

    def _write_ttl(self) -> int | None:
        if self._ttl_override is not None:
            return self._ttl_override
        return self.timeout if self._settings.redis_ttl else None

    def _create(self, state: SessionState) -> None:
        codec = self._factory.codec
        plain = codec.encode_plain(state.record)
        payload = codec.pack(plain)
        for _ in range(CREATE_ATTEMPTS):
            key = self._factory.key(self._require_id())
            if self._store().create(key, payload, self._write_ttl()):
                break
            self._assign_id()  # id collision: never touch someone else's session
            if self._cookie_sent and self._response is not None:
                self._factory.cookie.set(
                    self._response, self._require_id(), self._cookie_max_age, self._cookie_expires
                )
        else:
            raise SessionBackendError("could not find a free session id")
        self._stored, self._force_store, self._ttl_override = True, False, None
        state.mark_persisted(payload, plain)

    def _write(self, state: SessionState, plain: bytes) -> None:
        """Store the plain form ``plain`` of the state's record (see ``Codec``)."""
        key = self._factory.key(self._require_id())
        store, codec, s = self._store(), self._factory.codec, self._settings
        payload = codec.pack(plain)
        if s.persistence == "overwrite":
            if store.overwrite(key, payload, self._write_ttl()):
                return self._written(state, payload, plain)
            return self._gone(state)
        for attempt in range(s.cas_retries + 1):
            assert state.loaded is not None
            try:
                outcome, current = store.compare_and_set(
                    key, state.loaded, payload, self._write_ttl()
                )
            except WrongTypeError:  # replaced by a non-string value: not ours to keep
                return self._gone(state)
            if outcome is CasOutcome.WRITTEN:
                return self._written(state, payload, plain)
            if outcome is CasOutcome.GONE or current is None:
                return self._gone(state)
            try:
                if attempt >= BACKOFF_AFTER:
                    # Heavy contention: let the other writers through, then merge onto a
                    # fresh copy (the one the script returned has aged meanwhile).
                    time.sleep(random.uniform(0, min(MAX_BACKOFF, 0.001 * 2**attempt)))
                    current = store.load(key, None)
                    if current is None:
                        return self._gone(state)
                fresh_plain = codec.unpack(current)
                fresh = codec.decode_plain(fresh_plain)
            except (DecodeError, WrongTypeError):  # replaced by garbage: not ours to keep
                return self._gone(state)
            state.rebase(fresh, current, fresh_plain, codec, s.detect_changes)
            plain = codec.encode_plain(state.record)
            if plain == fresh_plain:  # our changes are in Redis already
                return self._written(state, current, plain)
            payload = codec.pack(plain)
        raise SessionWriteConflict(f"gave up after {s.cas_retries + 1} conflicting writes")

    def _written(self, state: SessionState, payload: bytes, plain: bytes) -> None:
        state.mark_persisted(payload, plain)
        self._ttl_override = None
        self._refresh_due = False

    def _gone(self, state: SessionState) -> None:
        """The session was deleted under us: drop the write, never recreate it."""
        self._report(SessionGone(self._session_id))
        self._stored = False
        if self._response is not None and self._factory.cookie.allowed(self._response):
            self._factory.cookie.expire(self._response)
        self._start_new(None)

    # -- ISession -------------------------------------------------------------------
    @property
    def new(self) -> bool:
        """True if the session was created by this request."""
        self._st  # noqa: B018 - loading decides
        return self._new

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
            self._store().delete(self._factory.key(session_id))
        self._invalidated = True
        self._force_store = self._recookie = self._cookie_sent = self._refresh_due = False
        self._ttl_override = None
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
            self._force_store = True
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
            self._ttl_override = max(1, int(expires_epoch) - now())

    def adjust_cookie_expires(self, expires: Any) -> None:
        """Re-send the cookie with this ``Expires`` (cookie only, not the session)."""
        self._st  # noqa: B018 - loading decides
        self._cookie_expires, self._recookie = expires, True

    def adjust_cookie_max_age(self, max_age: Any) -> None:
        """Re-send the cookie with this ``Max-Age`` (cookie only, not the session)."""
        self._st  # noqa: B018 - loading decides
        self._cookie_max_age, self._recookie = max_age, True

    def please_recookie(self) -> None:
        """Re-send the session cookie on this response."""
        self._st  # noqa: B018 - loading decides
        self._recookie = True

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
            self._store().refresh(self._factory.key(self._require_id()), ttl)
        self._refresh_due, self._ttl_override = False, None
