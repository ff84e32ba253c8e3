"""A private virtualenv holding the older ``pyramid_session_redis`` 1.8.1 from PyPI.

Both libraries share the import name, so 1.8.1 only runs in a separate process with
its own interpreter. The interop tests and the benchmarks each keep one such
virtualenv under ``.cache/`` (with their own requirements); this module builds them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

LEGACY_VERSION = "1.8.1"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
MARKER_NAME = ".complete.json"


class LegacyEnvironmentError(RuntimeError):
    """Creating the virtualenv or installing into it failed."""


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def clean_env() -> dict[str, str]:
    """The environment for the legacy interpreter: nothing that points at our checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def marker_content(requirements: Sequence[str]) -> str:
    """What a complete virtualenv records: its requirements and the base interpreter."""
    return json.dumps(
        {"requirements": list(requirements), "python": sys.version, "base": sys.executable},
        sort_keys=True,
    )


def is_complete(venv: Path, requirements: Sequence[str]) -> bool:
    marker = venv / MARKER_NAME
    return (
        marker.is_file()
        and marker.read_text() == marker_content(requirements)
        and venv_python(venv).exists()
    )


def run(args: list[str], what: str, timeout: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command for the legacy environment; LegacyEnvironmentError if it fails."""
    try:
        result = subprocess.run(
            args,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LegacyEnvironmentError(
            f"{what} timed out after {timeout}s: {args}\n{exc.stdout!r}\n{exc.stderr!r}"
        ) from exc
    if result.returncode != 0:
        raise LegacyEnvironmentError(
            f"{what} failed (exit {result.returncode}): {args}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def ensure_legacy_venv(target: Path, requirements: Sequence[str]) -> Path:
    """Return the python of a virtualenv at ``target`` with ``requirements``, built if needed.

    Built in a sibling temporary directory, marked complete, then renamed into place,
    so an interrupted build is never reused and concurrent builders do not collide.
    """
    python = venv_python(target)
    if is_complete(target, requirements):
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        # cwd=build and -I (isolated mode): our checkout must never be on the legacy sys.path
        run([sys.executable, "-I", "-m", "venv", str(build)], "creating the venv", 120, build)
        build_python = str(venv_python(build))
        install = [build_python, "-I", "-m", "pip", "install", "--no-input", "-q"]
        run([*install, *requirements], "pip install of the legacy library", 300, build)
        check = "import importlib.metadata as m; print(m.version('pyramid_session_redis'))"
        found = run([build_python, "-I", "-c", check], "checking the legacy install", 60, build)
        if found.stdout.strip() != LEGACY_VERSION:
            raise LegacyEnvironmentError(f"installed {found.stdout.strip()!r}, not 1.8.1")
        (build / MARKER_NAME).write_text(marker_content(requirements))
        build.chmod(0o755)  # mkdtemp made it private
        if not is_complete(target, requirements):  # else a concurrent run finished first
            if target.exists():  # stale, incomplete or built for another interpreter
                shutil.rmtree(target)
            try:
                build.rename(target)
            except OSError:  # lost a race after all; fine if the winner's venv is complete
                if not is_complete(target, requirements):
                    raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return python
