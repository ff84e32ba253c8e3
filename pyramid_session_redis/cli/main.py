"""``pyramid-session-redis``: look at and manage the sessions of an application.

    pyramid-session-redis -c development.ini stats
    pyramid-session-redis -c development.ini show ID [--reveal]
    pyramid-session-redis -c development.ini revoke ID
    pyramid-session-redis -c development.ini revoke-user USERID
    pyramid-session-redis -c development.ini purge-expired [--dry-run]
    pyramid-session-redis --redis-url redis://127.0.0.1:6379/0 --prefix app1: stats

Exit codes: 0 done, 1 no such session or no session of that user (or Redis failed
mid-way), 2 bad arguments, ini
file, settings or Redis URL, or Redis unreachable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import redis

from ..exceptions import SessionBackendError
from . import commands
from .target import Target, TargetError, open_target

PROG = "pyramid-session-redis"
USAGE_ERROR = 2
COMMANDS: dict[str, Callable[[Target, argparse.Namespace], int]] = {
    "stats": commands.stats,
    "show": commands.show,
    "revoke": commands.revoke,
    "revoke-user": commands.revoke_user,
    "purge-expired": commands.purge_expired,
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG,
        description="Look at and manage the Redis sessions of a Pyramid application.",
    )
    top.add_argument(
        "-c",
        "--config",
        metavar="CONFIG_URI",
        help="the application's ini file, as for pshell (e.g. development.ini#main)",
    )
    top.add_argument("--redis-url", help="this Redis instead of the one the ini file names")
    top.add_argument("--prefix", help="the session id prefix to walk (default: the ini's)")
    top.add_argument("--match", help="a SCAN MATCH pattern instead of PREFIX*")
    bar = top.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress", action="store_true", default=None, help="always show the progress bar"
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show it")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stats = sub.add_parser("stats", help="count, sizes, TTLs and encodings of the sessions")
    stats.add_argument("--json", action="store_true", help="print JSON")
    show = sub.add_parser("show", help="one session, values redacted")
    show.add_argument("id", help="the session id (from the cookie, unsigned)")
    show.add_argument("--reveal", action="store_true", help="print the values too")
    show.add_argument("--json", action="store_true", help="print JSON")
    revoke = sub.add_parser("revoke", help="delete one session (its user is logged out)")
    revoke.add_argument("id", help="the session id")
    revoke.add_argument("--dry-run", action="store_true", help="only say whether it exists")
    revoke_user = sub.add_parser(
        "revoke-user", help="delete every session bound to a user (log out everywhere)"
    )
    revoke_user.add_argument("userid", help="the user id the application bound (bind_user)")
    revoke_user.add_argument("--dry-run", action="store_true", help="only count them")
    purge = sub.add_parser(
        "purge-expired", help="delete sessions whose payload expiry has passed (LRU mode)"
    )
    purge.add_argument("--dry-run", action="store_true", help="count only, delete nothing")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        target = open_target(args.config, args.redis_url, args.prefix, args.match)
    except TargetError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        return COMMANDS[args.command](target, args)
    except (redis.RedisError, SessionBackendError, OSError) as exc:
        print(f"{PROG}: Redis failed at {target.where}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        target.close()
