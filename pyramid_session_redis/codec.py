"""The stored session record and the codecs that turn it into the bytes kept in Redis.

:class:`SafeCodec` (the default) writes a compact binary envelope::

    byte 0      0x04: format marker, "plain" (uncompressed) MessagePack, version 2
    bytes 1-4   created: unsigned 32-bit big-endian epoch seconds
    varint      timeout: duration code (below)
    varint      expires - created - (timeout or 0): duration code
    rest        serializer.dumps(data): a MessagePack map

Varints are unsigned LEB128 (7 bits a byte, low group first, high bit set on all but the
last byte). A duration code is 0 for None; otherwise, with ``zz`` the zigzag mapping
(0, -1, 1, -2, ... -> 0, 1, 2, 3, ...), ``2*zz(d // 60) + 1`` when ``d`` is whole minutes
and ``2*zz(d) + 2`` when not. A fresh session with a 20-minute timeout thus spends one byte
on each field.

Marker 0x05 is the same envelope zlib-compressed: ``0x05`` then ``zlib(bytes 1..end of
the plain envelope)``; marker 0x06 the same with one Zstandard frame that records its
content size. Markers 0x01-0x03 are version 1, still read (never written): the same
header, then the tagged JSON of :mod:`.tagged_json` without its opening ``{``; 0x01 is
plain, 0x02 zlib, 0x03 zstd. Values 0x09-0x1F are reserved.

A stored value of at least ``STAMP_MIN_BYTES`` is *stamped* (marker 0x07)::

    byte 0      0x07
    bytes 1-8   a random stamp, new at every whole write
    varint      length of the body
    body        a 0x04, 0x05 or 0x06 payload as above
    rest        patch frames, appended by later writes: each a varint length, then
                the MessagePack (the serializer's) of ``[{key: value...}, [key...]]``,
                the keys the write set and the keys it deleted

The stamp and the length tell a compare-and-set which version it loaded without sending
that version back (:meth:`SafeCodec.stamp`), and a request that changed a few keys of a
large session appends a frame instead of rewriting and recompressing the whole
(:meth:`SafeCodec.patch_frame`). The plain form of a stamped value with frames is
marker 0x08, a varint length, the body's plain envelope, then the frames as stored.

A marker can never be 0x80 (pickle protocol 2+), ``{`` or ``[`` (JSON text), so a reader
can tell those formats apart by the first byte.

Payloads are limited to ``max_payload_bytes`` of plain envelope: a larger one is refused
when it is packed for storage (:class:`~.exceptions.SessionTooLarge`, nothing is written)
and when it is read (:class:`DecodeError`, before inflating a compressed one).

:class:`LegacyCodec` stores, through a user's ``serialize``/``deserialize`` pair, the
payload dict of version 1.x: ``{"m": data, "c": created, "v": 1}`` plus ``"t": timeout``
and ``"x": expires`` when set.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import zstandard

from . import serializer, tagged_json
from .exceptions import SessionTooLarge

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "JSON_MARKER",
    "JSON_ZLIB_MARKER",
    "JSON_ZSTD_MARKER",
    "PATCHED_MARKER",
    "PLAIN_MARKER",
    "STAMPED_MARKER",
    "ZLIB_MARKER",
    "ZSTD_MARKER",
    "Codec",
    "DecodeError",
    "LegacyCodec",
    "LegacyPayloadError",
    "SafeCodec",
    "SessionRecord",
    "body_marker",
]

PLAIN_MARKER: Final = 0x04
_PLAIN = bytes((PLAIN_MARKER,))
ZLIB_MARKER: Final = 0x05
_ZLIB = bytes((ZLIB_MARKER,))
ZSTD_MARKER: Final = 0x06
_ZSTD = bytes((ZSTD_MARKER,))
# Version 1 (tagged JSON): read, never written.
JSON_MARKER: Final = 0x01
_JSON = bytes((JSON_MARKER,))
JSON_ZLIB_MARKER: Final = 0x02
_JSON_ZLIB = bytes((JSON_ZLIB_MARKER,))
JSON_ZSTD_MARKER: Final = 0x03
_JSON_ZSTD = bytes((JSON_ZSTD_MARKER,))
STAMPED_MARKER: Final = 0x07  # stored form only
_STAMPED = bytes((STAMPED_MARKER,))
PATCHED_MARKER: Final = 0x08  # plain form only
_PATCHED = bytes((PATCHED_MARKER,))
STAMP_BYTES: Final = 9  # marker + 8 random bytes
STAMP_MIN_BYTES: Final = 1024  # smaller stored values are compared whole
MAX_PATCHES: Final = 8  # frames a value carries before a write rewrites it whole
_RESERVED_MARKERS = range(0x09, 0x20)
COMPRESSIONS = ("zstd", "zlib")
DEFAULT_MAX_PAYLOAD_BYTES: Final = 1024 * 1024
# With max_payload_bytes=None: the largest string Redis stores (proto-max-bulk-len).
REDIS_MAX_STRING: Final = 512 * 1024 * 1024
_FOREIGN_MARKERS = {0x80: "a pickle", ord("{"): "JSON", ord("["): "JSON"}
_MAX_U32 = 0xFFFF_FFFF
_MAX_VARINT_BYTES = 10
_STR_ONLY = frozenset({str})
_INT_OR_NONE = frozenset({int, type(None)})
_ONE_BYTE = [bytes((n,)) for n in range(0x80)]


class DecodeError(ValueError):
    """A stored payload is malformed: truncated, corrupt, foreign or of the wrong shape."""


class LegacyPayloadError(DecodeError):
    """A payload of a format version older than 1.8's (version 1 of the payload dict)."""


@dataclass(slots=True)
class SessionRecord:
    """One session as stored: its data plus timing metadata."""

    data: dict[str, Any]
    """The session's managed dict."""
    created: int
    """Epoch seconds at creation."""
    timeout: int | None = None
    """Per-session sliding timeout in seconds; None when none is stored."""
    expires: int | None = None
    """Epoch seconds at which the session expires unless refreshed; None when not tracked."""


class Codec(Protocol):
    """Turns a :class:`SessionRecord` into the stored bytes and back.

    In two steps: a record and its *plain* form (the serialized envelope) map one to
    one; ``pack`` turns a plain form into what is stored (e.g. compressed) and
    ``unpack`` back. Changes are detected on plain forms, so an unchanged session is
    never compressed just to compare it.
    """

    def encode(self, record: SessionRecord) -> bytes:
        """The bytes to store for ``record``: ``pack(encode_plain(record))``."""
        ...

    def decode(self, raw: bytes) -> SessionRecord:
        """The record stored as ``raw``; :class:`DecodeError` if it is malformed."""
        ...

    def encode_plain(self, record: SessionRecord) -> bytes:
        """The plain form of ``record``; TypeError/ValueError if it cannot be stored."""
        ...

    def decode_plain(self, plain: bytes) -> SessionRecord:
        """The record of a plain form; :class:`DecodeError` if it is malformed."""
        ...

    def pack(self, plain: bytes) -> bytes:
        """The stored bytes for a plain form."""
        ...

    def unpack(self, raw: bytes) -> bytes:
        """The plain form of stored bytes; :class:`DecodeError` if they are malformed."""
        ...

    def encode_value(self, value: Any) -> bytes:
        """One top-level session value alone (compared to detect changed keys)."""
        ...


# --- SafeCodec header helpers -------------------------------------------------------------


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _ONE_BYTE[n]
    if n >= 1 << (7 * _MAX_VARINT_BYTES):
        raise ValueError(f"session metadata value out of range: {n}")
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(raw: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    if pos < len(raw) and raw[pos] < 0x80:  # the common one-byte case
        return raw[pos], pos + 1
    n = shift = 0
    for i in range(pos, min(pos + _MAX_VARINT_BYTES, len(raw))):
        byte = raw[i]
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return n, i + 1
        shift += 7
    raise DecodeError("truncated or oversized header")


def _duration_code(seconds: int | None) -> int:
    if seconds is None:
        return 0
    minutes, rest = divmod(seconds, 60)
    if rest:
        return 2 * _zigzag(seconds) + 2
    return 2 * _zigzag(minutes) + 1


def _duration(code: int) -> int | None:
    if code == 0:
        return None
    if code & 1:
        return _unzigzag(code >> 1) * 60
    return _unzigzag((code >> 1) - 1)


def _zigzag(n: int) -> int:
    return 2 * n if n >= 0 else -2 * n - 1


def _unzigzag(z: int) -> int:
    return z >> 1 if not z & 1 else -(z >> 1) - 1


def _valid_times(created: object, timeout: object, expires: object) -> bool:
    return type(created) is int and type(timeout) in _INT_OR_NONE and type(expires) in _INT_OR_NONE


# A stored timeout outside this range can only be corruption; Redis would refuse it anyway.
MAX_TIMEOUT = 2**31 - 1
MAX_EPOCH = 2**40


def _check_ranges(timeout: int | None, expires: int | None) -> None:
    """Reject decoded times that no valid writer produces (e.g. a flipped bit)."""
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
        raise DecodeError(f"stored timeout out of range: {timeout}")
    if expires is not None and not 0 <= expires <= MAX_EPOCH:
        raise DecodeError(f"stored expiry out of range: {expires}")


def _header(created: int, timeout: int | None, expires: int | None) -> bytes:
    if not 0 <= created <= _MAX_U32:
        raise ValueError(f"SessionRecord.created out of range: {created}")
    since = None if expires is None else expires - created - (timeout or 0)
    timeout_code, since_code = _duration_code(timeout), _duration_code(since)
    return b"".join(
        (_PLAIN, created.to_bytes(4, "big"), _varint(timeout_code), _varint(since_code))
    )


def _marker_error(raw: bytes) -> DecodeError:
    if not raw:
        return DecodeError("empty payload")
    marker = raw[0]
    if marker in _RESERVED_MARKERS:
        return DecodeError(f"format marker 0x{marker:02x} is reserved and not supported")
    foreign = _FOREIGN_MARKERS.get(marker)
    if foreign is not None:
        return DecodeError(f"payload is {foreign}, not a SafeCodec payload")
    return DecodeError(f"unknown format marker 0x{marker:02x}")


def _too_large(size: int, limit: int) -> DecodeError:
    return DecodeError(f"stored payload of {size} bytes exceeds max_payload_bytes={limit}")


def _inflate(packed: memoryview, limit: int) -> bytes:
    """zlib-inflate at most ``limit`` bytes (zlib does not record the size in advance)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(packed, limit)
    except zlib.error as exc:
        raise DecodeError(f"corrupt compressed payload: {exc}") from exc
    if inflater.unconsumed_tail:
        raise DecodeError(f"compressed payload inflates beyond max_payload_bytes={limit + 1}")
    if not inflater.eof or inflater.unused_data:
        raise DecodeError("compressed payload is truncated or has trailing bytes")
    return out


def _zlib(plain: memoryview) -> bytes:
    return zlib.compress(plain, 1)


class _ZstdContexts(threading.local):
    """One compressor and one decompressor per thread: instances are not thread-safe,
    and creating them costs about as much as compressing 20 KB."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=1, write_content_size=True)
        self.decompressor = zstandard.ZstdDecompressor()


_ZSTD_CONTEXTS = _ZstdContexts()


def _unzstd(packed: memoryview, limit: int) -> bytes:
    """Inflate one zstd frame, refused before inflating if its recorded size is too big."""
    try:
        size = zstandard.frame_content_size(packed)
        if size < 0:
            raise DecodeError("compressed payload does not record its size")
        if size > limit:
            raise _too_large(size + 1, limit + 1)
        out: bytes = _ZSTD_CONTEXTS.decompressor.decompress(packed, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"corrupt or truncated compressed payload: {exc}") from exc
    if len(out) != size:
        raise DecodeError("compressed payload inflates to another size than it records")
    return out


def _zstd(plain: memoryview) -> bytes:
    packed: bytes = _ZSTD_CONTEXTS.compressor.compress(plain)
    return packed


# compressed marker -> (plain marker, inflate)
_INFLATERS: dict[bytes, tuple[bytes, Callable[[memoryview, int], bytes]]] = {
    _ZSTD: (_PLAIN, _unzstd),
    _ZLIB: (_PLAIN, _inflate),
    _JSON_ZSTD: (_JSON, _unzstd),
    _JSON_ZLIB: (_JSON, _inflate),
}


class SafeCodec:
    """The default codec: a marker byte, a binary header, then the MessagePack serializer.

    With ``compress_threshold``, an envelope of at least that many bytes is stored
    compressed (``compression``: "zstd", marker 0x06, or "zlib", marker 0x05, then the
    compressed rest of the plain envelope) when that is smaller. Decoding reads every
    form, including version 1's, whatever the settings, so they can change at any time.
    A plain envelope longer than ``max_payload_bytes`` (None: no limit but Redis's own)
    is neither stored nor read.
    """

    __slots__ = ("_compress", "_limit", "_marker", "_threshold")

    def __init__(
        self,
        compress_threshold: int | None = None,
        compression: str = "zstd",
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
        self._threshold = compress_threshold
        self._marker, self._compress = (_ZSTD, _zstd) if compression == "zstd" else (_ZLIB, _zlib)
        self._limit = REDIS_MAX_STRING if max_payload_bytes is None else max_payload_bytes

    def encode(self, record: SessionRecord) -> bytes:
        """The envelope described in the module docstring; TypeError/ValueError if invalid."""
        return self.pack(self.encode_plain(record))

    def decode(self, raw: bytes) -> SessionRecord:
        """The record in ``raw``; :class:`DecodeError` for anything malformed."""
        return self.decode_plain(self.unpack(raw))

    def encode_plain(self, record: SessionRecord) -> bytes:
        """The plain (marker 0x04) envelope of ``record``."""
        data, created, timeout, expires = (
            record.data,
            record.created,
            record.timeout,
            record.expires,
        )
        if type(data) is not dict or not set(map(type, data)) <= _STR_ONLY:
            raise TypeError("SessionRecord.data must be a dict with str keys")
        if not _valid_times(created, timeout, expires):
            raise TypeError("SessionRecord.created must be an int, timeout/expires int or None")
        return _header(created, timeout, expires) + serializer.dumps_data(data)

    def pack(self, plain: bytes) -> bytes:
        """``plain`` compressed when it reaches the threshold and that makes it smaller.

        :class:`~.exceptions.SessionTooLarge` if it exceeds ``max_payload_bytes``.
        """
        if len(plain) > self._limit:
            raise SessionTooLarge(len(plain), self._limit)
        if plain[:1] == _PATCHED:  # never stored as it is: folded into one envelope
            plain = self.encode_plain(self.decode_plain(plain))
        body = plain
        if self._threshold is not None and len(plain) >= self._threshold:
            packed = self._marker + self._compress(memoryview(plain)[1:])
            if len(packed) < len(plain):
                body = packed
        if len(body) < STAMP_MIN_BYTES:
            return body
        return b"".join((_STAMPED, os.urandom(STAMP_BYTES - 1), _varint(len(body)), body))

    def unpack(self, raw: bytes) -> bytes:
        """The plain envelope of stored bytes: inflated if compressed, and a version 1
        payload read and written again in the current format (so that a request that
        changes nothing finds nothing changed)."""
        if len(raw) > self._limit:
            raise _too_large(len(raw), self._limit)
        if raw[:1] == _STAMPED:
            return self._unpack_stamped(raw)
        plain = raw
        inflater = _INFLATERS.get(raw[:1])
        if inflater is not None:
            marker, inflate = inflater
            plain = marker + inflate(memoryview(raw)[1:], self._limit - 1)
        if plain[:1] == _JSON:
            return self.encode_plain(self.decode_plain(plain))
        return plain

    def _unpack_stamped(self, raw: bytes) -> bytes:
        body, frames = _split_stamped(raw)
        if body[:1] not in _BODY_MARKERS:
            raise DecodeError("a stamped payload's body is not a version 2 payload")
        inflater = _INFLATERS.get(bytes(body[:1]))
        if inflater is None:  # an uncompressed body
            plain = bytes(body)
        else:
            plain = inflater[0] + inflater[1](body[1:], self._limit - 1)
        if not frames:
            return plain
        return b"".join((_PATCHED, _varint(len(plain)), plain, frames))

    def decode_plain(self, raw: bytes) -> SessionRecord:
        """The record in a plain envelope; :class:`DecodeError` for anything malformed."""
        marker = raw[:1]
        if marker == _PATCHED:
            return _patched_record(raw)
        if marker != _PLAIN and marker != _JSON:
            raise _marker_error(raw)
        return _envelope_record(raw, json=marker == _JSON)

    def encode_value(self, value: Any) -> bytes:
        """``serializer.dumps(value)``."""
        return serializer.dumps(value)

    # -- stamps and patches (see the module docstring) ------------------------------
    @staticmethod
    def stamp(raw: bytes) -> bytes | None:
        """The stamp of a stamped stored value (its first bytes), else None."""
        return raw[:STAMP_BYTES] if raw[:1] == _STAMPED and len(raw) > STAMP_BYTES else None

    @staticmethod
    def patch_frame(sets: dict[str, Any], deletes: list[str]) -> bytes:
        """The frame recording that a write set ``sets`` and deleted ``deletes``;
        TypeError/ValueError if they cannot be stored (as :meth:`encode_plain`)."""
        if not set(map(type, sets)) <= _STR_ONLY or not set(map(type, deletes)) <= _STR_ONLY:
            raise TypeError("SessionRecord.data must be a dict with str keys")
        patch = serializer.dumps([sets, deletes])
        return _varint(len(patch)) + patch

    def can_append(self, raw: bytes, plain: bytes, frame: bytes) -> bool:
        """Whether ``frame`` may be appended to the stamped value ``raw`` (whose plain
        form is ``plain``): the plain form stays within ``max_payload_bytes``, the frames
        within ``MAX_PATCHES`` and a quarter of the body (beyond that a whole write folds
        them in, or refuses a session grown too large)."""
        if self.stamp(raw) is None or len(plain) + len(frame) > self._limit:
            return False
        try:
            body, frames = _split_stamped(raw)
            count = sum(1 for _ in _frames(frames))
        except DecodeError:
            return False
        return count < MAX_PATCHES and len(frames) + len(frame) <= len(body) // 4

    @staticmethod
    def patched_plain(plain: bytes, frame: bytes) -> bytes:
        """The plain form of a value whose plain form was ``plain``, once ``frame`` is
        appended to it."""
        if plain[:1] == _PATCHED:
            return plain + frame
        return b"".join((_PATCHED, _varint(len(plain)), plain, frame))


_BODY_MARKERS = frozenset((_PLAIN, _ZLIB, _ZSTD))


def body_marker(head: bytes) -> int | None:
    """The marker of the payload in the first bytes of a stored value: the first byte,
    or a stamped value's body's; None if ``head`` is too short to tell."""
    if head[:1] != _STAMPED:
        return head[0] if head else None
    try:
        _, pos = _read_varint(head, STAMP_BYTES)
    except DecodeError:
        return None
    return head[pos] if pos < len(head) else None


def _split_stamped(raw: bytes) -> tuple[memoryview, memoryview]:
    """A stamped value's body and its frames (as stored)."""
    length, pos = _read_varint(raw, STAMP_BYTES)
    end = pos + length
    if len(raw) < end:
        raise DecodeError("truncated stamped payload")
    view = memoryview(raw)
    return view[pos:end], view[end:]


def _frames(frames: memoryview) -> Any:
    """Each frame's MessagePack, in order."""
    pos, size = 0, len(frames)
    while pos < size:
        length, pos = _read_varint(frames, pos)
        end = pos + length
        if end > size or length == 0:
            raise DecodeError("truncated patch frame")
        yield frames[pos:end]
        pos = end


def _envelope_record(raw: bytes | memoryview, json: bool = False) -> SessionRecord:
    """The record of a 0x04 envelope (0x01 with ``json``), marker already checked."""
    if len(raw) < 5:
        raise DecodeError("truncated header")
    created = int.from_bytes(raw[1:5], "big")
    timeout_code, pos = _read_varint(raw, 5)
    since_code, pos = _read_varint(raw, pos)
    timeout, since = _duration(timeout_code), _duration(since_code)
    expires = None if since is None else created + (timeout or 0) + since
    _check_ranges(timeout, expires)
    body = memoryview(raw)[pos:]
    data = _load_json_data(body) if json else _load_data(body)
    return SessionRecord(data, created, timeout, expires)


def _patched_record(raw: bytes) -> SessionRecord:
    """A plain form 0x08: the body's record with every frame applied, in order."""
    length, pos = _read_varint(raw, 1)
    end = pos + length
    if len(raw) < end or raw[pos : pos + 1] != _PLAIN:
        raise DecodeError("truncated or malformed patched payload")
    view = memoryview(raw)
    record = _envelope_record(view[pos:end])
    data = record.data
    for frame in _frames(view[end:]):
        try:
            patch = serializer.loads(frame)
        except ValueError as exc:
            raise DecodeError(f"malformed patch frame: {exc}") from exc
        if (
            type(patch) is not list
            or len(patch) != 2
            or type(patch[0]) is not dict
            or type(patch[1]) is not list
            or not set(map(type, patch[0])) <= _STR_ONLY
            or not set(map(type, patch[1])) <= _STR_ONLY
        ):
            raise DecodeError("a patch frame is not [{str: value}, [str]]")
        data.update(patch[0])
        for key in patch[1]:
            data.pop(key, None)
    return record


def _checked_data(data: object) -> dict[str, Any]:
    if type(data) is not dict or not set(map(type, data)) <= _STR_ONLY:
        raise DecodeError("session data is not a dict with str keys")
    return data


def _load_data(body: memoryview) -> dict[str, Any]:
    try:
        return serializer.loads_data(body)
    except ValueError as exc:
        raise DecodeError(f"malformed session data: {exc}") from exc


def _load_json_data(body: memoryview) -> dict[str, Any]:
    """Version 1: tagged JSON without its opening brace."""
    try:
        data = tagged_json.loads(b"{" + body)
    except ValueError as exc:
        raise DecodeError(f"malformed session data: {exc}") from exc
    return _checked_data(data)


# --- LegacyCodec --------------------------------------------------------------------------


def _as_bytes(out: object) -> bytes:
    if isinstance(out, bytes):
        return out
    if isinstance(out, str):
        return out.encode()
    if isinstance(out, (bytearray, memoryview)):
        return bytes(out)
    raise TypeError(f"serialize must return bytes or str, not {type(out).__name__}")


def _legacy_record(payload: object) -> SessionRecord:
    """Validate a 1.x payload dict and turn it into a record."""
    if not isinstance(payload, dict):
        raise DecodeError(f"payload is a {type(payload).__name__}, not a dict")
    if "managed_dict" in payload and "created" in payload:
        raise LegacyPayloadError("payload of the 1.2 layout (managed_dict, created)")
    version = payload.get("v")
    if version is None or (type(version) is int and version < 1):
        raise LegacyPayloadError(f"payload of format version {version!r}, older than 1")
    if "m" not in payload or "c" not in payload:
        raise DecodeError("payload lacks its 'm' or 'c' key")
    data, created = payload["m"], payload["c"]
    timeout, expires = payload.get("t"), payload.get("x")
    if type(version) is not int or version != 1:
        raise DecodeError(f"unsupported payload version {version!r}")
    if not isinstance(data, dict):
        raise DecodeError(f"payload 'm' is a {type(data).__name__}, not a dict")
    if not _valid_times(created, timeout, expires):
        raise DecodeError("payload 'c' must be an int, 't' and 'x' an int or None")
    _check_ranges(timeout, expires)
    return SessionRecord(data, created, timeout, expires)


class LegacyCodec:
    """The 1.x payload dict through a user ``serialize``/``deserialize`` pair.

    ``data`` keys are not checked on decode: 1.x accepted any key its serializer could
    store. Unpickling untrusted bytes runs code; this codec is for users who chose that.
    """

    __slots__ = ("_deserialize", "_limit", "_serialize")

    def __init__(
        self,
        serialize: Callable[[Any], bytes | str],
        deserialize: Callable[[bytes], Any],
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self._serialize = serialize
        self._deserialize = deserialize
        self._limit = REDIS_MAX_STRING if max_payload_bytes is None else max_payload_bytes

    def encode(self, record: SessionRecord) -> bytes:
        """``serialize({"m": data, "c": created, "v": 1[, "x": expires][, "t": timeout]})``.

        The key order is 1.8's, so re-encoding a payload 1.8 wrote gives the same bytes.
        """
        payload: dict[str, Any] = {"m": record.data, "c": record.created, "v": 1}
        if record.expires is not None:
            payload["x"] = record.expires
        if record.timeout is not None:
            payload["t"] = record.timeout
        return _as_bytes(self._serialize(payload))

    encode_plain = encode  # 1.x stored payloads as they are: no packing

    def pack(self, plain: bytes) -> bytes:
        """``plain`` as it is; :class:`~.exceptions.SessionTooLarge` beyond the limit."""
        if len(plain) > self._limit:
            raise SessionTooLarge(len(plain), self._limit)
        return plain

    def unpack(self, raw: bytes) -> bytes:
        """``raw`` as it is; :class:`DecodeError` beyond the limit (before deserializing)."""
        if len(raw) > self._limit:
            raise _too_large(len(raw), self._limit)
        return raw

    def decode(self, raw: bytes) -> SessionRecord:
        """Check the size, deserialize and validate; any failure becomes :class:`DecodeError`."""
        return self.decode_plain(self.unpack(raw))

    def decode_plain(self, raw: bytes) -> SessionRecord:
        """Deserialize and validate; any failure becomes :class:`DecodeError`."""
        try:
            payload = self._deserialize(raw)
        except Exception as exc:
            raise DecodeError(f"deserialize failed: {exc!r}") from exc
        return _legacy_record(payload)

    def encode_value(self, value: Any) -> bytes:
        """``serialize(value)`` as bytes."""
        return _as_bytes(self._serialize(value))
