"""Session ids and their Redis keys: derived secrets, opaque keys, same-slot new ids.

- :func:`derive_key` turns the factory's ``secret`` into a key for one purpose, so that
  no two uses share a key (the cookie signature, log ids, storage keys, payload MACs).
- :class:`StorageKeys` maps a session id to its Redis key: the id itself, or with
  ``hash_keys`` an HMAC of it, so that a dump of Redis holds no usable cookie.
- :func:`same_slot_id` picks the id that ``regenerate_id()`` moves a session to: its
  key lies in the Redis Cluster hash slot of the old key, so that one single-slot script
  can write the new key and delete the old one.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Sequence

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from .lock import TAG_SEARCH_LIMIT, hash_tag

Secret = str | bytes | Sequence[str | bytes]
STORAGE_KEY_PURPOSE = "storage-key"
PAYLOAD_MAC_PURPOSE = "payload-mac"
SAME_SLOT_ATTEMPTS = 8


def current_secret(secret: Secret) -> bytes:
    """The secret that signs now, as bytes: the first one of a list (rotation)."""
    if not isinstance(secret, (str, bytes)):
        if not secret:
            raise ValueError("an empty list of secrets")
        secret = secret[0]
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def derive_key(secret: Secret, purpose: str) -> bytes:
    """A 32-byte key for ``purpose``, derived from the current ``secret``."""
    label = f"pyramid_session_redis.{purpose}:".encode()
    return hmac.new(current_secret(secret), label, hashlib.sha256).digest()


def slot_of(key: str) -> int:
    """The Redis Cluster hash slot of ``key`` (hashed as UTF-8, the default encoding)."""
    return int(key_slot(key.encode("utf-8", "surrogateescape")))


@functools.cache
def slot_tags() -> tuple[str, ...]:
    """For every hash slot, the tag :func:`~.lock.tag_for_slot` finds for it.

    Built in one pass over ``psr0``, ``psr1``... (about 160,000 of them, 0.2 s) once per
    process: searching per slot took 10 ms on average (50 ms at worst) for each slot seen
    the first time, and logins spread over all 16,384 slots (benchmarks/security.py).
    """
    found: dict[int, str] = {}
    for n in range(TAG_SEARCH_LIMIT):
        tag = f"psr{n}"
        found.setdefault(slot_of(tag), tag)
        if len(found) == REDIS_CLUSTER_HASH_SLOTS:
            break
    return tuple(found[slot] for slot in range(REDIS_CLUSTER_HASH_SLOTS))


class StorageKeys:
    """``key(session_id)``: the Redis key of a session.

    Without a ``hash_key`` it is the id itself. With one (``hash_keys``) it is
    ``prefix`` + the id's own hash tag, if it has one + 64 hex digits of
    HMAC-SHA256(hash_key, id): the prefix keeps the keys of one application together
    (and its hash tag, if it holds one), and a tag the id carries (see
    :func:`same_slot_id`) keeps the key in the id's slot. Neither reveals the id.
    """

    __slots__ = ("_hmac", "_prefix")

    def __init__(self, hash_key: bytes | None, prefix: str | None) -> None:
        self._hmac = None if hash_key is None else hmac.new(hash_key, digestmod=hashlib.sha256)
        self._prefix = prefix or ""

    def __call__(self, session_id: str) -> str:
        keyed = self._hmac
        if keyed is None:
            return session_id
        mac = keyed.copy()
        mac.update(session_id.encode("utf-8", "surrogateescape"))
        prefix = self._prefix
        tag = hash_tag(session_id) if hash_tag(prefix) is None else None
        return prefix + ("" if tag is None else "{" + tag + "}") + mac.hexdigest()


def same_slot_id(
    new_id: Callable[[], str], key_of: Callable[[str], str], old_key: str, prefix: str | None
) -> str:
    """A fresh id whose key (``key_of``) is in the hash slot of ``old_key``.

    A fresh id from ``new_id`` whose key already is there is taken as it is (ids with a
    common hash tag, e.g. in the ``prefix``). Otherwise the id gets, after the prefix, a
    hash tag for that slot: the tag of ``old_key`` if it has one, else the first of
    ``psr0``, ``psr1``... in the slot (:func:`slot_tags`, as the lock keys use). A
    session keeps its tag across regenerations. The tag says nothing of the id: the
    random part stays whole.
    """
    slot = slot_of(old_key)
    tag = hash_tag(old_key)
    if tag is None:
        tag = slot_tags()[slot]
    head = prefix or ""
    for _ in range(SAME_SLOT_ATTEMPTS):
        candidate = new_id()
        if slot_of(key_of(candidate)) == slot:
            return candidate
        start = len(head) if candidate.startswith(head) else 0
        tagged = candidate[:start] + "{" + tag + "}" + candidate[start:]
        if slot_of(key_of(tagged)) == slot:
            return tagged
    # Only a prefix whose "{" opens no tag defeats ours: settings refuse one at start-up.
    raise ValueError(f"no session id found in the hash slot {slot} of the old key")
