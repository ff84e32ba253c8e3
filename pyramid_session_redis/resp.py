"""The Redis wire protocol (RESP2 and RESP3), for the few commands a session sends.

:func:`pack` writes commands; :class:`ReplyReader` reads replies from a connected
socket. Connecting, authenticating and choosing the protocol stay with redis-py
(see :mod:`pyramid_session_redis.channel`); this is only the per-command path, where
redis-py's general-purpose reader costs more CPU than the round trip itself.

Replies come back as redis-py gives them without response callbacks: bytes for
strings, int, None, lists (arrays, sets, maps as flat lists), float, bool. An error
reply is *returned* as the exception redis-py would raise (``NoScriptError``,
``ResponseError``...), so that a caller reading several replies stays in step. RESP3
push messages (out-of-band notifications) are skipped.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from redis._parsers import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

_RECV_SIZE = 65536
_CRLF = b"\r\n"


def pack(commands: Sequence[Sequence[Any]], encoding: str, errors: str) -> bytes:
    """Commands in RESP: arguments are bytes, str (encoded as given) or int."""
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


class ProtocolError(RedisConnectionError):
    """The server sent something that is not a RESP reply: the connection is unusable."""


class ReplyReader:
    """Reads whole replies from ``sock``; socket failures become redis-py's errors."""

    __slots__ = ("_buffer", "_pos", "_sock", "received")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self._pos = 0
        self.received = False  # any byte arrived

    @property
    def pending(self) -> bool:
        """Bytes arrived that no reply read so far accounted for."""
        return self._pos < len(self._buffer)

    def read(self) -> Any:
        """The next reply; an error reply is returned as an exception instance."""
        try:
            while True:
                line = self._line()
                if line[:1] != b">":
                    return self._value(line)
                self._value(b"*" + line[1:])  # a push message: not a reply, read past it
        except ValueError as exc:  # a length or number that is not one
            raise ProtocolError(f"malformed reply: {exc}") from exc

    def _value(self, line: bytes) -> Any:
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            return None if rest == b"-1" else self._exact(int(rest))
        if kind == b"+":
            return rest
        if kind == b":":
            return int(rest)
        if kind == b"-":
            return _error(rest)
        if kind == b"_":
            return None
        if kind in (b"*", b"~", b">"):
            return None if rest == b"-1" else [self._item() for _ in range(int(rest))]
        if kind == b"%":
            return [self._item() for _ in range(2 * int(rest))]
        if kind == b"#":
            return rest == b"t"
        if kind == b",":
            return float(rest)
        if kind == b"(":
            return int(rest)
        if kind == b"=":
            return self._exact(int(rest))[4:]  # "txt:" or "mkd:" first
        if kind == b"!":
            return _error(self._exact(int(rest)))
        raise ProtocolError(f"unexpected reply type {kind!r}")

    def _item(self) -> Any:
        return self._value(self._line())

    def _line(self) -> bytes:
        while True:
            end = self._buffer.find(_CRLF, self._pos)
            if end >= 0:
                line = self._buffer[self._pos : end]
                self._pos = end + 2
                return line
            self._fill()

    def _exact(self, size: int) -> bytes:
        """``size`` bytes and the CRLF after them."""
        if size < 0:
            raise ProtocolError(f"negative length {size}")
        end = self._pos + size + 2
        if len(self._buffer) < end:  # gather the rest in one join: large values stay linear
            parts = [self._buffer[self._pos :]]
            have = len(parts[0])
            while have < size + 2:
                parts.append(self._recv())
                have += len(parts[-1])
            self._buffer, self._pos, end = b"".join(parts), 0, size + 2
        if self._buffer[end - 2 : end] != _CRLF:
            raise ProtocolError("bulk reply not terminated by CRLF")
        data = self._buffer[self._pos : end - 2]
        self._pos = end
        return data

    def _fill(self) -> None:
        self._buffer = self._buffer[self._pos :] + self._recv()
        self._pos = 0

    def _recv(self) -> bytes:
        try:
            chunk = self._sock.recv(_RECV_SIZE)
        except TimeoutError as exc:
            raise RedisTimeoutError("Timeout reading from Redis") from exc
        except OSError as exc:
            raise RedisConnectionError(f"Error reading from Redis: {exc}") from exc
        if not chunk:
            raise RedisConnectionError("Connection closed by server.")
        self.received = True
        return chunk


def _error(message: bytes) -> RedisError:
    """The exception redis-py raises for this error reply (same classes, same messages)."""
    error: RedisError = BaseParser.parse_error(  # type: ignore[no-untyped-call]
        message.decode("utf-8", "replace")
    )
    return error
