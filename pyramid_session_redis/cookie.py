"""The session cookie: sign, verify, set and expire; nothing about storage.

Cookies are signed exactly as version 1.8 signs them (what WebOb's
``SignedSerializer`` produces with the same salt and digest) so that cookies
issued by the older library stay valid after the switch.
"""

from __future__ import annotations

import binascii
import datetime
import hmac
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from webob.cookies import make_cookie
from webob.request import BaseRequest

from .exceptions import CookieInvalid, InvalidSession, InvalidSession_NoSessionCookie
from .settings import COOKIE_NAME_PATTERN, MAX_COOKIE_LENGTH, TOKEN_CHAR, SessionSettings

if TYPE_CHECKING:
    from pyramid.request import Request
    from webob import Response

SIGNING_SALT = "pyramid_session_redis."
SIGNING_HASHALG = "sha512"
# CHIPS. WebOb (1.8.x) has no argument for it: the attribute is appended to its header.
PARTITIONED = "; Partitioned"
# Shared caches must not store (and replay) a response's session cookie.
NO_CACHE_SET_COOKIE = 'no-cache="Set-Cookie"'


class CookieSigner(Protocol):
    """Turns a session id into a cookie value and back; ``loads`` raises ValueError."""

    def dumps(self, appstruct: str) -> bytes: ...

    def loads(self, bstruct: bytes) -> str: ...


def _hmac_key(text: str) -> bytes:
    """Latin-1, or UTF-8 when the text has other characters (as WebOb derives keys)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


# URL-safe base64 through binascii directly (what ``base64.urlsafe_b64*`` wrap, slower).
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_TO_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def _encode(signed: bytes) -> bytes:
    """Unpadded URL-safe base64."""
    return binascii.b2a_base64(signed, newline=False).translate(_TO_URL_SAFE).rstrip(b"=")


def _decode(bstruct: bytes) -> bytes:
    """The bytes of an unpadded URL-safe base64 value in its canonical form only.

    The decoder also accepts padding, ``+`` and ``/``, characters it skips and
    non-zero unused bits, all of which would give one id many cookie values: those
    are refused (ValueError), as is anything else that is not base64.
    """
    if not isinstance(bstruct, bytes):
        raise ValueError(f"a cookie value is bytes, not {type(bstruct).__name__}")
    try:
        signed = binascii.a2b_base64(bstruct.translate(_TO_STANDARD) + b"=" * (-len(bstruct) % 4))
    except binascii.Error as exc:
        raise ValueError(f"badly formed base64: {exc}") from exc
    if _encode(signed) != bstruct:
        raise ValueError("not the canonical base64 form of its bytes")
    return signed


class HmacSigner:
    """``urlsafe_b64(HMAC(salt + secret, id) + id)``, unpadded: version 1.8's format.

    ``secret`` may be several secrets (current first): the first signs, every one
    verifies, and :meth:`verify` tells which one did. The keyed HMACs are computed
    once and copied per cookie; keys are derived as WebOb's ``SignedSerializer``
    derives them. Only the exact value ``dumps`` produces is accepted.
    """

    __slots__ = ("_digest_size", "_keyed")

    def __init__(
        self,
        secret: str | Sequence[str],
        salt: str = SIGNING_SALT,
        hashalg: str = SIGNING_HASHALG,
    ):
        secrets = (secret,) if isinstance(secret, str) else tuple(secret)
        if not secrets:
            raise ValueError("HmacSigner needs at least one secret")
        self._keyed = tuple(hmac.new(_hmac_key(salt + one), digestmod=hashalg) for one in secrets)
        self._digest_size = self._keyed[0].digest_size

    @staticmethod
    def _sign(keyed: hmac.HMAC, message: bytes) -> bytes:
        mac = keyed.copy()
        mac.update(message)
        return mac.digest()

    def dumps(self, appstruct: str) -> bytes:
        message = appstruct.encode("ascii")
        return _encode(self._sign(self._keyed[0], message) + message)

    def loads(self, bstruct: bytes) -> str:
        """The signed id; ValueError for anything else."""
        return self.verify(bstruct)[0]

    def verify(self, bstruct: bytes) -> tuple[str, int]:
        """The signed id and the index of the secret that signed it; ValueError otherwise."""
        signed = _decode(bstruct)
        signature, message = signed[: self._digest_size], signed[self._digest_size :]
        for index, keyed in enumerate(self._keyed):
            if hmac.compare_digest(signature, self._sign(keyed, message)):
                return message.decode("ascii"), index
        raise ValueError("invalid signature")


def make_signer(secret: str | bytes | Sequence[str | bytes]) -> HmacSigner:
    """The default signer, compatible with version 1.8's cookies; several secrets rotate."""
    secrets = (secret,) if isinstance(secret, (str, bytes)) else tuple(secret)
    return HmacSigner([one.decode("utf-8") if isinstance(one, bytes) else one for one in secrets])


# A Cookie header of plain ``name=value`` pairs: RFC 6265 token names; values of the
# characters that both RFC 6265 and WebOb's parser accept unquoted (no quotes,
# backslashes, commas, spaces or brackets). WebOb parses such a header exactly as
# ``_plain_cookie`` does; any other header is left to WebOb.
_VALUE = r"[!#$%&'()*+\-./0-9:<=>?@A-Z^_`a-z{|}~]*"
_PAIR = rf"{COOKIE_NAME_PATTERN}={_VALUE}"
_PLAIN_HEADER = re.compile(rf"\s*{_PAIR}(?:\s*;\s*{_PAIR})*\s*;?\s*", re.ASCII)
# Cookie values WebOb writes as they are (no quoting): token characters, as in names
# (signed ids are base64url).
_PLAIN_VALUE = re.compile(TOKEN_CHAR + "*", re.ASCII)
_SAMPLE_VALUE = "v"
# WebOb's ``request.cookies``: a view of ``environ["HTTP_COOKIE"]``. Only requests that
# use it are read from the header directly; others (e.g. ``pyramid.testing.DummyRequest``
# with its ``cookies`` dict) are read through ``request.cookies``.
_WEBOB_COOKIES = BaseRequest.cookies


def _plain_cookie(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a header that matches ``_PLAIN_HEADER``."""
    found = None
    prefix = name + "="
    for pair in header.split(";"):
        pair = pair.strip()
        if pair.startswith(prefix):
            found = pair[len(prefix) :]  # the last one wins, as in WebOb
    return found


class CookieRead(NamedTuple):
    """What a request's session cookie says."""

    session_id: str | None  # the verified id, or None
    problem: InvalidSession | None  # why there is no id
    stale: bool = False  # signed with an older secret: re-send it signed with the current one


class SessionCookie:
    """Reads the session id from a request and writes the cookie on a response."""

    def __init__(self, settings: SessionSettings) -> None:
        self.name = settings.cookie_name  # a valid cookie name (checked by the settings)
        self.signer: CookieSigner = settings.cookie_signer or make_signer(settings.secrets)
        self.allow = settings.func_check_response_allow_cookies
        self.cache_control = settings.cookie_cache_control
        samesite = settings.cookie_samesite
        self._attributes: dict[str, Any] = {
            "path": settings.cookie_path,
            "domain": settings.cookie_domain,
            "secure": settings.cookie_secure,
            "httponly": settings.cookie_httponly,
            "comment": settings.cookie_comment,
            "samesite": samesite.lower() if samesite else None,
        }
        self._partitioned = PARTITIONED if settings.cookie_partitioned else ""
        self.default_max_age = settings.cookie_max_age
        self.default_expires = settings.cookie_expires
        self._suffix = self._attribute_suffix()
        # The deletion cookie carries every attribute of the set cookie: browsers ignore
        # one without Secure for __Host-/__Secure- names, or with another Path/Domain.
        self._deletion = make_cookie(self.name, None, **self._attributes) + self._partitioned

    def _attribute_suffix(self) -> str | None:
        """What follows ``name=value`` when neither Max-Age nor Expires is set.

        Computed once; None when the name itself would be written differently.
        """
        sample: str = make_cookie(self.name, _SAMPLE_VALUE, **self._attributes)
        head = f"{self.name}={_SAMPLE_VALUE}"
        if not sample.startswith(head):
            return None
        return sample[len(head) :] + self._partitioned

    def read(self, request: Request) -> CookieRead:
        """The verified session id, or None and the reason there is none."""
        try:
            raw = self._value(request)
        except Exception as exc:  # WebOb fails on some undecodable Cookie headers
            return _invalid(f"unparseable cookie header ({type(exc).__name__})", exc)
        if raw is None:
            return CookieRead(None, InvalidSession_NoSessionCookie("no session cookie"))
        if not raw or len(raw) > MAX_COOKIE_LENGTH or not raw.isascii():
            return _invalid("session cookie is empty, oversized or not ASCII")
        stale, signer = False, self.signer
        try:
            if isinstance(signer, HmacSigner):  # tells which secret signed
                session_id, index = signer.verify(raw.encode("ascii"))
                stale = index > 0
            else:
                session_id = signer.loads(raw.encode("ascii"))
        except Exception as exc:  # any failure to verify means "no valid cookie"
            # The type only: a custom signer's message may quote the cookie.
            return _invalid(f"session cookie failed verification ({type(exc).__name__})", exc)
        if not isinstance(session_id, str) or not session_id:
            return _invalid("session cookie holds no session id")
        return CookieRead(session_id, None, stale)

    def _value(self, request: Request) -> str | None:
        """``request.cookies.get(name)``; plain headers are read without WebOb's parser."""
        if getattr(type(request), "cookies", None) is _WEBOB_COOKIES:
            header = request.environ.get("HTTP_COOKIE", "")
            if not header:
                return None
            if _PLAIN_HEADER.fullmatch(header) is not None:
                return _plain_cookie(header, self.name)
        value: str | None = request.cookies.get(self.name)
        return value

    def allowed(self, response: Response) -> bool:
        """Whether the CDN hook lets this response carry a session cookie."""
        return self.allow is None or bool(self.allow(response))

    def set(
        self,
        response: Response,
        session_id: str,
        max_age: Any = None,
        expires: Any = None,
    ) -> None:
        """Set the signed cookie for ``session_id``.

        ``expires`` may be a number of seconds from now (WebOb would drop a bare int).
        """
        if isinstance(expires, int) and not isinstance(expires, bool):
            expires = datetime.timedelta(seconds=expires)
        signed = self.signer.dumps(session_id)
        value = signed.decode("ascii") if isinstance(signed, bytes) else signed
        if (
            max_age is None
            and expires is None
            and self._suffix is not None
            and _PLAIN_VALUE.fullmatch(value)
        ):
            # The header WebOb's set_cookie would write, without building it each time.
            response.unset_cookie(self.name, strict=False)  # one Set-Cookie per name
            response.headerlist.append(("Set-Cookie", f"{self.name}={value}{self._suffix}"))
        else:
            response.set_cookie(
                self.name,
                value,
                max_age=max_age,
                expires=expires,
                overwrite=True,  # one Set-Cookie per name and response (RFC 6265 4.1.1)
                **self._attributes,
            )
            if self._partitioned:  # set_cookie appended the header last
                header, written = response.headerlist[-1]
                response.headerlist[-1] = (header, written + self._partitioned)
        self._mark(response)

    def expire(self, response: Response) -> None:
        """Tell the client to drop the session cookie."""
        response.unset_cookie(self.name, strict=False)
        response.headerlist.append(("Set-Cookie", self._deletion))
        self._mark(response)

    def _mark(self, response: Response) -> None:
        """What every response that sets or deletes the session cookie carries."""
        _vary_on_cookie(response)
        if self.cache_control and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = NO_CACHE_SET_COOKIE


def _invalid(message: str, cause: BaseException | None = None) -> CookieRead:
    problem = CookieInvalid(message)
    problem.__cause__ = cause
    return CookieRead(None, problem)


def _vary_on_cookie(response: Response) -> None:
    vary = response.vary or ()
    if "cookie" not in {v.lower() for v in vary}:
        response.vary = (*vary, "Cookie")


def check_response_allow_cookies(response: Response) -> bool:
    """Reference ``func_check_response_allow_cookies`` hook.

    A response that carries an ``Expires`` or a ``Cache-Control`` header is
    cacheable content: no session cookie is put on it.
    """
    headers = response.headers
    return "expires" not in headers and "cache-control" not in headers
