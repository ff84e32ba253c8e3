"""The session cookie: attributes, Vary, signing, and when it is (not) sent."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import redis
from pyramid.request import Request
from webob.cookies import SignedSerializer

from pyramid_session_redis import check_response_allow_cookies
from pyramid_session_redis.cookie import make_signer
from tests.app import SECRET, make_app
from tests.redis_stats import CommandCounter


def set_cookie_header(response: Any) -> str:
    (header,) = response.headers.getall("Set-Cookie")
    return str(header)


def test_default_attributes(redis_url: str) -> None:
    response = make_app(redis_url).get("/set", {"key": "a", "value": "1"})
    header = set_cookie_header(response)
    assert header.startswith("session=")
    assert "Path=/" in header and "HttpOnly" in header
    for absent in ("Secure", "Domain", "Max-Age", "SameSite", "expires"):
        assert absent not in header
    assert "Cookie" in response.headers["Vary"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"cookie_name": "sid"}, ["sid="]),
        ({"cookie_path": "/app"}, ["Path=/app"]),
        ({"cookie_domain": "example.com"}, ["Domain=example.com"]),
        ({"cookie_secure": True}, ["secure"]),
        ({"cookie_max_age": 3600}, ["Max-Age=3600", "expires="]),
        ({"cookie_samesite": "Lax"}, ["SameSite=Lax"]),
        ({"cookie_samesite": "Strict"}, ["SameSite=Strict"]),
        ({"cookie_samesite": "None", "cookie_secure": True}, ["SameSite=None", "secure"]),
        ({"cookie_expires": datetime.timedelta(days=1)}, ["expires="]),
        ({"cookie_expires": 3600}, ["expires="]),  # seconds: WebOb alone would drop it
    ],
)
def test_configured_attributes(
    redis_url: str, options: dict[str, Any], expected: list[str]
) -> None:
    app = make_app(redis_url, **options)
    response = app.get("/set", {"key": "a", "value": "1"})
    header = set_cookie_header(response).lower()
    for part in expected:
        assert part.lower() in header


def test_httponly_can_be_disabled(redis_url: str) -> None:
    response = make_app(redis_url, cookie_httponly=False).get("/set", {"key": "a", "value": "1"})
    assert "httponly" not in set_cookie_header(response).lower()


def test_cookie_is_signed_like_version_1_8(redis_url: str) -> None:
    response = make_app(redis_url).get("/set", {"key": "a", "value": "1"})
    value = set_cookie_header(response).split(";")[0].split("=", 1)[1]

    class Text:
        def dumps(self, s: str) -> bytes:
            return s.encode()

        def loads(self, b: bytes) -> str:
            return b.decode()

    older = SignedSerializer(SECRET, "pyramid_session_redis.", "sha512", serializer=Text())
    session_id = older.loads(value.encode())
    assert len(session_id) == 64
    assert make_signer(SECRET).loads(value.encode()) == session_id


def test_custom_cookie_signer(redis_url: str, redis_client: redis.Redis) -> None:
    class Reversing:
        def dumps(self, s: str) -> bytes:
            return s[::-1].encode()

        def loads(self, b: bytes) -> str:
            if not b.startswith(b"x"):
                raise ValueError("bad")
            return b.decode()[::-1]

    app = make_app(redis_url, secret=None, cookie_signer=Reversing(), id_generator=lambda: "abcx")
    response = app.get("/set", {"key": "a", "value": "1"})
    assert set_cookie_header(response).startswith("session=xcba;")
    assert app.get("/read", {"key": "a"}).json == 1


def test_existing_session_sends_no_cookie(redis_url: str) -> None:
    app = make_app(redis_url)
    app.get("/set", {"key": "a", "value": "1"})
    response = app.get("/set", {"key": "b", "value": "2"})
    assert "Set-Cookie" not in response.headers


def test_cdn_hook_suppresses_cookie_and_storage(
    redis_url: str, redis_client: redis.Redis, commands: CommandCounter
) -> None:
    app = make_app(redis_url, func_check_response_allow_cookies=check_response_allow_cookies)
    response = app.get("/cacheable")
    assert "Set-Cookie" not in response.headers
    assert commands.counts() == {}
    assert redis_client.keys() == []  # no key that no cookie points to


def test_reference_hook_allows_plain_responses(redis_url: str) -> None:
    app = make_app(redis_url, func_check_response_allow_cookies=check_response_allow_cookies)
    assert "Set-Cookie" in app.get("/set", {"key": "a", "value": "1"}).headers


def test_reference_hook_looks_at_expires_and_cache_control() -> None:
    from pyramid.response import Response

    assert check_response_allow_cookies(Response()) is True
    assert check_response_allow_cookies(Response(headers={"Expires": "0"})) is False
    assert check_response_allow_cookies(Response(headers={"Cache-Control": "no-cache"})) is False


def test_exception_without_cookie_on_exception_stores_nothing(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url, cookie_on_exception=False)
    response = app.get("/raise", status=500)
    assert "Set-Cookie" not in response.headers
    assert redis_client.keys() == []


def test_exception_with_cookie_on_exception_keeps_session(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url)
    response = app.get("/raise", status=500)
    assert "Set-Cookie" in response.headers
    assert len(redis_client.keys()) == 1
    assert app.get("/read", {"key": "k"}).json == "v"


def test_unhandled_exception_stores_nothing(redis_url: str, redis_client: redis.Redis) -> None:
    app = make_app(redis_url, error_views=False)
    with pytest.raises(RuntimeError):
        app.get("/raise")
    assert redis_client.keys() == []


def test_invalidate_of_a_never_loaded_session_expires_cookie(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = make_app(redis_url)
    app.get("/set", {"key": "a", "value": "1"})
    response = app.get("/invalidate")
    assert "Max-Age=0" in set_cookie_header(response)
    assert "Cookie" in response.headers["Vary"]
    assert redis_client.keys() == []


def test_recookie_on_a_new_empty_session_sets_no_cookie(redis_url: str) -> None:
    def view(request: Request) -> Any:
        request.session.please_recookie()
        return "ok"

    response = make_app(redis_url, {"t": view}).get("/t")
    assert "Set-Cookie" not in response.headers


def test_id_collision_resends_one_cookie_with_its_attributes(
    redis_url: str, redis_client: redis.Redis
) -> None:
    ids = iter(["taken", "free"])
    redis_client.set("taken", b"someone else's session")
    app = make_app(redis_url, id_generator=lambda: next(ids), cookie_max_age=100)
    header = set_cookie_header(app.get("/set", {"key": "a", "value": "1"}))
    assert "Max-Age=100" in header
    assert make_signer(SECRET).loads(header.split(";")[0].split("=", 1)[1].encode()) == "free"


def test_id_collision_resends_the_configured_expires(
    redis_url: str, redis_client: redis.Redis
) -> None:
    ids = iter(["taken", "free"])
    redis_client.set("taken", b"someone else's session")
    app = make_app(
        redis_url, id_generator=lambda: next(ids), cookie_expires=datetime.timedelta(days=1)
    )
    header = set_cookie_header(app.get("/set", {"key": "a", "value": "1"}))
    assert "expires=" in header.lower()
    assert make_signer(SECRET).loads(header.split(";")[0].split("=", 1)[1].encode()) == "free"
