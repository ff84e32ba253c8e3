"""A private virtualenv holding the older ``pyramid_session_redis`` 1.8.1 from PyPI.

Both libraries share the import name, so 1.8.1 can only run in a separate process
with its own interpreter. The virtualenv is created once under
``.cache/bench-legacy-1.8.1/`` and reused; a marker file written after a
successful install records exactly what was asked for, so a changed request (or
an interrupted install) rebuilds it.

The shared dependencies (redis-py, Pyramid, WebOb, waitress) are pinned to the
versions in our own environment, so the two sides differ only by the library.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

LEGACY_VERSION = "1.8.1"
ROOT = Path(__file__).resolve().parent.parent
ENV_DIR = ROOT / ".cache" / f"bench-legacy-{LEGACY_VERSION}"
MARKER = ENV_DIR / ".bench-complete"
SHARED_DEPENDENCIES = ("redis", "pyramid", "WebOb", "waitress")
INSTALL_TIMEOUT = 600  # seconds


def python_path(env_dir: Path = ENV_DIR) -> Path:
    return env_dir / "bin" / "python"


def requirements() -> list[str]:
    """What the legacy environment gets: 1.8.1 plus our versions of the shared deps."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in SHARED_DEPENDENCIES]
    return [f"pyramid_session_redis=={LEGACY_VERSION}", *pins]


def ensure_legacy_env(log: bool = True) -> Path:
    """Create (or reuse) the legacy virtualenv; return its python executable."""
    wanted = "\n".join(requirements()) + "\n"
    python = python_path()
    if python.exists() and MARKER.exists() and MARKER.read_text() == wanted:
        return python
    if log:
        print(f"[bench] creating {ENV_DIR} ({', '.join(requirements())})", file=sys.stderr)
    shutil.rmtree(ENV_DIR, ignore_errors=True)
    ENV_DIR.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(ENV_DIR)])
    pip = [str(python), "-m", "pip", "install", "-q", "--no-input", "--disable-pip-version-check"]
    _run([*pip, *requirements()])
    _run([str(python), "-I", "-c", _CHECK])
    MARKER.write_text(wanted)
    return python


# Fails unless the installed distribution is the legacy one (not ours, found by accident).
_CHECK = f"""
import importlib.metadata, pyramid_session_redis
version = importlib.metadata.version("pyramid_session_redis")
assert version == {LEGACY_VERSION!r}, version
assert "site-packages" in pyramid_session_redis.__file__, pyramid_session_redis.__file__
"""


def _run(command: list[str]) -> None:
    result = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"legacy env: {' '.join(command)} failed ({result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )


if __name__ == "__main__":
    print(ensure_legacy_env())
