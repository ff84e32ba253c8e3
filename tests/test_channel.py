"""How commands reach Redis: the factory's own connections, and a user's client or pool.

The factory's own client talks to its connections directly (``DirectChannel``); these
tests pin what that must keep from redis-py's pool: URL options, reuse, the
``max_connections`` bound, recovery from dropped connections, no stale replies after a
timeout, and fork safety. Servers are real and private to each test that breaks them.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
import redis
import webtest

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.channel import (
    CHECK_IDLE_AFTER,
    ClientChannel,
    DirectChannel,
    MaxConnectionsError,
    pack,
)
from tests.app import SECRET, build_wsgi_app
from tests.servers import RedisServerProcess, ServerFactory
from tests.test_channel_faults import pushes_readable


def direct(url: str, **options: Any) -> DirectChannel:
    pool = redis.ConnectionPool.from_url(url, **options)
    assert DirectChannel.suits(pool)
    return DirectChannel(pool)


def client_ids(admin: redis.Redis, name: str) -> list[int]:
    """Ids of the server's connections named ``name`` (the admin's own is unnamed)."""
    return [int(c["id"]) for c in admin.client_list() if c.get("name") == name]


# --------------------------------------------------------------------------- which channel


def test_the_factorys_own_client_uses_direct_connections_with_the_url_options(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    admin = server.client()
    url = f"{server.url.rsplit('/', 1)[0]}/3?client_name=sessions"
    app = webtest.TestApp(build_wsgi_app(RedisSessionFactory(SECRET, redis_url=url)))
    for value in range(20):
        app.get("/set", {"key": "n", "value": str(value)})
    session_id = app.get("/session_id").json
    assert redis.Redis(port=server.port, db=3).exists(session_id) == 1
    assert admin.exists(session_id) == 0
    # Sequential requests reuse one connection, named as the URL asks.
    assert len(client_ids(admin, "sessions")) == 1


def test_a_user_pool_is_used_as_given(redis_url: str, redis_client: redis.Redis) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, client_name="users-pool")
    factory = RedisSessionFactory(SECRET, redis_connection_pool=pool)
    app = webtest.TestApp(build_wsgi_app(factory))
    app.get("/set", {"key": "a", "value": "1"})
    assert isinstance(factory.store_for(None).channel, ClientChannel)  # type: ignore[arg-type]
    assert len(client_ids(redis_client, "users-pool")) == 1
    assert pool._created_connections >= 1
    pool.disconnect()


def test_pools_with_their_own_behaviour_are_not_replaced(redis_url: str) -> None:
    assert not DirectChannel.suits(redis.BlockingConnectionPool.from_url(redis_url))
    assert DirectChannel.suits(redis.ConnectionPool.from_url("rediss://127.0.0.1:1/0"))
    assert DirectChannel.suits(redis.ConnectionPool.from_url(redis_url))
    assert DirectChannel.suits(redis.ConnectionPool.from_url("unix:///tmp/redis.sock"))


@pytest.mark.parametrize("how", ["url", "option"])
def test_sessions_over_a_unix_socket(
    redis_server: RedisServerProcess, redis_client: redis.Redis, how: str
) -> None:
    path = redis_server.unix_socket
    options = (
        {"redis_url": f"unix://{path}?db=0&client_name=over-unix"}
        if how == "url"
        else {"redis_unix_socket_path": path}
    )

    def over_the_socket() -> set[str]:
        return {c["id"] for c in redis_client.client_list() if c["laddr"].startswith(path)}

    before = over_the_socket()
    factory = RedisSessionFactory(SECRET, **options)
    assert isinstance(factory.store_for(None).channel, DirectChannel)  # type: ignore[arg-type]
    app = webtest.TestApp(build_wsgi_app(factory))
    app.get("/set", {"key": "a", "value": "[1, 2]"})
    session_id = app.get("/session_id").json
    assert redis_client.exists(session_id) == 1
    assert app.get("/read", {"key": "a"}).json == [1, 2]
    assert len(over_the_socket() - before) == 1  # the session's one connection


# --------------------------------------------------------------------------- replies and errors


def test_commands_are_packed_as_resp_arrays_of_bulk_strings() -> None:
    packed = pack([("SET", "clé", b"\r\n", 60), ("GET", "k")], "utf-8", "strict")
    assert packed == (
        b"*4\r\n$3\r\nSET\r\n$4\r\ncl\xc3\xa9\r\n$2\r\n\r\n\r\n$2\r\n60\r\n"
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    )
    assert pack([("GET", "clé")], "latin-1", "strict") == b"*2\r\n$3\r\nGET\r\n$3\r\ncl\xe9\r\n"
    for bad in (1.5, True, None, bytearray(b"x")):
        with pytest.raises(TypeError):
            pack([("SET", "k", bad)], "utf-8", "strict")


def test_arguments_and_replies_round_trip(redis_url: str, redis_client: redis.Redis) -> None:
    channel = direct(redis_url)
    payload = bytes(range(256)) + b"\r\n$3\r\n"
    assert channel.execute("SET", "clé", payload, "EX", 60) == b"OK"
    assert redis_client.get("clé") == payload
    assert 0 < redis_client.ttl("clé") <= 60
    assert channel.execute("GET", "clé") == payload
    assert channel.execute("GET", "missing") is None
    assert channel.execute_many([("INCR", "n"), ("INCRBY", "n", 41)]) == [1, 42]
    with pytest.raises(TypeError):
        channel.execute("SET", "k", object())


def test_an_error_reply_keeps_the_connection_in_step(
    redis_url: str, redis_client: redis.Redis
) -> None:
    channel = direct(redis_url, client_name="in-step")
    redis_client.set("text", "not a number")
    redis_client.set("k", "v")
    with pytest.raises(redis.exceptions.NoScriptError):
        channel.execute("EVALSHA", "0" * 40, 0)
    with pytest.raises(redis.ResponseError, match="not an integer"):
        channel.execute_many([("INCR", "text"), ("GET", "k")])
    assert channel.execute("GET", "k") == b"v"
    assert len(client_ids(redis_client, "in-step")) == 1  # never reconnected


def test_push_messages_from_the_server_are_not_taken_for_replies(
    redis_url: str, redis_client: redis.Redis
) -> None:
    if not pushes_readable(f"{redis_url}?protocol=3"):
        return
    channel = direct(redis_url, protocol=3)
    assert channel.execute("CLIENT", "TRACKING", "ON") == b"OK"
    redis_client.set("tracked", "1")
    assert channel.execute("GET", "tracked") == b"1"  # now tracked by our connection
    redis_client.set("tracked", "2")  # the server pushes an invalidation to us
    time.sleep(0.1)
    assert channel.execute("GET", "tracked") == b"2"
    assert channel.execute("PING") == b"PONG"


def test_a_timed_out_connection_is_dropped_so_no_reply_arrives_late(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    server.client().set("k", "v")
    channel = direct(server.url, socket_timeout=0.5, client_name="late")
    assert channel.execute("PING") == b"PONG"
    with server.paused(), pytest.raises(redis.TimeoutError):
        channel.execute("GET", "k")
    # The GET's reply is now on the old socket; a reused socket would hand it to this PING.
    assert channel.execute("PING") == b"PONG"
    assert channel.execute("GET", "k") == b"v"
    assert len(client_ids(server.client(), "late")) == 1


# --------------------------------------------------------------------------- connections


def test_dropped_connections_are_replaced_without_an_error(server_factory: ServerFactory) -> None:
    server = server_factory()
    channel = direct(server.url, client_name="dropped")
    hold_three_connections(channel)
    server.restart()
    assert channel.execute("PING") == b"PONG"  # the stale ones are closed, not tried in turn
    assert len(client_ids(server.client(), "dropped")) == 1
    server.client().client_kill_filter(_type="normal", skipme=True)  # drop them again
    time.sleep(2 * CHECK_IDLE_AFTER)  # idle long enough to be checked before reuse
    assert channel.execute("SET", "k", "v") == b"OK"


def test_a_new_connection_that_fails_raises_at_once(server_factory: ServerFactory) -> None:
    server = server_factory()
    channel = direct(server.url)
    server.stop()
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        channel.execute("PING")
    assert time.monotonic() - started < 3
    server.start()
    assert channel.execute("PING") == b"PONG"


def test_max_connections_from_the_url_is_honoured(redis_url: str) -> None:
    channel = direct(f"{redis_url}?max_connections=1")
    blocked = threading.Thread(target=channel.execute, args=("BLPOP", "no-such-list", "0.5"))
    blocked.start()
    time.sleep(0.2)  # the BLPOP holds the only connection for half a second
    with pytest.raises(MaxConnectionsError):
        channel.execute("PING")
    blocked.join(5)
    assert channel.execute("PING") == b"PONG"


def test_a_forked_child_opens_its_own_connections(redis_url: str) -> None:
    channel = direct(redis_url)
    parent_id = channel.execute("CLIENT", "ID")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the id of the connection it used, then leave at once
        try:
            os.write(write_end, str(channel.execute("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_id = int(pipe.read() or -1)
    os.waitpid(pid, 0)
    assert child_id not in (-1, parent_id)
    assert channel.execute("CLIENT", "ID") == parent_id  # the parent's connection is intact


def hold_three_connections(channel: DirectChannel) -> None:
    """Leave three idle connections in ``channel`` (three commands at the same time)."""
    threads = [
        threading.Thread(target=channel.execute, args=("BLPOP", "no-such-list", "0.2"))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
