#!/usr/bin/env python3
"""Bootstrap and run project tasks with nothing but Python 3.10+.

    python3 run.py test [pytest args]   # e.g. python3 run.py test -q
    python3 run.py lint                 # ruff check, ruff format --check, mypy
    python3 run.py demo [args]          # python -m demo
    python3 run.py bench [args]         # python -m benchmarks (e.g. --quick)

The first run creates ``.venv`` and installs the project with its test, lint,
demo and bench extras; it reinstalls whenever pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
EXTRAS = "test,lint,demo,bench"
MARKER = VENV / ".run-py-installed"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*command: str | Path) -> int:
    """Run a command from the repository root, without stdin; return its exit code."""
    print("+", " ".join(str(part) for part in command), flush=True)
    code = subprocess.call([str(part) for part in command], cwd=ROOT, stdin=subprocess.DEVNULL)
    return code if code >= 0 else 128 - code  # killed by a signal: shell convention


def wanted_marker() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    return f"{digest} {EXTRAS}\n"


def ensure_venv() -> None:
    """Create .venv and install the project into it, unless that is already up to date."""
    if PYTHON.exists() and MARKER.exists() and MARKER.read_text() == wanted_marker():
        return
    if not PYTHON.exists():
        print(f"+ creating {VENV}", flush=True)
        try:
            venv.create(VENV, with_pip=True, clear=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            hint = "on Debian/Ubuntu: apt-get install python3-venv"
            sys.exit(f"run.py: cannot create {VENV} ({exc}); {hint}")
        if run(PYTHON, "-m", "pip", "install", "-q", "--no-input", "--upgrade", "pip"):
            sys.exit("run.py: upgrading pip in .venv failed")
    pip = (PYTHON, "-m", "pip", "install", "-q", "--no-input", "--disable-pip-version-check")
    if run(*pip, "-e", f".[{EXTRAS}]"):
        sys.exit("run.py: installing the project into .venv failed")
    MARKER.write_text(wanted_marker())


def cmd_test(args: list[str]) -> int:
    ensure_venv()
    return run(PYTHON, "-m", "pytest", *args)


def cmd_lint(args: list[str]) -> int:
    ensure_venv()
    codes = [
        run(PYTHON, "-m", "ruff", "check", "."),
        run(PYTHON, "-m", "ruff", "format", "--check", "."),
        run(PYTHON, "-m", "mypy"),
    ]
    return next((code for code in codes if code), 0)


def cmd_demo(args: list[str]) -> int:
    ensure_venv()
    return run(PYTHON, "-m", "demo", *args)


def cmd_bench(args: list[str]) -> int:
    ensure_venv()
    return run(PYTHON, "-m", "benchmarks", *args)


COMMANDS = {"test": cmd_test, "lint": cmd_lint, "demo": cmd_demo, "bench": cmd_bench}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
