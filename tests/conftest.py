"""Fixtures backed by a real Redis-compatible server started for this test session.

Server lifecycle lives in ``tests/servers.py``, command counting in
``tests/redis_stats.py``; this file only wires them into pytest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.redis_stats import CommandCounter
from tests.servers import (
    ENV_VAR,
    RedisServerProcess,
    ServerFactory,
    ServerNotFoundError,
    describe_server,
    find_server_binary,
    has_set_ifeq,
)
from tests.topologies import ClusterWithReplicas, started


def pytest_report_header() -> str:
    """The server binary the suite runs on, its product and version, and why that one."""
    chosen_by = f"${ENV_VAR}" if os.environ.get(ENV_VAR, "").strip() else "discovery"
    try:
        return f"redis server: {describe_server(find_server_binary())}, chosen by {chosen_by}"
    except ServerNotFoundError as exc:
        return f"redis server: NOT FOUND ({exc})"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServerProcess]:
    """The session's server: started once on a free 127.0.0.1 port, stopped at the end."""
    with RedisServerProcess(find_server_binary()) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServerProcess) -> str:
    """``redis://127.0.0.1:PORT/0`` of the session server."""
    return redis_server.url


@pytest.fixture(scope="session")
def native_cas(redis_server: RedisServerProcess) -> bool:
    """Whether the session server has ``SET … IFEQ`` (Valkey 8.1+, Redis 8.4+)."""
    return has_set_ifeq(redis_server)


@pytest.fixture
def redis_client(redis_server: RedisServerProcess) -> Iterator[redis.Redis]:
    """A bytes client to the session server, which is emptied (FLUSHALL, SCRIPT FLUSH) first."""
    client = redis_server.client()
    client.flushall()
    client.script_flush()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def commands(
    redis_server: RedisServerProcess, redis_client: redis.Redis
) -> Iterator[CommandCounter]:
    """Server-side command counter for the session server, reset after the flush."""
    counter = CommandCounter.for_port(redis_server.port)
    counter.reset()
    try:
        yield counter
    finally:
        counter.close()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """``server_factory(extra_args=(), persistence=False, binary=None, port=None)``.

    Starts a private server (``persistence=True`` keeps its data in a per-test
    directory so it survives restarts); all of them are stopped at teardown.
    """
    servers: list[RedisServerProcess] = []

    def factory(
        extra_args: Sequence[str] = (),
        *,
        persistence: bool = False,
        binary: str | None = None,
        port: int | None = None,
    ) -> RedisServerProcess:
        data_dir = tmp_path / f"redis-data-{len(servers)}" if persistence else None
        server = RedisServerProcess(
            binary or find_server_binary(),
            port=port,
            extra_args=extra_args,
            persistence_dir=data_dir,
        )
        servers.append(server)
        return server.start()

    yield factory

    errors: list[BaseException] = []
    for server in servers:
        try:
            server.close()
        except Exception as exc:  # keep stopping the others
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def cluster_deployment() -> Iterator[ClusterWithReplicas]:
    """A three-master Redis Cluster without replicas (tests/topologies.py), per module."""
    yield from started(ClusterWithReplicas, replicas=0)


@pytest.fixture
def cluster(cluster_deployment: ClusterWithReplicas) -> RedisCluster:
    """A ``RedisCluster`` client of the module's cluster, emptied first."""
    cluster_deployment.flush()
    return cluster_deployment.client
