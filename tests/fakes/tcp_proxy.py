"""A TCP proxy on 127.0.0.1 in front of a real server, whose plug a test can pull: ``cut(seconds)`` drops
every open connection and refuses new ones (accepted, then closed at once) until the time is up.

A project's ``script_worker.py`` finds a running proxy by its port in ``PROXIES``, so a run in the test's
own process can take its warehouse away at a chosen point between tasks.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

PROXIES: dict[int, TcpProxy] = {}


class TcpProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down_until = 0.0
        self.refused = 0
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True)

    def start(self) -> TcpProxy:
        PROXIES[self.port] = self
        self._thread.start()
        return self

    def stop(self) -> None:
        PROXIES.pop(self.port, None)
        self.listener.close()
        self._drop_all()

    def cut(self, seconds: float) -> None:
        """Drop every connection now, and refuse new ones for ``seconds``."""
        self.down_until = time.monotonic() + seconds
        self._drop_all()

    @property
    def down(self) -> bool:
        return time.monotonic() < self.down_until

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                self.refused += 1
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def proxy_to(port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
