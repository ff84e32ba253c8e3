"""Run the demo: ``python -m demo [--ini FILE] [--redis-url URL] [--host H] [--port P] [--check]``.

What ``pserve demo/development.ini`` does, through the same PasteDeploy/plaster calls
(logging set up from the ini, the app from ``[app:main]``, waitress with the settings
of ``[server:main]``), plus a Redis: when neither ``--redis-url`` nor the ini names one,
a throwaway server is started (no persistence) and stopped again on exit. The Redis URL
reaches the app as the PasteDeploy variable ``redis_url``, as with
``pserve development.ini redis_url=...``. Serves until Ctrl-C or SIGTERM.

``--check`` starts everything, makes real HTTP requests to itself (see
:mod:`demo.check`), prints the results and exits with 0 when all passed: a smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import plaster
import waitress

from demo.app import INI_PATH, REDIS_URL_VAR
from demo.check import run_check
from demo.throwaway_redis import ServerNotFoundError, ServerStartError, ThrowawayRedis

# Any of these in the ini means "this Redis", so no throwaway server is started.
REDIS_SETTINGS = tuple(
    f"redis.sessions.{name}"
    for name in (
        "redis_url",
        "redis_host",
        "redis_unix_socket_path",
        "redis_connection_pool",
        "redis_client_callable",
        "client_callable",
    )
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo", description="The pyramid_session_redis demo application."
    )
    parser.add_argument("--ini", type=Path, default=INI_PATH, help="default demo/development.ini")
    parser.add_argument(
        "--redis-url",
        help="use this Redis (e.g. redis://127.0.0.1:6379/0), whatever the ini says",
    )
    parser.add_argument("--host", help="listen on this host instead of the ini's")
    parser.add_argument(
        "--port", type=int, help="listen on this port instead of the ini's; 0: a free one"
    )
    parser.add_argument(
        "--check", action="store_true", help="make a few requests to itself, then exit 0/1"
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM shuts down like Ctrl-C


def _stop_redis(server: ThrowawayRedis) -> None:
    server.stop()
    print("demo: throwaway Redis stopped", flush=True)


def configures_redis(settings: Mapping[str, Any]) -> bool:
    return any(settings.get(name) for name in REDIS_SETTINGS)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        loader = plaster.get_loader(str(args.ini.resolve()), protocols=["wsgi"])
        settings = loader.get_wsgi_app_settings("main")
    except (plaster.PlasterError, OSError, LookupError) as exc:
        print(f"demo: cannot read {args.ini}: {exc}", file=sys.stderr)
        return 1
    try:
        with contextlib.ExitStack() as stack:
            variables: dict[str, str] = {}
            if args.redis_url:
                variables[REDIS_URL_VAR] = args.redis_url
            elif not configures_redis(settings):
                server = ThrowawayRedis().start()  # cleans up after itself if it fails
                stack.callback(_stop_redis, server)
                variables[REDIS_URL_VAR] = server.url
                print(f"demo: throwaway Redis ({server.binary}) at {server.url}", flush=True)
            loader.setup_logging(variables)
            app = loader.get_wsgi_app("main", variables)
            listen = server_settings(loader, variables, args)
            if args.check:
                listen.update(listen="127.0.0.1:0" if args.port is None else listen["listen"])
                return run_check(waitress.create_server(app, **listen))
            return serve(app, listen)
    except (ServerNotFoundError, ServerStartError) as exc:
        print(f"demo: cannot start a throwaway Redis: {exc}", file=sys.stderr)
        print("demo: or pass --redis-url redis://HOST:PORT/DB", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def server_settings(
    loader: Any, variables: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """waitress's options from ``[server:main]``, with ``--host``/``--port`` applied."""
    options = dict(loader.get_settings("server:main", variables))
    options.pop("use", None)
    if args.host is not None or args.port is not None:
        host, _, port = options.pop("listen", "127.0.0.1:6543").rpartition(":")
        host = args.host if args.host is not None else host or "127.0.0.1"
        port = str(args.port) if args.port is not None else port
        options.pop("host", None)
        options.pop("port", None)
        options["listen"] = f"{host}:{port}"
    return options


def serve(app: Any, options: dict[str, Any]) -> int:
    """Serve ``app`` with waitress until Ctrl-C / SIGTERM."""
    try:
        server = waitress.create_server(app, **options)
    except OSError as exc:
        print(
            f"demo: cannot listen on {options.get('listen')}: {exc} (try --port)", file=sys.stderr
        )
        return 1
    host, port = server.effective_host, server.effective_port  # type: ignore[union-attr]
    print(f"demo: serving on http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.run()  # returns on KeyboardInterrupt (Ctrl-C, or SIGTERM via _interrupt)
    finally:
        server.close()
    print("demo: stopped serving", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
