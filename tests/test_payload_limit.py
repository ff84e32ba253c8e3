"""max_payload_bytes: oversized sessions are refused whole at save and at load."""

from __future__ import annotations

import pickle
import zlib
from typing import Any

import pytest
import redis
import webtest
import zstandard

from pyramid_session_redis import session_factory_from_settings
from pyramid_session_redis.codec import SafeCodec, SessionRecord
from pyramid_session_redis.exceptions import (
    ConfigurationError,
    InvalidSession,
    InvalidSession_DeserializationError,
    RawDeserializationError,
    SessionError,
    SessionTooLarge,
)
from tests.app import SECRET, make_app
from tests.redis_stats import CommandCounter
from tests.test_commands import start_session

LIMIT = 10_000


class Reports(list[InvalidSession]):
    def __call__(self, request: Any, exc: InvalidSession) -> None:
        self.append(exc)


def store_big(request: Any) -> Any:
    request.session["big"] = "x" * int(request.params["size"])
    return "stored"


def persist_big(request: Any) -> Any:
    request.session["big"] = "x" * int(request.params["size"])
    try:
        request.session.do_persist()
    except SessionTooLarge as exc:
        request.session.pop("big")
        return [exc.size, exc.limit, str(exc)]
    return "persisted"


def limited_app(redis_url: str, **options: Any) -> webtest.TestApp:
    options.setdefault("max_payload_bytes", LIMIT)
    return make_app(redis_url, {"big": store_big, "persist": persist_big}, **options)


def test_the_error_is_a_session_error_naming_size_and_limit() -> None:
    error = SessionTooLarge(2_000_000, 1_048_576)
    assert isinstance(error, SessionError)
    assert (error.size, error.limit) == (2_000_000, 1_048_576)
    assert "2000000 bytes" in str(error) and "max_payload_bytes=1048576" in str(error)


def test_the_default_limit_is_one_mebibyte() -> None:
    codec = SafeCodec()
    fits = SessionRecord({"k": "x" * (1024 * 1024 - 100)}, 0)
    assert len(codec.encode(fits)) <= 1024 * 1024
    with pytest.raises(SessionTooLarge) as info:
        codec.encode(SessionRecord({"k": "x" * (1024 * 1024)}, 0))
    assert info.value.limit == 1024 * 1024


@pytest.mark.parametrize("persistence", ["cas", "overwrite", "lock"])
def test_an_oversized_change_is_refused_and_the_stored_session_kept(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter, persistence: str
) -> None:
    app = limited_app(redis_url, persistence=persistence)
    session_id = start_session(app, a=1)
    before = redis_client.get(session_id)
    commands.reset()
    with pytest.raises(SessionTooLarge) as info:
        app.get("/big", {"size": LIMIT})
    assert info.value.limit == LIMIT and info.value.size > LIMIT
    assert redis_client.get(session_id) == before  # not truncated, not half-written
    written = {"set", "setex", "evalsha", "eval", "del"} & set(commands.counts())
    assert persistence == "lock" or not written  # the lock's release is the only script
    assert app.get("/dump").json == {"a": 1}


@pytest.mark.parametrize("compress_threshold", [None, 0])
def test_a_session_at_the_limit_is_stored(
    redis_url: str, redis_client: redis.Redis, compress_threshold: int | None
) -> None:
    app = limited_app(redis_url, compress_threshold=compress_threshold)
    app.get("/big", {"size": LIMIT - 100})
    assert app.get("/read", {"key": "big"}).json == "x" * (LIMIT - 100)


def test_the_limit_applies_before_compression(redis_url: str, redis_client: redis.Redis) -> None:
    """A compressible session is measured as serialized, not as compressed."""
    app = limited_app(redis_url, compress_threshold=0)
    start_session(app, a=1)
    with pytest.raises(SessionTooLarge):
        app.get("/big", {"size": LIMIT + 1})


def test_an_oversized_new_session_is_not_stored_and_gets_no_cookie(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = limited_app(redis_url)
    with pytest.raises(SessionTooLarge):
        app.get("/big", {"size": 2 * LIMIT})
    assert redis_client.dbsize() == 0
    assert "session" not in app.cookies


def test_do_persist_raises_in_the_view(redis_url: str, redis_client: redis.Redis) -> None:
    app = limited_app(redis_url)
    start_session(app, a=1)
    size, limit, message = app.get("/persist", {"size": 2 * LIMIT}).json
    assert limit == LIMIT and size > 2 * LIMIT
    assert str(size) in message and str(LIMIT) in message
    assert app.get("/dump").json == {"a": 1}


def _oversized_payloads() -> dict[str, bytes]:
    big = SafeCodec(max_payload_bytes=None).encode_plain(
        SessionRecord({"big": "x" * (2 * LIMIT)}, 1795325693)
    )
    zstd_frame = zstandard.ZstdCompressor(level=1).compress(big[1:])
    # A frame that claims a huge size but holds garbage: only refused unread if the size
    # is checked before decompressing (else it would be reported as corrupt).
    lying = zstandard.ZstdCompressor(level=1).compress(b"\x00" * (LIMIT * 4))[:12] + b"junk"
    return {
        "plain": big,
        "zstd": b"\x06" + zstd_frame,
        "zlib": b"\x05" + zlib.compress(big[1:]),
        "zstd, version 1": b"\x03" + zstd_frame,
        "zstd header claiming a big size": b"\x06" + lying,
    }


@pytest.mark.parametrize("name", sorted(_oversized_payloads()))
def test_an_oversized_stored_value_follows_the_invalid_payload_policy(
    redis_url: str, redis_client: redis.Redis, name: str
) -> None:
    payload = _oversized_payloads()[name]
    reports = Reports()
    app = limited_app(redis_url, func_invalid_logger=reports, deserialized_fails_new=True)
    session_id = start_session(app, a=1)
    redis_client.set(session_id, payload)
    reports.clear()
    assert app.get("/dump").json == {}
    assert [type(r) for r in reports] == [InvalidSession_DeserializationError]
    assert "max_payload_bytes" in str(reports[0])

    strict = limited_app(redis_url)
    redis_client.set(start_session(strict, a=1), payload)
    with pytest.raises(RawDeserializationError, match="max_payload_bytes"):
        strict.get("/dump")


def test_a_zstd_frame_is_refused_by_its_recorded_size_before_decompression() -> None:
    lying = zstandard.ZstdCompressor(level=1).compress(b"\x00" * (LIMIT * 4))[:12] + b"junk"
    with pytest.raises(ValueError, match="max_payload_bytes"):
        SafeCodec(max_payload_bytes=LIMIT).decode(b"\x06" + lying)
    with pytest.raises(ValueError, match=r"corrupt|truncated"):
        SafeCodec(max_payload_bytes=LIMIT * 10).decode(b"\x06" + lying)


def test_the_limit_applies_to_a_custom_serializer(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = limited_app(redis_url, serialize=pickle.dumps, deserialize=pickle.loads)
    session_id = start_session(app, a=1)
    with pytest.raises(SessionTooLarge):
        app.get("/big", {"size": LIMIT})
    assert pickle.loads(redis_client.get(session_id))["m"] == {"a": 1}
    redis_client.set(session_id, pickle.dumps({"m": {"a": "x" * LIMIT}, "c": 1, "v": 1}))
    with pytest.raises(RawDeserializationError, match="max_payload_bytes"):
        app.get("/dump")


def test_none_lifts_the_limit(redis_url: str) -> None:
    app = limited_app(redis_url, max_payload_bytes=None, compress_threshold=None)
    app.get("/big", {"size": 2 * 1024 * 1024})
    assert len(app.get("/read", {"key": "big"}).json) == 2 * 1024 * 1024


def test_ini_setting(redis_url: str) -> None:
    base = {"redis.sessions.secret": SECRET, "redis.sessions.redis_url": redis_url}
    factory = session_factory_from_settings({**base, "redis.sessions.max_payload_bytes": "4096"})
    assert factory.settings.max_payload_bytes == 4096
    factory = session_factory_from_settings({**base, "redis.sessions.max_payload_bytes": "None"})
    assert factory.settings.max_payload_bytes is None
    assert session_factory_from_settings(base).settings.max_payload_bytes == 1024 * 1024
    with pytest.raises(ConfigurationError, match="max_payload_bytes"):
        session_factory_from_settings({**base, "redis.sessions.max_payload_bytes": "1 MiB"})


@pytest.mark.parametrize("value", [0, -1, 1.5, "1024", True])
def test_invalid_limits_are_refused_at_start_up(redis_url: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app(redis_url, max_payload_bytes=value)
    assert info.value.options == ("max_payload_bytes",)
