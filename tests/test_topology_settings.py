"""The deployment options (Sentinel, Cluster, shards): parsed from ini and keywords,
checked at start-up with a ConfigurationError naming the option; the shard grammar.

No server is needed: building a factory opens no connection.
"""

from __future__ import annotations

from typing import Any

import pytest

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.channel import ClientChannel, DirectChannel, LazyChannel
from pyramid_session_redis.exceptions import ConfigurationError
from pyramid_session_redis.factory import session_factory_from_settings
from pyramid_session_redis.settings import build_settings, parse_ini_settings
from pyramid_session_redis.sharded_channel import ShardedChannel
from pyramid_session_redis.sharding import Shard, parse_shards, shard_name, split_weight

SECRET = "s"

# ini value -> the settings value
INI_CASES = [
    ("sentinels", "a:26379 b:26380", (("a", 26379), ("b", 26380))),
    ("sentinels", "a:1,b:2 , c:3\n d:4", (("a", 1), ("b", 2), ("c", 3), ("d", 4))),
    ("sentinels", "[::1]:26379", (("::1", 26379),)),
    ("sentinel_service", "mymaster", "mymaster"),
    ("sentinel_username", "watcher", "watcher"),
    ("sentinel_password", "pw", "pw"),
    ("sentinel_ssl", "true", True),
    ("cluster_nodes", "n1:7000 n2:7001", (("n1", 7000), ("n2", 7001))),
    ("cluster_nodes", "rediss://u:p@n1:7000/0", "rediss://u:p@n1:7000/0"),
    (
        "shards",
        "redis://a:1/0 redis://b:1/2=2.5",
        (Shard("redis://a:1/0"), Shard("redis://b:1/2", 2.5)),
    ),
    ("redis_username", "app", "app"),
]
# The options each ini case needs besides its own.
COMPANIONS = {
    "sentinels": {"sentinel_service": "m"},
    "sentinel_service": {"sentinels": "a:1"},
    "sentinel_username": {"sentinels": "a:1", "sentinel_service": "m"},
    "sentinel_password": {"sentinels": "a:1", "sentinel_service": "m"},
    "sentinel_ssl": {"sentinels": "a:1", "sentinel_service": "m"},
}


def ini(**options: str) -> dict[str, str]:
    return {
        "redis.sessions.secret": SECRET,
        **{f"redis.sessions.{k}": v for k, v in options.items()},
    }


@pytest.mark.parametrize(("name", "raw", "expected"), INI_CASES)
def test_each_option_is_read_from_ini(name: str, raw: str, expected: Any) -> None:
    factory = session_factory_from_settings(ini(**{name: raw}, **COMPANIONS.get(name, {})))
    assert getattr(factory.settings, name) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("sentinels", "a:1 b:2", (("a", 1), ("b", 2))),
        ("sentinels", ["a:1", ("b", 2)], (("a", 1), ("b", 2))),
        ("sentinels", [("a", 1)], (("a", 1),)),
        ("cluster_nodes", ["n1:7000", ("n2", 7001)], (("n1", 7000), ("n2", 7001))),
        ("cluster_nodes", "redis://n1:7000", "redis://n1:7000"),
        (
            "shards",
            ["redis://a:1", "redis://b:1=3"],
            (Shard("redis://a:1"), Shard("redis://b:1", 3)),
        ),
        ("shards", "redis://a:1 redis://b:1=3", (Shard("redis://a:1"), Shard("redis://b:1", 3))),
        ("shards", (Shard("unix:///tmp/r.sock", 2),), (Shard("unix:///tmp/r.sock", 2),)),
    ],
)
def test_each_list_option_takes_its_keyword_forms(name: str, value: Any, expected: Any) -> None:
    options = {name: value, **COMPANIONS.get(name, {})}
    assert getattr(build_settings(SECRET, **options), name) == expected


@pytest.mark.parametrize(
    ("options", "topology", "channel"),
    [
        ({}, "single", DirectChannel),
        ({"redis_url": "redis://h:1/0", "redis_username": "app"}, "single", DirectChannel),
        ({"sentinels": "a:1", "sentinel_service": "m"}, "sentinel", ClientChannel),
        ({"cluster_nodes": "a:1"}, "cluster", LazyChannel),
        ({"shards": "redis://a:1 redis://b:1"}, "shards", ShardedChannel),
    ],
)
def test_each_deployment_gets_its_channel_without_connecting(
    options: dict[str, Any], topology: str, channel: type
) -> None:
    factory = RedisSessionFactory(SECRET, **options)  # port 1 and unknown hosts: no I/O yet
    assert factory.settings.topology == topology
    assert isinstance(factory.store_for(None).channel, channel)  # type: ignore[attr-defined]


# options -> the option names the ConfigurationError must carry
ERROR_CASES: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"sentinels": "a:1"}, ("sentinel_service", "sentinels")),
    ({"sentinels": "a:1", "sentinel_service": ""}, ("sentinel_service", "sentinels")),
    ({"sentinel_service": "m"}, ("sentinel_service",)),
    ({"sentinel_password": "p", "redis_url": "redis://h"}, ("sentinel_password",)),
    ({"sentinel_ssl": True}, ("sentinel_ssl",)),
    ({"sentinels": "a", "sentinel_service": "m"}, ("sentinels",)),
    ({"sentinels": "a:port", "sentinel_service": "m"}, ("sentinels",)),
    ({"sentinels": "a:0", "sentinel_service": "m"}, ("sentinels",)),
    ({"sentinels": "a:70000", "sentinel_service": "m"}, ("sentinels",)),
    ({"sentinels": "", "sentinel_service": "m"}, ("sentinels",)),
    ({"sentinels": "a:1 a:1", "sentinel_service": "m"}, ("sentinels",)),
    ({"sentinels": [("a", "1")], "sentinel_service": "m"}, ("sentinels",)),
    ({"sentinels": 26379, "sentinel_service": "m"}, ("sentinels",)),
    ({"cluster_nodes": "a:1", "redis_db": 2}, ("redis_db", "cluster_nodes")),
    ({"cluster_nodes": "redis://a:1/3"}, ("cluster_nodes",)),
    ({"cluster_nodes": "unix:///tmp/x.sock"}, ("cluster_nodes",)),
    ({"cluster_nodes": "redis://a:1 redis://b:1"}, ("cluster_nodes",)),
    ({"cluster_nodes": ""}, ("cluster_nodes",)),
    ({"shards": ""}, ("shards",)),
    ({"shards": []}, ("shards",)),
    ({"shards": "redis://a:1 redis://A:1/0"}, ("shards",)),  # the same server twice
    ({"shards": "redis://u:p@a:1 redis://a:1?socket_timeout=2"}, ("shards",)),
    ({"shards": "redis://a:1=0"}, ("shards",)),
    ({"shards": "redis://a:1=-1"}, ("shards",)),
    ({"shards": "redis://a:1=nan"}, ("shards",)),
    ({"shards": "redis://a:1=inf"}, ("shards",)),
    ({"shards": "redis://a:1=two"}, ("shards",)),
    ({"shards": "http://a:1"}, ("shards",)),
    ({"shards": [("redis://a:1", 2)]}, ("shards",)),
    ({"shards": "redis://a:1", "redis_db": 1}, ("redis_db", "shards")),
    ({"shards": "redis://a:1", "redis_ssl": True}, ("redis_ssl", "shards")),
    ({"shards": "redis://a:1", "redis_ssl_ca_certs": "/ca.pem"}, ("redis_ssl_ca_certs",)),
    ({"cluster_nodes": "a:1", "redis_ssl_ca_certs": "/ca.pem"}, ("redis_ssl_ca_certs",)),
    (
        {"sentinels": "a:1", "sentinel_service": "m", "redis_ssl_certfile": "/c.pem"},
        ("redis_ssl_certfile",),
    ),
]
# Each new deployment against every other way of naming a Redis.
OTHERS: dict[str, Any] = {
    "redis_url": "redis://h:1/0",
    "redis_host": "h",
    "redis_port": 6380,
    "redis_unix_socket_path": "/tmp/r.sock",
    "redis_connection_pool": object(),
    "redis_client_callable": lambda request, **options: None,
    "cluster_nodes": "c:1",
    "shards": "redis://s:1",
}
NEW = {
    "sentinels": {"sentinels": "a:1", "sentinel_service": "m"},
    "cluster_nodes": {"cluster_nodes": "a:1"},
    "shards": {"shards": "redis://a:1"},
}
EXCLUSION_CASES = [
    ({**NEW[new], other: value}, (other, new))
    for new in NEW
    for other, value in OTHERS.items()
    if other != new
]


@pytest.mark.parametrize(("options", "names"), ERROR_CASES + EXCLUSION_CASES)
def test_bad_options_are_refused_naming_them(
    options: dict[str, Any], names: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisSessionFactory(SECRET, **options)
    assert set(names) <= set(caught.value.options), caught.value


def test_ini_errors_name_the_ini_key_and_hide_passwords() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_ini_settings(ini(shards="redis://u:hunter2@a:1/0=zero"))
    assert caught.value.options == ("redis.sessions.shards",)
    assert "hunter2" not in str(caught.value)


def test_the_single_servers_options_still_combine_as_in_1_8() -> None:
    callable_ = lambda request, **options: None  # noqa: E731
    settings = build_settings(SECRET, redis_url="redis://h:1/0", redis_client_callable=callable_)
    assert settings.topology == "callable"
    assert build_settings(SECRET, redis_url="redis://h", redis_host="x").topology == "single"


# --------------------------------------------------------------------------- shard grammar


@pytest.mark.parametrize(
    ("token", "url", "weight"),
    [
        ("redis://h:1/0", "redis://h:1/0", None),
        ("redis://h:1/0=2", "redis://h:1/0", "2"),
        ("redis://h:1=0.5", "redis://h:1", "0.5"),
        ("rediss://u:p@h:1/3=10", "rediss://u:p@h:1/3", "10"),
        # a query string: a trailing =N is a weight only after a complete name=value
        ("redis://h:1/0?socket_timeout=5", "redis://h:1/0?socket_timeout=5", None),
        ("redis://h:1/0?socket_timeout=5=2", "redis://h:1/0?socket_timeout=5", "2"),
        ("redis://h:1/0?a=1&socket_timeout=5", "redis://h:1/0?a=1&socket_timeout=5", None),
        ("redis://h:1/0?a=1&socket_timeout=5=3", "redis://h:1/0?a=1&socket_timeout=5", "3"),
        ("unix:///run/r.sock?db=2", "unix:///run/r.sock?db=2", None),
        ("unix:///run/r.sock?db=2=4", "unix:///run/r.sock?db=2", "4"),
        ("unix:///run/r.sock=4", "unix:///run/r.sock", "4"),
        # an "=" inside the URL (user info, path) is not a weight
        ("redis://u:p=w@h:1/0", "redis://u:p=w@h:1/0", None),
    ],
)
def test_the_weight_is_split_off_by_the_query_string_rule(
    token: str, url: str, weight: str | None
) -> None:
    assert split_weight(token) == (url, weight)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("redis://h:1", "h:1/0"),
        ("redis://H:1/2", "h:1/2"),
        ("redis://h", "h:6379/0"),
        ("rediss://user:pw@h:6380/1?socket_timeout=3", "h:6380/1"),
        ("redis://h:1?db=4", "h:1/4"),
        ("unix:///run/r.sock?db=3", "unix:/run/r.sock/3"),
    ],
)
def test_a_shards_name_is_its_address_without_credentials_or_options(url: str, name: str) -> None:
    assert shard_name(url) == name


def test_parsed_shards_keep_their_order_and_weights() -> None:
    shards = parse_shards("redis://a:1=2 unix:///run/r.sock redis://b:1/0?socket_timeout=5")
    assert [(s.name, s.weight) for s in shards] == [
        ("a:1/0", 2.0),
        ("unix:/run/r.sock/0", 1.0),
        ("b:1/0", 1.0),
    ]
