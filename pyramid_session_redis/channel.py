"""How commands reach Redis: one call per round trip, raw replies.

:class:`DirectChannel` is the fast path for the client the factory builds itself: it
keeps its own stack of redis-py ``Connection`` objects and talks to them directly.
redis-py's pool spends more CPU per command than the whole round trip costs on
loopback (a poll of the socket and observability bookkeeping at every checkout,
measured in ``benchmarks/``); a session needs none of that, since a connection goes
back to the stack only after its replies were read in full.

:class:`ClientChannel` sends through a redis-py client's ``execute_command``: used for
a user's ``redis_connection_pool`` or ``redis_client_callable`` (Sentinel, Cluster...),
whose routing and pooling are theirs to keep.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from redis.connection import Connection, ConnectionPool, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .resp import ReplyReader, pack


class MaxConnectionsError(RedisConnectionError):
    """Every allowed connection is in use (``max_connections``)."""


class _NoReply(RedisConnectionError):
    """The connection failed before any byte of a reply came back: safe to send again."""


Command = Sequence[Any]


class CommandChannel(Protocol):
    """Sends commands; replies are redis-py's raw parsed replies (bytes, int, None...)."""

    def execute(self, *args: Any) -> Any: ...

    def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        """Several commands in one round trip (not a transaction)."""
        ...


class ClientChannel:
    """Commands through a redis-py (or compatible) client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def execute(self, *args: Any) -> Any:
        return self.client.execute_command(*args)

    def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute())


class DirectChannel:
    """Commands on connections of our own, made like ``pool``'s; thread-safe.

    A connection is checked out for one round trip and pushed back only once its
    replies were read in full and nothing else arrived; any failure in between closes
    it. When an idle connection turns out to be dropped (server restart, idle timeout)
    before any reply came back, the other idle ones are closed too and the commands are
    sent once more on a new connection; a new connection that fails, a connection lost
    in the middle of a reply, and any timeout raise at once. At most
    ``pool.max_connections`` connections are open at a time, as with redis-py.
    """

    def __init__(self, pool: Any) -> None:
        self._connection_class = pool.connection_class
        self._connection_kwargs = dict(pool.connection_kwargs)
        self._encoding: str = self._connection_kwargs.get("encoding", "utf-8")
        self._encoding_errors: str = self._connection_kwargs.get("encoding_errors", "strict")
        self._max_connections: int = pool.max_connections
        self._idle: deque[Any] = deque()  # append/pop are atomic: no lock needed
        self._open = 0  # connections made and not discarded; counted under the lock
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @staticmethod
    def suits(pool: Any) -> bool:
        """Whether ``pool`` is a plain redis-py pool this channel can stand in for.

        TCP and unix sockets only: TLS connections stay with redis-py until the test
        suite can run a TLS server everywhere it runs.
        """
        return (
            type(pool) is ConnectionPool  # not a Sentinel or a blocking pool
            and pool.connection_class in (Connection, UnixDomainSocketConnection)
            and getattr(pool, "cache", None) is None  # no client-side caching
            and isinstance(getattr(pool, "max_connections", None), int)
            # The socket attribute this channel reads (a private one of redis-py's):
            # another redis-py that lacks it keeps the redis-py path.
            and hasattr(pool.connection_class(**pool.connection_kwargs), "_sock")
        )

    def execute(self, *args: Any) -> Any:
        return self._round_trip((args,))[0]

    def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        return self._round_trip(commands)

    def _round_trip(self, commands: Sequence[Command]) -> list[Any]:
        connection = self._idle_connection()
        if connection is None:
            return self._on_connection(self._new_connection(), commands)
        try:
            return self._on_connection(connection, commands)
        except _NoReply:
            self._close_idle()
            return self._on_connection(self._new_connection(), commands)

    def _on_connection(self, connection: Any, commands: Sequence[Command]) -> list[Any]:
        reader: ReplyReader | None = None
        try:
            sock = _socket_of(connection)
            try:
                sock.sendall(pack(commands, self._encoding, self._encoding_errors))
            except TimeoutError as exc:
                raise RedisTimeoutError("Timeout writing to Redis") from exc
            except OSError as exc:
                raise _NoReply(f"Error writing to Redis: {exc}") from exc
            reader = ReplyReader(sock)
            replies = [reader.read() for _ in commands]
        except RedisConnectionError as exc:
            self._discard(connection)
            if reader is None or reader.received or isinstance(exc, _NoReply):
                raise
            raise _NoReply(str(exc)) from exc
        except BaseException:
            self._discard(connection)
            raise
        if reader.pending:  # unexplained bytes after the replies: do not reuse the stream
            self._discard(connection)
        else:
            self._idle.append(connection)
        for reply in replies:
            if isinstance(reply, RedisError):  # an error reply: raised once all were read
                raise reply
        return replies

    def _idle_connection(self) -> Any:
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            with self._lock:
                self._idle, self._open, self._pid = deque(), 0, os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            return None

    def _new_connection(self) -> Any:
        with self._lock:
            if self._open >= self._max_connections:
                raise MaxConnectionsError("Too many connections")
            self._open += 1
        return self._connection_class(**self._connection_kwargs)

    def _discard(self, connection: Any) -> None:
        connection.disconnect()
        with self._lock:
            self._open -= 1

    def _close_idle(self) -> None:
        while True:
            try:
                connection = self._idle.pop()
            except IndexError:
                return
            self._discard(connection)


def _socket_of(connection: Any) -> socket.socket:
    """The connected socket of a redis-py connection (connecting it, with its handshake)."""
    sock: socket.socket | None = connection._sock
    if sock is None:
        connection.connect()
        sock = connection._sock
        if sock is None:
            raise RedisConnectionError("the connection has no socket")
    return sock
