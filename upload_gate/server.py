"""`upload-gate serve`: one gate per host, for every worker process on it (the sidecar).

PHP-FPM keeps no state between requests and a Node cluster is N processes: neither can hold
a gate of its own without enforcing N shares per host. The sidecar holds one UploadGate and
one status reporter for the host and answers HTTP/1.1 with JSON, keep-alive, on a Unix
socket (default) or a 127.0.0.1 port. The wire protocol is in docs/upload-gate.md
("The sidecar").

    POST /v1/admit    {"client_id": "theirstory", "size_bytes": 104857600}
    POST /v1/release  {"lease_id": "...", "outcome": "completed"}
    POST /v1/renew    {"lease_id": "..."}
    GET  /healthz     GET /metrics

One thread serves every connection (an epoll loop, edge-triggered, non-blocking sockets): a
worker keeps its connection open, and a request costs its share of a recv, a parse, the
decision and its share of a send. Decisions are in memory, so nothing waits behind another
for long; with many busy workers one wake-up answers several of them, and no GIL passes
between connection threads (a thread per connection spent twice the CPU per request with
four busy clients). In Redis mode a decision waits its round trip, so the host's decisions
are made one after another: thousands per second, far above the uploads a host starts. The
HTTP/1.1 reader and writer are wire.py's. Anything malformed gets a 400 JSON answer; a
connection whose framing cannot be trusted any more is answered and closed; nothing a
client sends stops the process.

Leases are handed out by opaque id (`<process token>-<number>`). A worker that dies holding
leases never releases them: they end by the gate's lease timeout, counted timed_out.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .service import GateService, LeaseBook
from .wire import Connection

log = logging.getLogger("upload_gate.server")

DEFAULT_SOCKET_PATH = "/run/upload-gate/gate.sock"
# Registered once per connection, edge-triggered (as nginx does): an event is taken to the
# end, and writability is told too, for answers a full socket could not take at once.
CONNECTION_EVENTS = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
READ_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
PEER_SHUT_EVENTS = select.EPOLLRDHUP | select.EPOLLHUP
__all__ = ["DEFAULT_SOCKET_PATH", "GateService", "LeaseBook", "SidecarServer"]


# -- the process ---------------------------------------------------------------------------
class SidecarServer:
    """Listens, accepts, serves every connection from one event loop; sweeps expired leases."""

    def __init__(
        self,
        service: GateService,
        *,
        socket_path: str | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        socket_mode: int = 0o660,
        idle_timeout_seconds: float = 120.0,
        max_connections: int = 2048,
        sweep_interval_seconds: float = 1.0,
    ) -> None:
        if (socket_path is None) == (port is None):
            raise ValueError("listen on a socket path or on a port, not both")
        self.service = service
        self.socket_path = socket_path
        self.idle_timeout_seconds = idle_timeout_seconds
        self.sweep_interval_seconds = sweep_interval_seconds
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._epoll = select.epoll()
        self._connections: dict[int, Connection] = {}  # by file descriptor
        # close() writes a byte here, so the loop stops at once instead of at its next tick.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._epoll.register(self._wake_reader.fileno(), select.EPOLLIN)
        # How often the loop looks for idle connections: a fraction of the idle timeout.
        self._idle_check_seconds = min(0.5, max(0.005, idle_timeout_seconds / 4))
        self.listener = _unix_listener(socket_path, socket_mode) if socket_path else _tcp_listener(host, port or 0)
        self.address = socket_path or f"{host}:{self.listener.getsockname()[1]}"

    @property
    def port(self) -> int | None:
        return None if self.socket_path else self.listener.getsockname()[1]

    def start(self) -> None:
        loops = (
            (self._accept_loop, "upload-gate-accept"),
            (self._event_loop, "upload-gate-connections"),
            (self._sweep_loop, "upload-gate-sweep"),
        )
        for target, name in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def serve_forever(self) -> None:
        self.start()
        self._stop.wait()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _address = self.listener.accept()
            except OSError as exc:
                if self._stop.is_set():
                    return
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("cannot accept a connection: %s", exc)
                    time.sleep(0.05)
                continue
            if not self._slots.acquire(blocking=False):
                log.warning("too many connections; closing a new one")
                sock.close()
                continue
            self._adopt(sock)

    def _adopt(self, sock: socket.socket) -> None:
        """Hand a new connection to the event loop."""
        try:
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection(sock, self.service)
            fd = sock.fileno()
            self._connections[fd] = connection  # before epoll can report it
            self._epoll.register(fd, CONNECTION_EVENTS)
        except OSError as exc:  # closed at once, or the loop is stopping
            log.warning("cannot serve a new connection: %s", exc)
            self._connections.pop(sock.fileno(), None)
            sock.close()
            self._slots.release()

    def _event_loop(self) -> None:
        connections = self._connections
        poll = self._epoll.poll
        next_idle_check = time.monotonic() + self._idle_check_seconds
        while not self._stop.is_set():
            try:
                events = poll(self._idle_check_seconds)
            except InterruptedError:
                continue
            except OSError:  # closed by close()
                return
            for fd, mask in events:
                connection = connections.get(fd)
                if connection is None:
                    continue
                if mask & READ_EVENTS:
                    self._drive(fd, connection, connection.readable, mask & PEER_SHUT_EVENTS)
                else:
                    self._drive(fd, connection, connection.writable)
            now = time.monotonic()
            if now >= next_idle_check:
                next_idle_check = now + self._idle_check_seconds
                for fd, connection in list(connections.items()):
                    self._drive(fd, connection, connection.idle_check, now, self.idle_timeout_seconds)
        for fd, connection in list(connections.items()):
            self._drive(fd, connection, connection.close)

    def _drive(self, fd: int, connection: Connection, step: Callable[..., None], *args: object) -> None:
        """One step of a connection; forgets it once closed."""
        try:
            step(*args)
        except Exception:  # a bug in one request must not take the process down
            log.exception("connection failed")
            connection.close()
        if connection.closed:
            self._forget(fd, connection)

    def _forget(self, fd: int, connection: Connection) -> None:
        # Closing the socket took it out of epoll. The number may already be a new
        # connection's (accepted meanwhile): forget only this one.
        if self._connections.get(fd) is connection:
            del self._connections[fd]
            self._slots.release()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_interval_seconds):
            try:
                self.service.sweep()
            except Exception:
                log.exception("sweeping expired leases failed")

    def close(self) -> None:
        self._stop.set()
        try:
            self._wake_writer.send(b"x")
        except OSError:
            pass
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for thread in self._threads:
            thread.join(2.0)
        self._epoll.close()
        self._wake_reader.close()
        self._wake_writer.close()
        if self.socket_path:
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass


def _tcp_listener(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    return listener


def _unix_listener(path: str, mode: int) -> socket.socket:
    socket_path = Path(path)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists() or socket_path.is_symlink():
        if not stat.S_ISSOCK(socket_path.lstat().st_mode):
            raise FileExistsError(f"{path} exists and is not a socket")
        if _socket_answers(path):
            raise FileExistsError(f"another sidecar is already listening on {path}")
        socket_path.unlink()  # left behind by a sidecar that died
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, mode)
    listener.listen(1024)
    return listener


def _socket_answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()
