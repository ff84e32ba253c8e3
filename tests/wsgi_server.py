"""A real multi-threaded WSGI server (waitress) in a background thread, and an HTTP client.

``LiveServer`` binds 127.0.0.1 on a port picked by the OS and runs waitress's event loop
in a daemon thread; requests are served by waitress's own worker threads, exactly as in
production. The loop checks a stop flag between polls, so :meth:`LiveServer.stop` is
clean and bounded: the loop thread closes every socket itself, then the workers stop.

``HttpClient`` is one keep-alive ``http.client`` connection with a one-cookie jar: it
sends the session cookie it holds, and applies the ``Set-Cookie`` headers it receives
(``Max-Age=0`` drops the cookie), as a browser would. It never retries a request.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import Morsel, SimpleCookie
from types import TracebackType
from typing import Any

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel

HOST = "127.0.0.1"
LOOP_POLL_SECONDS = 0.05  # how often the event loop looks at the stop flag
STOP_TIMEOUT = 10.0


class LiveServer:
    """``with LiveServer(wsgi_app, threads=8) as server: server.port ...``"""

    def __init__(self, app: Any, *, threads: int = 8, **adjustments: Any) -> None:
        self.app = app
        self.threads = threads
        self.adjustments = adjustments
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.loop_error: BaseException | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.effective_port)

    def start(self) -> LiveServer:
        self._server = waitress.create_server(
            self.app,
            host=HOST,
            port=0,
            threads=self.threads,
            ident="psr-tests",
            **self.adjustments,
        )
        self._thread = threading.Thread(target=self._serve, name="waitress-loop", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        server = self._server
        socket_map = server._map
        try:
            while not self._stopping.is_set() and socket_map:
                wasyncore.loop(timeout=LOOP_POLL_SECONDS, map=socket_map, count=1)
        except BaseException as exc:  # reported by stop()
            self.loop_error = exc
        finally:
            # Close every channel, the listening socket and the trigger from this thread,
            # the only one that touches the socket map.
            for dispatcher in list(socket_map.values()):
                try:
                    if isinstance(dispatcher, HTTPChannel):
                        dispatcher.handle_close()
                    else:
                        dispatcher.close()
                except OSError:
                    pass

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._stopping.set()
        self._thread.join(STOP_TIMEOUT)
        alive = self._thread.is_alive()
        self._server.task_dispatcher.shutdown(timeout=STOP_TIMEOUT)
        self._server = None
        if alive:
            raise RuntimeError("waitress event loop did not stop")
        if self.loop_error is not None:
            raise RuntimeError("waitress event loop failed") from self.loop_error

    def client(self, cookie_name: str = "session", timeout: float = 10.0) -> HttpClient:
        return HttpClient(HOST, self.port, cookie_name=cookie_name, timeout=timeout)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class Reply:
    status: int
    body: bytes
    set_cookies: list[Morsel[str]] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def cookie(self, name: str) -> Morsel[str] | None:
        """The last ``Set-Cookie`` for ``name`` on this response."""
        found = [morsel for morsel in self.set_cookies if morsel.key == name]
        return found[-1] if found else None


def is_expiry(morsel: Morsel[str]) -> bool:
    """A ``Set-Cookie`` that tells the client to drop the cookie now."""
    return morsel["max-age"] == "0"


class HttpClient:
    """One keep-alive connection and one cookie; not thread-safe (one per thread)."""

    def __init__(
        self, host: str, port: int, *, cookie_name: str = "session", timeout: float = 10.0
    ) -> None:
        self.cookie_name = cookie_name
        self.cookie: str | None = None
        self._connection = http.client.HTTPConnection(host, port, timeout=timeout)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Reply:
        url = path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Cookie": f"{self.cookie_name}={self.cookie}"} if self.cookie else {}
        try:
            self._connection.request("GET", url, headers=headers)
            response = self._connection.getresponse()
            body = response.read()
        except BaseException:
            self._connection.close()  # never reuse a connection in an unknown state
            raise
        morsels: list[Morsel[str]] = []
        for header in response.msg.get_all("Set-Cookie") or ():
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            morsels.extend(jar.values())
        reply = Reply(response.status, body, morsels)
        self._apply(reply)
        return reply

    def _apply(self, reply: Reply) -> None:
        morsel = reply.cookie(self.cookie_name)
        if morsel is not None:
            self.cookie = None if is_expiry(morsel) else morsel.value

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
