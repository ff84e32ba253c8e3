"""Derived metrics, the issue's targets, and the tables (Markdown or plain text)."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from typing import Any

from .suite import ROUND_TRIP_FLOOR
from .workloads import E2E_VARIANTS, E2E_WORKLOADS, MINIMAL, RAW, WORKLOADS, Variant

OVERHEAD_FORMULA = (
    "overhead = µs/request - µs/request(no session, same workload) "
    "- round_trips/request * µs(raw redis-py GET), per round (the floor and the GET are "
    "timed in the same block as the variant)"
)
CPU_OVERHEAD_FORMULA = (
    "cpu overhead = the same with the worker thread's CPU time instead of wall time "
    "(waiting for Redis and for a busy machine excluded; client-side work included)"
)
NOISE_FLOOR_US = 5.0  # an overhead this small is noise: no ratio is computed from it
RT_TARGETS = {"untouched": 0, "read": 1, "write": 2, "create": 1}
OVERHEAD_WORKLOADS = ("read", "write", "create")
OVERHEAD_MAX_RATIO = 0.5
# Stored bytes (STRLEN) ours/1.8.1 per seed, and Redis memory per small session.
BYTES_MAX_RATIO = {"small": 0.6, "large": 0.7}
MEMORY_MAX_RATIO = 0.7
# Time per request ours/1.8.1 (the storage and codec issue).
TIME_MAX_RATIO = {"read": 0.4, "write": 0.7, "large_read": 0.45, "large_write": 0.7}
E2E_MIN_RATIO = 1.2
BYTES_SEEDS = (("small", "read"), ("large", "large_read"))  # session, a workload seeded with it


Batches = dict[str, dict[str, list[dict[str, Any]]]]  # variant -> workload -> one per round
PerRound = dict[tuple[str, str, str], list[float]]  # (variant, workload, field) -> per round


def derive(
    aggregate: dict[str, Any],
    batches: Batches,
    e2e_batches: Batches,
    memory: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Overheads, ours/older ratios, stored sizes, end-to-end rates, Redis memory per
    session (``memory``: bytes of ``used_memory`` per session, ours and legacy) and the
    target checks.

    Ratios are paired: computed per round from batches run moments apart, then the
    median over rounds (a noisy machine slows adjacent batches alike).
    """
    per_round: PerRound = {}
    for variant, per_workload in batches.items():
        if variant not in (RAW.name, ROUND_TRIP_FLOOR, "none"):
            for workload in per_workload:
                for field in ("median_us", "cpu_us"):
                    values = _overheads(batches, variant, workload, field)
                    per_round[variant, workload, field] = values
    overhead: dict[str, dict[str, float]] = {}
    cpu_overhead: dict[str, dict[str, float]] = {}
    for (variant, workload, field), values in per_round.items():
        table = overhead if field == "median_us" else cpu_overhead
        table.setdefault(variant, {})[workload] = statistics.median(values)
    raw_get = aggregate[RAW.name]["GET"]
    derived = {
        "raw_round_trip_us": raw_get["us"],
        "raw_round_trip_cpu_us": raw_get["cpu_us"],
        "overhead_formula": OVERHEAD_FORMULA,
        "overhead_us": overhead,
        "cpu_overhead_formula": CPU_OVERHEAD_FORMULA,
        "cpu_overhead_us": cpu_overhead,
        "ours_vs_legacy": _comparison(batches, per_round, overhead, cpu_overhead),
        "stored_bytes": {
            seed: {
                v: aggregate[v][workload]["stored_bytes"]
                for v in ("ours", "ours_uncompressed", "ours_pickle", "legacy")
                if v in aggregate
            }
            for seed, workload in BYTES_SEEDS
        },
        "e2e_rps": {
            v: {w: statistics.median(b["rps"] for b in runs) for w, runs in per.items()}
            for v, per in e2e_batches.items()
        },
        "e2e_ratio": {
            w.name: _paired(
                [b["rps"] for b in e2e_batches["ours"][w.name]],
                [b["rps"] for b in e2e_batches["legacy"][w.name]],
            )
            for w in E2E_WORKLOADS
            if "ours" in e2e_batches and "legacy" in e2e_batches
        },
        "memory_per_session": memory or {},
    }
    derived["targets"] = targets(aggregate, derived)
    return derived


def _comparison(
    batches: Batches,
    per_round: PerRound,
    overhead: dict[str, dict[str, float]],
    cpu_overhead: dict[str, dict[str, float]],
) -> dict[str, dict[str, float | None]]:
    """Per workload: ours/1.8.1 for time, overhead and CPU overhead (paired by round)."""
    comparison: dict[str, dict[str, float | None]] = {}
    for w in WORKLOADS:
        ours, older = batches["ours"][w.name], batches["legacy"][w.name]
        ratios: dict[str, float | None] = {
            "time_ratio": _paired([o["median_us"] for o in ours], [o["median_us"] for o in older])
        }
        # The bound: the least a Redis session can do, against the same 1.8.1 batches.
        minimal = batches.get(MINIMAL.name, {}).get(w.name)
        ratios["minimal_time_ratio"] = (
            _paired([o["median_us"] for o in minimal], [o["median_us"] for o in older])
            if minimal
            else None
        )
        for field, name, table in (
            ("median_us", "overhead_ratio", overhead),
            ("cpu_us", "cpu_overhead_ratio", cpu_overhead),
        ):
            meaningful = abs(table["legacy"][w.name]) >= NOISE_FLOOR_US
            ratios[name] = (
                _paired(per_round["ours", w.name, field], per_round["legacy", w.name, field])
                if meaningful
                else None
            )
        comparison[w.name] = ratios
    return comparison


def _overheads(batches: Batches, variant: str, workload: str, field: str) -> list[float]:
    """Per round: the variant's figure minus the floor's, minus its round trips' cost."""
    runs, floors = batches[variant][workload], batches["none"][workload]
    gets = batches[ROUND_TRIP_FLOOR][workload]  # raw GETs timed in the same block
    return [
        run[field] - floor[field] - run["round_trips"] * get[field]
        for run, floor, get in zip(runs, floors, gets, strict=True)
    ]


def _paired(ours: Sequence[float], older: Sequence[float]) -> float | None:
    """Median over rounds of ours/older (rounds where older is not positive are left out)."""
    ratios = [o / b for o, b in zip(ours, older, strict=True) if b > 0]
    return statistics.median(ratios) if ratios else None


def _ratio(ours: float | None, older: float | None) -> float | None:
    if ours is None or older is None or older <= 0:
        return None
    return ours / older


def targets(aggregate: dict[str, Any], derived: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target of the issue: measured value, goal, PASS/FAIL."""
    rows: list[dict[str, Any]] = []

    def add(name: str, measured: float | None, goal: str, ok: bool | None) -> None:
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        rows.append({"target": name, "measured": measured, "goal": goal, "result": verdict})

    for workload, wanted in RT_TARGETS.items():
        trips = aggregate["ours"][workload]["round_trips"]
        # Commands reached the server but no round trip was counted: the counter is broken.
        counted = trips > 0 or not aggregate["ours"][workload].get("commands")
        ok = counted and trips <= wanted
        add(f"round trips/request, {workload}", trips, f"<= {wanted}", ok)
    for workload in OVERHEAD_WORKLOADS:
        ratio = derived["ours_vs_legacy"][workload]["overhead_ratio"]
        ok = None if ratio is None else ratio <= OVERHEAD_MAX_RATIO
        add(f"overhead ours/1.8.1, {workload}", ratio, f"<= {OVERHEAD_MAX_RATIO}x", ok)
    for workload, goal in TIME_MAX_RATIO.items():
        ratio = derived["ours_vs_legacy"][workload]["time_ratio"]
        ok = None if ratio is None else ratio <= goal
        add(f"time/request ours/1.8.1, {workload}", ratio, f"<= {goal}x", ok)
        bound = derived["ours_vs_legacy"][workload].get("minimal_time_ratio")
        add(f"time/request minimal/1.8.1 (the bound), {workload}", bound, "—", None)
    for seed, sizes in derived["stored_bytes"].items():
        ratio = _ratio(sizes.get("ours"), sizes.get("legacy"))
        goal = BYTES_MAX_RATIO[seed]
        ok = None if ratio is None else ratio <= goal
        add(f"bytes/session ours/1.8.1, {seed}", ratio, f"<= {goal}x", ok)
    memory = derived.get("memory_per_session", {})
    ratio = _ratio(memory.get("ours"), memory.get("legacy"))
    ok = None if ratio is None else ratio <= MEMORY_MAX_RATIO
    add("Redis memory/session ours/1.8.1, small", ratio, f"<= {MEMORY_MAX_RATIO}x", ok)
    for e2e_workload in E2E_WORKLOADS:
        ratio = derived["e2e_ratio"].get(e2e_workload.name)
        ok = None if ratio is None else ratio >= E2E_MIN_RATIO
        name = f"e2e requests/s ours/1.8.1, {e2e_workload.name}"
        add(name, ratio, f">= {E2E_MIN_RATIO}x", ok)
    return rows


# --- tables --------------------------------------------------------------------------------


@dataclasses.dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def _us(agg: dict[str, Any], variant: str, workload: str) -> float | None:
    """µs/request, or None for a workload the variant cannot run."""
    measured = agg[variant].get(workload)
    return None if measured is None else float(measured["us"])


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def build_tables(results: dict[str, Any], variants: Sequence[Variant]) -> list[Table]:
    agg, derived = results["aggregate"], results["derived"]
    redis_variants = [v for v in variants if v.kind == "redis"]
    tables = [
        Table(
            "µs per request, in-process WSGI call (median of rounds)",
            ["workload", *(v.label for v in variants)],
            [[w.name, *(_num(_us(agg, v.name, w.name)) for v in variants)] for w in WORKLOADS],
        ),
        Table(
            "Round trips / Redis commands per request (server-side count; a Lua "
            "script's inner GET/SET count as commands)",
            ["workload", *(v.label for v in redis_variants)],
            [
                [
                    w.name,
                    *(
                        f"{_num(agg[v.name][w.name]['round_trips'], 0)} / "
                        f"{_num(agg[v.name][w.name]['commands'], 0)}"
                        for v in redis_variants
                    ),
                ]
                for w in WORKLOADS
            ],
        ),
        _comparison_table(agg, derived),
        _bytes_table(derived),
        Table(
            "Raw redis-py, µs per op (the wire floor)",
            ["op", "µs/op", "CPU µs/op", "round trips"],
            [
                [op, _num(m["us"]), _num(m["cpu_us"]), _num(m["round_trips"], 0)]
                for op, m in agg[RAW.name].items()
            ],
        ),
    ]
    if derived["e2e_rps"]:
        tables.append(_e2e_table(derived["e2e_rps"], results))
    tables.append(
        Table(
            "Targets",
            ["target", "measured", "goal", "result"],
            [
                [t["target"], _num(t["measured"], 2), t["goal"], f"**{t['result']}**"]
                for t in derived["targets"]
            ],
        )
    )
    return tables


def _comparison_table(agg: dict[str, Any], derived: dict[str, Any]) -> Table:
    overhead, cpu = derived["overhead_us"], derived["cpu_overhead_us"]
    rows = []
    for w in WORKLOADS:
        ours, older = agg["ours"][w.name], agg["legacy"][w.name]
        ratios = derived["ours_vs_legacy"][w.name]
        rows.append(
            [
                w.name,
                _num(ours["us"]),
                _num(older["us"]),
                _x(ratios["time_ratio"]),
                _x(ratios["minimal_time_ratio"]),
                _num(ours["round_trips"], 0),
                _num(older["round_trips"], 0),
                _num(overhead["ours"][w.name]),
                _num(overhead["legacy"][w.name]),
                _x(ratios["overhead_ratio"]),
                _num(cpu["ours"][w.name]),
                _num(cpu["legacy"][w.name]),
                _x(ratios["cpu_overhead_ratio"]),
            ]
        )
    return Table(
        "Ours (default) vs 1.8.1 (default)",
        [
            *("workload", "ours µs", "1.8.1 µs", "time", "minimal / 1.8.1", "ours RT", "1.8.1 RT"),
            *("ours overhead µs", "1.8.1 overhead µs", "overhead"),
            *("ours CPU overhead µs", "1.8.1 CPU overhead µs", "CPU overhead"),
        ],
        rows,
        note=f"{OVERHEAD_FORMULA}; raw GET = {derived['raw_round_trip_us']:.1f} µs "
        f"({derived['raw_round_trip_cpu_us']:.1f} µs CPU) over the run. {CPU_OVERHEAD_FORMULA}. "
        "Ratios are ours / 1.8.1 (lower is better), the median over rounds of the ratio "
        "between batches run back to back; the targets use the wall-time overhead. "
        "'minimal / 1.8.1' is the same time ratio for the minimal session (one GETEX to "
        "read, one SET to write, nothing else; benchmarks/worker.py): the best any "
        "implementation could do here.",
    )


def _bytes_table(derived: dict[str, Any]) -> Table:
    rows = []
    for seed, sizes in derived["stored_bytes"].items():
        older = sizes.get("legacy")
        rows.append(
            [
                seed,
                _num(sizes.get("ours"), 0),
                _num(sizes.get("ours_uncompressed"), 0),
                _num(sizes.get("ours_pickle"), 0),
                _num(older, 0),
                _x(_ratio(sizes.get("ours"), older)),
                _x(_ratio(sizes.get("ours_uncompressed"), older)),
                _x(_ratio(sizes.get("ours_pickle"), older)),
            ]
        )
    return Table(
        "Bytes stored per session (STRLEN of the key)",
        [
            *("session", "ours (default)", "ours (uncompressed)", "ours (pickle)"),
            *("1.8.1 (pickle)", "ours / 1.8.1", "uncompressed / 1.8.1", "ours pickle / 1.8.1"),
        ],
        rows,
        note="small: {user_id, csrf (64 hex), flash: [hi]}; large: ~200 keys, ~20 KB.",
    )


def _e2e_table(rates: dict[str, dict[str, float]], results: dict[str, Any]) -> Table:
    labels = {v.name: v.label for v in E2E_VARIANTS if v.name in rates}
    rows = []
    for w in E2E_WORKLOADS:
        ratio = results["derived"]["e2e_ratio"].get(w.name)
        rows.append([w.name, *(_num(rates[v][w.name], 0) for v in labels), _x(ratio)])
    size = results["meta"]["size"]
    return Table(
        "End to end: waitress (threads=4), keep-alive load, requests/s (median of batches)",
        ["workload", *labels.values(), "ours / 1.8.1"],
        rows,
        note=f"{size['e2e_requests']} requests per workload and variant at concurrency "
        f"{size['concurrency']}, in {size['e2e_rounds']} interleaved batches; the ratio is "
        "the median of per-round ratios; higher is better.",
    )


def render(tables: Sequence[Table], markdown: bool) -> str:
    return "\n\n".join(_markdown(t) if markdown else _text(t) for t in tables)


def _markdown(table: Table) -> str:
    lines = [f"#### {table.title}", ""]
    lines.append("| " + " | ".join(table.headers) + " |")
    lines.append(
        "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(table.headers))) + "|"
    )
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines)


def _text(table: Table) -> str:
    cells = [table.headers, *([c.replace("**", "") for c in row] for row in table.rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.headers))]
    lines = [table.title]
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    if table.note:
        lines.append(table.note)
    return "\n".join(lines)
