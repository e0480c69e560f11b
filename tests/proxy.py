"""A TCP proxy for fault tests: forwards to a real server, or delays, or drops connections."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class FlakyProxy:
    """Listens on a free loopback port; ``mode`` is "pass", "delay" (``delay`` s) or "drop"."""

    def __init__(self, target_port: int, mode: str = "pass", delay: float = 2.0) -> None:
        self.target_port = target_port
        self.mode = mode
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        if self.mode == "drop":
            client.close()
            return
        if self.mode == "delay":
            time.sleep(self.delay)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        """Forward bytes; the current mode applies to kept-alive connections too."""
        try:
            while data := source.recv(65536):
                if self.mode == "drop":
                    break
                if self.mode == "delay":
                    time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self.listener.close()
