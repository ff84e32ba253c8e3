"""The session cookie: sign, verify, set and expire; nothing about storage.

Cookies are signed exactly as version 1.8 signs them (WebOb's
``SignedSerializer`` with the same salt and digest) so that cookies issued by
the older library stay valid after the switch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from webob.cookies import SignedSerializer

from .exceptions import CookieInvalid, InvalidSession, InvalidSession_NoSessionCookie
from .settings import MAX_COOKIE_LENGTH, SessionSettings

if TYPE_CHECKING:
    from pyramid.request import Request
    from webob import Response

SIGNING_SALT = "pyramid_session_redis."
SIGNING_HASHALG = "sha512"


class CookieSigner(Protocol):
    """Turns a session id into a cookie value and back; ``loads`` raises ValueError."""

    def dumps(self, appstruct: str) -> bytes: ...

    def loads(self, bstruct: bytes) -> str: ...


class _TextSerializer:
    """The identity serializer under the signature: str <-> ASCII bytes."""

    def dumps(self, appstruct: str) -> bytes:
        return appstruct.encode("ascii")

    def loads(self, bstruct: bytes) -> str:
        return bstruct.decode("ascii")


def make_signer(secret: str | bytes) -> CookieSigner:
    """The default signer, compatible with version 1.8's cookies."""
    if isinstance(secret, bytes):
        secret = secret.decode("utf-8")
    signer: CookieSigner = SignedSerializer(
        secret, SIGNING_SALT, SIGNING_HASHALG, serializer=_TextSerializer()
    )
    return signer


class SessionCookie:
    """Reads the session id from a request and writes the cookie on a response."""

    def __init__(self, settings: SessionSettings) -> None:
        self.name = settings.cookie_name
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

    def read(self, request: Request) -> tuple[str | None, InvalidSession | None]:
        """The verified session id, or None and the reason there is none."""
        try:
            raw = request.cookies.get(self.name)
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
        value = self.signer.dumps(session_id)
        response.set_cookie(
            self.name,
            value.decode("ascii") if isinstance(value, bytes) else value,
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
