"""Building the redis-py client, and the channel to it, from the settings.

One channel per factory, chosen by the deployment (:func:`~.topology.topology_of`)
through :data:`CHANNEL_BUILDERS`: a single server or the shards of ``shards`` over
:class:`~.channel.DirectChannel`, Sentinel and Cluster through redis-py's clients
(which follow failovers and ``MOVED``/``ASK`` redirections). None opens a connection
before a request needs one; a Cluster client, which redis-py cannot build without
asking a node for the slot map, is built by the first request that needs it
(:class:`~.channel.LazyChannel`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel
from redis.utils import HIREDIS_AVAILABLE

from .channel import ClientChannel, CommandChannel, DirectChannel, LazyChannel
from .exceptions import ConfigurationError
from .settings import SessionSettings
from .sharded_channel import ShardedChannel
from .sharding import slot_table
from .topology import CLUSTER, POOL, SENTINEL, SHARDS, SINGLE

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
    if settings.topology not in (SINGLE, POOL) and settings.redis_client_callable is None:
        return common_options(settings)  # the deployment's builder adds the rest
    options = {**common_options(settings), **tls_options(settings)}
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


def common_options(settings: SessionSettings) -> dict[str, Any]:
    """Timeouts, encoding, one retry, and the data nodes' user (if given): for every server."""
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_socket_connect_timeout,
        "encoding": settings.redis_encoding,
        "encoding_errors": settings.redis_encoding_errors,
        # No resend by redis-py: a command whose connection dropped may have run (its
        # reply lost); the channels resend only what is safe (ClientChannel: reads).
        # redis-py's pool replaces a connection the server closed while idle anyway.
        "retry": Retry(NoBackoff(), 0),
    }
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    return options


TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
CERT_REQS = ("required", "optional", "none")


def tls_options(settings: SessionSettings) -> dict[str, Any]:
    """redis-py's ``ssl_*`` keyword arguments from the ``redis_ssl*`` options, checked.

    TLS is asked for by a ``rediss://`` URL or by ``redis_ssl`` (host and port); the
    certificate options need one of them.
    """
    options = certificate_options(settings)
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


def certificate_options(settings: SessionSettings) -> dict[str, Any]:
    """redis-py's ``ssl_*`` certificate arguments from the ``redis_ssl_*`` options, checked."""
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
    return options


def _unused_certificates(settings: SessionSettings, reason: str) -> None:
    names = [f"redis_{name}" for name in certificate_options(settings)]
    if names:
        raise ConfigurationError(f"{', '.join(names)}: {reason}", *names)


def build_client(settings: SessionSettings, options: dict[str, Any]) -> redis.Redis:
    """The shared client (redis-py clients are thread-safe and pool connections)."""
    if settings.redis_url and "connection_pool" not in options:
        return redis.Redis.from_url(settings.redis_url, **options)
    return redis.Redis(**options)


def build_channel(settings: SessionSettings, options: dict[str, Any]) -> CommandChannel | None:
    """The factory's shared channel; None with ``redis_client_callable`` (per request)."""
    if settings.redis_client_callable is not None:
        return None
    return CHANNEL_BUILDERS[settings.topology](settings, options)


def single_channel(settings: SessionSettings, options: dict[str, Any]) -> CommandChannel:
    """Direct connections to one server, unless the user supplied the pool."""
    client = build_client(settings, options)
    if settings.redis_connection_pool is None:
        return server_channel(client, "redis_url")
    pool = client.connection_pool
    if getattr(pool, "connection_kwargs", {}).get("decode_responses"):
        # Its clients would decode every payload (binary) as text and fail on each load.
        raise ConfigurationError(
            "redis_connection_pool: a pool made with decode_responses=True cannot carry "
            "session payloads (bytes); give one without it",
            "redis_connection_pool",
        )
    return ClientChannel(client)


def server_channel(client: redis.Redis, option: str) -> CommandChannel:
    """Direct connections made as ``client``'s pool makes them (else the client itself)."""
    pool = client.connection_pool
    if not pushes_are_parsed(pool):
        raise ConfigurationError(
            f"{option}: protocol=3 with hiredis needs redis-py >= 6.2 (redis-py "
            f"{redis.__version__} hands RESP3 push messages over as replies); use "
            "protocol=2, or upgrade redis-py",
            option,
        )
    if DirectChannel.suits(pool):
        return DirectChannel(pool)  # reads bytes whatever decode_responses says
    return ClientChannel(client)


def sentinel_channel(settings: SessionSettings, options: dict[str, Any]) -> CommandChannel:
    """The master of ``sentinel_service``, asked of the sentinels at each (re)connection.

    redis-py's ``Sentinel`` opens no connection until a command is sent.
    """
    certificates = certificate_options(settings)
    if certificates and not (settings.redis_ssl or settings.sentinel_ssl):
        _unused_certificates(settings, "certificates need redis_ssl or sentinel_ssl")
    data_tls = {"ssl": True, **certificates} if settings.redis_ssl else {}
    sentinel_tls = {"ssl": True, **certificates} if settings.sentinel_ssl else {}
    sentinel_kwargs = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_socket_connect_timeout,
        "username": settings.sentinel_username,
        "password": settings.sentinel_password,
        # redis-py's default (three retries, backing off for seconds) would hold every
        # request for ~8 s per sentinel that is down; the next sentinel is asked instead.
        "retry": Retry(NoBackoff(), 0),
        **sentinel_tls,
    }
    assert settings.sentinels is not None and settings.sentinel_service is not None
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(settings.sentinels),
        sentinel_kwargs=sentinel_kwargs,
        db=settings.redis_db,
        password=settings.redis_password,
        **options,
        **data_tls,
    )
    master = sentinel.master_for(settings.sentinel_service)  # type: ignore[no-untyped-call]
    return ClientChannel(master)


def cluster_channel(settings: SessionSettings, options: dict[str, Any]) -> CommandChannel:
    """A ``RedisCluster`` client, built by the first request that needs it.

    redis-py's ``RedisCluster(...)`` asks a node for the slot map in its constructor
    (there is no public way to defer that): building it at start-up would keep an
    application from starting while the cluster is down.
    """
    nodes = settings.cluster_nodes
    url_tls = isinstance(nodes, str) and nodes.startswith("rediss://")
    certificates = certificate_options(settings)
    if certificates and not (settings.redis_ssl or url_tls):
        _unused_certificates(settings, "certificates need redis_ssl or a rediss:// cluster URL")
    kwargs = {
        **{name: value for name, value in options.items() if name != "retry"},
        **no_cluster_resends(),
        **({"ssl": True} if settings.redis_ssl else {}),
        **(certificates if settings.redis_ssl or url_tls else {}),
    }
    if settings.redis_password is not None:
        kwargs["password"] = settings.redis_password

    def build() -> RedisCluster:
        try:
            if isinstance(nodes, str):
                return RedisCluster.from_url(nodes, **kwargs)
            assert nodes is not None
            startup = [ClusterNode(h, p) for h, p in nodes]  # type: ignore[no-untyped-call]
            return RedisCluster(startup_nodes=startup, **kwargs)
        except RedisClusterException as exc:  # not a RedisError: "cannot be connected"
            raise RedisConnectionError(f"Redis Cluster: {exc}") from exc

    return LazyChannel(build)


def no_cluster_resends() -> dict[str, Any]:
    """``RedisCluster`` arguments for sending no command twice after a connection error.

    Its own retries resend any command after a ``ConnectionError`` or timeout (a write
    that ran would conflict with itself); :class:`~.channel.ClientChannel` resends reads.
    redis-py before 6 counted them in ``cluster_error_retry_attempts`` (later deprecated).
    """
    if redis_version() < (6, 0):
        return {"retry": Retry(NoBackoff(), 0), "cluster_error_retry_attempts": 0}
    return {"retry": Retry(NoBackoff(), 0)}


def shard_clients(settings: SessionSettings, options: dict[str, Any]) -> list[redis.Redis]:
    """One client per shard of ``shards``, in the order listed (the console tool walks them)."""
    assert settings.shards is not None
    if settings.redis_ssl:
        raise ConfigurationError(
            "with `shards`, ask for TLS with rediss:// shard URLs", "redis_ssl", "shards"
        )
    tls_urls = [shard for shard in settings.shards if shard.url.startswith("rediss://")]
    if not tls_urls:
        _unused_certificates(settings, "certificates need rediss:// shard URLs")
    certificates = certificate_options(settings)
    if settings.redis_password is not None:
        options = {**options, "password": settings.redis_password}
    return [
        redis.Redis.from_url(shard.url, **options, **(certificates if shard in tls_urls else {}))
        for shard in settings.shards
    ]


def sharded_channel(settings: SessionSettings, options: dict[str, Any]) -> CommandChannel:
    """One channel of direct connections per shard, keys routed by the slot table."""
    assert settings.shards is not None
    channels = [server_channel(client, "shards") for client in shard_clients(settings, options)]
    return ShardedChannel(channels, slot_table(settings.shards))


CHANNEL_BUILDERS: dict[str, Callable[[SessionSettings, dict[str, Any]], CommandChannel]] = {
    SINGLE: single_channel,
    POOL: single_channel,
    SENTINEL: sentinel_channel,
    CLUSTER: cluster_channel,
    SHARDS: sharded_channel,
}


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
