"""A TCP relay on 127.0.0.1 to a real server that can lose one reply on request.

``lose_reply_to(b"EVALSHA", b"IFEQ")``: the next command that holds any of those bytes
reaches the server and runs, and the relay then closes the client's connection instead
of passing the reply on (a network fault after the write, the case a resend gets wrong).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class LossyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._markers: tuple[bytes, ...] = ()
        self._lock = threading.Lock()
        self.lost = 0  # replies lost so far
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_reply_to(self, *markers: bytes) -> None:
        with self._lock:
            self._markers = markers

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            losing = threading.Event()  # set: the next reply on this connection is lost
            for source, target, outbound in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, target, outbound, losing), daemon=True
                ).start()

    def _pump(
        self, source: socket.socket, target: socket.socket, outbound: bool, losing: threading.Event
    ) -> None:
        """Bytes one way until either side closes (then both are closed)."""
        try:
            while data := source.recv(65536):
                if outbound:
                    with self._lock:
                        if any(marker in data for marker in self._markers):
                            self._markers = ()
                            losing.set()
                elif losing.is_set():
                    self.lost += 1
                    return  # the command ran; its reply is never delivered
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.listener.close()

    def __enter__(self) -> LossyProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
