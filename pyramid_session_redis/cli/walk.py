"""Walking the session keys: SCAN (never KEYS) on every server, in batches, with a
progress bar on long walks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

BATCH = 500  # keys per SCAN step and per pipeline


def walk(
    nodes: list[Any], pattern: str, progress: bool | None
) -> Iterator[tuple[Any, list[bytes]]]:
    """``(node, keys)`` batches of the keys matching ``pattern`` on each node.

    Each key is yielded once (SCAN may return a key twice while Redis rehashes).
    ``progress``: True shows a bar on stderr, False never, None only on a terminal. The
    bar counts against DBSIZE, so keys not matching the pattern move it along too.
    """
    total = sum(int(node.dbsize()) for node in nodes)
    with tqdm(total=total, unit="key", disable=None if progress is None else not progress) as bar:
        for node in nodes:
            seen: set[bytes] = set()
            cursor, start = 0, bar.n
            while True:
                cursor, keys = node.scan(cursor, match=pattern, count=BATCH)
                fresh = [key for key in keys if key not in seen]
                seen.update(fresh)
                if fresh:
                    yield node, fresh
                bar.update(min(len(keys), max(bar.total - bar.n, 0)))
                if cursor == 0:
                    break
            bar.update(max(start + int(node.dbsize()) - bar.n, 0))


def pipelined(node: Any, keys: list[bytes], *commands: tuple[Any, ...]) -> list[list[Any]]:
    """For each key, the replies to ``commands`` in one round trip: ``("TTL",)``,
    ``("GETRANGE", 0, 0)``... (the key goes after the command's name). An error reply (a
    key of another type) is returned as the exception instead of raised."""
    with node.pipeline(transaction=False) as pipe:
        for key in keys:
            for name, *args in commands:
                pipe.execute_command(name, key, *args)
        replies: list[Any] = pipe.execute(raise_on_error=False)
    width = len(commands)
    return [replies[n : n + width] for n in range(0, len(replies), width)]
