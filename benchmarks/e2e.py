"""End-to-end: the app behind a real waitress server, under a bounded keep-alive load.

Each variant's app runs as ``worker.py serve`` (waitress, threads=4) in its own
process, started once. The load generator runs here: ``concurrency`` threads,
each with its own keep-alive ``http.client`` connection and its own session
cookie (distinct users: no write conflicts), share a fixed number of requests
per batch and stop early if the batch's time budget runs out. Batches alternate
between the variants (A B C, then C B A), like the in-process rounds.
"""

from __future__ import annotations

import http.client
import json
import select
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

from .suite import WORKER, interleaved, worker_setup
from .workloads import E2E_WORKLOADS, RunSize, Variant, Workload

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
WARMUP_PER_CONNECTION = 10
SERVER_LIFETIME_S = 900  # a server left behind by a crash still exits by itself


class Server:
    """``worker.py serve`` in a subprocess; stopped (by its own pid) on close."""

    def __init__(self, python: Path, setup: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [str(python), "-I", str(WORKER), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({**setup, "max_lifetime_s": SERVER_LIFETIME_S}))
        self.process.stdin.close()
        ready, _, _ = select.select([self.process.stdout], [], [], START_TIMEOUT)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError("e2e server did not start")
        self.port = int(json.loads(line)["port"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class Connection:
    """One simulated user: a keep-alive connection and a session cookie."""

    def __init__(self, port: int, seed: str) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=10)
        self.cookie: str | None = None
        for header in self.get(f"/seed/{seed}").headers.get_all("Set-Cookie") or []:
            if header.startswith("session="):
                self.cookie = header.split(";", 1)[0].split("=", 1)[1]
        if self.cookie is None:
            raise RuntimeError("seed request set no session cookie")

    def get(self, path: str) -> http.client.HTTPResponse:
        headers = {"Cookie": f"session={self.cookie}"} if self.cookie else {}
        try:
            self.conn.request("GET", path, headers=headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            self.conn.close()  # the server dropped an idle keep-alive: reconnect once
            self.conn.request("GET", path, headers=headers)
            response = self.conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        return response

    def close(self) -> None:
        self.conn.close()


def run_batch(
    connections: Sequence[Connection], path: str, requests: int, budget_s: float
) -> dict[str, Any]:
    """``requests`` requests over all connections at once; requests/s over the batch."""
    lock = threading.Lock()
    remaining, done = [requests], [0]
    errors: list[str] = []
    barrier = threading.Barrier(len(connections) + 1)
    deadline = [float("inf")]  # set once every thread is ready and the clock starts

    def take() -> bool:
        with lock:
            if remaining[0] <= 0 or time.perf_counter() > deadline[0]:
                return False
            remaining[0] -= 1
            return True

    def user(connection: Connection) -> None:
        try:
            barrier.wait(timeout=30)
            count = 0
            while take():
                connection.get(path)
                count += 1
            with lock:
                done[0] += count
        except Exception as exc:  # reported below; the other threads carry on
            errors.append(repr(exc))
            barrier.abort()

    threads = [threading.Thread(target=user, args=(c,), daemon=True) for c in connections]
    for thread in threads:
        thread.start()
    try:
        barrier.wait(timeout=30)
    except threading.BrokenBarrierError:
        errors.append("a load thread failed to start")
    started = time.perf_counter()
    deadline[0] = started + budget_s
    for thread in threads:
        thread.join(timeout=budget_s + 30)
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"e2e {path}: {errors[0]}")
    return {"requests": done[0], "seconds": elapsed, "rps": done[0] / elapsed}


def run_e2e(
    variants: Sequence[Variant],
    pythons: dict[str, Path],
    redis_url: str,
    size: RunSize,
    log: Callable[[str], None],
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{variant: {workload: [batch results]}}`` over interleaved rounds."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    servers: dict[str, Server] = {}
    users: dict[tuple[str, str], list[Connection]] = {}
    try:
        for variant in variants:
            server = Server(pythons[variant.env], worker_setup(variant, redis_url, size))
            servers[variant.name] = server
            for workload in E2E_WORKLOADS:
                users[variant.name, workload.name] = _warm_users(server.port, workload, size)
        per_batch = max(1, size.e2e_requests // size.e2e_rounds)
        results: dict[str, dict[str, list[dict[str, Any]]]] = {v.name: {} for v in variants}
        for index in range(size.e2e_rounds):
            for workload in E2E_WORKLOADS:
                for variant in interleaved(variants, index):
                    batch = run_batch(
                        users[variant.name, workload.name],
                        workload.path,
                        per_batch,
                        size.e2e_budget_s,
                    )
                    results[variant.name].setdefault(workload.name, []).append(batch)
            rates = "  ".join(
                f"{v.name} {w.name} {results[v.name][w.name][-1]['rps']:.0f}/s"
                for v in variants
                for w in E2E_WORKLOADS
            )
            log(f"e2e round {index + 1}/{size.e2e_rounds}: {rates}")
    finally:
        for connections in users.values():
            for connection in connections:
                connection.close()
        for server in servers.values():
            server.close()
    return results


def _warm_users(port: int, workload: Workload, size: RunSize) -> list[Connection]:
    assert workload.seed is not None
    connections = [Connection(port, workload.seed) for _ in range(size.concurrency)]
    for connection in connections:
        for _ in range(WARMUP_PER_CONNECTION):
            connection.get(workload.path)
    return connections
