"""The wire protocol: commands packed, replies read from a real socket in any chunking.

The server end of a ``socket.socketpair`` plays Redis with canned bytes, so every reply
type and every way of splitting it across reads is covered; the rest of the suite runs
the same reader against real servers.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from pyramid_session_redis.resp import ProtocolError, ReplyReader, pack


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, server = socket.socketpair()
    ours.settimeout(2)
    yield ours, server
    ours.close()
    server.close()


def read_all(data: bytes, count: int, chunk: int | None = None) -> list[Any]:
    """Read ``count`` replies from ``data`` sent in chunks of ``chunk`` bytes."""
    ours, server = socket.socketpair()
    ours.settimeout(2)

    def feed() -> None:
        step = chunk or len(data) or 1
        for start in range(0, len(data), step):
            server.sendall(data[start : start + step])

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        reader = ReplyReader(ours)
        replies = [reader.read() for _ in range(count)]
        assert not reader.pending
        return replies
    finally:
        feeder.join(5)
        ours.close()
        server.close()


def test_pack_writes_resp_arrays_of_bulk_strings() -> None:
    packed = pack([("SET", "clé", b"\r\n", 60), ("GET", "k")], "utf-8", "strict")
    assert packed == (
        b"*4\r\n$3\r\nSET\r\n$4\r\ncl\xc3\xa9\r\n$2\r\n\r\n\r\n$2\r\n60\r\n"
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    )
    assert pack([("GET", "clé")], "latin-1", "strict") == b"*2\r\n$3\r\nGET\r\n$3\r\ncl\xe9\r\n"
    for bad in (1.5, True, None, bytearray(b"x")):
        with pytest.raises(TypeError):
            pack([("SET", "k", bad)], "utf-8", "strict")


REPLIES: list[tuple[bytes, Any]] = [
    (b"+OK\r\n", b"OK"),
    (b":42\r\n", 42),
    (b":-7\r\n", -7),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$4\r\na\r\nb\r\n", b"a\r\nb"),  # CRLF inside a bulk string
    (b"$-1\r\n", None),
    (b"_\r\n", None),
    (b"*-1\r\n", None),
    (b"*2\r\n$1\r\na\r\n:1\r\n", [b"a", 1]),
    (b"*2\r\n*1\r\n+x\r\n*0\r\n", [[b"x"], []]),
    (b"%1\r\n+k\r\n:1\r\n", [b"k", 1]),
    (b"~2\r\n:1\r\n:2\r\n", [1, 2]),
    (b"#t\r\n", True),
    (b"#f\r\n", False),
    (b",1.5\r\n", 1.5),
    (b"(12345678901234567890\r\n", 12345678901234567890),
    (b"=7\r\ntxt:abc\r\n", b"abc"),
]


@pytest.mark.parametrize(("data", "expected"), REPLIES)
def test_every_reply_type(data: bytes, expected: Any) -> None:
    assert read_all(data, 1) == [expected]


def test_replies_split_at_every_byte_read_the_same() -> None:
    data = b"".join(d for d, _ in REPLIES)
    expected = [e for _, e in REPLIES]
    for chunk in (1, 2, 3, 7, 64):
        assert read_all(data, len(REPLIES), chunk) == expected


def test_a_large_value_arriving_in_many_reads() -> None:
    value = bytes(range(256)) * 8192  # 2 MB
    assert read_all(b"$%d\r\n%s\r\n" % (len(value), value), 1, 65536 - 3) == [value]


def test_push_messages_are_skipped() -> None:
    push = b">3\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n$1\r\nx\r\n"
    assert read_all(push + b":1\r\n" + push + b"$1\r\nv\r\n", 2) == [1, b"v"]


def test_error_replies_are_returned_as_redis_pys_exceptions() -> None:
    noscript, wrongtype, err, bulk_error = read_all(
        b"-NOSCRIPT No matching script.\r\n"
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        b"-ERR unknown command 'GETEX'\r\n"
        b"!9\r\nERR nopes\r\n",
        4,
    )
    assert type(noscript) is redis.exceptions.NoScriptError
    assert type(wrongtype) is redis.ResponseError and str(wrongtype).startswith("WRONGTYPE")
    assert type(err) is redis.ResponseError and "unknown command" in str(err)
    assert type(bulk_error) is redis.ResponseError and "nopes" in str(bulk_error)


@pytest.mark.parametrize(
    "data",
    [b"?what\r\n", b"$3\r\nabcXY", b"$-5\r\n", b":notanumber\r\n", b"*x\r\n", b",nan?\r\n"],
)
def test_malformed_replies_are_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        read_all(data, 1)
    assert isinstance(info.value, redis.ConnectionError)  # a typed backend error upstream


def test_a_closed_connection_is_a_connection_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, server = pair
    server.sendall(b"$10\r\nhalf")
    server.close()
    with pytest.raises(redis.ConnectionError):
        ReplyReader(ours).read()


def test_a_silent_server_is_a_timeout(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    ours.settimeout(0.2)
    with pytest.raises(redis.TimeoutError):
        ReplyReader(ours).read()


def test_bytes_beyond_the_replies_are_noticed() -> None:
    ours, server = socket.socketpair()
    with ours, server:
        server.sendall(b":1\r\n:2\r\n")
        reader = ReplyReader(ours)
        assert reader.read() == 1
        assert reader.pending
