"""Sessions over TLS (``rediss://``), configured from the ini file, on the direct path.

The server speaks TLS itself where its build can, else a TLS-terminating proxy stands
in front of it (``tests/tls.py``); certificates come from ``trustme``. Client
certificates off and on; a wrong CA is a typed error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import webtest

from pyramid_session_redis import RedisSessionFactory, session_factory_from_settings
from pyramid_session_redis.channel import DirectChannel
from pyramid_session_redis.exceptions import ConfigurationError, SessionBackendError
from pyramid_session_redis.factory import SessionFactory
from tests.app import SECRET, build_wsgi_app
from tests.redis_stats import CommandCounter
from tests.servers import ServerFactory, find_server_binary
from tests.test_readme import README
from tests.tls import Certificates, TLSRedis, make_certificates, start_tls_redis


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=[False, True], ids=["no-client-cert", "client-cert-required"])
def tls_redis(
    request: pytest.FixtureRequest, server_factory: ServerFactory, certs: Certificates
) -> Iterator[TLSRedis]:
    with start_tls_redis(
        server_factory, certs, client_auth=request.param, binary=find_server_binary()
    ) as server:
        yield server


def ini_factory(**settings: str) -> SessionFactory:
    """A factory from ``redis.sessions.redis_*`` settings, as an ini file gives them."""
    ini = {f"redis.sessions.redis_{name}": value for name, value in settings.items()}
    return session_factory_from_settings({"redis.sessions.secret": SECRET, **ini})


def client_settings(tls: TLSRedis, certs: Certificates, ca: Path | None = None) -> dict[str, str]:
    """The ini settings for ``tls``: its CA, and the client certificate where required."""
    settings = {"url": tls.url(), "ssl_ca_certs": str(ca or certs.ca)}
    if client_auth_required(tls):
        settings.update(ssl_certfile=str(certs.client_cert), ssl_keyfile=str(certs.client_key))
    return settings


def client_auth_required(tls: TLSRedis) -> bool:
    if tls.proxy is not None:
        return tls.proxy.context.verify_mode.name == "CERT_REQUIRED"
    return "yes" in tls.plain.extra_args[tls.plain.extra_args.index("--tls-auth-clients") + 1]


def use_sessions(factory: SessionFactory) -> tuple[webtest.TestApp, str, Any]:
    """Write then read a session through a Pyramid app: (app, session id, value read)."""
    app = webtest.TestApp(build_wsgi_app(factory))
    app.get("/set", {"key": "a", "value": "[1, 2]"})
    return app, app.get("/session_id").json, app.get("/read", {"key": "a"}).json


# --------------------------------------------------------------------------- working TLS


def test_sessions_over_tls_from_ini_settings_take_the_direct_path(
    tls_redis: TLSRedis, certs: Certificates
) -> None:
    factory = ini_factory(**client_settings(tls_redis, certs))
    assert isinstance(factory.store_for(None).channel, DirectChannel)  # type: ignore[arg-type]
    app, session_id, value = use_sessions(factory)
    assert value == [1, 2]
    assert tls_redis.plain.client().exists(session_id) == 1
    counter = CommandCounter.for_port(tls_redis.plain.port)
    with counter.measure() as read:  # one command per read, as over plain TCP
        assert app.get("/read", {"key": "a"}).json == [1, 2]
    counter.close()
    assert read.counts == {"getex": 1}


def test_tls_with_host_and_port_and_redis_ssl(tls_redis: TLSRedis, certs: Certificates) -> None:
    settings = client_settings(tls_redis, certs)
    del settings["url"]
    factory = ini_factory(host="127.0.0.1", port=str(tls_redis.port), ssl="true", **settings)
    assert use_sessions(factory)[2] == [1, 2]


def test_the_proxy_carries_sessions_too(server_factory: ServerFactory, certs: Certificates) -> None:
    """The proxy machines without a TLS build rely on, tested everywhere."""
    with start_tls_redis(
        server_factory, certs, client_auth=True, binary=find_server_binary(), proxy=True
    ) as tls:
        assert tls.how == "proxy"
        assert use_sessions(ini_factory(**client_settings(tls, certs)))[2] == [1, 2]


def test_ssl_cert_reqs_none_skips_verification(tls_redis: TLSRedis, certs: Certificates) -> None:
    settings = client_settings(tls_redis, certs, ca=certs.other_ca)
    factory = ini_factory(**settings, ssl_cert_reqs="none")
    assert use_sessions(factory)[2] == [1, 2]


def test_the_readme_tls_example_works(tls_redis: TLSRedis, certs: Certificates) -> None:
    block = re.search(r"```ini tls\n(.*?)```", README, flags=re.DOTALL)
    assert block is not None
    files = {
        "/etc/ssl/redis/ca.pem": certs.ca,
        "/etc/ssl/redis/client.pem": certs.client_cert,
        "/etc/ssl/redis/client.key": certs.client_key,
    }
    settings = {"redis.sessions.secret": SECRET}
    for line in block.group(1).splitlines():
        if line.startswith("redis.sessions."):
            key, value = (part.strip() for part in line.split("=", 1))
            value = str(files.get(value, value))
            settings[key] = re.sub(r"//[^/]+/", f"//127.0.0.1:{tls_redis.port}/", value)
    assert use_sessions(session_factory_from_settings(settings))[2] == [1, 2]


# --------------------------------------------------------------------------- failing TLS


def test_a_wrong_ca_is_a_typed_error(tls_redis: TLSRedis, certs: Certificates) -> None:
    factory = ini_factory(**client_settings(tls_redis, certs, ca=certs.other_ca))
    with pytest.raises(SessionBackendError, match="certificate verify failed"):
        factory.store_for(None).load("any", None)  # type: ignore[arg-type]


def test_a_missing_client_certificate_is_refused_when_the_server_asks(
    server_factory: ServerFactory, certs: Certificates
) -> None:
    with start_tls_redis(server_factory, certs, True, binary=find_server_binary()) as tls:
        factory = ini_factory(url=tls.url(), ssl_ca_certs=str(certs.ca))
        with pytest.raises(SessionBackendError):
            factory.store_for(None).load("any", None)  # type: ignore[arg-type]


def test_plain_redis_urls_do_not_reach_a_tls_port(tls_redis: TLSRedis, certs: Certificates) -> None:
    factory = ini_factory(url=f"redis://127.0.0.1:{tls_redis.port}/0", socket_timeout="1")
    with pytest.raises(SessionBackendError):
        factory.store_for(None).load("any", None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"url": "redis://127.0.0.1:6379/0", "ssl_ca_certs": "/ca.pem"}, "redis_ssl_ca_certs"),
        ({"ssl_certfile": "/client.pem"}, "redis_ssl_certfile"),
        ({"url": "redis://127.0.0.1:6379/0", "ssl": "true"}, "redis_ssl"),
        ({"unix_socket_path": "/tmp/r.sock", "ssl": "true"}, "redis_ssl"),
        ({"url": "rediss://127.0.0.1:6379/0", "ssl_cert_reqs": "maybe"}, "redis_ssl_cert_reqs"),
    ],
)
def test_tls_options_that_cannot_apply_are_refused_at_start_up(
    settings: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ini_factory(**settings)
    assert key in raised.value.options


def test_tls_options_with_a_user_pool_are_refused(redis_url: str) -> None:
    pool = redis.ConnectionPool.from_url(redis_url)
    with pytest.raises(ConfigurationError) as raised:
        RedisSessionFactory(SECRET, redis_connection_pool=pool, redis_ssl_ca_certs="/ca.pem")
    assert raised.value.options == ("redis_connection_pool",)


def test_a_bad_boolean_for_ssl_names_the_ini_key() -> None:
    with pytest.raises(ConfigurationError, match=r"redis\.sessions\.redis_ssl"):
        ini_factory(ssl="perhaps")
