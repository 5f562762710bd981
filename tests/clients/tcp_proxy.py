"""A small TCP proxy for resilience tests (threads, no dependencies).

``TcpProxy(target)`` listens on a free loopback port and relays every
connection to ``target``. Its state can be switched while clients are
connected:

* ``forward()``: relay (the initial state). Leaving ``pause`` or ``close``
  drops every connection of the earlier state, so clients reconnect
  through a working relay instead of receiving stale bytes.
* ``pause()``: a *slow* backend: new connections are accepted (the TCP
  handshake succeeds) but never connected upstream, and the bytes of
  existing connections are held, in both directions.
* ``close()``: a *down* backend: the listening socket is closed (new
  connections are refused) and every existing connection is closed.

``stop()`` ends everything (use it at teardown).
"""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1"):
        self.target = target
        self.host = host
        self._lock = threading.Lock()
        self._go = threading.Event()
        self._go.set()
        self._generation = 0
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopped = False
        self.mode = "stopped"
        self.port = 0
        self.accepted = 0

    # -- control -----------------------------------------------------------------------
    def start(self) -> "TcpProxy":
        self._listen()
        self.mode = "forward"
        return self

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def forward(self) -> None:
        with self._lock:
            if self.mode == "forward":
                return
            was = self.mode
            self._drop_connections_locked()
            self.mode = "forward"
            self._go.set()
        if was == "closed":
            self._listen()

    def pause(self) -> None:
        with self._lock:
            self.mode = "pause"
            self._go.clear()

    def close(self) -> None:
        with self._lock:
            self.mode = "closed"
            self._go.clear()
            listener, self._listener = self._listener, None
            self._drop_connections_locked()
        if listener is not None:
            _close(listener)
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)

    def stop(self) -> None:
        self._stopped = True
        self.close()
        self._go.set()  # wake relays so that they notice the end
        self.mode = "stopped"

    # -- internals ---------------------------------------------------------------------
    def _listen(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(64)
        s.settimeout(0.2)
        self.port = s.getsockname()[1]
        with self._lock:
            self._listener = s
        self._accept_thread = threading.Thread(target=self._accept_loop, args=(s,), daemon=True,
                                               name=f"tcp-proxy-accept-{self.port}")
        self._accept_thread.start()

    def _drop_connections_locked(self) -> None:
        self._generation += 1
        socks, self._sockets = self._sockets, []
        for s in socks:
            _close(s)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopped:
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # listener closed
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.accepted += 1
                if self.mode == "closed" or self._stopped:
                    _close(client)
                    continue
                self._sockets.append(client)
                if self.mode == "pause":
                    continue  # held: accepted, never answered
                generation = self._generation
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if generation != self._generation:
                    _close(client)
                    _close(upstream)
                    continue
                self._sockets.append(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, generation), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, generation: int) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                # Paused: hold the bytes (a slow backend) until resumed or dropped.
                while not self._go.wait(0.1):
                    if generation != self._generation or self._stopped:
                        return
                if generation != self._generation or self._stopped:
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
