"""Real Redis deployments for the tests: a Sentinel-watched master and replica, a
three-node Cluster, and sentinel processes. Every process is on 127.0.0.1 on a free port.

Sentinels need a configuration file they can rewrite: each gets its own under the
test's ``tmp_path`` and runs as ``SERVER sentinel.conf --sentinel`` (redis-server and
valkey-server both take that form).
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path
from typing import Any

import port_for
import redis

from tests.servers import HOST, RedisServerProcess, ServerFactory, find_server_binary
from tests.tls import Certificates

SLOT_RANGES = [(0, 5460), (5461, 10922), (10923, 16383)]
SERVICE = "psrmaster"
DATA_USER, DATA_PASSWORD = "app", "app-secret"
SENTINEL_USER, SENTINEL_PASSWORD = "watcher", "sentinel-secret"


def wait_for(check: object, what: str, timeout: float = 30.0) -> None:
    """Poll ``check()`` (errors count as "not yet") until true, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()  # type: ignore[operator]
            if last:
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


# --------------------------------------------------------------------------- Cluster


def free_cluster_ports(count: int = 3) -> list[int]:
    """Ports free now whose cluster bus ports (``+ 10000``) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = port_for.select_random()
        if port + 10000 < 65536 and port_for.is_available(port + 10000) and port not in ports:
            ports.append(port)
    return ports


def start_cluster(
    server_factory: ServerFactory, tmp_path: Path, ports: list[int] | None = None
) -> list[RedisServerProcess]:
    """Three masters sharing the 16,384 slots, ready (``cluster_state:ok``); on ``ports``
    if given, else on free ones."""
    nodes = [
        server_factory(
            [
                *("--cluster-enabled", "yes"),
                *("--cluster-config-file", str(tmp_path / f"nodes-{n}.conf")),
                *("--cluster-node-timeout", "2000"),
            ],
            port=None if ports is None else ports[n],
        )
        for n in range(3)
    ]
    for node, (first, last) in zip(nodes, SLOT_RANGES, strict=True):
        node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
    for node in nodes[1:]:
        node.client().execute_command("CLUSTER", "MEET", HOST, nodes[0].port)

    def ready() -> bool:
        infos = [str(node.client().execute_command("CLUSTER", "INFO")) for node in nodes]
        return all("cluster_state:ok" in i and "cluster_known_nodes:3" in i for i in infos)

    wait_for(ready, "the cluster becomes ready")
    return nodes


# --------------------------------------------------------------------------- Sentinel


# The data nodes: an ACL user for the application (``CLIENT LIST`` shows who connected);
# the default user stays open, as the suite's start-up check pings without a password.
DATA_NODE_ARGS = (
    *("--user", DATA_USER, "on", f">{DATA_PASSWORD}", "~*", "&*", "+@all"),
    *("--masteruser", DATA_USER),
    *("--masterauth", DATA_PASSWORD),
    *("--repl-diskless-sync-delay", "0"),  # the replica syncs at once (default: 5 s)
)


class SentinelProcess:
    """One ``--sentinel`` process monitoring ``SERVICE`` at ``master_port``."""

    def __init__(
        self,
        directory: Path,
        master_port: int,
        binary: str | None = None,
        certs: Certificates | None = None,
    ) -> None:
        self.port = port_for.select_random()
        self.certs = certs  # TLS only (``tls-port``) with certificates
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / f"sentinel-{self.port}.conf"
        listen = [f"port {self.port}"]
        if certs is not None:
            listen = [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {certs.server_cert}",
                f"tls-key-file {certs.server_key}",
                f"tls-ca-cert-file {certs.ca}",
                "tls-auth-clients no",
            ]
        self.config.write_text(
            "\n".join(
                [
                    *listen,
                    f"bind {HOST}",
                    "daemonize no",
                    f"dir {directory}",
                    f"logfile {directory / f'sentinel-{self.port}.log'}",
                    f"user default on >{SENTINEL_PASSWORD} ~* &* +@all",
                    f"user {SENTINEL_USER} on >{SENTINEL_PASSWORD} ~* &* +@all",
                    f"sentinel monitor {SERVICE} {HOST} {master_port} 1",
                    f"sentinel auth-user {SERVICE} {DATA_USER}",
                    f"sentinel auth-pass {SERVICE} {DATA_PASSWORD}",
                    f"sentinel down-after-milliseconds {SERVICE} 1000",
                    f"sentinel failover-timeout {SERVICE} 5000",
                    "",
                ]
            )
        )
        self.binary = binary or find_server_binary()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def client(self) -> redis.Redis:
        tls: dict[str, Any] = {}
        if self.certs is not None:
            tls = {"ssl": True, "ssl_ca_certs": str(self.certs.ca)}
        return redis.Redis(
            host=HOST, port=self.port, username=SENTINEL_USER, password=SENTINEL_PASSWORD, **tls
        )

    def start(self) -> SentinelProcess:
        self.process = subprocess.Popen(
            [self.binary, str(self.config), "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.client().ping(), f"sentinel on {self.port} answers")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclasses.dataclass
class SentinelSetup:
    """A master, its replica and the sentinels watching them."""

    master: RedisServerProcess
    replica: RedisServerProcess
    sentinels: list[SentinelProcess]

    @property
    def sentinel_addresses(self) -> str:
        return " ".join(sentinel.address for sentinel in self.sentinels)

    def data_client(self, node: RedisServerProcess) -> redis.Redis:
        return node.client(username=DATA_USER, password=DATA_PASSWORD)

    def start_sentinels(self) -> None:
        for sentinel in self.sentinels:
            sentinel.start()
        wait_for(
            lambda: (
                self.sentinels[0]
                .client()
                .execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            ),
            "the sentinel knows the master",
        )

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()


def start_sentinel_setup(
    server_factory: ServerFactory,
    tmp_path: Path,
    sentinels: int = 1,
    *,
    start: bool = True,
    certs: Certificates | None = None,
) -> SentinelSetup:
    """Master + replica (ACL user ``DATA_USER``) + ``sentinels`` sentinels, all ready
    (with ``start=False`` the sentinels have their ports but are not started yet; with
    ``certs`` they listen with TLS only).

    The caller stops the sentinels (:meth:`SentinelSetup.stop`); the data nodes belong
    to ``server_factory``.
    """
    master = server_factory(DATA_NODE_ARGS)
    replica = server_factory([*DATA_NODE_ARGS, "--replicaof", HOST, str(master.port)])
    setup = SentinelSetup(master, replica, [])
    admin = setup.data_client(replica)
    wait_for(
        lambda: admin.info("replication").get("master_link_status") == "up",
        "the replica syncs with the master",
    )
    for _ in range(sentinels):
        setup.sentinels.append(SentinelProcess(tmp_path / "sentinel", master.port, certs=certs))
    if start:
        setup.start_sentinels()
    return setup
