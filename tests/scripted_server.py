"""A RESP server on 127.0.0.1 that follows a script: for faults no real server makes.

It answers redis-py's handshake (``HELLO`` with the protocol asked for, ``CLIENT ...``
with ``+OK``) and then each command by the first action left in the script for its
name (the last one stays):

- ``"reply"``: ``+PONG`` to PING, ``+OK`` to anything else;
- ``"drop"``: close without sending a byte;
- ``"half"``: send half a reply, then close;
- ``"close_after"``: reply, then close (the connection dies while idle);
- bytes: sent as they are (a crafted reply).

Every command after the handshake is recorded in ``seen`` (``b"SET a 1"``).
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

Action = str | bytes


class ScriptedServer:
    def __init__(self, script: dict[bytes, list[Action]] | None = None) -> None:
        self.script = script or {}
        self.seen: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, protocol: int = 2) -> str:
        return f"redis://127.0.0.1:{self.port}/0?protocol={protocol}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as stream:
            while True:
                header = stream.readline()
                if not header.startswith(b"*"):
                    return
                args = []
                for _ in range(int(header[1:])):
                    size = int(stream.readline()[1:])
                    args.append(stream.read(size + 2)[:-2])
                if not self._answer(conn, args):
                    return

    def _answer(self, conn: socket.socket, args: list[bytes]) -> bool:
        """Follow the script for one command; False once the connection is to be closed."""
        name = args[0].upper()
        if name == b"HELLO":
            conn.sendall(b"%1\r\n$5\r\nproto\r\n:" + args[1] + b"\r\n")
            return True
        if name == b"CLIENT":  # CLIENT SETINFO ..., CLIENT MAINT_NOTIFICATIONS ...
            conn.sendall(b"+OK\r\n")
            return True
        self.seen.append(b" ".join(args))
        actions = self.script.get(name) or ["reply"]
        action = actions.pop(0) if len(actions) > 1 else actions[0]
        if isinstance(action, bytes):
            conn.sendall(action)
            return True
        if action == "drop":
            return False
        if action == "half":
            conn.sendall(b"+O")
            return False
        conn.sendall(b"+PONG\r\n" if name == b"PING" else b"+OK\r\n")
        return action != "close_after"

    def close(self) -> None:
        self.listener.close()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
