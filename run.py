#!/usr/bin/env python3
"""Bootstrap and run project tasks with nothing but Python 3.10+.

    python3 run.py test [pytest args]   # e.g. python3 run.py test -q
    python3 run.py lint                 # ruff check, ruff format --check, mypy
    python3 run.py demo [args]          # python -m demo
    python3 run.py bench [args]         # python -m benchmarks (e.g. --quick)
    python3 run.py mutate [targets] [tests]  # mutation testing (mutmut), not part of CI

``mutate`` mutates the given modules (default: pyramid_session_redis/merge.py) and runs
the given test paths against each mutant (default: tests/test_<module>.py, else tests/),
in a copy of the work tree under build/mutation/; it installs the ``mutate`` extra first.

The first run creates ``.venv`` and installs the project with its test, lint,
demo and bench extras; it reinstalls whenever pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
EXTRAS = "test,lint,demo,bench"
MARKER = VENV / ".run-py-installed"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*command: str | Path, cwd: Path = ROOT) -> int:
    """Run a command (from the repository root), without stdin; return its exit code."""
    print("+", " ".join(str(part) for part in command), flush=True)
    code = subprocess.call([str(part) for part in command], cwd=cwd, stdin=subprocess.DEVNULL)
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


MUTATION_DIR = ROOT / "build" / "mutation"
DEFAULT_MUTATION_TARGETS = ["pyramid_session_redis/merge.py"]


def mutation_plan(args: list[str]) -> tuple[list[str], list[str]]:
    """Split ``mutate`` arguments into (modules to mutate, test paths to run)."""
    tests = [arg for arg in args if Path(arg).parts[:1] == ("tests",)]
    targets = [arg for arg in args if arg not in tests] or DEFAULT_MUTATION_TARGETS
    for target in targets:
        if not (target.endswith(".py") and (ROOT / target).is_file()):
            sys.exit(f"run.py mutate: {target} is not a Python file of this repository")
        if Path(target).parts[0] != "pyramid_session_redis":
            sys.exit(f"run.py mutate: {target} is not a module of pyramid_session_redis/")
    if not tests:
        mirrored = [f"tests/test_{Path(target).stem}.py" for target in targets]
        tests = [path for path in mirrored if (ROOT / path).is_file()] or ["tests"]
    return targets, tests


def prepare_mutation_dir(targets: list[str], tests: list[str]) -> None:
    """A fresh copy of the work tree (tracked and new files) with a mutmut config."""
    shutil.rmtree(MUTATION_DIR, ignore_errors=True)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    top_level = set()
    for name in filter(None, listed.split("\0")):
        source, target = ROOT / name, MUTATION_DIR / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            top_level.add(Path(name).parts[0])
    config = {
        "source_paths": ["pyramid_session_redis"],
        # mutmut runs the tests in build/mutation/mutants/: what they import must be there
        "also_copy": sorted(top_level - {"pyramid_session_redis"}),
        "only_mutate": targets,
        "pytest_add_cli_args_test_selection": tests,
        "use_git_change_detection": False,
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    with open(MUTATION_DIR / "pyproject.toml", "a") as pyproject:
        pyproject.write("\n[tool.mutmut]\n" + "\n".join(lines) + "\n")


def cmd_mutate(args: list[str]) -> int:
    targets, tests = mutation_plan(args)
    ensure_venv()
    has_mutmut = not subprocess.call([PYTHON, "-c", "import mutmut"], stderr=subprocess.DEVNULL)
    if not has_mutmut and run(PYTHON, "-m", "pip", "install", "-q", "-e", ".[mutate]"):
        sys.exit("run.py: installing the mutate extra into .venv failed")
    prepare_mutation_dir(targets, tests)
    if code := run(PYTHON, "-m", "mutmut", "run", cwd=MUTATION_DIR):
        return code
    results = subprocess.run(
        [PYTHON, "-m", "mutmut", "results"], cwd=MUTATION_DIR, capture_output=True, text=True
    )
    if results.returncode or results.stdout.strip():
        print(results.stdout + results.stderr, end="")
        print("not killed: see one with cd build/mutation && ../../.venv/bin/mutmut show NAME")
        return 1
    print("every mutant was killed")
    return 0


COMMANDS = {
    "test": cmd_test,
    "lint": cmd_lint,
    "demo": cmd_demo,
    "bench": cmd_bench,
    "mutate": cmd_mutate,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
