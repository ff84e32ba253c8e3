"""Sessions whose stored bytes, as earlier releases wrote them, are kept under tests/data/.

``python -m tests.stored_forms NAME`` writes ``tests/data/NAME.json`` with the codec of the
checked-out code: run once per stored format, before that format's writer changes, so the
tests keep proving that every form ever written is still read. The values cover every
supported type, nested; a padded variant makes the compressed forms.
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

DATA_DIR = Path(__file__).resolve().parent / "data"
CREATED = 1795325693
IST = timezone(timedelta(hours=5, minutes=30))
NEG = timezone(-timedelta(hours=3, minutes=15, seconds=7))

VALUES: dict[str, Any] = {
    "str": "héllo ☃ 😀 \u2028 \x00",
    "surrogate": "\ud800 lone",
    "tag_like": {"~t": [1]},
    "int": -42,
    "int64": 2**63,
    "big_int": -(10**450),
    "huge_int": 10**5000,
    "float": 1.5,
    "neg_zero": -0.0,
    "inf": [float("inf"), float("-inf")],
    "true": True,
    "none": None,
    "list": [1, "a", None, [2.5, [True]]],
    "tuple": (1, (2, (3, ())), [4]),
    "set": {3, 1, 2},
    "mixed_set": {1, "mixed", None},
    "frozenset": frozenset({1, frozenset({2, frozenset()})}),
    "int_keys": {1: "a", 2: {3: "b"}},
    "odd_keys": {(1, "a"): [None], None: 1, True: 2, 1.5: 3, b"k": 4, frozenset({1}): 5},
    "bytes": bytes(range(256)),
    "empty_bytes": b"",
    "decimal": [Decimal("1.10"), Decimal("-0"), Decimal("1E+1000"), Decimal("-Infinity")],
    "uuid": UUID("12345678-1234-5678-1234-567812345678"),
    "datetime": datetime(2024, 2, 29, 23, 59, 58, 123456),
    "aware": [datetime(2024, 1, 1, 12, 0, 0, 500, tzinfo=IST), datetime(2024, 1, 1, tzinfo=NEG)],
    "utc": datetime(2024, 1, 1, 12, tzinfo=timezone.utc),
    "date": date(2024, 2, 29),
    "time": [time(23, 59, 59, 999999), time(12, 30, tzinfo=IST)],
    "timedelta": [timedelta(days=-1, microseconds=1), timedelta.max, timedelta.min],
    "nested": {"tuple": (1, {"set": {1, 2}}), "map": {1: (2, 3)}, "deep": [[{"a": {"b": ()}}]]},
}
# (name, data, timeout, expires): each stored with every compression.
RECORDS: list[tuple[str, dict[str, Any], int | None, int | None]] = [
    ("empty", {}, None, None),
    ("small", {"user_id": 42, "csrf": "3f8a2c61" * 8, "flash": ["hi"]}, 1200, None),
    ("every_type", VALUES, 1200, CREATED + 1200),
    ("padded", {**VALUES, "pad": "lorem ipsum " * 200}, None, CREATED + 4321),
]
COMPRESSIONS: list[tuple[str, int | None, str]] = [
    ("plain", None, "zstd"),
    ("zlib", 0, "zlib"),
    ("zstd", 0, "zstd"),
]


def load(name: str) -> dict[str, bytes]:
    """The payloads of ``tests/data/NAME.json``: ``"record/compression" -> stored bytes``."""
    stored = json.loads((DATA_DIR / f"{name}.json").read_text())
    return {key: base64.b64decode(value) for key, value in stored["payloads"].items()}


def main(name: str) -> None:
    from pyramid_session_redis.codec import SafeCodec, SessionRecord

    payloads = {}
    for record_name, data, timeout, expires in RECORDS:
        for compression_name, threshold, compression in COMPRESSIONS:
            codec = SafeCodec(threshold, compression)
            raw = codec.encode(SessionRecord(data, CREATED, timeout, expires))
            payloads[f"{record_name}/{compression_name}"] = base64.b64encode(raw).decode()
    out = {"created": CREATED, "payloads": payloads}
    (DATA_DIR / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
