#!/usr/bin/env python3
"""Run the test suite against the oldest and the newest supported dependencies.

    python3 .ci/matrix.py [NAME ...]     # all environments by default

Each environment is a virtualenv under ``.cache/matrix/NAME`` on its own Python,
reinstalled whenever its pins or pyproject.toml change. The lower bounds declared in
pyproject.toml are the pins of "oldest": what is declared is what is tested. The
tests against the 1.8.1 package are left out here (they drive their own virtualenv
and exercise no dependency of ours differently); the main run covers them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "matrix"

# name -> (Python version, pins). An empty pin list means the newest releases.
ENVIRONMENTS: dict[str, tuple[str, list[str]]] = {
    "oldest": (
        "3.10",
        [
            "msgspec==0.18.6",
            "pyramid==2.0",
            "redis==5.0.0",
            "webob==1.8.7",
            "zstandard==0.22.0",
            "zope.interface==5.4.0",
            "tqdm==4.66.0",
        ],
    ),
    "newest": ("3.13", []),
    "newest-3.12": ("3.12", []),
}
SAY_SERVER = (
    "from tests.servers import describe_server, find_server_binary; "
    "print('redis server:', describe_server(find_server_binary()))"
)
SKIPPED_TESTS = ("tests/test_legacy_interop.py", "tests/test_differential.py")


def find_python(version: str) -> str:
    """``pythonX.Y`` from PATH or from pyenv; exits if there is none (never skipped)."""
    found = shutil.which(f"python{version}")
    if found and subprocess.call([found, "-c", ""], stderr=subprocess.DEVNULL) == 0:
        return found  # (a pyenv shim of an inactive version fails here)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for candidate in sorted((pyenv_root / "versions").glob(f"{version}.*"), reverse=True):
        python = candidate / "bin" / f"python{version}"
        if python.exists():
            return str(python)
    sys.exit(f"matrix: no Python {version} on PATH or in pyenv; it is declared, so it is required")


def run(*command: str | Path) -> int:
    print("+", " ".join(str(part) for part in command), flush=True)
    return subprocess.call([str(part) for part in command], cwd=ROOT, stdin=subprocess.DEVNULL)


def ensure_env(name: str, version: str, pins: list[str]) -> Path:
    venv = CACHE / name
    python = venv / "bin" / "python"
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    wanted = json.dumps([version, pins, hashlib.sha256(pyproject).hexdigest()])
    marker = venv / ".matrix-installed"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    if run(find_python(version), "-m", "venv", venv):
        sys.exit(f"matrix: creating the {name} virtualenv failed")
    pip = (python, "-m", "pip", "install", "-q", "--no-input", "--disable-pip-version-check")
    if pins:
        constraints = venv / "constraints.txt"
        constraints.write_text("\n".join(pins) + "\n")
        installed = run(*pip, "-c", constraints, "-e", ".[test]", *pins)
    else:
        installed = run(*pip, "--upgrade", "-e", ".[test]")
    if installed:
        sys.exit(f"matrix: installing into the {name} virtualenv failed")
    marker.write_text(wanted)
    return python


def main(names: list[str]) -> int:
    unknown = set(names) - set(ENVIRONMENTS)
    if unknown:
        sys.exit(f"matrix: unknown environment(s) {sorted(unknown)}; known: {list(ENVIRONMENTS)}")
    failed = []
    for name in names or list(ENVIRONMENTS):
        version, pins = ENVIRONMENTS[name]
        python = ensure_env(name, version, pins)
        run(python, "-m", "pip", "freeze", "--exclude-editable")
        run(python, "-c", SAY_SERVER)  # (pytest -q prints no report header)
        skips = [arg for path in SKIPPED_TESTS for arg in ("--ignore", path)]
        if run(python, "-m", "pytest", "-q", *skips):
            failed.append(name)
    if failed:
        print(f"matrix: failed in {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
