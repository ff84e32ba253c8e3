"""Commands routed to independent servers by their key's hash slot (``shards``).

:class:`ShardedChannel` is a :class:`~.channel.CommandChannel` over one channel per
shard and the slot table of :mod:`.sharding`. Every command the store sends touches
keys of one slot, so each goes to one server whole, scripts included; a server that is
down fails only the commands routed to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.crc import key_slot

from .channel import Command, CommandChannel, command_name
from .keys import slot_of

_SCRIPT_CALLS = frozenset((b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO"))


class UnroutableCommand(ValueError):
    """A command without a key: no shard can be chosen for it."""


def command_key(command: Command) -> Any:
    """The key a command is routed by: the first key of a script call, else ``args[1]``."""
    name = command_name(command)
    if name in _SCRIPT_CALLS:
        if len(command) > 3 and int(command[2]) > 0:
            return command[3]
    elif len(command) > 1:
        return command[1]
    raise UnroutableCommand(f"{name.decode(errors='replace')} has no key to route it by")


def slot_of_key(key: Any) -> int:
    if isinstance(key, str):
        return slot_of(key)
    if isinstance(key, bytes):
        return int(key_slot(key))
    return slot_of(str(key))


class ShardedChannel:
    """One channel per shard; ``table[slot]`` is the index of the shard holding ``slot``."""

    def __init__(self, channels: Sequence[CommandChannel], table: Sequence[int]) -> None:
        self.channels = tuple(channels)
        self.table = tuple(table)

    def shard_of(self, command: Command) -> int:
        """The index of the shard ``command`` goes to."""
        return self.table[slot_of_key(command_key(command))]

    def execute(self, *args: Any) -> Any:
        return self.channels[self.shard_of(args)].execute(*args)

    def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        """One round trip per shard involved (one after another); replies in order.

        A failing shard raises its error for the whole call, as one server would; the
        commands of the shards asked before it have run (as in a Cluster pipeline).
        """
        groups: dict[int, list[int]] = {}
        for position, command in enumerate(commands):
            groups.setdefault(self.shard_of(command), []).append(position)
        if len(groups) == 1:
            (shard,) = groups
            return self.channels[shard].execute_many(commands)
        replies: list[Any] = [None] * len(commands)
        for shard, positions in groups.items():
            answered = self.channels[shard].execute_many([commands[i] for i in positions])
            for position, reply in zip(positions, answered, strict=True):
                replies[position] = reply
        return replies
