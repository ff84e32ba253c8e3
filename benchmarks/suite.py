"""Runs the in-process benchmarks: every variant in its own long-lived worker, interleaved.

Each variant (and the raw redis-py floor) gets one ``worker.py bench`` process
for the whole run. A round runs one batch of every workload on every variant,
workload by workload, so batches of the compared libraries alternate every few
tens of milliseconds (A B C ... then, next round, ... C B A): a burst of load
from elsewhere on the machine hits them alike. Results are medians over rounds.
"""

from __future__ import annotations

import contextlib
import json
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

from .workloads import RAW, SEEDS, WORKLOADS, RunSize, Variant, Workload

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
STATS_MODULE = HERE.parent / "tests" / "redis_stats.py"
# Raw GETs timed inside each workload's block: batches[ROUND_TRIP_FLOOR][workload].
ROUND_TRIP_FLOOR = "raw_get"
PAIRED = ("ours", "legacy", "none")  # run next to each other (and to the GET) in every block
REPLY_TIMEOUT = 120.0  # seconds for one batch (each is also bounded by its budget)


def worker_setup(variant: Variant, redis_url: str, size: RunSize) -> dict[str, Any]:
    """The setup message of a worker (``worker.py``'s protocol)."""
    return {
        "kind": variant.kind,
        "options": variant.options,
        "serializer": variant.serializer,
        "redis_url": redis_url,
        "stats_module": str(STATS_MODULE),
        "seeds": SEEDS,
        "workloads": [
            {"name": w.name, "path": w.path, "seed": w.seed} for w in WORKLOADS if variant.runs(w)
        ],
        "warmup": size.warmup,
        "budget_s": size.budget_s,
    }


class WorkerProcess:
    """A ``worker.py bench`` process: one JSON line out, one JSON line back."""

    def __init__(self, python: Path, setup: dict[str, Any]) -> None:
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by close()
        self.process = subprocess.Popen(
            [str(python), "-I", str(WORKER), "bench"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.info = self.request(setup)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(json.dumps(message) + "\n")
            stdin.flush()
        except BrokenPipeError:
            self._fail("worker exited")
        ready, _, _ = select.select([stdout], [], [], REPLY_TIMEOUT)
        line = stdout.readline() if ready else ""
        if not line:
            self._fail("worker did not answer" if not ready else "worker exited")
        return json.loads(line)  # type: ignore[no-any-return]

    def _fail(self, what: str) -> None:
        self._stop()
        self.stderr.seek(0)
        detail = self.stderr.read()[-4000:]
        self.close()
        raise RuntimeError(f"{what}:\n{detail}")

    def _stop(self) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()  # end of input: the worker exits
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def close(self) -> None:
        self._stop()
        self.stderr.close()


def interleaved(items: Sequence[Any], round_index: int) -> list[Any]:
    """Forward on even rounds, backward on odd ones."""
    return list(items) if round_index % 2 == 0 else list(reversed(items))


Block = list[tuple[str, str, str]]  # (worker, what it runs, where the result is filed)


def make_plan(variants: Sequence[Variant], raw_ops: Sequence[str]) -> list[Block]:
    """One block per workload, then one block of the raw redis-py commands.

    A workload's block also times a raw GET (filed under ``ROUND_TRIP_FLOOR``): the
    round-trip cost subtracted from that block's overheads is measured moments
    apart. The compared pair, the floor and that GET come first, so that they run
    back to back in every round, whichever the direction.
    """
    first = [v for v in variants if v.name in PAIRED]
    rest = [v for v in variants if v.name not in PAIRED]
    plan: list[Block] = [
        [(v.name, w.name, v.name) for v in first if v.runs(w)]
        + [(RAW.name, "GET", ROUND_TRIP_FLOOR)]
        + [(v.name, w.name, v.name) for v in rest if v.runs(w)]
        for w in WORKLOADS
    ]
    plan.append([(RAW.name, op, RAW.name) for op in raw_ops])
    return plan


def run_suite(
    variants: Sequence[Variant],
    pythons: dict[str, Path],
    redis_url: str,
    size: RunSize,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """All rounds; returns ``{"batches": {variant: {workload: [batch results]}}, "info"}``."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    workers: dict[str, WorkerProcess] = {}
    batches: dict[str, dict[str, list[Any]]] = {}
    try:
        for variant in [*variants, RAW]:
            setup = worker_setup(variant, redis_url, size)
            workers[variant.name] = WorkerProcess(pythons[variant.env], setup)
        plan = make_plan(variants, workers[RAW.name].info["workloads"])
        started = time.perf_counter()
        for index in range(size.rounds):
            for block in plan:
                workload = block[0][1]
                for worker, run, file_as in interleaved(block, index):
                    result = workers[worker].request({"run": run, "requests": size.batch})
                    key = workload if file_as == ROUND_TRIP_FLOOR else run
                    batches.setdefault(file_as, {}).setdefault(key, []).append(result)
            log(f"round {index + 1}/{size.rounds} done ({time.perf_counter() - started:.0f}s)")
    finally:
        for worker in workers.values():
            worker.close()
    return {"batches": batches, "info": {name: w.info for name, w in workers.items()}}


def aggregate(batches: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    """Per variant and workload: medians over rounds of each batch's figures."""
    return {
        variant: {workload: _summary(runs) for workload, runs in per_workload.items()}
        for variant, per_workload in batches.items()
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(field: str) -> float | None:
        values = [r[field] for r in runs if r.get(field) is not None]
        return statistics.median(values) if values else None

    return {
        "us": median("median_us"),
        "us_rounds": [round(r["median_us"], 1) for r in runs],
        "mean_us": median("mean_us"),
        "p90_us": median("p90_us"),
        "cpu_us": median("cpu_us"),
        "requests": sum(r["n"] for r in runs),
        "round_trips": median("round_trips"),
        "commands": median("commands"),
        "command_mix": runs[-1].get("command_mix"),
        "stored_bytes": runs[0].get("stored_bytes"),
    }


def profile_workload(
    python: Path, variant: Variant, workload: Workload, redis_url: str, size: RunSize
) -> str:
    """pyinstrument's text profile of ``variant`` on one workload (our venv only)."""
    worker = WorkerProcess(python, worker_setup(variant, redis_url, size))
    try:
        requests = size.batch * max(1, size.rounds // 2)
        result = worker.request({"run": workload.name, "requests": requests, "profile": True})
    finally:
        worker.close()
    return str(result["profile"])


def current_python() -> Path:
    return Path(sys.executable)
