"""Count the commands a Redis server executed, as the server itself reports them.

``INFO commandstats`` lists one line per command, e.g.::

    cmdstat_get:calls=1,usec=2,usec_per_call=2.00,rejected_calls=0,failed_calls=0
    cmdstat_config|resetstat:calls=1,usec=40,usec_per_call=40.00,rejected_calls=0,failed_calls=0

A command is counted once per time the server received it: ``calls`` plus
``rejected_calls`` (wrong arity, OOM...).  Commands the server does not know
(e.g. a renamed-away GETEX) do not appear at all.
"""

from __future__ import annotations

import contextlib
import inspect
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

STAT_PREFIX = "cmdstat_"
# Sent once per new connection by redis-py, not per request: counted apart.
HANDSHAKE_COMMANDS = frozenset({"hello", "client|setinfo", "auth", "select"})


@dataclass(frozen=True)
class CommandStat:
    calls: int = 0
    rejected_calls: int = 0
    failed_calls: int = 0
    usec: int = 0

    @property
    def received(self) -> int:
        """How many times the server received the command."""
        return self.calls + self.rejected_calls


def parse_commandstats(text: str | bytes) -> dict[str, CommandStat]:
    """Parse raw ``INFO commandstats`` output into ``{lowercase name: CommandStat}``.

    Subcommands keep their ``container|sub`` form (``config|resetstat``).
    Section headers, blank lines and unknown fields are ignored.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    stats: dict[str, CommandStat] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line.startswith(STAT_PREFIX) or ":" not in line:
            continue
        name, _, fields = line[len(STAT_PREFIX) :].partition(":")
        values: dict[str, int] = {}
        for item in fields.split(","):
            key, _, value = item.partition("=")
            if key in ("calls", "rejected_calls", "failed_calls", "usec"):
                values[key] = int(value)
        stats[name.lower()] = CommandStat(**values)
    return stats


def received_counts(stats: dict[str, CommandStat]) -> dict[str, int]:
    """``{name: calls + rejected_calls}``, leaving out commands never received."""
    return {name: stat.received for name, stat in stats.items() if stat.received}


@dataclass
class Measurement:
    """What :meth:`CommandCounter.measure` saw; filled when the ``with`` block ends."""

    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# No CLIENT SETINFO handshake: redis-py 7+ takes ``driver_info=None``; older versions
# (which lack that argument) take ``lib_name=None, lib_version=None``.
_NO_CLIENT_SETINFO: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(redis.Redis.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)


class CommandCounter:
    """Server-side command counter that leaves its own commands out of the counts.

    It uses a private connection that sends no handshake (no CLIENT SETINFO) and
    subtracts exactly what it sent itself: one ``config|resetstat`` per
    :meth:`reset` and one ``info`` per earlier :meth:`counts` (the server counts a
    command only after replying, so an INFO never sees itself).
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        # Raw text in, our own parser out (instead of redis-py's INFO parsing).
        self._client.set_response_callback("INFO", _identity)
        self._own: Counter[str] = Counter()

    @classmethod
    def for_port(cls, port: int, host: str = "127.0.0.1") -> CommandCounter:
        client = redis.Redis(
            host=host, port=port, single_connection_client=True, **_NO_CLIENT_SETINFO
        )
        return cls(client)

    def reset(self) -> None:
        """Zero the server's command statistics (``CONFIG RESETSTAT``)."""
        self._client.config_resetstat()
        self._own = Counter({"config|resetstat": 1})

    def stats(self) -> dict[str, CommandStat]:
        """Full per-command statistics since the last reset, own commands removed."""
        raw = self._client.execute_command("INFO", "commandstats")
        stats = parse_commandstats(raw)
        own = self._own.copy()
        self._own["info"] += 1
        for name, mine in own.items():
            stat = stats.get(name)
            if stat is None:
                continue
            calls = max(stat.calls - mine, 0)
            stats[name] = CommandStat(calls, stat.rejected_calls, stat.failed_calls, stat.usec)
        return stats

    def counts(self, include_handshakes: bool = False) -> dict[str, int]:
        """``{"getex": 1, "set": 1}``: lowercase names, times received since the last reset.

        Connection handshakes (HELLO, CLIENT SETINFO...) are left out unless asked for.
        """
        counts = received_counts(self.stats())
        if include_handshakes:
            return counts
        return {name: n for name, n in counts.items() if name not in HANDSHAKE_COMMANDS}

    def total(self) -> int:
        return sum(self.counts().values())

    @contextlib.contextmanager
    def measure(self) -> Iterator[Measurement]:
        """``with counter.measure() as m: ...`` then ``m.counts`` / ``m.total``."""
        measurement = Measurement()
        self.reset()
        yield measurement
        measurement.counts = self.counts()

    def close(self) -> None:
        self._client.close()


def _identity(response: Any, **options: Any) -> Any:
    return response
