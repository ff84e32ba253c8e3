"""The ``stats`` summary: pure counting and formatting, no I/O."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..codec import (
    JSON_MARKER,
    JSON_ZLIB_MARKER,
    JSON_ZSTD_MARKER,
    PLAIN_MARKER,
    STAMP_BYTES,
    ZLIB_MARKER,
    ZSTD_MARKER,
    body_marker,
)
from ..integrity import OVERHEAD, SIGNED_MARKER

# Upper bounds (exclusive) of the histogram buckets; the last bucket is open.
SIZE_BOUNDS = (256, 1024, 4096, 16384, 65536)
TTL_BOUNDS = (60, 600, 3600, 86400)
NO_TTL = "no TTL"
ENCODINGS = {
    PLAIN_MARKER: "safe codec, uncompressed",
    ZLIB_MARKER: "safe codec, zlib",
    ZSTD_MARKER: "safe codec, zstd",
    JSON_MARKER: "safe codec v1, uncompressed",
    JSON_ZLIB_MARKER: "safe codec v1, zlib",
    JSON_ZSTD_MARKER: "safe codec v1, zstd",
    0x80: "pickle (1.8's default)",
    ord("{"): "JSON",
}
OTHER_ENCODING = "other"
NOT_A_STRING = "not a string value"
# Enough to see the encoding inside a signed value, and a stamped one's body (its length
# takes at most 3 bytes below max_payload_bytes' 1 MiB, 4 up to Redis's 512 MiB).
HEAD_BYTES = OVERHEAD + STAMP_BYTES + 5


def encoding_of(head: bytes) -> str:
    """The encoding a stored value's first bytes show (``sign_payloads``: the marker of
    the signed value, then the inner one)."""
    if not head:
        return OTHER_ENCODING
    if head[0] == SIGNED_MARKER:
        inner = _unsigned_encoding(head[OVERHEAD:]) if len(head) > OVERHEAD else None
        return "signed" if inner is None else f"signed, {inner}"
    return _unsigned_encoding(head)


def _unsigned_encoding(head: bytes) -> str:
    """A stamped value is named by its body's encoding (the stamp is bookkeeping)."""
    marker = body_marker(head)
    return OTHER_ENCODING if marker is None else ENCODINGS.get(marker, OTHER_ENCODING)


def _size(n: int) -> str:
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def bucket_labels(bounds: tuple[int, ...], show: Any) -> list[str]:
    """``["< 256 B", "256 B - 1 KiB", ..., ">= 64 KiB"]`` for ``bounds``."""
    labels = [f"< {show(bounds[0])}"]
    labels += [f"{show(low)} - {show(high)}" for low, high in itertools.pairwise(bounds)]
    return [*labels, f">= {show(bounds[-1])}"]


SIZE_LABELS = bucket_labels(SIZE_BOUNDS, _size)
TTL_LABELS = [*bucket_labels(TTL_BOUNDS, _duration), NO_TTL]


def _bucket(value: int, bounds: tuple[int, ...], labels: list[str]) -> str:
    for n, bound in enumerate(bounds):
        if value < bound:
            return labels[n]
    return labels[len(bounds)]


@dataclass
class SessionStats:
    """Counts over the walked keys."""

    count: int = 0
    total_bytes: int = 0
    largest: int = 0
    sizes: Counter[str] = field(default_factory=Counter)
    ttls: Counter[str] = field(default_factory=Counter)
    encodings: Counter[str] = field(default_factory=Counter)

    def add(self, size: int, ttl: int, head: bytes | None) -> None:
        """One key: its value's length, its TTL (-1: none) and the value's first
        :data:`HEAD_BYTES` bytes (None when the key does not hold a string)."""
        self.count += 1
        if head is None:
            self.encodings[NOT_A_STRING] += 1
            return
        self.total_bytes += size
        self.largest = max(self.largest, size)
        self.sizes[_bucket(size, SIZE_BOUNDS, SIZE_LABELS)] += 1
        self.ttls[NO_TTL if ttl < 0 else _bucket(ttl, TTL_BOUNDS, TTL_LABELS)] += 1
        self.encodings[encoding_of(head)] += 1

    @property
    def without_ttl(self) -> int:
        return self.ttls[NO_TTL]

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "total_bytes": self.total_bytes,
            "largest_bytes": self.largest,
            "without_ttl": self.without_ttl,
            "sizes": {label: self.sizes[label] for label in SIZE_LABELS},
            "ttls": {label: self.ttls[label] for label in TTL_LABELS},
            "encodings": dict(self.encodings.most_common()),
        }


def format_stats(stats: SessionStats, pattern: str, where: str, nodes: int) -> str:
    """The human-readable report."""
    servers = f"{nodes} Cluster masters" if nodes > 1 else "1 server"
    lines = [f"{stats.count} keys matching {pattern!r} at {where} ({servers})"]
    if stats.count:
        average = stats.total_bytes // max(stats.count - stats.encodings[NOT_A_STRING], 1)
        lines.append(
            f"stored: {stats.total_bytes} bytes, {average} on average, largest {stats.largest}"
        )
    lines.append(f"keys without TTL: {stats.without_ttl}")
    for title, table in (
        ("size", {label: stats.sizes[label] for label in SIZE_LABELS}),
        ("TTL", {label: stats.ttls[label] for label in TTL_LABELS}),
        ("encoding", dict(stats.encodings.most_common())),
    ):
        lines.append(f"{title}:")
        width = max((len(label) for label in table), default=0)
        lines += [f"  {label:<{width}}  {n:>8}" for label, n in table.items()]
    return "\n".join(lines)
