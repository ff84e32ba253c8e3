"""The session factory: built once from validated settings, bound per request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyramid.path import DottedNameResolver

from .channel import ClientChannel
from .codec import Codec, LegacyCodec, SafeCodec
from .connection import build_channel, client_options, request_client
from .cookie import SessionCookie
from .integrity import SigningCodec
from .keys import PAYLOAD_MAC_PURPOSE, STORAGE_KEY_PURPOSE, StorageKeys, derive_key
from .session import RedisSession
from .settings import (
    SessionSettings,
    build_settings,
    parse_ini_settings,
    resolved_dotted_names,
)
from .store import RedisStore, ServerFeatures, SessionStore
from .user_index import index_key
from .util import log_id, make_id_generator, make_log_key

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request


class SessionFactory:
    """Callable ``request -> RedisSession``; holds everything shared by requests."""

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self.cookie = SessionCookie(settings)
        self.codec = make_codec(settings)
        self.new_id = make_id_generator(settings.id_generator, settings.prefix)
        self.features = ServerFeatures()
        self._client_options = client_options(settings)
        self._log_key = make_log_key(settings.current_secret)  # the first of several
        self._keys = StorageKeys(
            derive_key(secret, STORAGE_KEY_PURPOSE)
            if settings.hash_keys and (secret := settings.secret) is not None
            else None,
            settings.prefix,
        )
        # Built now (no connection is opened before a request needs one): building it
        # lazily let concurrent first requests each build their own.
        self._store: SessionStore | None = None
        channel = build_channel(settings, self._client_options)  # None: per request
        if channel is not None:
            self._store = RedisStore(channel, self.features)

    def __call__(self, request: Request) -> RedisSession:
        """The request's session, loaded: ``request.session`` is where loading happens.

        As in 1.8, ``func_invalid_logger`` is called and load errors raise when
        ``request.session`` is first evaluated; a request that never evaluates it
        costs no Redis command.
        """
        session_id, problem, stale = self.cookie.read(request)
        session = RedisSession(request, self, session_id, problem, stale)
        session._st  # noqa: B018 - loads the session (one round trip for an existing one)
        return session

    def store_for(self, request: Request | None) -> SessionStore:
        """The storage for a request: shared, unless ``redis_client_callable`` is set.

        ``request`` may be None (work outside a request) unless the callable needs one.
        """
        if self.settings.redis_client_callable is not None:
            if request is None:
                raise TypeError("redis_client_callable is set: pass the request, not the registry")
            client = request_client(self.settings, self._client_options, request)
            return RedisStore(ClientChannel(client), self.features)
        assert self._store is not None
        return self._store

    def log_id(self, session_id: str | None) -> str:
        """What logs show for a session id: a keyed hash, never the id itself."""
        return log_id(self._log_key, session_id)

    def key(self, session_id: str) -> str:
        """The Redis key of a session id: the id itself, or with ``hash_keys`` an HMAC of
        it under a key derived from the (current) ``secret`` (see :class:`~.keys.StorageKeys`).
        """
        return self._keys(session_id)

    def user_index(self, userid: str) -> str:
        """The Redis key of a user's index of sessions (see :mod:`.user_index`)."""
        return index_key(self.settings.prefix, userid)


def make_codec(settings: SessionSettings) -> Codec:
    """The safe codec by default; the 1.8 payload layout for user serializers.

    With ``sign_payloads`` either is wrapped in a :class:`~.integrity.SigningCodec`.
    """
    codec: Codec
    if settings.legacy_layout:
        assert settings.serialize is not None and settings.deserialize is not None
        codec = LegacyCodec(settings.serialize, settings.deserialize, settings.max_payload_bytes)
    else:
        codec = SafeCodec(
            settings.compress_threshold, settings.compression, settings.max_payload_bytes
        )
    if settings.sign_payloads:
        assert settings.secret is not None  # validated
        mac_key = derive_key(settings.secret, PAYLOAD_MAC_PURPOSE)
        codec = SigningCodec(codec, mac_key, settings.unsigned_payloads == "reject")
    return codec


def RedisSessionFactory(
    secret: str | bytes | Sequence[str | bytes] | None = None, **options: Any
) -> SessionFactory:
    """Build a Pyramid session factory backed by Redis.

    Takes the keyword options of version 1.8 (see the README's configuration
    reference); ``secret`` may be a list: the first signs cookies, all verify them.
    Invalid options or combinations raise ``ConfigurationError`` (also a
    ``ValueError``) here, at start-up, never per request.
    """
    return SessionFactory(build_settings(secret, **options))


def session_factory_from_settings(settings: dict[str, Any]) -> SessionFactory:
    """Build the factory from ``redis.sessions.*`` application settings."""
    return RedisSessionFactory(**parse_ini_settings(settings))


def includeme(config: Configurator) -> None:
    """``config.include('pyramid_session_redis')``: session factory from the ini file.

    As 1.8 did, dotted names in ``registry.settings`` are replaced by what they name.
    """
    resolver = DottedNameResolver(config.package)
    settings = config.registry.settings
    options = parse_ini_settings(settings, resolver)
    config.set_session_factory(RedisSessionFactory(**options))
    settings.update(resolved_dotted_names(settings, options))


__all__ = ["RedisSessionFactory", "SessionFactory", "includeme", "session_factory_from_settings"]
