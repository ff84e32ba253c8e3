"""The benchmarks' own virtualenv with the older ``pyramid_session_redis`` 1.8.1.

Built by the same code as the interop tests' (``tests/legacy/environment.py``), under
``.cache/bench-legacy-1.8.1/``. The shared dependencies (redis-py, Pyramid, WebOb,
waitress) are pinned to the versions in our own environment, so the two sides differ
only by the library.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import sys
from pathlib import Path

from tests.legacy.environment import (
    LEGACY_VERSION,
    REPO_ROOT,
    ensure_legacy_venv,
    is_complete,
)

ENV_DIR = REPO_ROOT / ".cache" / f"bench-legacy-{LEGACY_VERSION}"
SHARED_DEPENDENCIES = ("redis", "pyramid", "WebOb", "waitress")
# redis-py's optional C parser: the legacy side gets it when ours has it (both gain).
OPTIONAL_SHARED = ("hiredis",)


def requirements() -> list[str]:
    """What the legacy environment gets: 1.8.1 plus our versions of the shared deps."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in SHARED_DEPENDENCIES]
    for name in OPTIONAL_SHARED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            pins.append(f"{name}=={importlib.metadata.version(name)}")
    return [f"pyramid_session_redis=={LEGACY_VERSION}", *pins]


def ensure_legacy_env(log: bool = True) -> Path:
    """Create (or reuse) the legacy virtualenv; return its python executable."""
    wanted = requirements()
    if log and not is_complete(ENV_DIR, wanted):
        print(f"[bench] creating {ENV_DIR} ({', '.join(wanted)})", file=sys.stderr)
    return ensure_legacy_venv(ENV_DIR, wanted)


if __name__ == "__main__":
    print(ensure_legacy_env())
