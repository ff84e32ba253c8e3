"""The direct connections under faults: what reached the server is never sent twice,
hostile replies and push messages, forks, failing constructors, decoding pools.

Faults a real server does not make on request come from a scripted RESP server
(``tests/scripted_server.py``); everything else runs against the session server.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import webtest
from redis.backoff import NoBackoff
from redis.retry import Retry

from pyramid_session_redis import RedisSessionFactory, connection
from pyramid_session_redis.channel import CHECK_IDLE_AFTER, ClientChannel, DirectChannel
from pyramid_session_redis.exceptions import ConfigurationError, SessionBackendError
from pyramid_session_redis.settings import build_settings
from pyramid_session_redis.store import RedisStore, ServerFeatures
from tests.app import SECRET, BackendErrorsAre503, build_wsgi_app
from tests.lossy_proxy import LossyProxy
from tests.scripted_server import ScriptedServer


def direct(url: str, **options: Any) -> DirectChannel:
    pool = redis.ConnectionPool.from_url(url, **options)
    assert DirectChannel.suits(pool)
    return DirectChannel(pool)


def pushes_readable(url: str) -> bool:
    """Whether this redis-py reads RESP3 pushes at ``url``; where not, the factory refuses it.

    (redis-py before 6.2 with hiredis hands them over as replies.)
    """
    if connection.pushes_are_parsed(redis.ConnectionPool.from_url(url)):
        return True
    with pytest.raises(ConfigurationError, match="protocol=3 with hiredis"):
        RedisSessionFactory(SECRET, redis_url=url)
    return False


# --------------------------------------------------------------------------- never sent twice


def test_a_connection_closed_while_idle_is_replaced_before_the_command_is_sent() -> None:
    with ScriptedServer({b"SET": ["close_after", "reply"]}) as server:
        channel = direct(server.url())
        assert channel.execute("SET", "a", "1") == b"OK"  # then the server closes it
        time.sleep(2 * CHECK_IDLE_AFTER)
        assert channel.execute("SET", "b", "1") == b"OK"
        assert server.seen == [b"SET a 1", b"SET b 1"]
        assert server.connections == 2


def test_a_connection_closed_right_after_its_last_reply_is_an_error_never_a_resend() -> None:
    """Busy connections skip the check: one dropped within CHECK_IDLE_AFTER of its
    last use fails the command that found it (which never reached a server)."""
    with ScriptedServer({b"SET": ["close_after", "reply"]}) as server:
        channel = direct(server.url())
        assert channel.execute("SET", "a", "1") == b"OK"  # then the server closes it
        with pytest.raises(redis.ConnectionError):
            channel.execute("SET", "b", "1")
        assert server.seen == [b"SET a 1"]
        assert channel.execute("SET", "c", "1") == b"OK"  # on a new connection
        assert server.seen == [b"SET a 1", b"SET c 1"]


@pytest.mark.parametrize("fault", ["drop", "half"])
def test_a_command_that_reached_the_server_is_never_sent_again(fault: str) -> None:
    with ScriptedServer({b"SET": ["reply", fault, "reply"]}) as server:
        channel = direct(server.url())
        assert channel.execute("SET", "a", "1") == b"OK"
        # The server may have run it before the connection died: an error, no resend.
        with pytest.raises(redis.ConnectionError):
            channel.execute("SET", "b", "1")
        assert server.seen == [b"SET a 1", b"SET b 1"]
        assert channel.execute("SET", "c", "1") == b"OK"  # on a new connection


# ----------------------------------------------------- redis-py clients (Sentinel, Cluster, TLS)


def client_channel(url: str) -> ClientChannel:
    """A channel over a redis-py client built with the options the factory gives them."""
    options = connection.common_options(build_settings(SECRET, redis_url=url))
    return ClientChannel(redis.Redis.from_url(url, **options))


@pytest.mark.parametrize(
    ("command", "reply", "expected"),
    [
        (("GET", "a"), b"$1\r\nx\r\n", b"x"),
        (("GETEX", "a", "EX", "60"), b"$1\r\nx\r\n", b"x"),
        (("EXPIRE", "a", "60"), b":1\r\n", 1),
    ],
)
def test_a_client_channel_sends_a_read_again_after_its_connection_dropped(
    command: tuple[str, ...], reply: bytes, expected: Any
) -> None:
    with ScriptedServer({command[0].encode(): ["drop", reply]}) as server:
        assert client_channel(server.url()).execute(*command) == expected
        assert server.seen == [" ".join(command).encode()] * 2
        assert server.connections == 2


@pytest.mark.parametrize(
    "command",
    [("SET", "a", "1", "NX"), ("SET", "a", "1", "IFEQ", "0"), ("EVALSHA", "f00", "1", "a", "x")],
)
def test_a_client_channel_never_sends_a_write_twice(command: tuple[str, ...]) -> None:
    """The write may have run before the connection died: a compare-and-set sent again
    would conflict with itself and merge the request's changes in twice."""
    with ScriptedServer({command[0].encode(): ["drop", "reply"]}) as server:
        channel = client_channel(server.url())
        with pytest.raises(redis.ConnectionError):
            channel.execute(*command)
        assert server.seen == [" ".join(command).encode()]
        channel.execute(*command)  # the next one, on a new connection
        assert server.seen == [" ".join(command).encode()] * 2


def retrying_client(url: str) -> redis.Redis:
    """A client as an application may make it: resending on a dropped connection."""
    return redis.Redis.from_url(
        url, retry=Retry(NoBackoff(), 3), retry_on_error=[redis.ConnectionError]
    )


@pytest.mark.parametrize(
    "command",
    [("SET", "a", "1", "NX"), ("EVALSHA", "f00", "1", "a", "x"), ("APPEND", "a", "x")],
)
def test_a_write_through_an_applications_retrying_client_is_sent_once(
    command: tuple[str, ...],
) -> None:
    """Its retries would resend a compare-and-set whose reply was lost: the write goes
    out on one of its pool's connections instead, and the drop is an error."""
    with ScriptedServer({command[0].encode(): ["drop", "reply"]}) as server:
        client = retrying_client(server.url())
        client.execute_command(*command)  # what the client alone does: it resends
        assert server.seen == [" ".join(command).encode()] * 2  # and the write ran twice
        server.seen.clear()
        server.script[command[0].encode()] = ["drop", "reply"]
        channel = ClientChannel(client)
        with pytest.raises(redis.ConnectionError):
            channel.execute(*command)
        assert server.seen == [" ".join(command).encode()]
        assert channel.execute(*command) == b"OK"  # the next one, on a new connection
        with pytest.raises(redis.ConnectionError):  # a pipeline holding a write: the same
            server.script[b"DEL"] = ["drop", "reply"]
            channel.execute_many([("GET", "a"), ("DEL", "a")])
        assert server.seen[-2:] == [b"GET a", b"DEL a"]
        assert server.seen.count(b"DEL a") == 1


def test_an_increment_whose_reply_was_lost_is_applied_once(redis_url: str) -> None:
    """The 1.8 way: ``redis_client_callable`` hands over the application's client, which
    resends when a connection drops. The compare-and-set of an increment runs, then its
    reply is lost: resent, it would conflict with itself and the merge would add the
    increment twice. Sent once, the request is a typed error (a 503) and the counter is
    exactly one higher."""
    port = urlsplit(redis_url).port
    assert port is not None
    with LossyProxy(port) as proxy:
        client = redis.Redis(
            port=proxy.port, retry=Retry(NoBackoff(), 3), retry_on_error=[redis.ConnectionError]
        )
        factory = RedisSessionFactory(SECRET, redis_client_callable=lambda request, **kw: client)
        browser = webtest.TestApp(BackendErrorsAre503(build_wsgi_app(factory)))
        assert browser.get("/incr", {"key": "n"}).json == 1
        assert browser.get("/incr", {"key": "n"}).json == 2  # a compare-and-set, answered
        proxy.lose_reply_to(b"EVALSHA", b"IFEQ")  # the script, or SET … IFEQ where native
        assert browser.get("/incr", {"key": "n"}, expect_errors=True).status_int == 503
        assert proxy.lost == 1
        assert browser.get("/read", {"key": "n"}).json == 3  # not 4
        client.close()


def test_reads_through_an_applications_client_keep_its_own_retries(redis_url: str) -> None:
    """Only writes take the pool's connections directly; reads, resendable, go through
    the client as they are, and both give the raw replies the store reads."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    channel = ClientChannel(client)
    assert channel.execute("SET", "client-channel", "v", "EX", 60) == b"OK"
    assert channel.execute("GETEX", "client-channel", "EX", 60) == "v"  # decoded: the client's
    appended, ttl = channel.execute_many(
        [("APPEND", "client-channel", "w"), ("TTL", "client-channel")]
    )
    assert appended == 2 and 0 < ttl <= 60
    assert channel.execute("GET", "client-channel") == "vw"
    client.close()


def test_a_client_channel_sends_a_pipeline_again_only_when_it_holds_reads_alone() -> None:
    with ScriptedServer({b"GET": ["drop", b"$1\r\nx\r\n"], b"TTL": [b":5\r\n"]}) as server:
        channel = client_channel(server.url())
        assert channel.execute_many([("GET", "a"), ("TTL", "a")]) == [b"x", 5]
        assert server.seen == [b"GET a", b"GET a", b"TTL a"]  # the first connection died at GET
    with ScriptedServer({b"GET": ["drop", b"$1\r\nx\r\n"]}) as server:
        with pytest.raises(redis.ConnectionError):
            client_channel(server.url()).execute_many([("GET", "a"), ("DEL", "a")])
        assert server.seen == [b"GET a"]  # and nothing of it again


# --------------------------------------------------------------------------- hostile replies


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_deeply_nested_reply_is_a_typed_error_and_the_connection_is_dropped(
    protocol: int,
) -> None:
    nested = b"*1\r\n" * 100_000 + b":1\r\n"
    with ScriptedServer({b"GET": [nested, b"$2\r\nok\r\n"]}) as server:
        channel = direct(server.url(protocol))
        with pytest.raises(redis.RedisError) as raised:
            channel.execute("GET", "k")
        assert not isinstance(raised.value, RecursionError)
        assert channel.execute("GET", "k") == b"ok"
        assert server.connections == 2  # the one that got the hostile reply was closed
        store = RedisStore(channel, ServerFeatures())
        server.script[b"GET"] = [nested]
        with pytest.raises(SessionBackendError):
            store.load("k", None)


def test_a_reply_nested_too_deeply_for_the_python_parser_is_a_protocol_error() -> None:
    """Without hiredis, redis-py's parser recurses: the RecursionError becomes ours."""
    nested = b"*1\r\n" * 100_000 + b":1\r\n"
    with ScriptedServer({b"GET": [nested, b"$2\r\nok\r\n"]}) as server:
        outcome = run_without_hiredis(
            f"""
            channel = DirectChannel(redis.ConnectionPool.from_url({server.url()!r}))
            try:
                channel.execute("GET", "k")
            except ProtocolError as exc:
                print("ProtocolError", isinstance(exc, redis.ConnectionError))
            print(channel.execute("GET", "k"))
            """
        )
    assert outcome.splitlines() == ["python", "ProtocolError True", "b'ok'"]


def test_a_client_channel_turns_a_reply_nested_too_deeply_into_a_protocol_error() -> None:
    """Reads (through the client) and writes (sent once on a pooled connection) alike:
    a typed backend error, never a RecursionError, and the next command is in step."""
    nested = b"*1\r\n" * 100_000 + b":1\r\n"
    script = {b"GET": [nested, b"$2\r\nok\r\n"], b"DEL": [nested, b":1\r\n"]}
    with ScriptedServer(script) as server:
        outcome = run_without_hiredis(
            f"""
            from pyramid_session_redis.channel import ClientChannel
            channel = ClientChannel(redis.Redis.from_url({server.url()!r}))
            for command in (("GET", "k"), ("DEL", "k")):
                try:
                    channel.execute(*command)
                except ProtocolError as exc:
                    print("ProtocolError", isinstance(exc, redis.ConnectionError))
                print(channel.execute(*command))
            """
        )
        assert server.seen == [b"GET k", b"GET k", b"DEL k", b"DEL k"]  # nothing resent
    lines = ["python", "ProtocolError True", "b'ok'", "ProtocolError True", "1"]
    assert outcome.splitlines() == lines


@pytest.mark.parametrize("protocol", [2, 3])
def test_an_error_reply_in_a_pipeline_keeps_the_connection_in_step(protocol: int) -> None:
    with ScriptedServer({b"INCR": [b"-ERR not an integer\r\n"]}) as server:
        channel = direct(server.url(protocol))
        with pytest.raises(redis.ResponseError, match="not an integer"):
            channel.execute_many([("INCR", "k"), ("PING",)])
        assert channel.execute("PING") == b"PONG"
        assert server.connections == 1


# --------------------------------------------------------------------------- push messages


def test_resp3_push_messages_go_to_redis_pys_handlers_not_into_replies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    push = b">2\r\n$6\r\nnotice\r\n$5\r\nhello\r\n"
    with ScriptedServer({b"GET": [push + b"$5\r\nvalue\r\n"]}) as server:
        if not pushes_readable(server.url(3)):
            return
        channel = direct(server.url(3))
        with caplog.at_level(logging.DEBUG, logger="push_response"):
            assert channel.execute("GET", "k") == b"value"
            assert channel.execute("PING") == b"PONG"
        # redis-py's default handler for a push it has no other use for logs it.
        assert "hello" in caplog.text
        assert server.connections == 1


def test_push_messages_that_arrive_while_idle_are_read_before_the_next_reply(
    redis_url: str, redis_client: redis.Redis
) -> None:
    if not pushes_readable(f"{redis_url}?protocol=3"):
        return
    channel = direct(redis_url, protocol=3)
    own_id = channel.execute("CLIENT", "ID")
    assert channel.execute("CLIENT", "TRACKING", "ON") == b"OK"
    for value in range(5):
        redis_client.set("tracked", value)
        assert channel.execute("GET", "tracked") == str(value).encode()  # tracked again
        redis_client.set("tracked", "changed")  # pushes an invalidation to the idle one
        time.sleep(0.05)
    assert channel.execute("CLIENT", "ID") == own_id  # never dropped for it


# --------------------------------------------------------------------------- processes


def test_a_child_forked_while_other_threads_use_the_channel_does_not_deadlock(
    redis_url: str,
) -> None:
    channel = direct(redis_url)
    stop = threading.Event()

    def busy() -> None:  # checks connections out and back in, creating some, all along
        while not stop.is_set():
            channel.execute_many([("PING",)] * 3)

    threads = [threading.Thread(target=busy) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        results = [fork_and_run(channel) for _ in range(20)]
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    assert results == [b"PONG"] * 20
    assert channel.execute("PING") == b"PONG"


def test_a_child_forked_while_a_thread_holds_the_channels_lock_does_not_deadlock(
    redis_url: str,
) -> None:
    channel = direct(redis_url)
    with channel._lock:  # what another thread may hold at the moment of the fork
        assert fork_and_run(channel) == b"PONG"
    assert channel.execute("PING") == b"PONG"


def fork_and_run(channel: DirectChannel) -> bytes:
    """PING through ``channel`` in a forked child; its reply, or b"HUNG" after 10 s."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, channel.execute("PING"))
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(read_end)
        return b"HUNG"
    with os.fdopen(read_end, "rb") as pipe:
        return pipe.read()


# --------------------------------------------------------------------------- capacity


def test_a_connection_that_cannot_be_made_gives_its_slot_back(redis_url: str) -> None:
    # redis-py's SSLConnection refuses an unknown ssl_cert_reqs in its constructor.
    port = redis_url.split(":")[2].split("/")[0]
    channel = direct(f"rediss://127.0.0.1:{port}/0?max_connections=1&ssl_cert_reqs=bogus")
    for _ in range(3):
        with pytest.raises(redis.RedisError, match="Certificate Requirements") as raised:
            channel.execute("PING")
        assert not isinstance(raised.value, redis.ConnectionError)  # not "Too many"


def test_a_connection_that_cannot_connect_gives_its_slot_back() -> None:
    # A bound socket that does not listen: connections to its port are refused, and
    # nobody else can take the port meanwhile.
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))
        port = refusing.getsockname()[1]
        channel = direct(f"redis://127.0.0.1:{port}/0?max_connections=1&protocol=2")
        for _ in range(3):
            with pytest.raises(redis.ConnectionError) as raised:
                channel.execute("PING")
            assert "Too many" not in str(raised.value)


# --------------------------------------------------------------------------- decoding pools


def test_a_url_asking_for_decoded_responses_still_gets_bytes(
    redis_url: str, redis_client: redis.Redis
) -> None:
    url = f"{redis_url}?decode_responses=True"
    channel = direct(url)
    assert channel.execute("SET", "k", b"\xff\x00") == b"OK"
    assert channel.execute("GET", "k") == b"\xff\x00"
    app = webtest.TestApp(build_wsgi_app(RedisSessionFactory(SECRET, redis_url=url)))
    app.get("/set", {"key": "a", "value": '"é"'})
    assert app.get("/read", {"key": "a"}).json == "é"


def test_a_user_pool_that_decodes_responses_is_refused_at_start_up(redis_url: str) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, decode_responses=True)
    with pytest.raises(ConfigurationError, match=r"redis_connection_pool.*decode_responses"):
        RedisSessionFactory(SECRET, redis_connection_pool=pool)


def test_resp3_with_hiredis_is_refused_where_redis_py_cannot_read_its_pushes(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{redis_url}?protocol=3"
    if pushes_readable(url):  # this redis-py reads them: accepted
        RedisSessionFactory(SECRET, redis_url=url)
    monkeypatch.setattr(connection, "HIREDIS_AVAILABLE", True)
    monkeypatch.setattr(connection, "redis_version", lambda: (6, 1))
    with pytest.raises(ConfigurationError, match=r"protocol=3 with hiredis needs redis-py >= 6\.2"):
        RedisSessionFactory(SECRET, redis_url=url)
    RedisSessionFactory(SECRET, redis_url=f"{redis_url}?protocol=2")  # no pushes in RESP2


# --------------------------------------------------------------------------- without hiredis


def test_the_direct_path_works_with_redis_pys_python_parser(redis_url: str) -> None:
    outcome = run_without_hiredis(
        f"""
        channel = DirectChannel(redis.ConnectionPool.from_url({redis_url!r}))
        print(channel.execute("SET", "py-parser", b"\\xff" * 100_000))
        print(len(channel.execute("GET", "py-parser")))
        try:
            channel.execute_many([("INCR", "py-parser"), ("DEL", "py-parser")])
        except redis.ResponseError as exc:
            print("ResponseError")
        print(channel.execute("EXISTS", "py-parser"))
        """
    )
    assert outcome.splitlines() == ["python", "b'OK'", "100000", "ResponseError", "0"]


def run_without_hiredis(body: str) -> str:
    """Run ``body`` in a fresh interpreter where ``hiredis`` cannot be imported."""
    prologue = (
        "import sys; sys.modules['hiredis'] = None\n"
        "import redis\n"
        "from redis.utils import HIREDIS_AVAILABLE\n"
        "from pyramid_session_redis.channel import DirectChannel, ProtocolError\n"
        "print('hiredis' if HIREDIS_AVAILABLE else 'python')\n"
    )
    code = prologue + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
