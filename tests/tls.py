"""A Redis to reach over TLS, on every machine: the server's own TLS where its build has
it (Debian's redis-server), else a small TLS-terminating proxy in front of a plain one
(the pip-installed Valkey is built without TLS).

Certificates are made per test session by ``trustme``: a CA, a server certificate for
127.0.0.1, a client certificate, and an unrelated CA to show a wrong one fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import select
import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType

import port_for
import trustme

from tests.servers import RedisServerProcess, ServerFactory, ServerStartError


@dataclasses.dataclass(frozen=True)
class Certificates:
    """PEM files: ``ca`` signed the server's and the client's; ``other_ca`` signed nothing."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(directory: Path) -> Certificates:
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("sessions-client")
    names = ("ca.pem", "other-ca.pem", "server.pem", "server.key", "client.pem", "client.key")
    files = Certificates(*(directory / name for name in names))
    ca.cert_pem.write_to_path(str(files.ca))
    other.cert_pem.write_to_path(str(files.other_ca))
    for leaf, cert, key in (
        (server, files.server_cert, files.server_key),
        (client, files.client_cert, files.client_key),
    ):
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
    return files


TLS_RECORD = 0x16  # the first byte of a TLS handshake record (the ClientHello)


class TLSProxy:
    """Accepts TLS on 127.0.0.1:``port`` and relays the plain bytes to ``backend_port``.

    ``plain_too``: the same port also relays clients that speak plain TCP (told apart by
    their first byte), so that servers can reach a data node in plain (replicas,
    sentinels) where the application reaches it with TLS. :attr:`sent` records what
    clients sent, decrypted, by how they connected (``"tls"``/``"plain"``).
    """

    def __init__(
        self, backend_port: int, certs: Certificates, client_auth: bool, plain_too: bool = False
    ) -> None:
        self.backend_port, self.plain_too = backend_port, plain_too
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certs.server_cert, certs.server_key)
        if client_auth:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(certs.ca)
        self.sent: dict[str, bytearray] = {"tls": bytearray(), "plain": bytearray()}
        self._sent_lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            first = conn.recv(1, socket.MSG_PEEK) if self.plain_too else bytes([TLS_RECORD])
            client: socket.socket = (
                self.context.wrap_socket(conn, server_side=True)
                if first == bytes([TLS_RECORD])
                else conn
            )
        except (OSError, ssl.SSLError):  # a refused client: the handshake failed
            conn.close()
            return
        kind = "tls" if isinstance(client, ssl.SSLSocket) else "plain"
        with client:
            try:
                backend = socket.create_connection(("127.0.0.1", self.backend_port))
            except OSError:  # the server is down: so is this connection
                return
            with backend:
                self._relay(client, backend, self.sent[kind])

    def _relay(self, client: socket.socket, backend: socket.socket, record: bytearray) -> None:
        while not self.closed.is_set():
            buffered = isinstance(client, ssl.SSLSocket) and client.pending()
            ready = [client] if buffered else select.select([client, backend], [], [], 0.5)[0]
            for source in ready:
                try:
                    data = source.recv(65536)
                except (OSError, ssl.SSLError):
                    return
                if not data:
                    return
                if source is client:
                    with self._sent_lock:
                        record.extend(data)
                (backend if source is client else client).sendall(data)

    def sent_by(self, kind: str) -> bytes:
        """Everything clients that connected with ``kind`` (``"tls"``/``"plain"``) sent."""
        with self._sent_lock:
            return bytes(self.sent[kind])

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):  # wakes the accepting thread (close alone does not)
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


@dataclasses.dataclass
class TLSRedis:
    """A Redis reachable over TLS on ``port``; ``plain`` is the server itself (admin)."""

    port: int
    plain: RedisServerProcess
    how: str  # "server" (its own TLS) or "proxy"
    proxy: TLSProxy | None = None

    def url(self, **query: str) -> str:
        params = "&".join(f"{key}={value}" for key, value in query.items())
        return f"rediss://127.0.0.1:{self.port}/0" + (f"?{params}" if params else "")

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()

    def __enter__(self) -> TLSRedis:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


_NATIVE_TLS: dict[str, bool] = {}  # server binary -> whether its build speaks TLS


def start_tls_redis(
    server_factory: ServerFactory,
    certs: Certificates,
    client_auth: bool,
    *,
    binary: str,
    proxy: bool = False,
) -> TLSRedis:
    """A server with TLS: its own where it can (unless ``proxy``), else behind a proxy."""
    if not proxy and _NATIVE_TLS.get(binary, True):
        tls_port = port_for.select_random()
        args = ["--tls-port", str(tls_port), "--tls-cert-file", str(certs.server_cert)]
        args += ["--tls-key-file", str(certs.server_key), "--tls-ca-cert-file", str(certs.ca)]
        args += ["--tls-auth-clients", "yes" if client_auth else "no"]
        try:
            server = server_factory(args, binary=binary)
        except ServerStartError:  # built without TLS: "Bad directive" at start-up
            _NATIVE_TLS[binary] = False
        else:
            _NATIVE_TLS[binary] = True
            return TLSRedis(tls_port, server, "server")
    plain = server_factory(binary=binary)
    relay = TLSProxy(plain.port, certs, client_auth)
    return TLSRedis(relay.port, plain, "proxy", relay)
