"""Cookie security: the deletion cookie, name prefixes, CHIPS, caching, canonical values,
the untested edges of reading a cookie, and secret rotation."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import redis
import webtest
from pyramid.request import Request
from pyramid.response import Response
from webob.cookies import SignedSerializer

from pyramid_session_redis import RedisSessionFactory, session_factory_from_settings
from pyramid_session_redis.cookie import NO_CACHE_SET_COOKIE, SessionCookie, make_signer
from pyramid_session_redis.exceptions import (
    ConfigurationError,
    CookieInvalid,
    InvalidSession,
    InvalidSession_NoSessionCookie,
)
from pyramid_session_redis.settings import MAX_COOKIE_LENGTH, build_settings
from tests.app import SECRET, make_app
from tests.redis_stats import CommandCounter

HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "localhost:443"}


class Reports(list[InvalidSession]):
    def __call__(self, request: Any, problem: InvalidSession) -> None:
        self.append(problem)


def set_cookies(response: webtest.TestResponse) -> list[str]:
    return [str(v) for v in response.headers.getall("Set-Cookie")]


def attributes(header: str) -> dict[str, str]:
    """``{lowercase attribute: value}`` of a Set-Cookie header, without name=value."""
    parts = [p.strip() for p in header.split(";")[1:]]
    return {p.partition("=")[0].lower(): p.partition("=")[2] for p in parts if p}


def cookie_value(header: str) -> str:
    return header.split(";")[0].split("=", 1)[1]


# --------------------------------------------------------------------------- the deletion cookie

ATTRIBUTE_SETS: list[dict[str, Any]] = [
    {},
    {"cookie_secure": True, "cookie_samesite": "Strict"},
    {"cookie_samesite": "None", "cookie_secure": True, "cookie_partitioned": True},
    {"cookie_path": "/app", "cookie_domain": "example.com", "cookie_httponly": False},
    {"cookie_name": "__Secure-sid", "cookie_secure": True, "cookie_comment": "c"},
    {"cookie_max_age": 3600, "cookie_secure": True, "cookie_samesite": "Lax"},
]


@pytest.mark.parametrize("options", ATTRIBUTE_SETS)
def test_deletion_cookie_carries_every_attribute_of_the_set_cookie(
    redis_url: str, options: dict[str, Any]
) -> None:
    app = make_app(redis_url, **options)
    app.extra_environ = HTTPS
    (set_header,) = set_cookies(app.get("/set", {"key": "a", "value": "1"}))
    name = options.get("cookie_name", "session")
    app.reset()  # the cookie goes back by hand: the jar keeps no Domain=example.com cookie
    (deletion,) = set_cookies(app.get("/invalidate", headers={"Cookie": set_header.split(";")[0]}))
    assert deletion.startswith(f"{name}=;")
    expected = {k: v for k, v in attributes(set_header).items() if k not in ("max-age", "expires")}
    deleted = attributes(deletion)
    assert deleted.pop("max-age") == "0"
    assert deleted.pop("expires").endswith("GMT")
    assert deleted == expected


def test_a_host_prefixed_session_cookie_is_deleted_by_logout(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """``__Host-`` cookies are only accepted with Secure, Path=/ and no Domain, also when
    deleting: the logout's Set-Cookie carries them, so the browser drops the cookie."""
    app = make_app(
        redis_url, cookie_name="__Host-session", cookie_secure=True, cookie_samesite="Lax"
    )
    app.extra_environ = HTTPS
    (created,) = set_cookies(app.get("/set", {"key": "user", "value": '"ann"'}))
    assert "__Host-session" in app.cookies
    assert app.get("/read", {"key": "user"}).json == "ann"
    (deletion,) = set_cookies(app.get("/invalidate"))
    for header in (created, deletion):
        found = attributes(header)
        assert "secure" in found and found["path"] == "/" and "domain" not in found
        assert found["samesite"].lower() == "lax" and "httponly" in found
    assert attributes(deletion)["max-age"] == "0"
    assert "__Host-session" not in app.cookies  # the client dropped it
    assert redis_client.keys() == []
    response = app.get("/read", {"key": "user"})
    assert response.json is None and "Set-Cookie" not in response.headers


def test_a_session_deleted_under_a_request_expires_the_cookie_with_its_attributes(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def delete_then_write(request: Request) -> Any:
        request.session["seen"] = True
        redis_client.delete(request.session.session_id)
        request.session["later"] = 1
        return "ok"

    app = make_app(
        redis_url,
        {"race": delete_then_write},
        cookie_name="__Host-s",
        cookie_secure=True,
        cookie_samesite="Strict",
    )
    app.extra_environ = HTTPS
    app.get("/set", {"key": "a", "value": "1"})
    (deletion,) = set_cookies(app.get("/race"))
    found = attributes(deletion)
    assert found["max-age"] == "0" and "secure" in found and found["samesite"].lower() == "strict"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"cookie_name": "__Host-session"}, "cookie_secure"),
        ({"cookie_name": "__host-session"}, "cookie_secure"),
        ({"cookie_name": "__Secure-session"}, "cookie_secure"),
        ({"cookie_name": "__Host-s", "cookie_secure": True, "cookie_path": "/app"}, "cookie_path"),
        (
            {"cookie_name": "__Host-s", "cookie_secure": True, "cookie_domain": "example.com"},
            "cookie_domain",
        ),
        ({"cookie_partitioned": True}, "cookie_secure"),
    ],
)
def test_cookies_browsers_would_reject_are_refused_at_start_up(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisSessionFactory("secret", **options)
    assert named in info.value.options


def test_secure_prefixed_names_with_their_requirements_are_accepted() -> None:
    RedisSessionFactory("s", cookie_name="__Host-session", cookie_secure=True)
    RedisSessionFactory("s", cookie_name="__Secure-s", cookie_secure=True, cookie_domain="a.b")


# --------------------------------------------------------------------------- Partitioned (CHIPS)


def test_partitioned_attribute_on_set_and_deletion(redis_url: str) -> None:
    app = make_app(redis_url, cookie_partitioned=True, cookie_secure=True, cookie_samesite="None")
    app.extra_environ = HTTPS
    (created,) = set_cookies(app.get("/set", {"key": "a", "value": "1"}))
    (deletion,) = set_cookies(app.get("/invalidate"))
    for header in (created, deletion):
        assert header.endswith("; Partitioned")
        assert header.count("Partitioned") == 1


def test_partitioned_attribute_with_max_age_and_expires(redis_url: str) -> None:
    """The cookie WebOb builds for Max-Age/Expires gets the attribute too."""
    app = make_app(redis_url, cookie_partitioned=True, cookie_secure=True, cookie_max_age=60)
    app.extra_environ = HTTPS
    (created,) = set_cookies(app.get("/set", {"key": "a", "value": "1"}))
    assert created.endswith("; Partitioned") and "Max-Age=60" in created

    def recookie(request: Request) -> Any:
        request.session.adjust_cookie_max_age(120)
        return "ok"

    app = make_app(redis_url, {"t": recookie}, cookie_partitioned=True, cookie_secure=True)
    app.extra_environ = HTTPS
    app.get("/set", {"key": "a", "value": "1"})
    (resent,) = set_cookies(app.get("/t"))
    assert "Max-Age=120" in resent and resent.endswith("; Partitioned")


def test_no_partitioned_attribute_by_default(redis_url: str) -> None:
    app = make_app(redis_url)
    (created,) = set_cookies(app.get("/set", {"key": "a", "value": "1"}))
    assert "partitioned" not in created.lower()


def test_partitioned_cookie_is_read_back(redis_url: str) -> None:
    app = make_app(redis_url, cookie_partitioned=True, cookie_secure=True)
    app.extra_environ = HTTPS
    app.get("/set", {"key": "a", "value": "1"})
    assert app.get("/read", {"key": "a"}).json == 1


# --------------------------------------------------------------------------- Cache-Control


def test_a_response_setting_the_cookie_is_not_stored_by_shared_caches(redis_url: str) -> None:
    app = make_app(redis_url)
    created = app.get("/set", {"key": "a", "value": "1"})
    assert created.headers["Cache-Control"] == NO_CACHE_SET_COOKIE == 'no-cache="Set-Cookie"'
    unchanged = app.get("/read", {"key": "a"})  # no cookie: the response is left alone
    assert "Set-Cookie" not in unchanged.headers and "Cache-Control" not in unchanged.headers
    deleted = app.get("/invalidate")
    assert set_cookies(deleted) and deleted.headers["Cache-Control"] == NO_CACHE_SET_COOKIE


def test_the_applications_cache_control_is_kept(redis_url: str) -> None:
    def private(request: Request) -> Any:
        request.session["a"] = 1
        request.response.cache_control.private = True
        request.response.cache_control.max_age = 5
        return "ok"

    response = make_app(redis_url, {"private": private}).get("/private")
    assert set_cookies(response)
    assert response.headers.getall("Cache-Control") == ["max-age=5, private"]


def test_cache_control_can_be_switched_off(redis_url: str) -> None:
    response = make_app(redis_url, cookie_cache_control=False).get(
        "/set", {"key": "a", "value": "1"}
    )
    assert set_cookies(response) and "Cache-Control" not in response.headers


def test_cookie_options_from_ini() -> None:
    factory = session_factory_from_settings(
        {
            "redis.sessions.secret": "s",
            "redis.sessions.cookie_secure": "true",
            "redis.sessions.cookie_partitioned": "true",
            "redis.sessions.cookie_cache_control": "false",
        }
    )
    assert factory.settings.cookie_partitioned is True
    assert factory.settings.cookie_cache_control is False
    defaults = session_factory_from_settings({"redis.sessions.secret": "s"}).settings
    assert defaults.cookie_partitioned is False and defaults.cookie_cache_control is True
    with pytest.raises(ConfigurationError) as info:
        session_factory_from_settings(
            {"redis.sessions.secret": "s", "redis.sessions.cookie_partitioned": "sometimes"}
        )
    assert "redis.sessions.cookie_partitioned" in info.value.options


# --------------------------------------------------------------------------- canonical values


class Text:
    """The identity serializer under WebOb's signer (1.8 signed the id as it is)."""

    def dumps(self, s: str) -> bytes:
        return s.encode()

    def loads(self, b: bytes) -> str:
        return b.decode()


def canonical_variants(value: bytes) -> dict[str, bytes]:
    """Values Python's base64 decoder reads as the same bytes as ``value``."""
    decoded = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    last = value[-1:]
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = alphabet[alphabet.index(last) + 1 : alphabet.index(last) + 2]
    variants = {
        "padded": value + b"=" * (-len(value) % 4 or 4),
        "junk after padding": base64.urlsafe_b64encode(decoded) + b"AAAA",
        "skipped character inside": value[:10] + b"!" + value[10:],
        "standard alphabet": base64.b64encode(decoded).rstrip(b"="),
        "unused bits set": value[:-1] + sibling,
    }
    assert all(
        base64.urlsafe_b64decode(v + b"===") == decoded
        for k, v in variants.items()
        if k != "junk after padding"
    )
    return {name: v for name, v in variants.items() if v != value}


def a_value_with_url_safe_characters() -> tuple[str, bytes]:
    """An id whose signed value has '-' or '_' (so the standard alphabet differs)."""
    signer = make_signer(SECRET)
    for n in range(1000):
        session_id = f"{n:064d}"
        value = signer.dumps(session_id)
        if (b"-" in value or b"_" in value) and len(value) % 4 != 0:
            return session_id, value
    raise AssertionError("no such id")


SESSION_ID, SIGNED = a_value_with_url_safe_characters()
VARIANTS = canonical_variants(SIGNED)


def test_all_variants_are_built() -> None:
    assert set(VARIANTS) == {
        "padded",
        "junk after padding",
        "skipped character inside",
        "standard alphabet",
        "unused bits set",
    }


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_only_the_canonical_form_verifies(variant: str) -> None:
    signer = make_signer(SECRET)
    assert signer.loads(SIGNED) == SESSION_ID
    with pytest.raises(ValueError):
        signer.loads(VARIANTS[variant])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_non_canonical_cookie_gives_a_fresh_session(
    redis_url: str, redis_client: redis.Redis, variant: str
) -> None:
    reports = Reports()
    app = make_app(redis_url, func_invalid_logger=reports)
    app.get("/set", {"key": "k", "value": "1"})
    signed = next(v for k, v in app.cookies.items() if k == "session").encode()
    session_id = make_signer(SECRET).loads(signed)
    redis_client.rename(session_id, SESSION_ID)  # the stored session the variant names
    reports.clear()
    header = "session=" + VARIANTS[variant].decode("latin-1")
    response = app.get("/dump", headers={"Cookie": header}, status="*")
    assert response.status_int == 200 and response.json == {}
    assert [type(r) for r in reports] == [CookieInvalid]
    canonical = app.get("/dump", headers={"Cookie": "session=" + SIGNED.decode()})
    assert canonical.json == {"k": 1}


@pytest.mark.parametrize(
    "variant", ["padded", "junk after padding", "standard alphabet", "unused bits set"]
)
def test_webobs_signer_accepted_the_variants_refused_here(variant: str) -> None:
    """What 1.8 accepted (through WebOb's SignedSerializer): the README's difference."""
    older = SignedSerializer(SECRET, "pyramid_session_redis.", "sha512", serializer=Text())
    assert older.loads(VARIANTS[variant]) == older.loads(SIGNED) == SESSION_ID


def test_cookies_of_version_1_8_are_canonical() -> None:
    """WebOb's SignedSerializer (what 1.8 used) writes the canonical form: all verify."""
    older = SignedSerializer(SECRET, "pyramid_session_redis.", "sha512", serializer=Text())
    ours = make_signer(SECRET)
    for n in range(300):
        session_id = base64.urlsafe_b64encode(n.to_bytes(48, "big")).decode()[: 1 + n % 64]
        assert ours.loads(older.dumps(session_id)) == session_id


# --------------------------------------------------------------------------- edges of reading


def read(cookie: SessionCookie, value: str) -> tuple[Any, ...]:
    return tuple(cookie.read(Request.blank("/", headers={"Cookie": f"session={value}"})))


def test_a_validly_signed_empty_id_is_no_session() -> None:
    cookie = SessionCookie(build_settings(SECRET))
    value = make_signer(SECRET).dumps("").decode()
    assert make_signer(SECRET).loads(value.encode()) == ""  # validly signed indeed
    session_id, problem, stale = read(cookie, value)
    assert session_id is None and isinstance(problem, CookieInvalid) and stale is False


def test_a_validly_signed_empty_id_gives_a_fresh_session(
    redis_url: str, redis_client: redis.Redis
) -> None:
    reports = Reports()
    redis_client.set("", b"never reachable")
    app = make_app(redis_url, func_invalid_logger=reports)
    header = "session=" + make_signer(SECRET).dumps("").decode()
    response = app.get("/set", {"key": "k", "value": "1"}, headers={"Cookie": header})
    assert [type(r) for r in reports] == [CookieInvalid]
    new_id = make_signer(SECRET).loads(cookie_value(set_cookies(response)[0]).encode())
    assert new_id and redis_client.get("") == b"never reachable"


def test_a_validly_signed_cookie_over_4096_characters_is_refused(
    redis_url: str, redis_client: redis.Redis
) -> None:
    signer, cookie = make_signer(SECRET), SessionCookie(build_settings(SECRET))
    at_limit, over = "a" * 3008, "a" * 3009  # 3072 and 3073 signed bytes
    assert len(signer.dumps(at_limit)) == MAX_COOKIE_LENGTH == 4096
    assert len(signer.dumps(over)) == 4098
    assert read(cookie, signer.dumps(at_limit).decode())[0] == at_limit
    session_id, problem, _ = read(cookie, signer.dumps(over).decode())
    assert session_id is None and isinstance(problem, CookieInvalid)
    assert signer.loads(signer.dumps(over)) == over  # the signature itself is valid
    # Through an application: a stored session under that long id is never reached.
    redis_client.set(over, b"unreachable")
    reports = Reports()
    app = make_app(redis_url, func_invalid_logger=reports)
    response = app.get("/dump", headers={"Cookie": f"session={signer.dumps(over).decode()}"})
    assert response.json == {} and [type(r) for r in reports] == [CookieInvalid]


class Returning:
    """A custom signer whose ``loads`` returns whatever it was given."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def dumps(self, appstruct: str) -> bytes:
        return appstruct.encode()

    def loads(self, bstruct: bytes) -> Any:
        return self.result


@pytest.mark.parametrize("result", [b"a" * 64, None, 42, ["a"], "", 3.5])
def test_a_custom_signer_returning_a_non_string_is_no_session(
    redis_url: str, redis_client: redis.Redis, result: Any
) -> None:
    cookie = SessionCookie(build_settings(None, cookie_signer=Returning(result)))
    session_id, problem, _ = read(cookie, "a" * 64)
    assert session_id is None and isinstance(problem, CookieInvalid)
    redis_client.set("a" * 64, b"unreachable")
    reports = Reports()
    app = make_app(
        redis_url, secret=None, cookie_signer=Returning(result), func_invalid_logger=reports
    )
    response = app.get("/dump", headers={"Cookie": "session=" + "a" * 64})
    assert response.json == {} and [type(r) for r in reports] == [CookieInvalid]


def test_a_custom_signers_message_is_not_in_the_report() -> None:
    class Quoting:
        def dumps(self, appstruct: str) -> bytes:
            return appstruct.encode()

        def loads(self, bstruct: bytes) -> str:
            raise ValueError(f"bad cookie {bstruct!r}")

    cookie = SessionCookie(build_settings(None, cookie_signer=Quoting()))
    _, problem, _ = read(cookie, "the-secret-cookie-value")
    assert isinstance(problem, CookieInvalid)
    assert "the-secret-cookie-value" not in str(problem) + repr(problem)
    assert isinstance(problem.__cause__, ValueError)  # the detail, for a debugger


@pytest.mark.parametrize("length", [1, 5, 9, 85, 4093])
def test_base64_of_length_1_mod_4_raises_value_error(length: int) -> None:
    """WebOb's contract for serializers: malformed input raises ValueError."""
    for signer in (make_signer(SECRET), make_signer([SECRET, "older"])):
        with pytest.raises(ValueError):
            signer.loads(b"A" * length)
    older = SignedSerializer(SECRET, "pyramid_session_redis.", "sha512")
    with pytest.raises(ValueError):  # WebOb's own signer agrees
        older.loads(b"A" * length)


@pytest.mark.parametrize("bad", [b"", b"\xff\xfe", b"AAAA\x00", "str, not bytes", None])
def test_the_public_signer_raises_only_value_error(bad: Any) -> None:
    with pytest.raises(ValueError):
        make_signer(SECRET).loads(bad)


def test_an_empty_session_cookie_is_reported_as_no_cookie(redis_url: str) -> None:
    reports = Reports()
    app = make_app(redis_url, func_invalid_logger=reports)
    app.get("/dump", headers={"Cookie": "session="})
    assert [type(r) for r in reports] == [CookieInvalid]
    assert isinstance(reports[0], InvalidSession_NoSessionCookie)


# --------------------------------------------------------------------------- secret rotation

CURRENT, OLDER, OLDEST = "the-current-secret", "the-older-secret", "the-oldest-secret"


def old_cookie(app: webtest.TestApp, secret: str, **values: Any) -> str:
    """Create a session in ``app``'s Redis; return a ``Cookie`` header for it signed with
    ``secret``."""
    for key, value in values.items():
        app.get("/set", {"key": key, "value": str(value)})
    session_id = app.get("/session_id").json
    return "session=" + make_signer(secret).dumps(session_id).decode()


def test_the_first_secret_signs_and_every_secret_verifies(redis_url: str) -> None:
    app = make_app(redis_url, secret=[CURRENT, OLDER, OLDEST])
    (created,) = set_cookies(app.get("/set", {"key": "a", "value": "1"}))
    session_id = make_signer(CURRENT).loads(cookie_value(created).encode())
    for secret in (OLDER, OLDEST):
        with pytest.raises(ValueError):
            make_signer(secret).loads(cookie_value(created).encode())
        header = "session=" + make_signer(secret).dumps(session_id).decode()
        app.reset()
        assert app.get("/read", {"key": "a"}, headers={"Cookie": header}).json == 1


@pytest.mark.parametrize(("path", "params"), [("/read", {"key": "a"}), ("/incr", {"key": "n"})])
def test_an_old_secrets_cookie_is_re_signed_at_no_redis_cost(
    redis_url: str, commands: CommandCounter, path: str, params: dict[str, str]
) -> None:
    stale = old_cookie(make_app(redis_url, secret=OLDER), OLDER, a=1, n=1)
    session_id = make_signer(OLDER).loads(cookie_value(stale).encode())
    current = "session=" + make_signer(CURRENT).dumps(session_id).decode()
    app = make_app(redis_url, secret=[CURRENT, OLDER])
    app.get(path, params, headers={"Cookie": current})  # the first write learns the server
    with commands.measure() as current_cost:  # the same request with a current cookie
        assert set_cookies(app.get(path, params, headers={"Cookie": current})) == []
    app.reset()
    with commands.measure() as stale_cost:
        response = app.get(path, params, headers={"Cookie": stale})
    assert current_cost.total > 0 and stale_cost.counts == current_cost.counts  # no command more
    (resent,) = set_cookies(response)  # one extra Set-Cookie, signed with the current secret
    assert resent.split(";")[0] == current
    assert response.headers["Cache-Control"] == NO_CACHE_SET_COOKIE
    # The client now holds a current cookie: no further Set-Cookie.
    following = app.get("/read", {"key": "a"})
    assert following.json == 1 and set_cookies(following) == []


def test_an_old_secrets_cookie_for_a_missing_session_is_not_re_sent(redis_url: str) -> None:
    app = make_app(redis_url, secret=[CURRENT, OLDER])
    header = "session=" + make_signer(OLDER).dumps("gone-id").decode()
    response = app.get("/read", {"key": "a"}, headers={"Cookie": header})
    assert response.json is None and set_cookies(response) == []


def test_an_old_secrets_cookie_with_the_cdn_hook_denying_cookies(redis_url: str) -> None:
    def cacheable(request: Request) -> Any:
        request.session.get("a")
        request.response.cache_control.max_age = 60
        return "ok"

    from pyramid_session_redis import check_response_allow_cookies

    app = make_app(
        redis_url,
        {"c": cacheable},
        secret=[CURRENT, OLDER],
        func_check_response_allow_cookies=check_response_allow_cookies,
    )
    header = old_cookie(make_app(redis_url, secret=OLDER), OLDER, a=1)
    assert set_cookies(app.get("/c", headers={"Cookie": header})) == []


def test_a_secret_no_longer_listed_no_longer_verifies(redis_url: str) -> None:
    header = old_cookie(make_app(redis_url, secret=OLDEST), OLDEST, a=1)
    reports = Reports()
    app = make_app(redis_url, secret=[CURRENT, OLDER], func_invalid_logger=reports)
    response = app.get("/read", {"key": "a"}, headers={"Cookie": header})
    assert response.json is None and [type(r) for r in reports] == [CookieInvalid]


def test_rotated_secrets_from_ini() -> None:
    single = session_factory_from_settings({"redis.sessions.secret": "  one  "})
    assert single.settings.secret == "one" and single.settings.secrets == ("one",)
    listed = session_factory_from_settings({"redis.sessions.secret": "\nnew\n  old older\n"})
    assert listed.settings.secrets == ("new", "old", "older")
    signed = make_signer("older").dumps("x" * 64).decode()
    request = Request.blank("/", headers={"Cookie": f"session={signed}"})
    assert tuple(listed.cookie.read(request)) == ("x" * 64, None, True)


@pytest.mark.parametrize("secret", [[], (), ["ok", ""], ["ok", 3], [None]])
def test_a_bad_list_of_secrets_is_refused(secret: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisSessionFactory(secret)
    assert "secret" in info.value.options


def test_bytes_secrets_rotate_like_their_text() -> None:
    factory = RedisSessionFactory([b"new", b"old"])
    value = make_signer("old").dumps("i").decode()
    assert tuple(factory.cookie.read(Request.blank("/", headers={"Cookie": f"session={value}"})))[
        ::2
    ] == ("i", True)


def test_the_log_hash_is_keyed_by_the_first_secret() -> None:
    rotated = RedisSessionFactory([CURRENT, OLDER])
    assert rotated.log_id("an-id") == RedisSessionFactory(CURRENT).log_id("an-id")
    assert rotated.log_id("an-id") != RedisSessionFactory(OLDER).log_id("an-id")
    assert RedisSessionFactory(CURRENT).log_id("an-id") == RedisSessionFactory(CURRENT).log_id(
        "an-id"
    )


def test_set_cookie_header_is_unchanged_by_the_attribute_work() -> None:
    """A plain response: exactly one Set-Cookie with the attributes WebOb would write."""
    cookie = SessionCookie(build_settings(SECRET, cookie_secure=True, cookie_samesite="lax"))
    response = Response()
    cookie.set(response, "x" * 64)
    (header,) = response.headers.getall("Set-Cookie")
    assert header == (
        f"session={make_signer(SECRET).dumps('x' * 64).decode()}; Path=/; secure; HttpOnly; "
        "SameSite=lax"
    )
