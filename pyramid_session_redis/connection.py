"""Building the redis-py client, and the channel to it, from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from .channel import ClientChannel, CommandChannel, DirectChannel
from .exceptions import ConfigurationError
from .settings import SessionSettings

if TYPE_CHECKING:
    from pyramid.request import Request


def client_options(settings: SessionSettings) -> dict[str, Any]:
    """Keyword arguments for redis-py's client built from the ``redis_*`` options.

    Computed once per factory (see :class:`~pyramid_session_redis.factory.SessionFactory`).
    """
    if settings.redis_connection_pool is not None:
        return {"connection_pool": settings.redis_connection_pool}
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_socket_connect_timeout,
        "encoding": settings.redis_encoding,
        "encoding_errors": settings.redis_encoding_errors,
        # One immediate retry for a connection dropped by a restart; none for timeouts,
        # which would multiply the wait while Redis hangs.
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    if settings.redis_url:
        return options
    options.update(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        password=settings.redis_password,
    )
    if settings.redis_unix_socket_path:
        options["unix_socket_path"] = settings.redis_unix_socket_path
        options.pop("socket_connect_timeout")
    return options


def build_client(settings: SessionSettings, options: dict[str, Any]) -> redis.Redis:
    """The shared client (redis-py clients are thread-safe and pool connections)."""
    if settings.redis_url and "connection_pool" not in options:
        return redis.Redis.from_url(settings.redis_url, **options)
    return redis.Redis(**options)


def build_channel(settings: SessionSettings, options: dict[str, Any]) -> CommandChannel:
    """The shared channel: direct connections unless the user supplied the pool."""
    client = build_client(settings, options)
    pool = client.connection_pool
    if settings.redis_connection_pool is None:
        if DirectChannel.suits(pool):
            return DirectChannel(pool)  # reads bytes whatever decode_responses says
    elif getattr(pool, "connection_kwargs", {}).get("decode_responses"):
        # Its clients would decode every payload (binary) as text and fail on each load.
        raise ConfigurationError(
            "redis_connection_pool: a pool made with decode_responses=True cannot carry "
            "session payloads (bytes); give one without it",
            "redis_connection_pool",
        )
    return ClientChannel(client)


def request_client(settings: SessionSettings, options: dict[str, Any], request: Request) -> Any:
    """The client from ``redis_client_callable(request, **options)`` (1.8's hook)."""
    assert settings.redis_client_callable is not None
    url = {"url": settings.redis_url} if settings.redis_url else {}
    return settings.redis_client_callable(request, **options, **url)
