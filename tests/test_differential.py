"""Differential tests: the same scenario against the real 1.8.1 and against this package.

Each scenario in ``tests/legacy/scenarios.py`` runs twice on the session's Redis: in the
1.8.1 virtualenv (a subprocess, as for the interop tests) and here, in-process, with our
package. Both report what an application sees: logger calls and exceptions in order
with where they were raised, the session cookie, what Redis holds, settings, names.
The results must be equal, except where a test names a deliberate difference
(``DELIBERATE:`` below; each is listed in the README's "Differences from 1.8").
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from pyramid_session_redis.exceptions import ConfigurationError
from tests.app import SECRET
from tests.legacy import scenarios
from tests.legacy.environment import (
    LEGACY_VERSION,
    REPO_ROOT,
    LegacyEnvironmentError,
    clean_env,
    ensure_legacy_venv,
)

# The interop tests' virtualenv (same requirements, so built once for both).
LEGACY_REQUIREMENTS = (f"pyramid_session_redis=={LEGACY_VERSION}", "webtest")
LEGACY_VENV = REPO_ROOT / ".cache" / f"legacy-{LEGACY_VERSION}"
SCENARIOS = Path(scenarios.__file__).resolve()

Differential = Callable[[str], tuple[Any, Any]]


@pytest.fixture(scope="session")
def legacy_python() -> Path:
    try:
        return ensure_legacy_venv(LEGACY_VENV, LEGACY_REQUIREMENTS)
    except LegacyEnvironmentError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def differential(legacy_python: Path, redis_url: str, redis_client: redis.Redis) -> Differential:
    """``differential(name)``: the scenario's result under 1.8.1, then under ours."""

    def run(name: str) -> tuple[Any, Any]:
        spec = json.dumps({"redis_url": redis_url, "secret": SECRET})
        result = subprocess.run(
            [str(legacy_python), "-I", str(SCENARIOS), name],
            input=spec,
            cwd=legacy_python.parent,
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(),
            check=False,
        )
        assert result.returncode == 0, f"scenario {name} failed under 1.8.1:\n{result.stderr}"
        legacy = json.loads(result.stdout)
        ours = scenarios.SCENARIOS[name](scenarios.Context(redis_url, SECRET))
        return legacy, json.loads(json.dumps(ours))  # the same JSON types on both sides

    return run


def test_every_scenario_is_tested() -> None:
    tested = {
        name.removeprefix("test_")
        for name, value in globals().items()
        if name.startswith("test_") and callable(value)
    }
    assert set(scenarios.SCENARIOS) <= tested


# ----------------------------------------------------------------- 1. loading time


def test_load_when_evaluated(differential: Differential) -> None:
    """The logger is called, and load errors raise, when ``request.session`` is evaluated."""
    legacy, ours = differential("load_when_evaluated")
    assert ["evaluating request.session"] in ours
    # DELIBERATE (typed errors): an unreachable Redis raises SessionBackendError (1.8 let
    # redis-py's ConnectionError through), at the same moment.
    assert legacy[-1] == ["raised", "ConnectionError"]
    assert ours[-1] == ["raised", "SessionBackendError"]
    assert ours[:-1] == legacy[:-1]


def test_commands_per_request(differential: Differential, native_cas: bool) -> None:
    """No command while ``request.session`` is not evaluated, one load as soon as it is."""
    legacy, ours = differential("commands_per_request")
    # 1.8.1 sometimes rewrites a session it only loaded (SETEX; seen in CI after "evaluated"
    # and after "read"): the expiry it keeps in the payload is in whole seconds, and moves
    # when a request falls in a later second than the session's creation. Its counts are
    # compared with that rewrite taken out (for "read" it replaces the EXPIRE).
    rewritten = {step: counts for step, counts in legacy.items() if step in ("evaluated", "read")}
    for step, counts in rewritten.items():
        if counts.get("setex") == 1 and "expire" not in counts:
            legacy[step] = {name: n for name, n in counts.items() if name != "setex"} | (
                {"expire": 1} if step == "read" else {}
            )
    assert legacy["untouched"] == ours["untouched"] == {}
    assert sum(legacy["evaluated"].values()) == sum(ours["evaluated"].values()) == 1
    # DELIBERATE (fewer commands, GETEX): 1.8.1 as observed, and ours. A loaded session
    # is one GETEX (the TTL slides with the read); a new one is one SET NX EX.
    assert legacy == {
        "create": {"watch": 1, "get": 1, "multi": 1, "setex": 2, "exec": 1},
        "untouched": {},
        "evaluated": {"get": 1},
        "read": {"get": 1, "expire": 1},
        "write": {"get": 1, "setex": 1},
        "invalidate": {"get": 1, "del": 1},
    }
    # The compare-and-set: SET ... IFEQ, or a script whose GET and SET the server counts.
    cas = {"set": 1} if native_cas else {"evalsha": 1, "get": 1, "set": 1}
    assert ours == {
        "create": {"set": 1},
        "untouched": {},
        "evaluated": {"getex": 1},
        "read": {"getex": 1},
        "write": {"getex": 1, **cas},
        "invalidate": {"getex": 1, "del": 1},
    }


# ------------------------------------------------------------ 2. request.cookies


def test_dummy_request_cookies(differential: Differential) -> None:
    legacy, ours = differential("dummy_request_cookies")
    assert legacy["user"] == "alice" and legacy["new"] is False
    assert ours == legacy


# ----------------------------------------------------- 3. configurations 1.8 ran


def test_configurations_1_8_started_with(differential: Differential) -> None:
    legacy, ours = differential("configurations_1_8_started_with")
    assert legacy["pure LRU"]["after expiry"] == 1  # nothing enforced the timeout
    assert ours == legacy


def test_configurations_1_8_started_with_from_ini(differential: Differential) -> None:
    legacy, ours = differential("configurations_1_8_started_with_from_ini")
    assert ours == legacy


def test_configurations_that_start(differential: Differential) -> None:
    """Ours refuses at start-up only what 1.8 refused or could not run."""
    legacy, ours = differential("configurations_that_start")
    assert set(ours) == set(legacy) == set(scenarios.STARTUP_OPTIONS)
    for label, outcome in legacy.items():
        if outcome == "runs":
            assert ours[label] == "runs", label
        else:
            # DELIBERATE (errors at start-up): refused with ConfigurationError, naming the
            # option, where 1.8 raised ValueError/TypeError or started and then failed
            # every request that stored a session.
            assert outcome.startswith(("refused", "starts, storing fails")), label
            assert ours[label] == "refused: ConfigurationError", label
    assert issubclass(ConfigurationError, ValueError)  # 1.8's ValueError still catches it


# ------------------------------------------------------------- 4, 5. ini forms


def test_ini_zero_means_none(differential: Differential) -> None:
    legacy, ours = differential("ini_zero_means_none")
    assert legacy["cookie"]["action"] == "set"
    assert "max-age" not in legacy["cookie"]["attributes"]
    assert ours == legacy


def test_include_coerces_registry_settings(differential: Differential) -> None:
    legacy, ours = differential("include_coerces_registry_settings")
    assert legacy["redis.sessions.serialize"] == "callable dumps"
    assert legacy["redis.sessions.timeout"] == ["str", "0"]  # only dotted names change
    assert ours == legacy


# ------------------------------------------------------------- 6. public names


def test_public_names(differential: Differential) -> None:
    legacy, ours = differential("public_names")
    assert legacy["missing"] == []
    assert ours == legacy


# ------------------------------------------------------ 7. older payload formats


def test_older_payload_formats(differential: Differential) -> None:
    legacy, ours = differential("older_payload_formats")
    for seen in legacy.values():
        assert seen["events"][-1] == ["logger", "InvalidSession_PayloadLegacy"]
    assert ours == legacy


# ------------------------------------------------ 8. cookie_on_exception=False


def test_invalidate_then_raise(differential: Differential) -> None:
    check_invalidate_then_raise(*differential("invalidate_then_raise"))


def test_invalidate_then_raise_from_ini(differential: Differential) -> None:
    check_invalidate_then_raise(*differential("invalidate_then_raise_from_ini"))


def check_invalidate_then_raise(legacy: Any, ours: Any) -> None:
    assert legacy["invalidate"] == {"cookie": "expire", "stored": {"keys": 0}}
    # DELIBERATE (no orphan keys): 1.8 stored the data written after invalidate() under
    # a new id that no cookie points to; ours stores nothing no client can reach.
    orphan = legacy["invalidate and write"]
    assert orphan["cookie"] == "expire" and orphan["stored"]["keys"] == 1
    assert ours["invalidate and write"] == {"cookie": "expire", "stored": {"keys": 0}}
    assert {k: v for k, v in ours.items() if k != "invalidate and write"} == {
        k: v for k, v in legacy.items() if k != "invalidate and write"
    }


# ---------------------------------------------------------- the default codec


def test_default_payload(differential: Differential) -> None:
    legacy, ours = differential("default_payload")
    # DELIBERATE (safe default serializer): 1.8 pickled by default, ours never executes
    # code on load; serialize=pickle.dumps, deserialize=pickle.loads restores 1.8's.
    assert legacy["pickle"] is True and ours["pickle"] is False
    assert {k: ours[k] for k in ("keys", "ttl")} == {k: legacy[k] for k in ("keys", "ttl")}
