"""Client-side sharding, the pure part: the ``shards`` spec and the slot table.

Every key is routed by its Redis Cluster hash slot (:func:`~.keys.slot_of`: CRC16,
hash tags honoured), so the keys one operation touches together (a session and its
lock, the old and new key of ``regenerate_id()``) are always on one shard. The 16,384
slots are mapped to shards once, at start-up, by weighted rendezvous hashing (highest
random weight): each slot goes to the shard with the highest score
``-weight / ln(u)``, ``u`` in (0, 1) a stable hash of (shard name, slot). So a shard
gets a share of the slots proportional to its weight, adding a shard moves only the
slots it wins (about ``its weight / total weight`` of them, all to it), and removing one
moves only its own slots.

A shard's name is where its data lives: host, port and database (a unix socket's path
and database), without credentials or connection options, so that rotating a password
or changing a timeout moves nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any

from redis import ConnectionPool
from redis.crc import REDIS_CLUSTER_HASH_SLOTS

from .exceptions import ConfigurationError

OPTION = "shards"


@dataclasses.dataclass(frozen=True)
class Shard:
    """One server of ``shards``: its URL (as ``redis_url`` takes it) and weight."""

    url: str
    weight: float = 1.0

    @property
    def name(self) -> str:
        """Where its data lives (no credentials, no options): what the slot table hashes."""
        return shard_name(self.url)


def url_options(url: str) -> dict[str, Any]:
    """What redis-py reads from a Redis URL (``host``, ``port``, ``db``, ``path``...).

    Through its public ``ConnectionPool.from_url``, which opens no connection.
    """
    return dict(ConnectionPool.from_url(url).connection_kwargs)


def shard_name(url: str) -> str:
    """``host:port/db`` (``unix:path/db`` for a unix socket) of a Redis URL."""
    options = url_options(url)
    db = int(options.get("db", 0))
    if "path" in options or url.startswith("unix://"):
        return f"unix:{options.get('path', '')}/{db}"
    return f"{str(options.get('host', 'localhost')).lower()}:{options.get('port', 6379)}/{db}"


def split_weight(token: str) -> tuple[str, str | None]:
    """``url[=weight]`` -> (url, weight text or None).

    A trailing ``=N`` is a weight unless it ends a query component of the URL: when the
    part before it has a query string, it is the weight only if the last query
    component there has its own ``=`` (``…?socket_timeout=5`` has no weight,
    ``…?socket_timeout=5=2`` has weight 2).
    """
    head, equals, tail = token.rpartition("=")
    if not equals or "://" not in head or re.search(r"[/@:?&]", tail):
        return token, None  # no "=", or one inside the URL (user info, path)
    if "?" in head:
        last_component = re.split(r"[?&]", head)[-1]
        if "=" not in last_component:
            return token, None
    return head, tail


def parse_weight(text: str, token: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        weight = math.nan
    if not 0 < weight < math.inf:
        raise ConfigurationError(
            f"`{OPTION}`: the weight of {redacted(token)!r} must be a number > 0", OPTION
        )
    return weight


def parse_shard(value: Any) -> Shard:
    if isinstance(value, Shard):
        shard = value
    elif isinstance(value, str):
        url, weight = split_weight(value.strip())
        shard = Shard(url, 1.0 if weight is None else parse_weight(weight, value))
    else:
        raise ConfigurationError(f"`{OPTION}`: {value!r} is not url[=weight]", OPTION)
    try:
        shard.name  # noqa: B018 - checks the URL
    except ValueError as exc:
        raise ConfigurationError(f"`{OPTION}`: {redacted(shard.url)!r}: {exc}", OPTION) from exc
    return shard


def parse_shards(value: Any) -> tuple[Shard, ...]:
    """``url[=weight] url[=weight] …`` (or a sequence of them) -> the shards, checked."""
    if isinstance(value, str):
        items: Sequence[Any] = value.split()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ConfigurationError(f"`{OPTION}` must be url[=weight] entries", OPTION)
    shards = tuple(parse_shard(item) for item in items)
    if not shards:
        raise ConfigurationError(f"`{OPTION}` needs at least one shard", OPTION)
    names = [shard.name for shard in shards]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigurationError(f"`{OPTION}` names a server twice: {', '.join(twice)}", OPTION)
    return shards


def redacted(url: str) -> str:
    """``url`` with the password of its user info masked (for error messages)."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def score(name: str, slot: int, weight: float) -> float:
    """The rendezvous score of shard ``name`` for ``slot``: ``-weight / ln(u)``."""
    digest = hashlib.blake2b(f"{name}\0{slot}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 0.5) / 2**64  # in (0, 1), never 0 or 1
    return -weight / math.log(u)


def slot_table(shards: Sequence[Shard]) -> tuple[int, ...]:
    """For each hash slot, the index in ``shards`` of the shard that holds it."""
    names = [(shard.name, shard.weight) for shard in shards]
    return tuple(
        max(range(len(names)), key=lambda i: score(names[i][0], slot, names[i][1]))
        for slot in range(REDIS_CLUSTER_HASH_SLOTS)
    )
