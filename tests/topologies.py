"""Real Redis deployments for the tests: one server, Sentinel, Cluster with replicas, shards.

Every process is a :class:`~tests.servers.RedisServerProcess` on a free 127.0.0.1 port,
started by the topology and stopped by its :meth:`Topology.close` (the fixtures call it,
through :func:`started`). The binary is :func:`~tests.servers.find_server_binary`'s.
Sentinel and Cluster can be built with their servers not started yet (``start=False``,
their addresses known) to test an application that starts before its Redis.

A topology tells the application where its sessions live through
:meth:`Topology.settings`: ini options (``redis.sessions.*``, without the prefix) and
nothing else, no code (``redis_url``, ``sentinels``, ``cluster_nodes``, ``shards``).

Failover timings are short on purpose (see ``DOWN_AFTER_MS`` and ``NODE_TIMEOUT_MS``);
the README's Deployments section says how they were measured and what to use in production.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import port_for
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from tests.servers import HOST, RedisServerProcess, find_server_binary
from tests.tls import Certificates, TLSProxy

SERVICE = "psr"  # the Sentinel service (master) name
# SentinelSet(credentials=True): the data nodes' ACL user, the sentinels' own user
DATA_USER, DATA_PASSWORD = "app", "app-secret"
SENTINEL_USER, SENTINEL_PASSWORD = "watcher", "sentinel-secret"
DOWN_AFTER_MS = 1000  # Sentinel: a master silent this long is subjectively down
FAILOVER_TIMEOUT_MS = 10_000
NODE_TIMEOUT_MS = 1000  # Cluster: a node silent this long is failing
SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))
READY_TIMEOUT = 30.0  # generous: the machine is shared

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = READY_TIMEOUT) -> T:
    """Poll ``check()`` until it returns something true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (redis.RedisError, OSError) as exc:  # a node still starting, failing over...
            last = exc
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def free_cluster_ports(count: int) -> list[int]:
    """Ports free now whose cluster bus ports (``+ 10000``) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = port_for.select_random()
        if port + 10000 < 65536 and port_for.is_available(port + 10000) and port not in ports:
            ports.append(port)
    return ports


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(entry: Any) -> dict[str, str]:
    """A Sentinel reply entry (a flat list, or a dict by redis-py's parser) as text."""
    pairs = entry.items() if isinstance(entry, dict) else zip(entry[::2], entry[1::2], strict=True)
    return {_text(key): _text(value) for key, value in pairs}


class Topology:
    """A running deployment. Subclasses start their processes in ``__init__``."""

    name = ""

    def __init__(self, binary: str | None = None, data_tls: Certificates | None = None) -> None:
        self.binary = binary or find_server_binary()
        self.processes: list[RedisServerProcess] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="psr-topo-"))
        self._clients: list[Any] = []
        self.data_tls = data_tls
        self.data_proxies: dict[int, TLSProxy] = {}  # a data node's port -> its proxy

    def _proxied(self, port: int) -> int:
        """With ``data_tls``, a proxy in front of the data node on ``port`` (TLS with a
        client certificate, or plain: :class:`~tests.tls.TLSProxy` ``plain_too``);
        returns the port the node announces (the proxy's, else ``port``)."""
        if self.data_tls is None:
            return port
        proxy = TLSProxy(port, self.data_tls, client_auth=True, plain_too=True)
        self.data_proxies[port] = self._keep(proxy)
        return proxy.port

    def reached_port(self, port: int) -> int:
        """The port the application reaches the node on ``port`` at (its proxy's with
        ``data_tls``)."""
        proxy = self.data_proxies.get(port)
        return port if proxy is None else proxy.port

    def data_tls_settings(self) -> dict[str, Any]:
        """With ``data_tls``: ``redis_ssl`` and the certificates the proxies want."""
        if self.data_tls is None:
            return {}
        return {
            "redis_ssl": "true",
            "redis_ssl_ca_certs": str(self.data_tls.ca),
            "redis_ssl_certfile": str(self.data_tls.client_cert),
            "redis_ssl_keyfile": str(self.data_tls.client_key),
        }

    def _process(self, extra_args: Sequence[str] = (), **kwargs: Any) -> RedisServerProcess:
        """A server of this topology, not started yet (``kwargs``: ``port``, ``config_file``)."""
        # A replica's first sync starts at once (the default waits 5 s for more replicas).
        args = ["--repl-diskless-sync-delay", "0", *extra_args]
        process = RedisServerProcess(self.binary, extra_args=args, **kwargs)
        self.processes.append(process)
        return process

    def _start(self, extra_args: Sequence[str] = (), **kwargs: Any) -> RedisServerProcess:
        return self._process(extra_args, **kwargs).start()

    def _keep(self, client: T) -> T:
        """Remember a client (or a TLS proxy) so that :meth:`close` closes it."""
        self._clients.append(client)
        return client

    def settings(self) -> dict[str, Any]:
        """The ``redis.sessions.*`` options (without the prefix) that reach this deployment."""
        raise NotImplementedError

    def masters(self) -> list[RedisServerProcess]:
        """The live processes that accept writes."""
        raise NotImplementedError

    def node_for(self, key: str) -> RedisServerProcess:
        """The process that holds ``key`` (where its commands are counted)."""
        raise NotImplementedError

    def holds(self, key: str) -> bool:
        """Whether the deployment holds ``key`` (database 0), asked of its servers directly."""
        for node in self.masters():
            with contextlib.closing(node.client()) as client:
                if client.exists(key):
                    return True
        return False

    def flush(self) -> None:
        """Empty every master (keys and scripts); replicas follow."""
        for node in self.masters():
            with contextlib.closing(node.client()) as client:
                client.flushall()
                client.script_flush()

    def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        errors = []
        for process in self.processes:
            try:
                process.close()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise errors[0]


def confirm_replicated(master: RedisServerProcess, marker: str = "psr:replicated") -> None:
    """Block until every write the master took so far reached one replica (``WAIT 1``).

    ``WAIT`` waits for the calling connection's own last write, so a marker is written
    first on the same connection: the stream is ordered, the writes before it made it too.
    On a Cluster node, ``marker`` must hash to one of the node's slots.
    """
    with contextlib.closing(master.client()) as client:
        pipe = client.pipeline(transaction=False)
        pipe.incr(marker)
        pipe.execute_command("WAIT", 1, 10_000)
        acknowledged = pipe.execute()[1]
    assert acknowledged == 1, f"{master!r}: WAIT 1 answered {acknowledged}"


# --------------------------------------------------------------------------- one server


class SingleServer(Topology):
    name = "single"

    def __init__(self, binary: str | None = None) -> None:
        super().__init__(binary)
        self.server = self._start()

    def settings(self) -> dict[str, Any]:
        return {"redis_url": self.server.url}

    def masters(self) -> list[RedisServerProcess]:
        return [self.server]

    def node_for(self, key: str) -> RedisServerProcess:
        return self.server


# --------------------------------------------------------------------------- Sentinel


# SentinelSet(credentials=True): the data nodes' ACL user for the application (``CLIENT
# LIST`` shows who connected); their default user stays open for the tests' inspection.
DATA_NODE_ARGS = (
    *("--user", DATA_USER, "on", f">{DATA_PASSWORD}", "~*", "&*", "+@all"),
    *("--masteruser", DATA_USER),
    *("--masterauth", DATA_PASSWORD),
)


class SentinelSet(Topology):
    """One master, one replica (``REPLICAOF``) and three Sentinels (quorum 2).

    ``credentials``: the data nodes have the ACL user ``DATA_USER`` (their default user
    stays open, for the tests' own inspection) and the sentinels want ``SENTINEL_USER``
    or their default user with ``SENTINEL_PASSWORD``. ``sentinel_tls``: each sentinel is
    reached through TLS only, a :class:`~tests.tls.TLSProxy` in front of it (the
    pip-installed Valkey has no TLS of its own). ``data_tls``: each data node behind a
    proxy taking TLS (from the application) and plain (replication, the sentinels),
    whose address the node announces, so the sentinels name it. ``start=False``: the
    sentinels have their ports but start only at :meth:`start`.
    """

    name = "sentinel"

    def __init__(
        self,
        binary: str | None = None,
        *,
        credentials: bool = False,
        sentinel_tls: Certificates | None = None,
        data_tls: Certificates | None = None,
        start: bool = True,
    ) -> None:
        super().__init__(binary, data_tls)
        self.credentials, self.sentinel_tls = credentials, sentinel_tls
        data_args = DATA_NODE_ARGS if credentials else ()
        self.master, self.replica = self._start(data_args), self._start(data_args)
        self.data_nodes = [self.master, self.replica]
        for node in self.data_nodes:
            self._proxied(node.port)
        with contextlib.closing(self.replica.client()) as client:
            client.config_set("replica-announce-port", self.reached_port(self.replica.port))
            client.replicaof(HOST, self.reached_port(self.master.port))
        wait_for(lambda: self._link_up(self.replica), "the replica to sync")
        self.sentinel_ports = [port_for.select_random() for _ in range(3)]
        self.sentinels = [self._sentinel(n, port) for n, port in enumerate(self.sentinel_ports)]
        ports, certs = self.sentinel_ports, sentinel_tls
        self.proxies = [self._keep(TLSProxy(p, certs, False)) for p in ports] if certs else []
        if start:
            self.start()

    def _sentinel(self, n: int, port: int) -> RedisServerProcess:
        conf = self.workdir / f"sentinel-{n}.conf"
        lines = [
            f"sentinel monitor {SERVICE} {HOST} {self.reached_port(self.master.port)} 2",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]
        if self.credentials:
            lines += [
                f"user default on >{SENTINEL_PASSWORD} ~* &* +@all",
                f"user {SENTINEL_USER} on >{SENTINEL_PASSWORD} ~* &* +@all",
                f"sentinel sentinel-user {SENTINEL_USER}",  # to the other sentinels
                f"sentinel sentinel-pass {SENTINEL_PASSWORD}",
                f"sentinel auth-user {SERVICE} {DATA_USER}",  # to the data nodes
                f"sentinel auth-pass {SERVICE} {DATA_PASSWORD}",
            ]
        conf.write_text("\n".join(lines) + "\n")
        return self._process(["--sentinel"], port=port, config_file=conf)

    def start(self) -> None:
        """Start the sentinels; until they agree (see :meth:`wait_ready`)."""
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_ready()

    @staticmethod
    def _link_up(replica: RedisServerProcess) -> bool:
        with contextlib.closing(replica.client()) as client:
            return client.info("replication").get("master_link_status") == "up"

    def sentinel_client(self, sentinel: RedisServerProcess) -> redis.Redis:
        """A client of ``sentinel`` itself (plain, with its credentials if it has any)."""
        if self.credentials:
            return sentinel.client(username=SENTINEL_USER, password=SENTINEL_PASSWORD)
        return sentinel.client()

    def data_client(self, node: RedisServerProcess) -> redis.Redis:
        """A client of a data node as the application's ACL user (``credentials``)."""
        return node.client(username=DATA_USER, password=DATA_PASSWORD)

    def _sentinel_view(self, sentinel: RedisServerProcess) -> tuple[int, int, int]:
        """(master port, healthy replicas, other sentinels) as one Sentinel sees them."""
        with contextlib.closing(self.sentinel_client(sentinel)) as client:
            address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            replicas = client.execute_command("SENTINEL", "REPLICAS", SERVICE)
            others = client.execute_command("SENTINEL", "SENTINELS", SERVICE)
        healthy = 0
        for entry in replicas:
            fields = _fields(entry)
            if "down" not in fields["flags"] and fields["master-link-status"] == "ok":
                healthy += 1
        return int(address[1]), healthy, len(others)

    def wait_ready(self) -> None:
        """Until every Sentinel names the master, sees its replica and the two others."""
        port = self.reached_port(self.master.port)

        def agreed() -> bool:
            return all(self._sentinel_view(s) == (port, 1, 2) for s in self.sentinels)

        wait_for(agreed, "the sentinels to agree on the master and its replica")

    def kill_master(self) -> float:
        """SIGKILL the master; returns the time of the kill (``time.monotonic()``)."""
        self.master.kill()
        return time.monotonic()

    def failover(self) -> float:
        """Ask one Sentinel to fail over now (``SENTINEL FAILOVER``), the master alive;
        returns the time of the request (``time.monotonic()``). :meth:`wait_promoted`
        waits for the outcome."""
        with contextlib.closing(self.sentinel_client(self.sentinels[0])) as client:
            client.execute_command("SENTINEL", "FAILOVER", SERVICE)
        return time.monotonic()

    def wait_promoted(self, timeout: float = READY_TIMEOUT) -> None:
        """Until every Sentinel names the replica as master and it says it is one."""
        port = self.reached_port(self.replica.port)

        def promoted() -> bool:
            with contextlib.closing(self.replica.client()) as client:
                if _text(client.execute_command("ROLE")[0]) != "master":
                    return False
            return all(self._sentinel_view(s)[0] == port for s in self.sentinels)

        wait_for(promoted, "the replica's promotion", timeout)
        self.master, self.replica = self.replica, self.master

    def sentinel_addresses(self) -> str:
        """``host:port …`` as the application reaches the sentinels (the proxies with TLS)."""
        reached = [proxy.port for proxy in self.proxies] or self.sentinel_ports
        return " ".join(f"{HOST}:{port}" for port in reached)

    def settings(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "sentinels": self.sentinel_addresses(),
            "sentinel_service": SERVICE,
        }
        if self.credentials:
            options.update(
                sentinel_username=SENTINEL_USER,
                sentinel_password=SENTINEL_PASSWORD,
                redis_username=DATA_USER,
                redis_password=DATA_PASSWORD,
            )
        if self.sentinel_tls is not None:
            options.update(sentinel_ssl="true", redis_ssl_ca_certs=str(self.sentinel_tls.ca))
        return {**options, **self.data_tls_settings()}

    def masters(self) -> list[RedisServerProcess]:
        return [self.master] if self.master.running else []

    def node_for(self, key: str) -> RedisServerProcess:
        return self.master


# --------------------------------------------------------------------------- Cluster


class ClusterWithReplicas(Topology):
    """Three masters (``SLOT_RANGES``), one replica each (``replicas=0``: none).

    ``data_tls``: each node behind a proxy taking TLS (from the application) and plain
    (replication), whose port the node announces (its cluster bus port stays its own), so
    ``CLUSTER SLOTS`` and redirections name the proxies. ``start=False``: the nodes have
    their ports (cluster bus ports free too) but start only at :meth:`start`.
    """

    name = "cluster"

    def __init__(
        self,
        binary: str | None = None,
        replicas: int = 1,
        start: bool = True,
        data_tls: Certificates | None = None,
    ) -> None:
        super().__init__(binary, data_tls)
        args = [
            *("--cluster-enabled", "yes"),
            *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
            # The other masters keep serving while one master's slots fail over.
            *("--cluster-require-full-coverage", "no"),
            # A replica may be promoted however long it was cut off (tests kill masters).
            *("--cluster-replica-validity-factor", "0"),
        ]
        self.ports = free_cluster_ports(3 * (1 + replicas))
        self.nodes = [
            self._process(
                [
                    *args,
                    *("--cluster-config-file", str(self.workdir / f"nodes-{n}.conf")),
                    *self._announced(port),
                ],
                port=port,
            )
            for n, port in enumerate(self.ports)
        ]
        self.initial_masters, replica_nodes = self.nodes[:3], self.nodes[3:]
        self.replica_of = dict(zip(self.initial_masters, replica_nodes, strict=False))
        if start:
            self.start()

    def start(self) -> None:
        """Start the nodes, assign the slots, join them; until ``cluster_state:ok``."""
        nodes = self.nodes
        for node in nodes:
            node.start()
        for node, (first, last) in zip(self.initial_masters, SLOT_RANGES, strict=True):
            self._node_command(node, "CLUSTER", "ADDSLOTSRANGE", first, last)
        for node in nodes[1:]:
            self._node_command(node, "CLUSTER", "MEET", HOST, nodes[0].port)
        wait_for(lambda: all(self._known_nodes(n) == len(nodes) for n in nodes), "the meets")
        for master, replica in self.replica_of.items():
            self._node_command(replica, "CLUSTER", "REPLICATE", self.node_id(master))
        self.wait_ok()
        for replica in self.replica_of.values():
            wait_for(lambda replica=replica: SentinelSet._link_up(replica), "replica sync")

    def _announced(self, port: int) -> list[str]:
        """The arguments that announce a proxy's port for the node on ``port``, if any."""
        reached = self._proxied(port)
        if reached == port:
            return []
        bus = ("--cluster-announce-bus-port", str(port + 10000))  # the node's own
        return ["--cluster-announce-port", str(reached), *bus]

    def _real_address(self, address: tuple[str, int]) -> tuple[str, int]:
        """A node's address as announced -> its own (the tests' client skips the proxies)."""
        host, port = address
        by_proxy = {proxy.port: node_port for node_port, proxy in self.data_proxies.items()}
        return host, by_proxy.get(port, port)

    @staticmethod
    def _node_command(node: RedisServerProcess, *args: Any) -> Any:
        with contextlib.closing(node.client()) as client:
            return client.execute_command(*args)

    def _known_nodes(self, node: RedisServerProcess) -> int:
        return int(self._cluster_info(node)["cluster_known_nodes"])

    def _cluster_info(self, node: RedisServerProcess) -> dict[str, str]:
        text = _text(self._node_command(node, "CLUSTER", "INFO"))
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def node_id(self, node: RedisServerProcess) -> str:
        return _text(self._node_command(node, "CLUSTER", "MYID"))

    def live(self) -> list[RedisServerProcess]:
        return [node for node in self.processes if node.running]

    def slot_owners(self) -> dict[int, RedisServerProcess]:
        """The master of each slot range's first slot, as a live node sees it."""
        by_port = {self.reached_port(node.port): node for node in self.processes}
        owners = {}
        for entry in self._node_command(self.live()[0], "CLUSTER", "SLOTS"):
            first, last, master = entry[0], entry[1], entry[2]
            for slot in range(first, last + 1):
                owners[slot] = by_port[int(master[1])]
        return owners

    def wait_ok(self, timeout: float = READY_TIMEOUT) -> None:
        """Until every live node says ``cluster_state:ok`` and all agree on the slots."""

        def ok() -> bool:
            if not all(self._cluster_info(n)["cluster_state"] == "ok" for n in self.live()):
                return False
            views = {self._slots_view(node) for node in self.live()}
            return len(views) == 1

        wait_for(ok, "cluster_state:ok on every node", timeout)

    def _slots_view(self, node: RedisServerProcess) -> tuple[tuple[int, int, int], ...]:
        entries = self._node_command(node, "CLUSTER", "SLOTS")
        return tuple(sorted((e[0], e[1], int(e[2][1])) for e in entries))

    def masters(self) -> list[RedisServerProcess]:
        return sorted(set(self.slot_owners().values()), key=lambda node: node.port)

    @staticmethod
    def keyslot(key: str) -> int:
        return key_slot(key.encode())

    def node_for(self, key: str) -> RedisServerProcess:
        return self.slot_owners()[self.keyslot(key)]

    def marker_for(self, master: RedisServerProcess) -> str:
        """A key held by ``master`` (for :func:`confirm_replicated`)."""
        owners = self.slot_owners()
        for n in range(100_000):
            candidate = f"psr:replicated:{n}"
            if owners[key_slot(candidate.encode())] is master:
                return candidate
        raise AssertionError("no marker key found")

    @property
    def client(self) -> RedisCluster:
        """A Cluster client for the tests' own inspection (created once), in plain to the
        nodes themselves (past any proxies)."""
        if not hasattr(self, "_client"):
            live = self.live()[0]
            client = RedisCluster(host=HOST, port=live.port, address_remap=self._real_address)
            self._client = self._keep(client)
        return self._client

    def confirm_replicated(self) -> None:
        for master in self.masters():
            confirm_replicated(master, self.marker_for(master))

    def kill(self, master: RedisServerProcess) -> float:
        """SIGKILL a master; returns the time of the kill (``time.monotonic()``)."""
        master.kill()
        return time.monotonic()

    def wait_promoted(self, master: RedisServerProcess, timeout: float = READY_TIMEOUT) -> None:
        """Until ``master``'s replica holds its slots, on every live node's map."""
        replica = self.replica_of[master]

        def promoted() -> bool:
            owners = set(self.slot_owners().values())
            return replica in owners and master not in owners

        wait_for(promoted, "the replica's promotion", timeout)
        self.wait_ok(timeout)

    def migrate_slot(
        self,
        slot: int,
        target: RedisServerProcess,
        batch: int = 1,
        pause: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Move ``slot`` to ``target`` as ``redis-cli --cluster reshard`` does; returns keys moved.

        IMPORTING on the target, MIGRATING on the source, ``MIGRATE … KEYS`` in batches of
        ``batch`` keys (``pause`` seconds apart, ``on_batch(moved)`` after each), then
        ``SETSLOT … NODE`` on the target, the source and the other masters.
        """
        source = self.slot_owners()[slot]
        source_id, target_id = self.node_id(source), self.node_id(target)
        self._node_command(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        self._node_command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while keys := self._node_command(source, "CLUSTER", "GETKEYSINSLOT", slot, batch):
            self._node_command(source, "MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
            if on_batch is not None:
                on_batch(moved)
            time.sleep(pause)
        others = [node for node in self.masters() if node not in (source, target)]
        for node in [target, source, *others]:
            self._node_command(node, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self.wait_ok()
        return moved

    def settings(self) -> dict[str, Any]:
        ports = [self.reached_port(port) for port in self.ports]
        nodes = " ".join(f"{HOST}:{port}" for port in ports)
        return {"cluster_nodes": nodes, **self.data_tls_settings()}

    def holds(self, key: str) -> bool:
        return bool(self.client.exists(key))


# --------------------------------------------------------------------------- shards


class Shards(Topology):
    """Independent servers, sharded by the client (``shards``); the last has weight 2."""

    name = "shards"

    def __init__(self, binary: str | None = None, count: int = 3) -> None:
        super().__init__(binary)
        self.servers = [self._start() for _ in range(count)]

    def settings(self) -> dict[str, Any]:
        last = len(self.servers) - 1
        return {
            "shards": " ".join(
                s.url + ("=2" if n == last else "") for n, s in enumerate(self.servers)
            )
        }

    def masters(self) -> list[RedisServerProcess]:
        return list(self.servers)

    def node_for(self, key: str) -> RedisServerProcess:
        """The one server that holds ``key`` (found by asking each: no routing of ours)."""
        holders = []
        for server in self.servers:
            with contextlib.closing(server.client()) as client:
                if client.exists(key):
                    holders.append(server)
        assert len(holders) == 1, f"{key!r} is on {len(holders)} shards"
        return holders[0]


TopologyT = TypeVar("TopologyT", bound=Topology)


def started(kind: Callable[..., TopologyT], **kwargs: Any) -> Iterator[TopologyT]:
    """Start a topology for a fixture; every process is stopped when the fixture ends."""
    topology = kind(**kwargs)
    try:
        yield topology
    finally:
        topology.close()
