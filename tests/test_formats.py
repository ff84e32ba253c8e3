"""Every stored form is read through a real app, whatever the reader's settings."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import redis

from pyramid_session_redis.codec import SafeCodec, SessionRecord
from tests import stored_forms
from tests.app import make_app
from tests.redis_stats import CommandCounter
from tests.test_commands import start_session
from tests.test_tagged_json import typed

SETTINGS: dict[str, dict[str, Any]] = {
    "zstd": {},
    "zlib": {"compression": "zlib"},
    "uncompressed": {"compress_threshold": None},
    "always compressed": {"compress_threshold": 0},
}


SEEN: list[Any] = []


def dump_typed(request: Any) -> Any:
    """Remember what the session holds, every type included (huge ints have no JSON)."""
    SEEN.append(typed(dict(request.session)))
    return "seen"


def seen(app: Any) -> Any:
    app.get("/typed")
    return SEEN.pop()


def touch(request: Any) -> Any:
    request.session["touched"] = True
    return "touched"


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("form", sorted(stored_forms.load("safe_v1")))
def test_format_1_payloads_are_read_as_their_format_2_equivalent(
    redis_url: str,
    redis_client: redis.Redis,
    commands: CommandCounter,
    form: str,
    setting: str,
) -> None:
    """Same data, same commands (a read that hands out every value does not rewrite a
    payload for its format); a change stores it in format 2."""
    name = form.split("/")[0]
    _, data, timeout, expires = next(r for r in stored_forms.RECORDS if r[0] == name)
    app = make_app(redis_url, {"typed": dump_typed, "touch": touch}, **SETTINGS[setting])
    session_id = start_session(app, a=1)
    equivalent = SafeCodec().encode(SessionRecord(data, stored_forms.CREATED, timeout, expires))
    sent = []
    for stored in (equivalent, stored_forms.load("safe_v1")[form]):
        redis_client.set(session_id, stored)
        commands.reset()
        assert seen(app) == typed(data)
        # EVAL: the script's first load; the compare-and-set reads the whole value (GET)
        # or, of a stamped one, its stamp and length (GETRANGE, STRLEN).
        sent.append(set(commands.counts()) - {"eval", "get", "getrange", "strlen"})
    assert sent[0] == sent[1]
    app.get("/touch")
    assert redis_client.get(session_id)[0] in (0x04, 0x05, 0x06, 0x07)  # format 2
    assert seen(app) == typed({**data, "touched": True})


@pytest.mark.parametrize("writer", sorted(SETTINGS))
@pytest.mark.parametrize("reader", sorted(SETTINGS))
def test_sessions_written_with_any_settings_are_read_with_any_other(
    redis_url: str, redis_client: redis.Redis, writer: str, reader: str
) -> None:
    values = {**stored_forms.VALUES, "pad": ["lorem ipsum"] * 200}
    record = SessionRecord(values, stored_forms.CREATED)
    write_app = make_app(redis_url, {"typed": dump_typed}, **SETTINGS[writer])
    read_app = make_app(redis_url, {"typed": dump_typed, "touch": touch}, **SETTINGS[reader])
    session_id = start_session(write_app, a=1)
    codec_options = SETTINGS[writer]
    codec = SafeCodec(
        codec_options.get("compress_threshold", 1024), codec_options.get("compression", "zstd")
    )
    redis_client.set(session_id, codec.encode(record))
    read_app.set_cookie("session", write_app.cookies["session"])
    assert seen(read_app) == typed(values)
    read_app.get("/touch")
    assert seen(write_app) == typed({**values, "touched": True})


def test_a_pickle_payload_is_not_read_by_the_safe_codec(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url, deserialized_fails_new=True)
    session_id = start_session(app, a=1)
    redis_client.set(session_id, pickle.dumps({"m": {"a": 2}, "c": 0, "v": 1}))
    assert app.get("/dump").json == {}
