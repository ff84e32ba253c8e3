"""Bad cookies and bad stored data: a fresh session and a logger call, never a 500."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import redis
import webtest

from pyramid_session_redis.cookie import make_signer
from pyramid_session_redis.exceptions import (
    CookieInvalid,
    InvalidSession,
    InvalidSession_DeserializationError,
    InvalidSession_NoSessionCookie,
    InvalidSession_NotInBackend,
    InvalidSession_PayloadTimeout,
    RawDeserializationError,
)
from tests.app import SECRET, make_app
from tests.test_commands import start_session


class Reports(list[InvalidSession]):
    def __call__(self, request: Any, exc: InvalidSession) -> None:
        assert request is not None
        self.append(exc)


@pytest.fixture
def reports() -> Reports:
    return Reports()


def raw_cookie_request(app: webtest.TestApp, header: bytes, path: str = "/dump") -> Any:
    return app.get(path, headers={"Cookie": header.decode("latin-1")}, status="*")


def test_no_cookie_is_reported(redis_url: str, reports: Reports) -> None:
    app = make_app(redis_url, func_invalid_logger=reports)
    assert app.get("/dump").json == {}
    assert [type(r) for r in reports] == [InvalidSession_NoSessionCookie]


def test_untouched_session_reports_nothing(redis_url: str, reports: Reports) -> None:
    app = make_app(redis_url, func_invalid_logger=reports)
    app.get("/untouched", headers={"Cookie": "session=garbage"})
    assert reports == []


VALID = make_signer(SECRET).dumps("a" * 64)

BAD_COOKIES = {
    "tampered": VALID[:-3] + (b"AAA" if not VALID.endswith(b"AAA") else b"BBB"),
    "truncated": VALID[:40],
    "garbage": b"!!notbase64!!",
    "empty": b"",
    "oversized": b"A" * 10_000,
    "non_ascii_quoted": b'"\xe9"',
    "non_ascii": b"\xe9\xff",
    "other_secret": make_signer("another secret").dumps("a" * 64),
}


@pytest.mark.parametrize("name", sorted(BAD_COOKIES))
def test_bad_cookie_gives_a_fresh_session(
    redis_url: str, redis_client: redis.Redis, reports: Reports, name: str
) -> None:
    redis_client.set("a" * 64, b"not reachable with a bad cookie")
    app = make_app(redis_url, func_invalid_logger=reports)
    response = raw_cookie_request(app, b"session=" + BAD_COOKIES[name], "/set?key=k&value=1")
    assert response.status_int == 200
    assert len(reports) == 1 and isinstance(reports[0], InvalidSession_NoSessionCookie)
    if name != "empty":
        assert isinstance(reports[0], CookieInvalid)
    new_id = app.get("/session_id").json
    assert new_id != "a" * 64
    assert redis_client.get("a" * 64) == b"not reachable with a bad cookie"


def test_unknown_id_is_reported_and_not_adopted(
    redis_url: str, redis_client: redis.Redis, reports: Reports
) -> None:
    app = make_app(redis_url, func_invalid_logger=reports)
    cookie = make_signer(SECRET).dumps("attacker-chosen-id")
    response = raw_cookie_request(app, b"session=" + cookie, "/set?key=k&value=1")
    assert response.status_int == 200
    assert [type(r) for r in reports] == [InvalidSession_NotInBackend]
    assert redis_client.exists("attacker-chosen-id") == 0


CORRUPT_PAYLOADS = {
    "random_bytes": bytes(range(256)),
    "pickle_of_another_app": pickle.dumps({"user": "x"}),
    "json_text": b'{"m": {}}',
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(CORRUPT_PAYLOADS))
def test_undecodable_payload_gives_fresh_session_with_deserialized_fails_new(
    redis_url: str, redis_client: redis.Redis, reports: Reports, name: str
) -> None:
    app = make_app(redis_url, func_invalid_logger=reports, deserialized_fails_new=True)
    session_id = start_session(app, a=1)
    redis_client.set(session_id, CORRUPT_PAYLOADS[name])
    reports.clear()
    assert app.get("/dump").json == {}
    assert [type(r) for r in reports] == [InvalidSession_DeserializationError]


def test_wrong_redis_type_follows_the_policy(
    redis_url: str, redis_client: redis.Redis, reports: Reports
) -> None:
    app = make_app(redis_url, func_invalid_logger=reports, deserialized_fails_new=True)
    session_id = start_session(app, a=1)
    redis_client.delete(session_id)
    redis_client.rpush(session_id, b"x")
    reports.clear()
    assert app.get("/dump").json == {}
    assert [type(r) for r in reports] == [InvalidSession_DeserializationError]


def test_undecodable_payload_raises_raw_deserialization_error_by_default(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def view(request: Any) -> Any:
        try:
            dict(request.session)
        except RawDeserializationError as exc:
            return type(exc.args[0]).__name__
        return "no error"

    app = make_app(redis_url, {"t": view})
    session_id = start_session(app, a=1)
    redis_client.set(session_id, b"\x80garbage")
    assert app.get("/t").json != "no error"


def test_expired_payload_is_reported(
    redis_url: str, redis_client: redis.Redis, reports: Reports
) -> None:
    app = make_app(
        redis_url,
        func_invalid_logger=reports,
        set_redis_ttl=False,
        serialize=pickle.dumps,
        deserialize=pickle.loads,
    )
    session_id = start_session(app, a=1)
    payload = pickle.loads(redis_client.get(session_id))
    payload["x"] = payload["c"] - 1
    redis_client.set(session_id, pickle.dumps(payload))
    reports.clear()
    assert app.get("/dump").json == {}
    assert [type(r) for r in reports] == [InvalidSession_PayloadTimeout]
