"""What the console tool works on: the app's session factory and its Redis.

Read from the application's ini file the way ``pshell``/``proutes`` read it (plaster,
``file.ini#name``), or from ``--redis-url`` alone. The factory is the app's own, so
decoding (its codec), the Redis key of an id (``factory.key``) and the keyed hash shown
instead of ids (``factory.log_id``) are what the application uses.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import RedisCluster

from ..channel import ClientChannel
from ..connection import build_channel, build_client, client_options, shard_clients
from ..factory import RedisSessionFactory, SessionFactory
from ..keys import slot_of
from ..settings import parse_ini_settings
from ..sharding import redacted, slot_table
from ..store import RedisStore, ServerFeatures
from ..topology import CLUSTER, SENTINEL

SETTINGS_PREFIX = "redis.sessions."
# Replaced by --redis-url: the other ways of naming a Redis.
CONNECTION_SETTINGS = (
    "redis_host",
    "redis_port",
    "redis_db",
    "redis_password",
    "redis_unix_socket_path",
    "redis_connection_pool",
    "redis_client_callable",
    "client_callable",
    "sentinels",
    "sentinel_service",
    "sentinel_username",
    "sentinel_password",
    "sentinel_ssl",
    "cluster_nodes",
    "shards",
)
# Deployments whose client the factory's channel holds (``channel.client``).
CLIENT_TOPOLOGIES = (SENTINEL, CLUSTER)
CLUSTER_OPTIONS = ("host", "port", "username", "password", "socket_timeout")
_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")


class TargetError(Exception):
    """The ini file, the settings or the Redis cannot be used; the message says why."""


@dataclass
class Target:
    """The app's session factory, a client to its Redis and the keys to walk.

    With ``shards``, ``shards`` holds one client per shard (``client`` is the first) and
    ``table`` the slot table that routes a key to its shard, as the application does.
    """

    factory: SessionFactory
    client: Any  # redis.Redis, or redis.cluster.RedisCluster
    pattern: str
    where: str
    owns_client: bool = True
    """False for the application's client (from ``redis_client_callable``): not ours to
    close."""
    shards: tuple[Any, ...] = ()
    table: tuple[int, ...] = ()

    def close(self) -> None:
        if self.owns_client:
            for client in self.shards or (self.client,):
                client.close()

    @property
    def is_cluster(self) -> bool:
        return isinstance(self.client, RedisCluster)

    def nodes(self) -> list[Any]:
        """One client per server to walk: every master of a Cluster, every shard, else
        the one Redis."""
        if self.shards:
            return list(self.shards)
        if not self.is_cluster:
            return [self.client]
        return [self.client.get_redis_connection(node) for node in self.client.get_primaries()]

    def client_for(self, key: str) -> Any:
        """The client of the server that holds ``key`` (a Cluster client routes itself)."""
        if self.shards:
            return self.shards[self.table[slot_of(key)]]
        return self.client

    def store(self, client: Any) -> RedisStore:
        """The library's storage operations over ``client``, one of :meth:`nodes` (with
        ``shards``, ``client`` alone would be the first shard's)."""
        return RedisStore(ClientChannel(client), ServerFeatures())


def load_settings(config_uri: str) -> dict[str, Any]:
    """The ``[app:...]`` settings of an ini file, as ``pshell`` reads them (plaster)."""
    from pyramid.paster import get_appsettings  # plaster, with PasteDeploy's ini format

    try:
        return dict(get_appsettings(config_uri))
    except Exception as exc:  # plaster, PasteDeploy and configparser raise many kinds
        raise TargetError(f"cannot read {config_uri}: {exc}") from exc


def factory_options(
    settings: dict[str, Any], redis_url: str | None, prefix: str | None
) -> dict[str, Any]:
    """The factory's options from ``redis.sessions.*`` settings (``--redis-url`` and
    ``--prefix`` replacing the ini's)."""
    options = {key: value for key, value in settings.items() if key.startswith(SETTINGS_PREFIX)}
    if prefix is not None:
        options[SETTINGS_PREFIX + "prefix"] = prefix
    if redis_url is not None:
        for name in CONNECTION_SETTINGS:
            options.pop(SETTINGS_PREFIX + name, None)
        options[SETTINGS_PREFIX + "redis_url"] = redis_url
    if not options.get(SETTINGS_PREFIX + "secret"):
        # Without the app's secret, keyed hashes differ from the app's logs; nothing else
        # the tool does needs it.
        options[SETTINGS_PREFIX + "secret"] = secrets.token_hex(32)
    try:
        return parse_ini_settings(options)
    except (ValueError, TypeError, ImportError) as exc:
        raise TargetError(f"invalid session settings: {exc}") from exc


def build_factory(options: dict[str, Any]) -> SessionFactory:
    try:
        return RedisSessionFactory(**options)
    except (ValueError, TypeError, ImportError) as exc:
        raise TargetError(f"invalid session settings: {exc}") from exc


def connect(factory: SessionFactory) -> tuple[Any, bool]:
    """A client to the factory's Redis, checked with PING (a Cluster client on a Cluster),
    and whether the tool made it (rather than the application's client callable)."""
    settings = factory.settings
    options = client_options(settings)
    try:
        if settings.topology in CLIENT_TOPOLOGIES:
            # the master of a Sentinel service, or a RedisCluster (built now)
            channel: Any = build_channel(settings, options)
            client, owned = channel.client, True
        elif settings.redis_client_callable is not None:
            url = {"url": settings.redis_url} if settings.redis_url else {}
            client, owned = settings.redis_client_callable(None, **options, **url), False
        else:
            client, owned = build_client(settings, options), True
        client.ping()
        if isinstance(client, redis.Redis) and client.info("cluster").get("cluster_enabled"):
            kwargs = client.connection_pool.connection_kwargs
            if owned:
                client.close()
            client = RedisCluster(**{k: kwargs[k] for k in CLUSTER_OPTIONS if k in kwargs})
            owned = True
    except (redis.RedisError, OSError, ValueError) as exc:
        raise TargetError(f"cannot use Redis at {describe(factory)}: {exc}") from exc
    return client, owned


def connect_shards(factory: SessionFactory) -> tuple[Any, ...]:
    """One client per shard of ``shards``, each checked with PING."""
    settings = factory.settings
    assert settings.shards is not None
    clients = tuple(shard_clients(settings, client_options(settings)))
    for shard, client in zip(settings.shards, clients, strict=True):
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            for opened in clients:
                opened.close()
            raise TargetError(f"cannot use the shard {redacted(shard.url)}: {exc}") from exc
    return clients


def describe(factory: SessionFactory) -> str:
    """Where the factory's Redis is, without a password."""
    settings = factory.settings
    if settings.redis_url:
        return redacted(settings.redis_url)
    if settings.redis_client_callable is not None:
        return "the client of redis_client_callable"
    if settings.sentinels is not None:
        sentinels = " ".join(f"{host}:{port}" for host, port in settings.sentinels)
        return f"the master {settings.sentinel_service!r} of the sentinels {sentinels}"
    if settings.shards is not None:
        return "the shards " + " ".join(redacted(shard.url) for shard in settings.shards)
    if settings.cluster_nodes is not None:
        nodes = settings.cluster_nodes
        listed = nodes if isinstance(nodes, str) else " ".join(f"{h}:{p}" for h, p in nodes)
        return "the cluster at " + redacted(listed)
    if settings.redis_unix_socket_path:
        return f"unix://{settings.redis_unix_socket_path}"
    return f"{settings.redis_host}:{settings.redis_port}/{settings.redis_db}"


def key_pattern(factory: SessionFactory, match: str | None) -> str:
    """The SCAN ``MATCH`` pattern: ``--match``, else the id prefix (escaped) and ``*``."""
    if match is not None:
        return match
    return _GLOB_SPECIALS.sub(r"\\\1", factory.settings.prefix or "") + "*"


def open_target(
    config_uri: str | None,
    redis_url: str | None,
    prefix: str | None = None,
    match: str | None = None,
) -> Target:
    if config_uri is None and redis_url is None:
        raise TargetError("give the application's ini file (--config) or --redis-url")
    settings = load_settings(config_uri) if config_uri is not None else {}
    options = factory_options(settings, redis_url, prefix)
    factory = build_factory(options)
    where = describe(factory)
    shards = factory.settings.shards
    if shards is not None:
        clients = connect_shards(factory)
        pattern = key_pattern(factory, match)
        return Target(factory, clients[0], pattern, where, shards=clients, table=slot_table(shards))
    client, owned = connect(factory)
    if isinstance(client, RedisCluster) and factory.settings.redis_client_callable is None:
        # The library's own operations (the user index) go through the Cluster client.
        own = {k: v for k, v in options.items() if k != "cluster_nodes"}
        factory = build_factory({**own, "redis_client_callable": _returning(client)})
    return Target(factory, client, key_pattern(factory, match), where, owned)


def _returning(client: Any) -> Any:
    def redis_client_callable(request: Any, **options: Any) -> Any:
        return client

    return redis_client_callable
