"""Payload integrity (``sign_payloads``): a MAC over every stored value.

:class:`SigningCodec` wraps any :class:`~.codec.Codec`: what it stores is::

    byte 0      0xFF: "signed" (never the first byte of a payload of ours, of a pickle,
                of JSON, or of UTF-8 text)
    byte 1      0x01: MAC version
    bytes 2-33  HMAC-SHA256(key, redis_key + 0x00 + inner)
    rest        inner: what the wrapped codec stores

The MAC binds the value to its Redis key: a valid value copied to another session's
key is as invalid as a changed one. ``pack``/``unpack`` need that key, so the writer
asks :func:`codec_for_key` for a codec bound to it; the record-level methods
(``encode_plain``/``decode_plain``) are the wrapped codec's.

A value without the marker was written before signing was switched on (or by someone
else): ``unsigned = "resign"`` reads it (and the session rewrites it signed),
``unsigned = "reject"`` refuses it (:class:`PayloadUnsignedError`).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from .codec import Codec, DecodeError, SessionRecord

SIGNED_MARKER = 0xFF
MAC_VERSION = 0x01
HEADER = bytes((SIGNED_MARKER, MAC_VERSION))
MAC_SIZE = 32
OVERHEAD = len(HEADER) + MAC_SIZE


class PayloadTamperedError(DecodeError):
    """A signed value whose MAC does not match its bytes and its key."""


class PayloadUnsignedError(PayloadTamperedError):
    """A value without a MAC, while unsigned values are refused."""


def is_signed(raw: bytes) -> bool:
    """Whether ``raw`` starts as a signed value (says nothing of the MAC's validity)."""
    return raw[:1] == HEADER[:1]


class SigningCodec:
    """A :class:`Codec` whose stored bytes carry a MAC; see the module docstring.

    Unbound (no Redis key) it refuses to ``pack`` or ``unpack``: use :meth:`for_key`.
    """

    __slots__ = ("_inner", "_key", "_keyed", "reject_unsigned")

    def __init__(
        self, inner: Codec, mac_key: bytes, reject_unsigned: bool, key: str | None = None
    ) -> None:
        self._inner = inner
        self._keyed = hmac.new(mac_key, digestmod=hashlib.sha256)
        self.reject_unsigned = reject_unsigned
        self._key = None if key is None else key.encode("utf-8", "surrogateescape") + b"\0"

    def for_key(self, key: str) -> SigningCodec:
        """This codec, bound to the Redis key ``key`` (cheap: the HMAC key is shared)."""
        bound = SigningCodec.__new__(SigningCodec)
        bound._inner, bound._keyed = self._inner, self._keyed
        bound.reject_unsigned = self.reject_unsigned
        bound._key = key.encode("utf-8", "surrogateescape") + b"\0"
        return bound

    def _bound_key(self) -> bytes:
        if self._key is None:
            raise TypeError("SigningCodec.for_key(key) first: the MAC covers the Redis key")
        return self._key

    def _mac(self, inner: bytes | memoryview) -> bytes:
        mac = self._keyed.copy()
        mac.update(self._bound_key())
        mac.update(inner)
        return mac.digest()

    # -- stored bytes ---------------------------------------------------------------
    def pack(self, plain: bytes) -> bytes:
        inner = self._inner.pack(plain)
        return HEADER + self._mac(inner) + inner

    def unpack(self, raw: bytes) -> bytes:
        """The plain form of a signed value; :class:`PayloadTamperedError` if its MAC fails.

        An unsigned value is refused (``reject_unsigned``) or read; then anything that
        does not decode is reported as tampered too, never as a corrupt session of ours.
        """
        if raw[:1] != HEADER[:1]:
            return self._unsigned(raw)
        if raw[:2] != HEADER or len(raw) < OVERHEAD:
            self._bound_key()  # an unbound codec fails the same way for every value
            raise PayloadTamperedError("the stored value's signed header is damaged")
        inner = memoryview(raw)[OVERHEAD:]
        mac = self._mac(inner)
        if not hmac.compare_digest(memoryview(raw)[len(HEADER) : OVERHEAD], mac):
            raise PayloadTamperedError("the stored value's MAC does not match")
        return self._inner.unpack(bytes(inner))

    def _unsigned(self, raw: bytes) -> bytes:
        self._bound_key()
        if self.reject_unsigned:
            raise PayloadUnsignedError("the stored value is not signed")
        try:
            plain = self._inner.unpack(raw)
            self._inner.decode_plain(plain)  # only while migrating: signed values skip it
        except DecodeError as exc:
            raise PayloadTamperedError(f"an unsigned value that does not decode: {exc}") from exc
        return plain

    def encode(self, record: SessionRecord) -> bytes:
        return self.pack(self.encode_plain(record))

    def decode(self, raw: bytes) -> SessionRecord:
        return self.decode_plain(self.unpack(raw))

    # -- records: the wrapped codec's -----------------------------------------------
    def encode_plain(self, record: SessionRecord) -> bytes:
        return self._inner.encode_plain(record)

    def decode_plain(self, plain: bytes) -> SessionRecord:
        return self._inner.decode_plain(plain)

    def encode_value(self, value: Any) -> bytes:
        return self._inner.encode_value(value)


def codec_for_key(codec: Codec, key: str) -> Codec:
    """``codec`` bound to the Redis key ``key`` if it needs one (a :class:`SigningCodec`)."""
    return codec.for_key(key) if isinstance(codec, SigningCodec) else codec


def needs_resigning(codec: Codec, raw: bytes) -> bool:
    """A value read through ``codec`` that must be rewritten signed."""
    return isinstance(codec, SigningCodec) and not is_signed(raw)
