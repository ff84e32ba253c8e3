"""The cost of session events: no listener vs a listener that does nothing vs logging.

    .venv/bin/python -m benchmarks.events            # about 20 seconds
    .venv/bin/python -m benchmarks.events --quick

Whole read and write requests (WSGI, in process) against a throwaway Redis on a free
127.0.0.1 port, the three variants alternated sample by sample; medians in µs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import webtest

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.events import SessionEvent, log_events
from tests.app import build_wsgi_app
from tests.redis_stats import CommandCounter
from tests.servers import RedisServerProcess, find_server_binary

from .interleaved import Send, time_requests


def ignore(event: SessionEvent) -> None:
    """A listener that does nothing: the cost of building and handing out events."""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.events")
    parser.add_argument("--quick", action="store_true")
    rounds = 50 if parser.parse_args(argv).quick else 500
    logging.getLogger("pyramid_session_redis.events").setLevel(logging.WARNING)  # no output
    with RedisServerProcess(find_server_binary()) as server:
        variants = {"no listener": (), "no-op listener": (ignore,), "log_events": (log_events,)}
        apps = {
            name: webtest.TestApp(
                build_wsgi_app(
                    RedisSessionFactory("secret", redis_url=server.url, event_listeners=listeners)
                )
            )
            for name, listeners in variants.items()
        }
        for app in apps.values():
            app.get("/set", {"key": "n", "value": "0"})
        requests: dict[str, Send] = {
            "read": lambda app, n: app.get("/read", {"key": "n"}),
            "write": lambda app, n: app.get("/set", {"key": "n", "value": str(n)}),
        }
        results = time_requests(apps, requests, rounds, CommandCounter(server.client()))
    json.dump({k: v["us"] for k, v in results.items()}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
