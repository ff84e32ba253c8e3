"""The session cookie: sign, verify, set and expire; nothing about storage.

Cookies are signed exactly as version 1.8 signs them (what WebOb's
``SignedSerializer`` produces with the same salt and digest) so that cookies
issued by the older library stay valid after the switch.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from typing import TYPE_CHECKING, Any, Protocol

from webob.cookies import make_cookie
from webob.request import BaseRequest

from .exceptions import CookieInvalid, InvalidSession, InvalidSession_NoSessionCookie
from .settings import COOKIE_NAME_PATTERN, MAX_COOKIE_LENGTH, TOKEN_CHAR, SessionSettings

if TYPE_CHECKING:
    from pyramid.request import Request
    from webob import Response

SIGNING_SALT = "pyramid_session_redis."
SIGNING_HASHALG = "sha512"


class CookieSigner(Protocol):
    """Turns a session id into a cookie value and back; ``loads`` raises ValueError."""

    def dumps(self, appstruct: str) -> bytes: ...

    def loads(self, bstruct: bytes) -> str: ...


class HmacSigner:
    """``urlsafe_b64(HMAC(salt + secret, id) + id)``, unpadded: version 1.8's format.

    The keyed HMAC is computed once and copied per cookie. The key is the salt and
    the secret in Latin-1, or in UTF-8 when the secret has other characters (as
    WebOb's ``SignedSerializer`` derives it).
    """

    __slots__ = ("_digest_size", "_keyed")

    def __init__(self, secret: str, salt: str = SIGNING_SALT, hashalg: str = SIGNING_HASHALG):
        try:
            key = (salt + secret).encode("latin-1")
        except UnicodeEncodeError:
            key = (salt + secret).encode("utf-8")
        self._keyed = hmac.new(key, digestmod=hashalg)
        self._digest_size = self._keyed.digest_size

    def _sign(self, message: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(message)
        return mac.digest()

    def dumps(self, appstruct: str) -> bytes:
        message = appstruct.encode("ascii")
        return base64.urlsafe_b64encode(self._sign(message) + message).rstrip(b"=")

    def loads(self, bstruct: bytes) -> str:
        """The signed id; ValueError for anything else."""
        try:
            signed = base64.urlsafe_b64decode(bstruct + b"=" * (-len(bstruct) % 4))
        except (binascii.Error, TypeError) as exc:
            raise ValueError(f"badly formed base64: {exc}") from exc
        signature, message = signed[: self._digest_size], signed[self._digest_size :]
        if not hmac.compare_digest(signature, self._sign(message)):
            raise ValueError("invalid signature")
        return message.decode("ascii")


def make_signer(secret: str | bytes) -> CookieSigner:
    """The default signer, compatible with version 1.8's cookies."""
    if isinstance(secret, bytes):
        secret = secret.decode("utf-8")
    return HmacSigner(secret)


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


class SessionCookie:
    """Reads the session id from a request and writes the cookie on a response."""

    def __init__(self, settings: SessionSettings) -> None:
        self.name = settings.cookie_name  # a valid cookie name (checked by the settings)
        self.signer: CookieSigner = settings.cookie_signer or make_signer(
            settings.secret  # type: ignore[arg-type]  # validated: one of the two is set
        )
        self.allow = settings.func_check_response_allow_cookies
        samesite = settings.cookie_samesite
        self._attributes: dict[str, Any] = {
            "path": settings.cookie_path,
            "domain": settings.cookie_domain,
            "secure": settings.cookie_secure,
            "httponly": settings.cookie_httponly,
            "comment": settings.cookie_comment,
            "samesite": samesite.lower() if samesite else None,
        }
        self.default_max_age = settings.cookie_max_age
        self.default_expires = settings.cookie_expires
        self._suffix = self._attribute_suffix()

    def _attribute_suffix(self) -> str | None:
        """What WebOb writes after ``name=value`` when neither Max-Age nor Expires is set.

        Computed once; None when the name itself would be written differently.
        """
        sample = make_cookie(self.name, _SAMPLE_VALUE, **self._attributes)
        head = f"{self.name}={_SAMPLE_VALUE}"
        return sample[len(head) :] if sample.startswith(head) else None

    def read(self, request: Request) -> tuple[str | None, InvalidSession | None]:
        """The verified session id, or None and the reason there is none."""
        try:
            raw = self._value(request)
        except Exception as exc:  # WebOb fails on some undecodable Cookie headers
            return None, CookieInvalid(f"unparseable cookie header: {exc}")
        if raw is None:
            return None, InvalidSession_NoSessionCookie("no session cookie")
        if not raw or len(raw) > MAX_COOKIE_LENGTH or not raw.isascii():
            return None, CookieInvalid("session cookie is empty, oversized or not ASCII")
        try:
            session_id = self.signer.loads(raw.encode("ascii"))
        except Exception as exc:  # any failure to verify means "no valid cookie"
            return None, CookieInvalid(f"session cookie failed verification: {exc}")
        if not isinstance(session_id, str) or not session_id:
            return None, CookieInvalid("session cookie holds no session id")
        return session_id, None

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
        """Set the signed cookie for ``session_id``."""
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
        _vary_on_cookie(response)

    def expire(self, response: Response) -> None:
        """Tell the client to drop the session cookie."""
        response.unset_cookie(self.name, strict=False)
        response.delete_cookie(
            self.name,
            path=self._attributes["path"],
            domain=self._attributes["domain"],
        )
        _vary_on_cookie(response)


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
