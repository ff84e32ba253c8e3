"""Building the redis-py client, and the channel to it, from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

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
        tls_given = [name for name in TLS_OPTIONS if getattr(settings, f"redis_{name}")]
        if settings.redis_ssl or tls_given:
            raise ConfigurationError(
                "TLS options apply to the factory's own connections, not to a given "
                "redis_connection_pool (make the pool with them)",
                "redis_connection_pool",
            )
        return {"connection_pool": settings.redis_connection_pool}
    tls = tls_options(settings)
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_socket_connect_timeout,
        "encoding": settings.redis_encoding,
        "encoding_errors": settings.redis_encoding_errors,
        # One immediate retry for a connection dropped by a restart; none for timeouts,
        # which would multiply the wait while Redis hangs.
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        **tls,
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


TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
CERT_REQS = ("required", "optional", "none")


def tls_options(settings: SessionSettings) -> dict[str, Any]:
    """redis-py's ``ssl_*`` keyword arguments from the ``redis_ssl*`` options, checked.

    TLS is asked for by a ``rediss://`` URL or by ``redis_ssl`` (host and port); the
    certificate options need one of them.
    """
    options: dict[str, Any] = {
        name: getattr(settings, f"redis_{name}")
        for name in TLS_OPTIONS
        if getattr(settings, f"redis_{name}") is not None
    }
    reqs = options.get("ssl_cert_reqs")
    if reqs is not None:
        if reqs.strip().lower() not in CERT_REQS:
            raise ConfigurationError(
                f"redis_ssl_cert_reqs must be one of {', '.join(CERT_REQS)}, got {reqs!r}",
                "redis_ssl_cert_reqs",
            )
        options["ssl_cert_reqs"] = reqs.strip().lower()
    url = settings.redis_url
    if settings.redis_ssl or options:
        plain_url = url is not None and not url.startswith("rediss://")
        no_tls_asked = url is None and not settings.redis_ssl
        if plain_url or no_tls_asked or settings.redis_unix_socket_path:
            names = (["redis_ssl"] if settings.redis_ssl else []) + [
                f"redis_{name}" for name in options
            ]
            raise ConfigurationError(
                f"{', '.join(names)}: TLS needs a rediss:// redis_url, or redis_ssl with "
                "redis_host and redis_port",
                *names,
            )
    if settings.redis_ssl and not url:
        options["ssl"] = True
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
        if not pushes_are_parsed(pool):
            raise ConfigurationError(
                f"redis_url: protocol=3 with hiredis needs redis-py >= 6.2 (redis-py "
                f"{redis.__version__} hands RESP3 push messages over as replies); use "
                "protocol=2, or upgrade redis-py",
                "redis_url",
            )
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


def pushes_are_parsed(pool: Any) -> bool:
    """Whether redis-py reads RESP3 push messages apart from replies on ``pool``'s connections.

    redis-py's hiredis parser learnt it in 6.2; its Python parser always could, and
    RESP2 has no push messages. (redis-py 6 and older speak RESP2 unless asked.)
    """
    resp3 = str(getattr(pool, "connection_kwargs", {}).get("protocol", 2)) == "3"
    return not (resp3 and HIREDIS_AVAILABLE and redis_version() < (6, 2))


def redis_version() -> tuple[int, ...]:
    return tuple(int(part) for part in redis.__version__.split(".")[:2] if part.isdigit())


def request_client(settings: SessionSettings, options: dict[str, Any], request: Request) -> Any:
    """The client from ``redis_client_callable(request, **options)`` (1.8's hook)."""
    assert settings.redis_client_callable is not None
    url = {"url": settings.redis_url} if settings.redis_url else {}
    return settings.redis_client_callable(request, **options, **url)
