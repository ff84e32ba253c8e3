"""Reading the session cookie exactly as WebOb would, without WebOb's cost.

The signer and the plain-header reader are our own (they are on every request's
path); WebOb's ``SignedSerializer`` and ``request.cookies`` are the oracles here.
"""

from __future__ import annotations

import random
import secrets
import string
from typing import Any

import pytest
from pyramid.request import Request
from pyramid.response import Response
from webob.cookies import SignedSerializer

from pyramid_session_redis.cookie import HmacSigner, SessionCookie, make_signer
from pyramid_session_redis.settings import build_settings


class Text:
    """The identity serializer under WebOb's signature."""

    def dumps(self, appstruct: str) -> bytes:
        return appstruct.encode("ascii")

    def loads(self, bstruct: bytes) -> str:
        return bstruct.decode("ascii")


def webob_signer(secret: str) -> SignedSerializer:
    return SignedSerializer(secret, "pyramid_session_redis.", "sha512", serializer=Text())


SECRETS = ["s", "a much longer secret " * 8, "café-latin-1", "密钥-not-latin-1", "x" * 200]


@pytest.mark.parametrize("secret", SECRETS)
def test_signatures_are_webobs(secret: str) -> None:
    ours, theirs = make_signer(secret), webob_signer(secret)
    for session_id in ["a" * 64, secrets.token_hex(32), secrets.token_urlsafe(48), "x"]:
        signed = ours.dumps(session_id)
        assert signed == theirs.dumps(session_id)
        assert ours.loads(signed) == session_id == theirs.loads(signed)


def test_a_bytes_secret_signs_like_its_utf8_text() -> None:
    assert make_signer("密钥".encode()).dumps("id") == webob_signer("密钥").dumps("id")


def test_any_altered_character_fails_verification() -> None:
    signer = HmacSigner("secret")
    signed = signer.dumps("a" * 64)
    alphabet = string.ascii_letters + string.digits + "-_"
    accepted = []
    for position in range(len(signed)):
        replacement = alphabet[(alphabet.index(chr(signed[position])) + 1) % len(alphabet)]
        tampered = signed[:position] + replacement.encode() + signed[position + 1 :]
        try:
            assert signer.loads(tampered) == "a" * 64
        except ValueError:
            continue
        accepted.append(position)
    # Only the unused low bits of the last base64 character can change unnoticed: they
    # do not change the decoded bytes (WebOb's cookies behave the same).
    assert accepted in ([], [len(signed) - 1])
    for bad in (b"", signed[:-1], signed[:40], b"!!!", signed + b"AAAA"):
        with pytest.raises(ValueError):
            signer.loads(bad)
    with pytest.raises(ValueError):
        HmacSigner("another secret").loads(signed)


# --------------------------------------------------------------------------- the Cookie header

NAMES = ["session", "sid", "my.app-session", "Session", "version", "a$b"]
VALID_VALUE = make_signer("secret").dumps("a" * 64).decode()
TRICKY_HEADERS = [
    "",
    "session=",
    "session",
    ";;;",
    "session=a; session=b",
    "session=a;session=b;",
    " session = spaced ; other=1",
    'other="x; session=inside-quotes"; session=real',
    'other="x; session=inside-quotes"',
    'session="quoted"',
    r'session="a\"b"',
    r"session=a\073b",
    "session=a,b; x=1",
    "x=Wed, 21 Oct 2015 07:28:00 GMT; session=after-expires",
    "session=a[b=c",
    "session=a b",
    "$session=dollar; session=plain",
    "path=/; session=v",
    "sessionx=1; xsession=2",
    "session=é",
    "session=v\x85",
    "\tsession=tab\t;\tother=2",
    "session=v; Secure; HttpOnly",
    f"session={VALID_VALUE}; csrf=abc; _ga=GA1.2.3.4",
    f"a=1; b=2; session={VALID_VALUE}",
    "other=1; session=a=b=c",
]


RAISES = "<raises>"  # WebOb fails on some undecodable headers (``read`` reports those)


def webob_value(header: str, name: str) -> str | None:
    try:
        value: str | None = Request.blank("/", headers={"Cookie": header}).cookies.get(name)
    except ValueError:
        return RAISES
    return value


def our_value(header: str, name: str) -> str | None:
    cookie = SessionCookie(build_settings("secret", cookie_name=name))
    try:
        value: str | None = cookie._value(Request.blank("/", headers={"Cookie": header}))
    except ValueError:
        return RAISES
    return value


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("header", TRICKY_HEADERS)
def test_tricky_headers_read_as_webob_reads_them(header: str, name: str) -> None:
    assert our_value(header, name) == webob_value(header, name)


def random_header(rng: random.Random, names: list[str]) -> str:
    """A Cookie header assembled from pieces chosen to stress both parsers."""
    pieces = [
        *names,
        *"=;,\"\\ \t$[]()<>@:/?{}'`~!#%&*+-.^_|",
        "a",
        "Z9",
        VALID_VALUE[:10],
        "GMT",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "é",
    ]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))


def test_random_headers_read_as_webob_reads_them() -> None:
    rng = random.Random(20261122)
    for _ in range(4000):
        name = rng.choice(NAMES)
        header = random_header(rng, [name, name + "=v", f"{name}={VALID_VALUE}"])
        assert our_value(header, name) == webob_value(header, name), (header, name)


def test_random_plain_headers_read_as_webob_reads_them() -> None:
    """Headers inside the plain grammar, where our own reader is the one answering."""
    rng = random.Random(7)
    token = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
    value = string.ascii_letters + string.digits + "!#$%&'()*+-./:<=>?@^_`{|}~"
    for _ in range(3000):
        name = rng.choice(NAMES[:3])
        pairs = [
            ("".join(rng.choices(token, k=rng.randint(1, 6))), rng.choices(value, k=4))
            for _ in range(rng.randint(0, 5))
        ]
        pairs += [(name, rng.choices(value, k=rng.randint(0, 8)))] * rng.randint(0, 2)
        rng.shuffle(pairs)
        separator = rng.choice([";", "; ", " ; ", ";\t"])
        header = separator.join(f"{n}={''.join(v)}" for n, v in pairs)
        assert our_value(header, name) == webob_value(header, name), (header, name)


# --------------------------------------------------------------------------- the Set-Cookie header

ATTRIBUTE_SETS: list[dict[str, Any]] = [
    {},
    {"cookie_name": "sid", "cookie_path": "/app", "cookie_domain": "example.com"},
    {"cookie_secure": True, "cookie_httponly": False, "cookie_samesite": "Strict"},
    {"cookie_samesite": "None", "cookie_secure": True, "cookie_comment": "a-comment"},
    {"cookie_max_age": 3600},
    {"cookie_name": "my.app-session", "cookie_samesite": "lax"},
]


class Spaced:
    """A signer whose values WebOb must quote."""

    def dumps(self, appstruct: str) -> bytes:
        return f'id "{appstruct}"; x'.encode()

    def loads(self, bstruct: bytes) -> str:
        return bstruct.decode()[4:-4]


@pytest.mark.filterwarnings("ignore:Cookie value contains invalid bytes")  # the quoting signer
@pytest.mark.parametrize("options", ATTRIBUTE_SETS)
@pytest.mark.parametrize("signer", ["default", "quoting"])
def test_set_cookie_headers_are_webobs(options: dict[str, Any], signer: str) -> None:
    if signer == "quoting":
        settings = build_settings(None, cookie_signer=Spaced(), **options)
    else:
        settings = build_settings("secret", **options)
    cookie = SessionCookie(settings)
    attributes = {
        "path": settings.cookie_path,
        "domain": settings.cookie_domain,
        "secure": settings.cookie_secure,
        "httponly": settings.cookie_httponly,
        "comment": settings.cookie_comment,
        "samesite": settings.cookie_samesite.lower() if settings.cookie_samesite else None,
    }
    for existing in ([], [("Set-Cookie", f"{cookie.name}=old; Path=/")], [("Set-Cookie", "a=b")]):
        ours, theirs = Response(), Response()
        for response in (ours, theirs):
            response.headerlist.extend(existing)
        session_id = secrets.token_hex(32)
        cookie.set(ours, session_id, settings.cookie_max_age)
        value = cookie.signer.dumps(session_id).decode()
        theirs.set_cookie(
            cookie.name, value, max_age=settings.cookie_max_age, overwrite=True, **attributes
        )
        ours_cookies = [v for k, v in ours.headerlist if k == "Set-Cookie"]
        theirs_cookies = [v for k, v in theirs.headerlist if k == "Set-Cookie"]
        if settings.cookie_max_age:  # Expires is "now + Max-Age": compare without it
            ours_cookies = [_without_expires(v) for v in ours_cookies]
            theirs_cookies = [_without_expires(v) for v in theirs_cookies]
        assert ours_cookies == theirs_cookies


def _without_expires(header: str) -> str:
    return "; ".join(p for p in header.split("; ") if not p.lower().startswith("expires="))


# -- requests whose ``cookies`` is not WebOb's view of the Cookie header


def test_dummy_request_cookies_are_read() -> None:
    """Application tests build ``DummyRequest(cookies=...)``: no Cookie header at all."""
    from pyramid import testing

    cookie = SessionCookie(build_settings("secret"))
    signed = make_signer("secret").dumps("the-id").decode("ascii")
    assert cookie.read(testing.DummyRequest(cookies={"session": signed})) == ("the-id", None)
    session_id, problem = cookie.read(testing.DummyRequest())
    assert session_id is None and problem is not None


def test_a_request_class_overriding_cookies_is_read_through_it() -> None:
    class Overriding(Request):
        @property
        def cookies(self) -> dict[str, str]:  # type: ignore[override]
            return {"session": make_signer("secret").dumps("from-property").decode("ascii")}

    request = Overriding.blank("/", headers={"Cookie": "session=ignored"})
    assert SessionCookie(build_settings("secret")).read(request) == ("from-property", None)
