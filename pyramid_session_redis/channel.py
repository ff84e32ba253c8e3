"""How commands reach Redis: one call per round trip, raw replies.

:class:`DirectChannel` is the fast path for the client the factory builds itself: it
keeps its own stack of redis-py connections and speaks through redis-py's public
per-connection API (``send_packed_command``, ``read_response``).
redis-py's pool spends more CPU per command than the whole round trip costs on
loopback (observability bookkeeping at every checkout, measured in ``benchmarks/``); a
session needs none of it, since a connection goes back to the stack only after its
replies were read in full. Parsing is redis-py's: its C parser when ``hiredis`` is
installed, RESP3 push messages handed to redis-py's handlers.

:class:`ClientChannel` sends through a redis-py client's ``execute_command``: used for
a user's ``redis_connection_pool`` or ``redis_client_callable`` (Sentinel, Cluster...),
whose routing and pooling are theirs to keep.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from time import monotonic
from typing import Any, Protocol

from redis.client import Redis
from redis.connection import (
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

# A connection idle for longer is checked (one poll of its socket) before reuse; a busy
# one is not: its replies were just read in full, and the poll costs ~5 µs of CPU per
# command without hiredis (benchmarks/connection.py). A server restart takes longer.
CHECK_IDLE_AFTER = 0.05


class MaxConnectionsError(RedisConnectionError):
    """Every allowed connection is in use (``max_connections``)."""


class ProtocolError(RedisConnectionError):
    """The server sent something no reply can be read from: the connection is dropped."""


Command = Sequence[Any]


class CommandChannel(Protocol):
    """Sends commands; replies are redis-py's raw parsed replies (bytes, int, None...)."""

    def execute(self, *args: Any) -> Any: ...

    def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        """Several commands in one round trip (not a transaction)."""
        ...


# Commands sent again once after a dropped connection: running one twice changes
# nothing. A write is never resent: its reply may be what was lost, and a
# compare-and-set that ran would then conflict with itself and merge the request's own
# changes in twice (a flash message or an increment doubled).
RESENDABLE = frozenset((b"GET", b"GETEX", b"TTL", b"PTTL", b"EXPIRE", b"EXISTS"))


def command_name(command: Command) -> bytes:
    """The command's name, upper-case bytes (``b"GET"``), however it was given."""
    name = command[0]
    return (name.encode() if isinstance(name, str) else bytes(name)).upper()


def _resendable(command: Command) -> bool:
    return command_name(command) in RESENDABLE


class ClientChannel:
    """Commands through a redis-py (or compatible) client.

    The clients the factory builds for Sentinel and Cluster resend nothing themselves;
    here a read is sent again once on a fresh connection when its connection dropped
    (after a failover or a restart), a write never (:data:`RESENDABLE`).

    A client the application made may resend by itself (``redis.Redis(host=...)``
    retries ten times in redis-py 8): a write through a ``redis.Redis`` (Sentinel's
    master clients included) therefore goes out once, on a connection taken from the
    client's pool with redis-py's public per-connection calls, which never resend.
    Other clients (``RedisCluster``...) are used as they are.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        pool = getattr(client, "connection_pool", None)
        self._pool = pool if isinstance(client, Redis) and pool is not None else None

    def execute(self, *args: Any) -> Any:
        try:
            if self._pool is not None and not _resendable(args):
                return self._once((args,))[0]
            try:
                return self.client.execute_command(*args)
            except RedisConnectionError:
                if not _resendable(args):
                    raise
            return self.client.execute_command(*args)
        except RecursionError as exc:  # redis-py dropped the connection (see _nested_too_deeply)
            raise _nested_too_deeply(exc) from exc

    def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        writes = not all(_resendable(command) for command in commands)
        try:
            if self._pool is not None and writes:
                return self._once(commands)
            try:
                return self._pipeline(commands)
            except RedisConnectionError:
                if writes:
                    raise
            return self._pipeline(commands)
        except RecursionError as exc:
            raise _nested_too_deeply(exc) from exc

    def _once(self, commands: Sequence[Command]) -> list[Any]:
        """One round trip on a connection of the client's pool; raw replies, as
        :class:`DirectChannel` gives them."""
        pool = self._pool
        assert pool is not None
        connection = _take_connection(pool)
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            replies = [_read_reply(connection) for _ in commands]
        except BaseException:
            connection.disconnect()  # not in step, or dropped: never reused as it is
            raise
        finally:
            pool.release(connection)
        return _raise_error_reply(replies)

    def _pipeline(self, commands: Sequence[Command]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute())


def _nested_too_deeply(exc: RecursionError) -> ProtocolError:
    """What a reply that made redis-py's Python parser recurse too deeply is raised as.

    The parser recurses into arrays; redis-py closes a connection whose read raised
    anything (so does :meth:`ClientChannel._once`), so none is reused out of step.
    """
    return ProtocolError(f"Redis sent a reply nested too deeply to read ({exc})")


def _take_connection(pool: Any) -> Any:
    try:
        return pool.get_connection()
    except TypeError:  # redis-py before 5.3 asks for a command name (its pools ignore it)
        return pool.get_connection("_")


class LazyChannel:
    """A :class:`ClientChannel` whose client is built by the first command that needs it.

    For clients that talk to a server in their constructor (redis-py's ``RedisCluster``
    asks for the slot map). Concurrent first commands build one client between them; a
    build that fails (the servers are down) raises the client's error to that command
    and the next one tries again. A forked child keeps the parent's client (redis-py's
    pools reconnect in a new process) but gets a fresh lock.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._channel: ClientChannel | None = None
        self._lock = threading.Lock()
        _LAZY_CHANNELS.add(self)

    @property
    def client(self) -> Any:
        """The client, built now if it was not yet."""
        return self._ready().client

    def _ready(self) -> ClientChannel:
        channel = self._channel
        if channel is None:
            with self._lock:
                channel = self._channel
                if channel is None:
                    channel = self._channel = ClientChannel(self._build())
        return channel

    def execute(self, *args: Any) -> Any:
        return self._ready().execute(*args)

    def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        return self._ready().execute_many(commands)


class DirectChannel:
    """Commands on connections of our own, made as ``pool`` makes its own; thread-safe.

    A connection is checked out for one round trip and pushed back only once its
    replies were read in full; any failure in between closes it, and the idle ones
    with it. A connection idle for more than ``CHECK_IDLE_AFTER`` seconds is polled
    before reuse: one the server closed meanwhile (restart, idle timeout) is replaced,
    with every other idle one, before a command is sent. A command that reached the
    server is never sent twice. Replies are never decoded, whatever the pool's
    ``decode_responses``. At most ``pool.max_connections`` connections are open at a
    time, as with redis-py; a forked child starts with none.
    """

    def __init__(self, pool: Any) -> None:
        self._pool = pool  # its connection_kwargs are read for each new connection
        self._encoding: str = pool.connection_kwargs.get("encoding", "utf-8")
        self._encoding_errors: str = pool.connection_kwargs.get("encoding_errors", "strict")
        self._max_connections: int = pool.max_connections
        self._reset()
        _CHANNELS.add(self)

    def _reset(self) -> None:
        """No connections and a fresh lock: at start, and in a forked child."""
        # (connection, when it was released); append/pop are atomic: no lock needed
        self._idle: deque[tuple[Any, float]] = deque()
        self._open = 0  # connections made and not discarded; counted under the lock
        self._lock = threading.Lock()

    @staticmethod
    def suits(pool: Any) -> bool:
        """Whether ``pool`` is a plain redis-py pool this channel can stand in for."""
        return (
            type(pool) is ConnectionPool  # not a Sentinel or a blocking pool
            and pool.connection_class in (Connection, SSLConnection, UnixDomainSocketConnection)
            and getattr(pool, "cache", None) is None  # no client-side caching
            and isinstance(getattr(pool, "max_connections", None), int)
        )

    def execute(self, *args: Any) -> Any:
        return self._round_trip((args,))[0]

    def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        return self._round_trip(commands)

    def _round_trip(self, commands: Sequence[Command]) -> list[Any]:
        packed = pack(commands, self._encoding, self._encoding_errors)
        connection = self._checkout()
        try:
            connection.send_packed_command((packed,), check_health=False)
            replies = [_read_reply(connection) for _ in commands]
        except RecursionError as exc:
            self._discard(connection)
            raise _nested_too_deeply(exc) from exc
        except RedisConnectionError:
            self._discard(connection)
            self._close_idle()  # dropped by a restart, most likely: so are the idle ones
            raise
        except BaseException:
            self._discard(connection)
            raise
        self._idle.append((connection, monotonic()))
        return _raise_error_reply(replies)

    def _checkout(self) -> Any:
        """An idle connection still open and in step, else a new one."""
        while True:
            try:
                connection, released = self._idle.pop()
            except IndexError:
                return self._new_connection()
            if monotonic() - released < CHECK_IDLE_AFTER:
                return connection  # busy: its replies were just read in full
            try:
                # RESP3 (redis-py 8's default) may hold push messages sent while the
                # connection was idle: redis-py's parser reads them before the reply.
                if not connection.can_read() or connection.protocol in (3, "3"):
                    return connection
            except RedisConnectionError:  # closed by the server while idle
                self._discard(connection)
                self._close_idle()  # a restart dropped them all: do not try each in turn
                continue
            self._discard(connection)  # unexplained bytes: the stream is not in step

    def _new_connection(self) -> Any:
        with self._lock:
            if self._open >= self._max_connections:
                raise MaxConnectionsError("Too many connections")
            self._open += 1
        try:
            return self._pool.connection_class(**self._pool.connection_kwargs)
        except BaseException:
            self._forget()
            raise

    def _discard(self, connection: Any) -> None:
        try:
            connection.disconnect()
        finally:
            self._forget()

    def _forget(self) -> None:
        with self._lock:
            self._open -= 1

    def _close_idle(self) -> None:
        while True:
            try:
                connection, _ = self._idle.pop()
            except IndexError:
                return
            self._discard(connection)


def pack(commands: Sequence[Command], encoding: str, errors: str) -> bytes:
    """Commands as RESP arrays of bulk strings: arguments are bytes, str or int.

    What redis-py's packer does for these types, at a fraction of its CPU cost
    without hiredis (measured in ``benchmarks/connection.py``).
    """
    parts: list[bytes] = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for arg in command:
            if isinstance(arg, str):
                arg = arg.encode(encoding, errors)
            elif type(arg) is int:
                arg = b"%d" % arg
            elif not isinstance(arg, bytes):
                raise TypeError(f"cannot send a {type(arg).__name__} to Redis")
            parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def _raise_error_reply(replies: list[Any]) -> list[Any]:
    """``replies``, unless one is an error reply: raised once all of them were read, so
    that the connection stays in step."""
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def _read_reply(connection: Any) -> Any:
    """One reply, raw bytes; an error reply is returned so the next ones are still read."""
    try:
        return connection.read_response(disable_decoding=True)
    except ResponseError as exc:  # redis-py leaves the connection in step for these
        return exc


# Every channel of this process, so that a forked child can reset them all at once,
# before any thread of its own runs (a lock held by a parent's thread at fork time
# would never be released in the child; the parent's sockets are not the child's).
_CHANNELS: weakref.WeakSet[DirectChannel] = weakref.WeakSet()
_LAZY_CHANNELS: weakref.WeakSet[LazyChannel] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for channel in list(_CHANNELS):
        channel._reset()
    for lazy in list(_LAZY_CHANNELS):
        lazy._lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_after_fork)
