"""Benchmark suite: ours vs ``pyramid_session_redis`` 1.8.1 vs the floors.

    .venv/bin/python -m benchmarks              # full run (a few minutes)
    .venv/bin/python -m benchmarks --quick      # smoke run
    .venv/bin/python -m benchmarks --markdown   # print the tables as Markdown
    .venv/bin/python -m benchmarks --profile write   # pyinstrument profile of ours

Starts a throwaway Redis on a free 127.0.0.1 port, creates (once) the 1.8.1
virtualenv under ``.cache/``, runs every variant through ``benchmarks/worker.py``
in interleaved rounds, then the end-to-end load test, and writes everything to
``benchmarks/results/latest.json``. Progress goes to stderr, tables to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from tests.servers import RedisServerProcess, find_server_binary

from . import e2e, memory, report, suite
from .legacy_env import ensure_legacy_env
from .workloads import E2E_VARIANTS, FULL, OURS, QUICK, VARIANTS, WORKLOADS, RunSize

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OUTPUT = RESULTS_DIR / "latest.json"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small rounds: a smoke run")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument(
        "--rounds",
        type=int,
        help=f"in-process rounds (default {FULL.rounds}, quick {QUICK.rounds})",
    )
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end load test")
    parser.add_argument(
        "--no-profile",
        action="store_true",
        help="do not profile ours on workloads that miss their overhead target",
    )
    parser.add_argument(
        "--profile",
        metavar="WORKLOAD",
        choices=[w.name for w in WORKLOADS],
        help="only print a pyinstrument profile of ours (default mode) on WORKLOAD",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"JSON file ({OUTPUT})")
    return parser.parse_args(argv)


def run_size(args: argparse.Namespace) -> RunSize:
    size = QUICK if args.quick else FULL
    if args.rounds:
        size = dataclasses.replace(size, rounds=max(1, args.rounds))
    return size


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    size = run_size(args)
    started = time.perf_counter()
    pythons = {"ours": suite.current_python()}
    with RedisServerProcess(find_server_binary()) as server:
        log(f"redis {'.'.join(map(str, server.version))} at {server.url}")
        if args.profile:
            workload = next(w for w in WORKLOADS if w.name == args.profile)
            print(suite.profile_workload(pythons["ours"], OURS, workload, server.url, size))
            return 0
        pythons["legacy"] = ensure_legacy_env()
        load_before = os.getloadavg()
        measured = suite.run_suite(VARIANTS, pythons, server.url, size, log)
        e2e_batches = (
            {} if args.no_e2e else e2e.run_e2e(E2E_VARIANTS, pythons, server.url, size, log)
        )
        log(f"Redis memory per session: {size.memory_sessions:,} sessions per library")
        memory_used = memory.per_session(server.client(), size.memory_sessions)
        aggregate = suite.aggregate(measured["batches"])
        derived = report.derive(aggregate, measured["batches"], e2e_batches, memory_used)
        results = {
            "meta": meta(server, size, args, measured, load_before, time.perf_counter() - started),
            "aggregate": aggregate,
            "derived": derived,
            "batches": compact(measured["batches"]),
            "e2e_batches": compact(e2e_batches),
        }
        if not args.no_profile:
            results["profiles"] = profile_misses(derived, pythons, server.url, size)
    write_json(args.output, results)
    print(report.render(report.build_tables(results, VARIANTS), markdown=args.markdown))
    print(f"\n{meta_line(results['meta'])}")
    log(f"results written to {args.output} ({results['meta']['elapsed_s']:.0f}s)")
    return 0


def profile_misses(
    derived: dict[str, Any], pythons: dict[str, Path], redis_url: str, size: RunSize
) -> dict[str, str]:
    """A pyinstrument profile of ours for every workload whose overhead target fails."""
    profiles = {}
    for row in derived["targets"]:
        if not row["target"].startswith("overhead") or row["result"] != "FAIL":
            continue
        name = row["target"].rsplit(", ", 1)[1]
        workload = next(w for w in WORKLOADS if w.name == name)
        text = suite.profile_workload(pythons["ours"], OURS, workload, redis_url, size)
        path = RESULTS_DIR / f"profile-{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        profiles[name] = str(path)
        log(f"overhead target missed on {name}: profile of ours in {path}")
    return profiles


def meta(
    server: RedisServerProcess,
    size: RunSize,
    args: argparse.Namespace,
    measured: dict[str, Any],
    load_before: tuple[float, float, float],
    elapsed: float,
) -> dict[str, Any]:
    info = measured["info"]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "size": dataclasses.asdict(size),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "redis_server": ".".join(map(str, server.version)),
        "ours_versions": info["ours"]["versions"],
        "legacy_versions": info["legacy"]["versions"],
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "elapsed_s": elapsed + 0.0,
    }


def meta_line(m: dict[str, Any]) -> str:
    return (
        f"{m['date']}, {m['mode']} run: Python {m['python']}, redis-server {m['redis_server']}, "
        f"redis-py {m['ours_versions']['redis']}, Pyramid {m['ours_versions']['pyramid']}, "
        f"{m['cpus']} CPUs, {m['size']['rounds']} rounds x {m['size']['batch']} requests, "
        f"load average {m['loadavg_before'][0]:.1f} -> {m['loadavg_after'][0]:.1f}."
    )


def compact(batches: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Every batch's figures, rounded, without the per-batch command mix."""
    return {
        variant: {
            workload: [
                {
                    key: round(value, 2) if isinstance(value, float) else value
                    for key, value in run.items()
                    if key != "command_mix"
                }
                for run in runs
            ]
            for workload, runs in per_workload.items()
        }
        for variant, per_workload in batches.items()
    }


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
