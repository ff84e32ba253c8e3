"""The tool's commands: ``stats``, ``show``, ``revoke``, ``revoke-user``, ``purge-expired``.

Each takes the :class:`~.target.Target` and the parsed arguments, prints its report on
stdout and returns the exit code.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from typing import Any

from pyramid.interfaces import ISessionFactory
from pyramid.registry import Registry
from pyramid.request import Request

from ..codec import DecodeError, SessionRecord
from ..integrity import codec_for_key
from ..store import CasOutcome
from ..users import list_user_sessions, revoke_user_sessions
from .stats import HEAD_BYTES, SessionStats, encoding_of, format_stats
from .target import Target
from .walk import pipelined, walk

NOT_FOUND = 1


def stats(target: Target, args: argparse.Namespace) -> int:
    nodes = target.nodes()
    summary = SessionStats()
    for node, keys in walk(nodes, target.pattern, args.progress):
        for ttl, size, head in pipelined(
            node, keys, ("TTL",), ("STRLEN",), ("GETRANGE", 0, HEAD_BYTES - 1)
        ):
            if ttl == -2:
                continue  # expired or deleted since the SCAN
            if isinstance(size, Exception) or isinstance(head, Exception):
                summary.add(0, ttl, None)
            else:
                summary.add(size, ttl, head)
    if args.json:
        report = {"pattern": target.pattern, "nodes": len(nodes), **summary.as_dict()}
        print(json.dumps(report, indent=2))
    else:
        print(format_stats(summary, target.pattern, target.where, len(nodes)))
    return 0


def _when(epoch: int | None) -> str | None:
    if epoch is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def redacted(value: Any) -> str:
    """What ``show`` prints instead of a value: its type and size, never its content."""
    kind = type(value).__name__
    if isinstance(value, str):
        return f"{kind}, {len(value)} characters"
    if isinstance(value, bytes):
        return f"{kind}, {len(value)} bytes"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return f"{kind}, {len(value)} items"
    return kind


def show(target: Target, args: argparse.Namespace) -> int:
    factory = target.factory
    key = factory.key(args.id)
    with target.client_for(key).pipeline(transaction=False) as pipe:
        raw, ttl = pipe.get(key).ttl(key).execute()
    label = factory.log_id(args.id)
    if raw is None:
        print(f"no session with that id (keyed hash {label})")
        return NOT_FOUND
    try:
        record: SessionRecord | None = codec_for_key(factory.codec, key).decode(raw)
        problem = None
    except DecodeError as exc:
        record, problem = None, str(exc)
    report: dict[str, Any] = {
        "session": label,
        "stored_bytes": len(raw),
        "encoding": encoding_of(raw[:HEAD_BYTES]),
        "ttl": None if ttl < 0 else ttl,
    }
    if record is None:
        report["error"] = f"cannot be decoded: {problem}"
    else:
        report.update(
            created=_when(record.created),
            # stored only when it differs from the factory's
            timeout=record.timeout if record.timeout is not None else factory.settings.timeout,
            payload_expires=_when(record.expires),
            data=record.data if args.reveal else {k: redacted(v) for k, v in record.data.items()},
        )
    if args.json:
        print(json.dumps(report, indent=2, default=repr))
    else:
        print(format_show(report, args.reveal))
    return 0 if record is not None else 1


def format_show(report: dict[str, Any], revealed: bool) -> str:
    data = report.pop("data", None)
    width = max(len(name) for name in report)
    lines = [
        f"{name:<{width}}  {'none' if value is None else value}" for name, value in report.items()
    ]
    if data is not None:
        note = "" if revealed else " (values redacted; --reveal shows them)"
        lines.append(f"data{note}:")
        if revealed:
            text = json.dumps(data, indent=2, default=repr, ensure_ascii=False)
            lines += ["  " + line for line in text.splitlines()]
        else:
            names = max((len(name) for name in data), default=0)
            lines += [f"  {name:<{names}}  {value}" for name, value in data.items()]
    return "\n".join(lines)


def revoke(target: Target, args: argparse.Namespace) -> int:
    factory = target.factory
    key = factory.key(args.id)
    label, client = factory.log_id(args.id), target.client_for(key)
    if args.dry_run:
        exists = bool(client.exists(key))
        print(f"would revoke session {label}" if exists else f"no session with that id ({label})")
        return 0 if exists else NOT_FOUND
    if not client.delete(key):
        print(f"no session with that id (keyed hash {label})")
        return NOT_FOUND
    print(f"revoked session {label}")
    return 0


def purge_expired(target: Target, args: argparse.Namespace) -> int:
    """Delete the sessions whose payload says they expired (LRU mode keeps no TTL).

    Each deletion is a compare-and-delete of the bytes that were judged expired: a
    session refreshed in the meantime is left alone.
    """
    codec, now = target.factory.codec, int(time.time())
    examined = expired = deleted = changed = undecodable = 0
    for node, keys in walk(target.nodes(), target.pattern, args.progress):
        store = target.store(node)
        for key, (raw,) in zip(keys, pipelined(node, keys, ("GET",)), strict=True):
            if raw is None or isinstance(raw, Exception):
                continue  # gone since the SCAN, or not a string
            examined += 1
            try:
                name = key.decode("utf-8")
                record = codec_for_key(codec, name).decode(raw)
            except (DecodeError, UnicodeDecodeError):
                undecodable += 1
                continue
            if record.expires is None or record.expires > now:
                continue
            expired += 1
            if args.dry_run:
                continue
            outcome, _ = store.compare_and_delete(name, raw)
            if outcome is CasOutcome.WRITTEN:
                deleted += 1
            elif outcome is CasOutcome.CONFLICT:
                changed += 1
    verb = "would delete" if args.dry_run else f"deleted {deleted}"
    print(
        f"examined {examined} sessions: {expired} expired by their payload ({verb}), "
        f"{changed} changed meanwhile (kept), {undecodable} undecodable (left alone)"
    )
    return 0


def revoke_user(target: Target, args: argparse.Namespace) -> int:
    """Log a user out everywhere: every session in the user's index (``bind_user``)."""
    # A blank request, as pyramid.paster.bootstrap gives a script: a factory with
    # redis_client_callable needs one (the callable takes it); it has no session cookie.
    registry = Registry()
    registry.registerUtility(target.factory, ISessionFactory)
    request = Request.blank("/")
    request.registry = registry
    if args.dry_run:
        found = len(list_user_sessions(request, args.userid))
        print(f"would revoke {found} sessions of user {args.userid!r}")
    else:
        found = revoke_user_sessions(request, args.userid)
        print(f"revoked {found} sessions of user {args.userid!r}")
    return 0 if found else NOT_FOUND
