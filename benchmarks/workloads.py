"""What is measured: session contents, workloads, library variants and run sizes."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

# The typical small session of the issue; deterministic so stored sizes are comparable.
SMALL_SESSION: dict[str, Any] = {
    "user_id": 42,
    "csrf": hashlib.sha256(b"csrf").hexdigest(),  # 64 hex chars
    "flash": ["hi"],
}


def large_session() -> dict[str, Any]:
    """~200 keys, ~20 KB: the small session plus 100 strings (~170 chars) and 97 ints."""
    data = dict(SMALL_SESSION)
    for i in range(100):  # distinct hex digests: no repeats for a compressor to exploit
        text = "".join(hashlib.sha256(f"{i}:{j}".encode()).hexdigest() for j in range(3))
        data[f"text_{i:03d}"] = text[: 150 + i % 40]
    for i in range(97):
        data[f"num_{i:03d}"] = i * 7919 + 1_000_003
    return data


SEEDS: dict[str, dict[str, Any]] = {
    "small": SMALL_SESSION,
    "large": large_session(),
    "nested": {**SMALL_SESSION, "items": [1, 2, 3]},
}


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    path: str  # the view (see worker.BenchApp)
    seed: str | None  # the session the request's cookie points to; None: no cookie
    description: str


WORKLOADS: tuple[Workload, ...] = (
    Workload("untouched", "/untouched", "small", "existing session, view never touches it"),
    Workload("read", "/read", "small", "existing small session, read one key"),
    Workload("write", "/write", "small", "existing small session, set one key"),
    Workload("create", "/write", None, "no cookie: new session, set one key"),
    Workload("large_read", "/read", "large", "existing ~20 KB session (200 keys), read one key"),
    Workload("large_write", "/write", "large", "existing ~20 KB session, set one key"),
    Workload("nested", "/append", "nested", "existing session, append to a list in it"),
)
WORKLOAD_NAMES = tuple(w.name for w in WORKLOADS)


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    label: str
    kind: str  # worker kind: "redis", "minimal", "cookie", "none" or "raw"
    env: str = "ours"  # which virtualenv runs it: "ours" or "legacy"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    serializer: str | None = None
    skip: tuple[str, ...] = ()  # workloads it cannot run

    def runs(self, workload: Workload) -> bool:
        return workload.name not in self.skip


OURS = Variant("ours", "ours (default: cas)", "redis")
LEGACY = Variant("legacy", "1.8.1 (default)", "redis", env="legacy")
# A ~20 KB session does not fit in a cookie (browsers cap them at 4 KB).
COOKIE = Variant("cookie", "SignedCookieSession", "cookie", skip=("large_read", "large_write"))
NONE = Variant("none", "no session", "none")
# The least a Redis session can do (worker.MinimalSessionFactory): what the ratios to 1.8.1
# could reach at best. It cannot see a list mutated in place.
MINIMAL = Variant("minimal", "minimal session (a bound)", "minimal", skip=("nested",))
RAW = Variant("raw", "redis-py", "raw")

VARIANTS: tuple[Variant, ...] = (
    OURS,
    Variant(
        "ours_readheavy",
        "ours readheavy",
        "redis",
        options={"set_redis_ttl_readheavy": True, "python_expires": False},
    ),
    Variant("ours_trigger", "ours timeout_trigger=600", "redis", options={"timeout_trigger": 600}),
    Variant(
        "ours_lru", "ours LRU (set_redis_ttl=False)", "redis", options={"set_redis_ttl": False}
    ),
    Variant("ours_overwrite", "ours overwrite", "redis", options={"persistence": "overwrite"}),
    Variant("ours_pickle", "ours pickle (migration)", "redis", serializer="pickle"),
    Variant(
        "ours_uncompressed",
        "ours compress_threshold=None",
        "redis",
        options={"compress_threshold": None},
    ),
    LEGACY,
    MINIMAL,
    COOKIE,
    NONE,
)
E2E_VARIANTS: tuple[Variant, ...] = (OURS, LEGACY, COOKIE)
E2E_WORKLOADS: tuple[Workload, ...] = tuple(w for w in WORKLOADS if w.name in ("read", "write"))


@dataclasses.dataclass(frozen=True)
class RunSize:
    """How much to run; every loop is bounded in count and in time.

    In-process, each round runs one batch of every (workload, variant) pair,
    alternating variants batch by batch. End to end, each round runs one batch of
    ``e2e_requests / e2e_rounds`` requests per (workload, variant).
    """

    rounds: int
    batch: int  # timed requests per batch
    warmup: int  # untimed requests before a worker's first batch of a workload
    budget_s: float  # time cap of one batch (and of the warm-up)
    e2e_rounds: int
    e2e_requests: int  # per workload and variant, over all rounds
    e2e_budget_s: float  # time cap of one end-to-end batch
    concurrency: int = 8
    memory_sessions: int = 100_000  # small sessions stored per library for used_memory


FULL = RunSize(
    rounds=80, batch=60, warmup=100, budget_s=2.0, e2e_rounds=10, e2e_requests=2000, e2e_budget_s=20
)
QUICK = RunSize(
    rounds=5,
    batch=30,
    warmup=30,
    budget_s=0.5,
    e2e_rounds=2,
    e2e_requests=200,
    e2e_budget_s=10,
    memory_sessions=10_000,
)
