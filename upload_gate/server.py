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

The HTTP layer is a small HTTP/1.1 reader of its own on plain blocking sockets, one thread
per connection: a worker keeps its connection open, and a request costs a recv, a parse,
the decision and a sendall (http.server's header parsing alone would cost more than the
decision). Anything malformed gets a 400 JSON answer; a connection whose framing cannot be
trusted any more is answered and closed; nothing a client sends stops the process.

Leases are handed out by opaque id (`<process token>-<number>`). A worker that dies holding
leases never releases them: they end by the gate's lease timeout, counted timed_out.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path

from .service import GateService, LeaseBook
from .wire import Connection

log = logging.getLogger("upload_gate.server")

DEFAULT_SOCKET_PATH = "/run/upload-gate/gate.sock"
__all__ = ["DEFAULT_SOCKET_PATH", "GateService", "LeaseBook", "SidecarServer"]


# -- the process ---------------------------------------------------------------------------
class SidecarServer:
    """Listens, accepts, serves each connection on a thread; sweeps expired leases."""

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
        self.listener = _unix_listener(socket_path, socket_mode) if socket_path else _tcp_listener(host, port or 0)
        self.address = socket_path or f"{host}:{self.listener.getsockname()[1]}"

    @property
    def port(self) -> int | None:
        return None if self.socket_path else self.listener.getsockname()[1]

    def start(self) -> None:
        for target, name in ((self._accept_loop, "upload-gate-accept"), (self._sweep_loop, "upload-gate-sweep")):
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
            thread = threading.Thread(target=self._serve_connection, args=(sock,), daemon=True)
            try:
                thread.start()
            except RuntimeError:  # cannot start a thread: shed this connection, keep serving
                self._slots.release()
                sock.close()

    def _serve_connection(self, sock: socket.socket) -> None:
        try:
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            Connection(sock, self.service, self.idle_timeout_seconds).serve()
        except Exception:  # a bug in one request must not take the process down
            log.exception("connection failed")
        finally:
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
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for thread in self._threads:
            thread.join(2.0)
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
