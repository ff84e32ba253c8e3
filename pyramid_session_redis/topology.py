"""Which Redis deployment the factory talks to, from the options; pure, no I/O.

One of: a single server (``redis_url`` or ``redis_host``/``redis_port``/
``redis_unix_socket_path``), Redis Sentinel (``sentinels``), Redis Cluster
(``cluster_nodes``), client-side shards (``shards``, see :mod:`.sharding`), or a client
of the user's own (``redis_connection_pool``, ``redis_client_callable``). This module
parses the address lists and checks that exactly one deployment was asked for; the
clients are built by :mod:`.connection`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError
from .sharding import url_options

if TYPE_CHECKING:
    from .settings import SessionSettings

Address = tuple[str, int]
SINGLE, SENTINEL, CLUSTER, SHARDS, POOL, CALLABLE = (
    "single",
    "sentinel",
    "cluster",
    "shards",
    "pool",
    "callable",
)
# The options that ask for each deployment (the single server's have defaults: only the
# ones a user actually passed count).
CHOOSING_OPTIONS: dict[str, tuple[str, ...]] = {
    SINGLE: ("redis_url", "redis_host", "redis_port", "redis_unix_socket_path"),
    SENTINEL: ("sentinels",),
    CLUSTER: ("cluster_nodes",),
    SHARDS: ("shards",),
    POOL: ("redis_connection_pool",),
    CALLABLE: ("redis_client_callable",),
}
# 1.8 combinations kept: a URL with a pool or a client callable (which gets ``url=``).
_COMPATIBLE = frozenset((SINGLE, POOL, CALLABLE))
SENTINEL_OPTIONS = ("sentinel_service", "sentinel_username", "sentinel_password", "sentinel_ssl")
_SEPARATORS = re.compile(r"[\s,]+")


def parse_address(value: Any, option: str) -> Address:
    """``"host:port"``, ``"[::1]:port"`` or ``(host, port)`` -> ``(host, port)``."""
    if isinstance(value, str):
        host, colon, port_text = value.rpartition(":")
        if not colon or not host:
            raise ConfigurationError(f"`{option}`: {value!r} is not host:port", option)
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            port: Any = int(port_text)
        except ValueError:
            raise ConfigurationError(f"`{option}`: bad port in {value!r}", option) from None
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        host, port = value
    else:
        raise ConfigurationError(f"`{option}`: {value!r} is not host:port", option)
    if not isinstance(host, str) or not host or isinstance(port, bool):
        raise ConfigurationError(f"`{option}`: {value!r} is not host:port", option)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigurationError(f"`{option}`: bad port in {value!r}", option)
    return host, port


def parse_addresses(value: Any, option: str) -> tuple[Address, ...]:
    """Whitespace- or comma-separated ``host:port`` (or a sequence of them, or of
    ``(host, port)`` pairs) -> a tuple of at least one distinct address."""
    if isinstance(value, str):
        items: list[Any] = [part for part in _SEPARATORS.split(value) if part]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigurationError(f"`{option}` must be host:port addresses", option)
    addresses = tuple(parse_address(item, option) for item in items)
    if not addresses:
        raise ConfigurationError(f"`{option}` needs at least one host:port", option)
    if len(set(addresses)) != len(addresses):
        raise ConfigurationError(f"`{option}` names an address twice", option)
    return addresses


def parse_sentinels(value: Any) -> tuple[Address, ...]:
    return parse_addresses(value, "sentinels")


def parse_cluster_nodes(value: Any) -> tuple[Address, ...] | str:
    """Addresses, or one ``redis://``/``rediss://`` URL of a cluster node (kept as it is)."""
    text = value.strip() if isinstance(value, str) else None
    if text is not None and "://" in text:
        if not text.startswith(("redis://", "rediss://")) or len(text.split()) != 1:
            raise ConfigurationError(
                "`cluster_nodes`: one redis:// or rediss:// URL, or host:port addresses",
                "cluster_nodes",
            )
        try:
            db = url_options(text).get("db", 0)
        except ValueError as exc:
            raise ConfigurationError(f"`cluster_nodes`: {exc}", "cluster_nodes") from exc
        if db != 0:
            raise ConfigurationError(
                "`cluster_nodes`: Redis Cluster has database 0 only", "cluster_nodes"
            )
        return text
    return parse_addresses(value, "cluster_nodes")


def choose(passed: Collection[str]) -> str:
    """The deployment the options ``passed`` (by the user, not defaults) ask for.

    The new ones (Sentinel, Cluster, shards) exclude every other; a single server's
    options, a pool and a client callable combine as in 1.8 (the callable or pool wins).
    """
    asked = {
        kind: [name for name in names if name in passed]
        for kind, names in CHOOSING_OPTIONS.items()
        if any(name in passed for name in names)
    }
    if len(asked) > 1 and not set(asked) <= _COMPATIBLE:
        names = [name for kind_names in asked.values() for name in kind_names]
        raise ConfigurationError(
            f"choose one Redis deployment, got {', '.join(names)}: `sentinels`, "
            "`cluster_nodes` and `shards` exclude each other and the single-server "
            "options, `redis_connection_pool` and `redis_client_callable`",
            *names,
        )
    for kind in (CALLABLE, POOL, SENTINEL, CLUSTER, SHARDS):
        if kind in asked:
            return kind
    return SINGLE


def topology_of(s: SessionSettings) -> str:
    """The deployment of validated settings (their single server's options may be defaults)."""
    values = {
        CALLABLE: s.redis_client_callable,
        POOL: s.redis_connection_pool,
        SENTINEL: s.sentinels,
        CLUSTER: s.cluster_nodes,
        SHARDS: s.shards,
    }
    return next((kind for kind, value in values.items() if value is not None), SINGLE)


def check_topology(s: SessionSettings, passed: Collection[str]) -> None:
    """The options of the chosen deployment fit together; ConfigurationError otherwise."""
    kind = choose(passed)
    strays = [name for name in SENTINEL_OPTIONS if name in passed]
    if kind == SENTINEL:
        if not s.sentinel_service or not isinstance(s.sentinel_service, str):
            raise ConfigurationError(
                "`sentinels` needs `sentinel_service` (the name of the master)",
                "sentinel_service",
                "sentinels",
            )
    elif strays:
        raise ConfigurationError(f"`{strays[0]}` only applies with `sentinels`", *strays)
    if kind == CLUSTER and s.redis_db != 0:
        raise ConfigurationError(
            "Redis Cluster has database 0 only: leave `redis_db` out", "redis_db", "cluster_nodes"
        )
    if kind == SHARDS and "redis_db" in passed:
        raise ConfigurationError(
            "with `shards`, each shard's URL names its database (redis://host:port/db)",
            "redis_db",
            "shards",
        )
    if not isinstance(s.sentinel_ssl, bool):
        raise ConfigurationError("`sentinel_ssl` must be True or False", "sentinel_ssl")
