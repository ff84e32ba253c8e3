"""The ``pyramid-session-redis`` console tool against a real, populated Redis (and Cluster).

Sessions are made by requests through the library (``tests/app.py``), a few with
hand-made payloads (expired in LRU mode, compressed, foreign). The tool is run through
``main(argv)``, and once as the installed console script.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import webtest
from redis.cluster import RedisCluster

from demo.throwaway_redis import free_port
from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.cli import commands, main
from pyramid_session_redis.cli.stats import SessionStats, encoding_of
from pyramid_session_redis.codec import SessionRecord
from pyramid_session_redis.integrity import codec_for_key
from tests.app import SECRET, make_app
from tests.redis_stats import CommandCounter

PREFIX = "app1:"
# ~19 KB of hex, which compresses to about half
LARGE = "".join(hashlib.sha256(str(n).encode()).hexdigest() for n in range(300))


def app_ini(tmp_path: Path, redis_url: str, **settings: str) -> str:
    """An application ini file with the session settings (and a loadable app)."""
    lines = [
        "[app:main]",
        "use = call:tests.test_cli:wsgi_app",
        f"redis.sessions.secret = {SECRET}",
        f"redis.sessions.redis_url = {redis_url}",
        f"redis.sessions.prefix = {PREFIX}",
        *(f"redis.sessions.{name} = {value}" for name, value in settings.items()),
    ]
    path = tmp_path / "app.ini"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def wsgi_app(global_config: Any, **settings: Any) -> Any:
    """The ini's application factory (the tool never calls it)."""
    raise AssertionError("the tool reads the settings without building the app")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def browser(redis_url: str, **options: Any) -> webtest.TestApp:
    return make_app(redis_url, prefix=PREFIX, **options)


def new_session(redis_url: str, value: Any = 1, **options: Any) -> tuple[webtest.TestApp, str]:
    """A session stored by a request; returns the browser and the session id."""
    app = browser(redis_url, **options)
    app.get("/set", {"key": "secret_value", "value": json.dumps(value)})
    return app, app.get("/session_id").json


@pytest.fixture
def populated(redis_url: str, redis_client: redis.Redis) -> dict[str, Any]:
    """3 small sessions, 1 compressed (~20 KB), 2 in LRU mode (no TTL; one expired by its
    payload), a key of another application, and a list under the prefix."""
    ids = [new_session(redis_url, n)[1] for n in range(3)]
    ids.append(new_session(redis_url, LARGE)[1])
    lru = RedisSessionFactory(SECRET, redis_url=redis_url, set_redis_ttl=False, timeout=300)
    now = int(time.time())
    fresh = SessionRecord({"user": "fresh"}, now, None, now + 300)
    expired = SessionRecord({"user": "gone"}, now - 1000, None, now - 700)
    redis_client.set(PREFIX + "lru-fresh", lru.codec.encode(fresh))
    redis_client.set(PREFIX + "lru-expired", lru.codec.encode(expired))
    redis_client.set("other-app:key", b"not ours", ex=60)
    redis_client.rpush(PREFIX + "a-list", b"x")
    return {"ids": ids, "lru": ["lru-fresh", "lru-expired"]}


# --------------------------------------------------------------------------- stats


@pytest.mark.parametrize(
    ("size", "ttl", "size_label", "ttl_label"),
    [
        (0, 0, "< 256 B", "< 1 min"),
        (255, 59, "< 256 B", "< 1 min"),
        (256, 60, "256 B - 1 KiB", "1 min - 10 min"),
        (1023, 599, "256 B - 1 KiB", "1 min - 10 min"),
        (1024, 600, "1 KiB - 4 KiB", "10 min - 1 h"),
        (16383, 3600, "4 KiB - 16 KiB", "1 h - 1 d"),
        (65535, 86399, "16 KiB - 64 KiB", "1 h - 1 d"),
        (65536, 86400, ">= 64 KiB", ">= 1 d"),
        (10, -1, "< 256 B", "no TTL"),
    ],
)
def test_histogram_buckets(size: int, ttl: int, size_label: str, ttl_label: str) -> None:
    summary = SessionStats()
    summary.add(size, ttl, b"\x01")
    assert summary.sizes == {size_label: 1} and summary.ttls == {ttl_label: 1}
    assert summary.without_ttl == (ttl < 0)


@pytest.mark.parametrize(
    ("head", "encoding"),
    [
        (b"\x04\x00", "safe codec, uncompressed"),
        (b"\x05", "safe codec, zlib"),
        (b"\x06", "safe codec, zstd"),
        (b"\x01\x00", "safe codec v1, uncompressed"),
        (b"\x02", "safe codec v1, zlib"),
        (b"\x03", "safe codec v1, zstd"),
        (b"\x80\x05", "pickle (1.8's default)"),
        (b'{"m"', "JSON"),
        (b"hello", "other"),
        (b"", "other"),
        (b"\xff\x01" + bytes(32) + b"\x06", "signed, safe codec, zstd"),
        (b"\xff\x01", "signed"),
    ],
)
def test_encoding_of_the_first_bytes(head: bytes, encoding: str) -> None:
    assert encoding_of(head) == encoding


def test_stats_counts_sizes_ttls_and_encodings(
    capsys: pytest.CaptureFixture[str], redis_url: str, populated: dict[str, Any], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "-c", app_ini(tmp_path, redis_url), "stats", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["pattern"] == "app1:*" and report["nodes"] == 1
    assert report["count"] == 7  # other-app:key is not under the prefix
    assert report["without_ttl"] == 2  # the LRU-mode sessions
    assert report["encodings"] == {
        "safe codec, uncompressed": 5,
        "safe codec, zstd": 1,
        "not a string value": 1,
    }
    assert sum(report["sizes"].values()) == 6
    assert report["sizes"]["< 256 B"] == 5 and report["sizes"]["4 KiB - 16 KiB"] == 1
    assert report["ttls"]["10 min - 1 h"] == 4  # the 1200 s sliding timeout
    assert report["ttls"]["no TTL"] == 2


def test_stats_report_for_people(
    capsys: pytest.CaptureFixture[str], redis_url: str, populated: dict[str, Any]
) -> None:
    code, out, _ = run(capsys, "--redis-url", redis_url, "--prefix", PREFIX, "stats")
    assert code == 0
    assert out.startswith(f"7 keys matching 'app1:*' at {redis_url} (1 server)\n")
    assert "keys without TTL: 2\n" in out
    assert "  safe codec, zstd" in out
    for session_id in populated["ids"]:
        assert session_id not in out  # no ids in reports


def test_stats_walks_with_scan_never_keys(
    capsys: pytest.CaptureFixture[str],
    redis_url: str,
    populated: dict[str, Any],
    commands: CommandCounter,
    redis_client: redis.Redis,
) -> None:
    for n in range(1200):  # more than one SCAN batch
        redis_client.set(f"{PREFIX}bulk:{n}", b"\x01", ex=100)
    commands.reset()
    code, out, _ = run(capsys, "--redis-url", redis_url, "--prefix", PREFIX, "stats", "--json")
    assert code == 0 and json.loads(out)["count"] == 1207
    sent = commands.counts()
    assert "keys" not in sent
    assert sent["scan"] >= 3
    # TTL, STRLEN and GETRANGE per key, pipelined per batch
    assert sent["ttl"] == sent["strlen"] == sent["getrange"] == 1207


def test_prefix_is_a_literal_not_a_pattern(
    capsys: pytest.CaptureFixture[str], redis_url: str, redis_client: redis.Redis
) -> None:
    redis_client.set("a*b:1", b"\x01", ex=100)
    redis_client.set("axb:1", b"\x01", ex=100)
    code, out, _ = run(capsys, "--redis-url", redis_url, "--prefix", "a*b:", "stats", "--json")
    assert code == 0 and json.loads(out)["count"] == 1
    code, out, _ = run(capsys, "--redis-url", redis_url, "--match", "a?b:*", "stats", "--json")
    assert json.loads(out)["count"] == 2


def test_progress_bar_on_request(
    capsys: pytest.CaptureFixture[str], redis_url: str, populated: dict[str, Any]
) -> None:
    code, _, err = run(capsys, "--redis-url", redis_url, "--progress", "stats")
    assert code == 0 and "8/8" in err and "key" in err  # against DBSIZE: all 8 keys
    code, _, err = run(capsys, "--redis-url", redis_url, "stats")
    assert err == ""  # not a terminal: no bar


# --------------------------------------------------------------------------- show


def test_show_redacts_values_unless_revealed(
    capsys: pytest.CaptureFixture[str], redis_url: str, tmp_path: Path, redis_client: redis.Redis
) -> None:
    app, session_id = new_session(redis_url, {"card": "4111 1111"})
    app.get("/set", {"key": "visits", "value": "3"})
    ini = app_ini(tmp_path, redis_url)
    code, out, _ = run(capsys, "-c", ini, "show", session_id)
    assert code == 0
    factory = RedisSessionFactory(SECRET, redis_url=redis_url)
    assert out.startswith(f"session          {factory.log_id(session_id)}\n")
    assert "\ntimeout          1200\n" in out
    assert "4111" not in out and session_id not in out
    assert "  secret_value  dict, 1 items\n" in out and "  visits        int" in out
    assert "values redacted; --reveal shows them" in out

    code, out, _ = run(capsys, "-c", ini, "show", session_id, "--reveal", "--json")
    report = json.loads(out)
    assert report["data"] == {"secret_value": {"card": "4111 1111"}, "visits": 3}
    assert report["encoding"] == "safe codec, uncompressed"
    assert 1190 <= report["ttl"] <= 1200
    assert report["stored_bytes"] == redis_client.strlen(session_id)


def test_show_unknown_or_undecodable(
    capsys: pytest.CaptureFixture[str], redis_url: str, redis_client: redis.Redis
) -> None:
    code, out, _ = run(capsys, "--redis-url", redis_url, "show", "no-such-id")
    assert code == 1 and out.startswith("no session with that id (keyed hash ")
    redis_client.set("garbage", b"\x01\x00")
    code, out, _ = run(capsys, "--redis-url", redis_url, "show", "garbage")
    assert code == 1 and "error         cannot be decoded: truncated header" in out


# --------------------------------------------------------------------------- revoke


def test_revoke_logs_the_user_out(
    capsys: pytest.CaptureFixture[str], redis_url: str, tmp_path: Path, redis_client: redis.Redis
) -> None:
    app, session_id = new_session(redis_url, "mine")
    ini = app_ini(tmp_path, redis_url)
    code, out, _ = run(capsys, "-c", ini, "revoke", session_id, "--dry-run")
    assert code == 0 and out.startswith("would revoke session ")
    assert redis_client.exists(session_id)
    code, out, _ = run(capsys, "-c", ini, "revoke", session_id)
    assert code == 0 and out.startswith("revoked session ") and session_id not in out
    assert not redis_client.exists(session_id)
    assert app.get("/read", {"key": "secret_value"}).json is None  # a fresh session
    code, out, _ = run(capsys, "-c", ini, "revoke", session_id)
    assert code == 1 and out.startswith("no session with that id")


def bind(request: Any) -> Any:
    request.session.bind_user(request.params["user"])
    return "bound"


def test_revoke_user_logs_a_user_out_everywhere(
    capsys: pytest.CaptureFixture[str], redis_url: str, tmp_path: Path, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url, {"bind": bind}, prefix=PREFIX)
    browsers = [webtest.TestApp(app.app) for _ in range(3)]
    for browser, user in zip(browsers, ["alice", "alice", "bob"], strict=True):
        browser.get("/set", {"key": "v", "value": "1"})
        browser.get("/bind", {"user": user})
    ini = app_ini(tmp_path, redis_url)
    code, out, _ = run(capsys, "-c", ini, "revoke-user", "alice", "--dry-run")
    assert (code, out) == (0, "would revoke 2 sessions of user 'alice'\n")
    code, out, _ = run(capsys, "-c", ini, "revoke-user", "alice")
    assert (code, out) == (0, "revoked 2 sessions of user 'alice'\n")
    assert [b.get("/read", {"key": "v"}).json for b in browsers] == [None, None, 1]
    code, out, _ = run(capsys, "-c", ini, "revoke-user", "alice")
    assert (code, out) == (1, "revoked 0 sessions of user 'alice'\n")


def test_signed_payloads_and_opaque_keys(
    capsys: pytest.CaptureFixture[str], redis_url: str, tmp_path: Path, redis_client: redis.Redis
) -> None:
    options = {"sign_payloads": "true", "hash_keys": "true"}
    app, session_id = new_session(redis_url, "signed", sign_payloads=True, hash_keys=True)
    ini = app_ini(tmp_path, redis_url, **options)
    [key] = redis_client.keys()
    assert key.decode() != session_id and key.startswith(PREFIX.encode())
    code, out, _ = run(capsys, "-c", ini, "show", session_id, "--reveal", "--json")
    report = json.loads(out)
    assert code == 0 and report["data"] == {"secret_value": "signed"}
    assert report["encoding"] == "signed, safe codec, uncompressed"
    code, out, _ = run(capsys, "-c", ini, "stats", "--json")
    assert json.loads(out)["encodings"] == {"signed, safe codec, uncompressed": 1}

    factory = RedisSessionFactory(SECRET, prefix=PREFIX, **{k: True for k in options})
    now = int(time.time())
    old = factory.key("an-old-id")
    expired = SessionRecord({}, now - 900, None, now - 300)
    redis_client.set(old, codec_for_key(factory.codec, old).encode(expired))
    code, out, _ = run(capsys, "-c", ini, "purge-expired")
    assert code == 0 and "examined 2 sessions: 1 expired by their payload (deleted 1)" in out
    assert redis_client.keys() == [key]
    assert app.get("/read", {"key": "secret_value"}).json == "signed"


# --------------------------------------------------------------------------- purge-expired


def test_purge_expired_deletes_sessions_expired_by_their_payload(
    capsys: pytest.CaptureFixture[str],
    redis_url: str,
    populated: dict[str, Any],
    redis_client: redis.Redis,
) -> None:
    base = ["--redis-url", redis_url, "--prefix", PREFIX]
    code, out, _ = run(capsys, *base, "purge-expired", "--dry-run")
    assert code == 0
    assert out == (
        "examined 6 sessions: 1 expired by their payload (would delete), "
        "0 changed meanwhile (kept), 0 undecodable (left alone)\n"
    )
    assert redis_client.exists(PREFIX + "lru-expired")
    code, out, _ = run(capsys, *base, "purge-expired")
    assert code == 0 and "1 expired by their payload (deleted 1)" in out
    assert not redis_client.exists(PREFIX + "lru-expired")
    assert redis_client.exists(PREFIX + "lru-fresh") and redis_client.dbsize() == 7


def test_purge_expired_keeps_a_session_changed_after_it_was_read(
    capsys: pytest.CaptureFixture[str],
    redis_url: str,
    populated: dict[str, Any],
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read = commands.pipelined

    def read_then_someone_writes(node: Any, keys: list[bytes], *what: Any) -> Any:
        replies = read(node, keys, *what)
        redis_client.set(PREFIX + "lru-expired", b"\x01refreshed by a request meanwhile")
        return replies

    monkeypatch.setattr(commands, "pipelined", read_then_someone_writes)
    code, out, _ = run(capsys, "--redis-url", redis_url, "--prefix", PREFIX, "purge-expired")
    assert code == 0 and "1 expired by their payload (deleted 0), 1 changed meanwhile" in out
    assert redis_client.get(PREFIX + "lru-expired") == b"\x01refreshed by a request meanwhile"


def test_purge_leaves_undecodable_values_alone(
    capsys: pytest.CaptureFixture[str], redis_url: str, redis_client: redis.Redis
) -> None:
    redis_client.set("junk", b"\x80pickled?")
    code, out, _ = run(capsys, "--redis-url", redis_url, "purge-expired")
    assert code == 0 and "1 undecodable (left alone)" in out
    assert redis_client.exists("junk")


# --------------------------------------------------------------------------- Cluster


@pytest.fixture
def cluster_url(cluster: RedisCluster) -> Iterator[str]:
    node = cluster.get_primaries()[0]
    yield f"redis://{node.host}:{node.port}/0"


def test_every_command_works_on_a_cluster(
    capsys: pytest.CaptureFixture[str],
    cluster: RedisCluster,
    cluster_url: str,
) -> None:
    factory = RedisSessionFactory(SECRET)
    now = int(time.time())
    ids = [f"{PREFIX}{n:064x}" for n in range(30)]
    for session_id in ids:
        cluster.set(session_id, factory.codec.encode(SessionRecord({"n": 1}, now)), ex=600)
    expired = f"{PREFIX}expired"
    cluster.set(expired, factory.codec.encode(SessionRecord({}, now - 900, None, now - 300)))
    assert len({cluster.keyslot(i) // 5461 for i in ids}) == 3  # on every master
    base = ["--redis-url", cluster_url, "--prefix", PREFIX]

    code, out, err = run(capsys, *base, "stats", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["nodes"], report["count"], report["without_ttl"]) == (3, 31, 1)

    # ids routed to whichever master holds them
    on_other_nodes = [i for i in ids if cluster.keyslot(i) // 5461 != 0][:2]
    code, out, _ = run(capsys, *base, "show", on_other_nodes[0], "--reveal", "--json")
    assert code == 0 and json.loads(out)["data"] == {"n": 1}
    code, _, _ = run(capsys, *base, "revoke", on_other_nodes[1])
    assert code == 0 and cluster.exists(on_other_nodes[1]) == 0

    code, out, _ = run(capsys, *base, "purge-expired")
    assert code == 0 and "examined 30 sessions: 1 expired by their payload (deleted 1)" in out
    assert cluster.exists(expired) == 0


CLUSTER_CLIENTS: list[RedisCluster] = []


def cluster_client(request: Any, **options: Any) -> RedisCluster:
    """A ``redis_client_callable`` as a Cluster application has one (1.8's hook)."""
    return CLUSTER_CLIENTS[-1]


def test_an_ini_with_a_cluster_client_callable(
    capsys: pytest.CaptureFixture[str],
    cluster: RedisCluster,
    cluster_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CLUSTER_CLIENTS", [cluster])
    app = make_app(
        "redis://unused", {"bind": bind}, prefix=PREFIX, redis_client_callable=cluster_client
    )  # sessions made by requests, on the Cluster, bound to one user
    for n in range(12):
        browser = webtest.TestApp(app.app)
        browser.get("/set", {"key": "n", "value": str(n)})
        browser.get("/bind", {"user": "carol"})
    ini = app_ini(tmp_path, "redis://unused", redis_client_callable="tests.test_cli.cluster_client")
    code, out, err = run(capsys, "-c", ini, "stats", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["nodes"], report["count"]) == (3, 12)

    code, out, err = run(
        capsys, "--redis-url", cluster_url, "--prefix", PREFIX, "revoke-user", "carol"
    )
    assert (code, out) == (0, "revoked 12 sessions of user 'carol'\n"), err
    assert run(capsys, "-c", ini, "stats", "--json")[1].count('"count": 0') == 1


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give the application's ini file (--config) or --redis-url"),
        (["--redis-url", "http://127.0.0.1/"], "invalid session settings: Redis URL must"),
        (["-c", "/nonexistent/app.ini"], "cannot read /nonexistent/app.ini: "),
    ],
)
def test_bad_configuration_exits_2_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv, "stats")
    assert (code, out) == (2, "")
    assert err.startswith(f"pyramid-session-redis: {message}"), err


def test_unreachable_redis_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    code, _, err = run(capsys, "--redis-url", url, "stats")
    assert code == 2
    assert err.startswith("pyramid-session-redis: cannot use Redis at redis://:***@127.0.0.1:")
    assert "hunter2" not in err


def test_invalid_ini_settings_name_the_key(
    capsys: pytest.CaptureFixture[str], redis_url: str, tmp_path: Path
) -> None:
    ini = app_ini(tmp_path, redis_url, timeout="soon")
    code, _, err = run(capsys, "-c", ini, "stats")
    assert code == 2 and "invalid session settings" in err and "timeout" in err
    no_app = tmp_path / "empty.ini"
    no_app.write_text("[server:main]\nuse = egg:waitress#main\n")
    code, _, err = run(capsys, "-c", str(no_app), "stats")
    assert code == 2 and err.startswith(f"pyramid-session-redis: cannot read {no_app}: ")


def test_the_console_script(redis_url: str, populated: dict[str, Any]) -> None:
    script = Path(sys.executable).with_name("pyramid-session-redis")
    result = subprocess.run(
        [str(script), "--redis-url", redis_url, "--prefix", PREFIX, "stats", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["count"] == 7
