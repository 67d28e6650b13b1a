"""A TCP proxy that breaks the network on command: the market's flaky uplink, in a box.

Put it between the agent and the broker; then ``drop()`` (close every connection
with FIN), ``reset()`` (close with RST), ``blackhole(True)`` (bytes vanish both
ways while the sockets stay open: what a dead mobile link looks like),
``delay(s)`` (each chunk waits ``s`` before it is forwarded) and ``refuse(True)``
(new connections are closed at once). Used by the test suite and ``bench/``.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time


class FaultProxy:
    def __init__(
        self, target_port: int, target_host: str = "127.0.0.1", listen_port: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", listen_port))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._blackhole = False
        self._refuse = False
        self._delay = 0.0
        self._closed = False
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, name="faultproxy", daemon=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed = True
        self.drop()
        self._thread.join(timeout=2)
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- faults -------------------------------------------------------------------------------
    def drop(self) -> None:
        self._close_all(rst=False)

    def reset(self) -> None:
        self._close_all(rst=True)

    def blackhole(self, on: bool = True) -> None:
        self._blackhole = on

    def refuse(self, on: bool = True) -> None:
        self._refuse = on

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def heal(self) -> None:
        self._blackhole = self._refuse = False
        self._delay = 0.0

    def _close_all(self, rst: bool) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    if rst:
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                    else:
                        sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    # -- plumbing -----------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refuse:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self.connections += 1
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._closed:
                try:
                    readable, _w, _x = select.select(list(peers), [], [], 0.2)
                except (OSError, ValueError):
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if self._blackhole:
                        continue  # swallowed: neither side hears anything
                    if self._delay:
                        time.sleep(self._delay)
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in (a, b):
                try:
                    sock.close()
                except OSError:
                    pass
            with self._lock:
                self._pairs = [p for p in self._pairs if p != (a, b)]
