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
import json
import logging
import os
import re
import secrets
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .metrics import ADMITTED, CONTENT_TYPE, PAUSED, THROTTLED, SidecarMetrics
from .rejections import STATUS_PAUSED
from .state import OUTCOMES, Lease

log = logging.getLogger("upload_gate.server")

DEFAULT_SOCKET_PATH = "/run/upload-gate/gate.sock"
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 16 * 1024  # an admit body is ~60 bytes; anything near this is not a client of ours
MAX_CLIENT_ID_CHARS = 255
MAX_SIZE_BYTES = 2**63 - 1
LEASE_ID_RE = re.compile(r"^[0-9a-f]{8}-[1-9][0-9]{0,18}$")

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
ROUTES = {
    "/v1/admit": "POST",
    "/v1/release": "POST",
    "/v1/renew": "POST",
    "/healthz": "GET",
    "/metrics": "GET",
}


class BadRequest(Exception):
    """Input the sidecar cannot act on: answered 400 with what is wrong."""

    def __init__(self, error: str, field: str | None = None, kind: str = "bad_field") -> None:
        super().__init__(error)
        self.error = error
        self.field = field
        self.kind = kind


class FramingError(BadRequest):
    """The request itself is broken (head, length, encoding): answer, then close."""

    def __init__(self, error: str) -> None:
        super().__init__(error, None, "bad_http")


# -- the leases the sidecar handed out --------------------------------------------------
class LeaseBook:
    """Opaque lease id <-> the gate's Lease. The token changes with every process, so an id
    from a sidecar that restarted is recognised as gone (released false), not mistaken."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(4)
        self._prefix = self.token + "-"
        self._leases: dict[int, Lease] = {}
        self._lock = threading.Lock()

    def add(self, lease: Lease) -> str:
        with self._lock:
            self._leases[lease.lease_id] = lease
        return self._prefix + str(lease.lease_id)

    def _number(self, lease_id: str) -> int | None:
        """The gate's lease number, or None for a well-formed id of an earlier process."""
        if lease_id.startswith(self._prefix):  # the common case, without the regex
            number = lease_id[9:]
            if number.isdigit() and number.isascii() and len(number) < 20 and number[0] != "0":
                return int(number)
        if not LEASE_ID_RE.match(lease_id):
            raise BadRequest("lease_id is not a lease id this sidecar hands out", "lease_id")
        return None if not lease_id.startswith(self._prefix) else int(lease_id[9:])

    def take(self, lease_id: str) -> Lease | None:
        number = self._number(lease_id)
        if number is None:
            return None
        with self._lock:
            return self._leases.pop(number, None)

    def get(self, lease_id: str) -> Lease | None:
        number = self._number(lease_id)
        if number is None:
            return None
        with self._lock:
            return self._leases.get(number)

    def drop_ended(self) -> list[Lease]:
        """Forget leases the gate has already ended (expired): returns them."""
        with self._lock:
            ended = [lease for lease in self._leases.values() if lease.done]
            for lease in ended:
                del self._leases[lease.lease_id]
        return ended

    def __len__(self) -> int:
        return len(self._leases)


# -- the protocol, without sockets ---------------------------------------------------------
class GateService:
    """The sidecar's answers: (HTTP status, JSON-ready body) for each request."""

    def __init__(self, gate: Any, *, reporter: Any = None) -> None:
        self.gate = gate
        self.leases = LeaseBook()
        self.metrics = SidecarMetrics(gate, lambda: len(self.leases), reporter)
        self._labels: dict[str, str] = {}
        self._labels_version: int | None = None
        self._lease_timeout_seconds = int(gate.lease_timeout_seconds)
        self._handlers: dict[str, Callable[[Any], dict]] = {
            "/v1/admit": self.admit,
            "/v1/release": self.release,
            "/v1/renew": self.renew,
        }

    def client_label(self, client_id: str) -> str:
        """The client id as a metrics label: ids without a row of their own are `*` (as in
        status reports), so direct users cannot grow the label set without bound."""
        version = self.gate.config_version
        if version != self._labels_version or len(self._labels) > 10_000:
            self._labels = {}
            self._labels_version = version
        try:
            return self._labels[client_id]
        except KeyError:
            label = client_id if self.gate.client_config(client_id).get("has_row") else "*"
            self._labels[client_id] = label
            return label

    def handle_json(self, path: str, body: bytes) -> tuple[int, dict]:
        try:
            payload = _decode(body.decode())
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
            raise BadRequest("the body is not JSON", None, "bad_json") from None
        if not isinstance(payload, dict):
            raise BadRequest("the body must be a JSON object", None, "bad_json")
        return 200, self._handlers[path](payload)

    def admit(self, payload: dict) -> dict:
        client_id = payload.get("client_id")
        if type(client_id) is not str or not client_id or len(client_id) > MAX_CLIENT_ID_CHARS:
            raise BadRequest(f"client_id must be a string of 1 to {MAX_CLIENT_ID_CHARS} characters", "client_id")
        size = payload.get("size_bytes")
        if type(size) is not int or not 0 <= size <= MAX_SIZE_BYTES:
            raise BadRequest("size_bytes must be a whole number of bytes, 0 or more", "size_bytes")
        decision = self.gate.admit(client_id, size)
        headers = decision.headers()
        lease = decision.lease
        label = self.client_label(client_id)
        if lease is not None:
            lease_id: str | None = self.leases.add(lease)
            self.metrics.count_decision(label, ADMITTED, None)
        else:
            lease_id = None
            outcome = PAUSED if decision.status == STATUS_PAUSED else THROTTLED
            self.metrics.count_decision(label, outcome, decision.limit)
        return {
            "admitted": decision.admitted,
            "status": decision.status,
            "reason": decision.reason,
            "limit": decision.limit,
            "retry_after_seconds": decision.retry_after_seconds,
            "lease_id": lease_id,
            "lease_expires_in_seconds": self._lease_timeout_seconds if lease_id else None,
            "headers": headers,
            "problem": decision.problem,
        }

    def release(self, payload: dict) -> dict:
        lease_id = _lease_id(payload)
        outcome = payload.get("outcome")
        if type(outcome) is not str or outcome not in OUTCOMES:
            raise BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}", "outcome")
        lease = self.leases.take(lease_id)
        if lease is None:
            return {"released": False}
        released = self.gate.release(lease, outcome)
        # Too late counts as timed out, whatever the worker said (the gate did the same).
        self.metrics.count_lease_end(self.client_label(lease.client_id), outcome if released else "timed_out")
        return {"released": released}

    def renew(self, payload: dict) -> dict:
        lease = self.leases.get(_lease_id(payload))
        if lease is None:
            return {"renewed": False, "expires_in_seconds": None}
        renewed = self.gate.renew(lease)
        self.metrics.count_renewal(self.client_label(lease.client_id), renewed)
        return {"renewed": renewed, "expires_in_seconds": self._lease_timeout_seconds if renewed else None}

    def health(self) -> tuple[int, dict]:
        gate = self.gate
        stale = gate.stale_since
        stale_seconds = None if stale is None else round(max(0.0, time.time() - stale.timestamp()), 3)
        if not gate.loaded:
            status = "not_loaded"
        elif stale is not None:
            status = "stale"
        else:
            status = "ok"
        body = {
            "status": status,
            "config_version": gate.config_version,
            "stale_seconds": stale_seconds,
            "mode": gate.mode,
            "leases_in_flight": len(self.leases),
            "server_id": gate.server_id,
        }
        return (200 if status == "ok" else 503), body

    def sweep(self) -> int:
        """Expire overdue leases and forget them; each counts as timed out. Returns how many."""
        self.gate.sweep_expired()
        ended = self.leases.drop_ended()
        for lease in ended:
            self.metrics.count_lease_end(self.client_label(lease.client_id), "timed_out")
        return len(ended)


def _lease_id(payload: dict) -> str:
    lease_id = payload.get("lease_id")
    if type(lease_id) is not str:
        raise BadRequest("lease_id must be the string /v1/admit returned", "lease_id")
    return lease_id


# -- HTTP/1.1 on a socket --------------------------------------------------------------------
class Request:
    __slots__ = ("method", "path", "body", "keep_alive")

    def __init__(self, method: str, path: str, body: bytes, keep_alive: bool) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.keep_alive = keep_alive


def _response(status: int, body: bytes, content_type: str = "application/json", close: bool = False) -> bytes:
    head = f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}\r\nContent-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    if status == 405:
        head += "Allow: GET, POST\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode("latin-1") + body


_decode = json.JSONDecoder().decode
_encode = json.JSONEncoder(separators=(",", ":")).encode


def _json(value: Any) -> bytes:
    return _encode(value).encode()


class Connection:
    """Reads requests off one client connection and answers them, until it closes."""

    def __init__(self, sock: socket.socket, service: GateService, idle_timeout_seconds: float) -> None:
        self.sock = sock
        self.service = service
        self.buffer = b""
        sock.settimeout(idle_timeout_seconds)

    def serve(self) -> None:
        try:
            while True:
                try:
                    request = self._read_request()
                except FramingError as exc:
                    self.service.metrics.count_bad_request(exc.kind)
                    self._send(_response(400, _json({"error": exc.error, "field": None}), close=True))
                    self._close_gently()
                    return
                if request is None:
                    return
                answer = self._answer(request)
                self._send(answer)
                if not request.keep_alive:
                    return
        except (TimeoutError, ConnectionError, OSError):
            return  # idle too long, reset, half-closed, or gone: nothing to answer
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def _answer(self, request: Request) -> bytes:
        service = self.service
        close = not request.keep_alive
        expected = ROUTES.get(request.path)
        if expected is None:
            service.metrics.count_bad_request("not_found")
            return _response(404, _json({"error": f"no such path: {request.path[:200]}"}), close=close)
        if request.method != expected:
            service.metrics.count_bad_request("wrong_method")
            return _response(405, _json({"error": f"{request.path} takes {expected}"}), close=close)
        try:
            if request.path == "/healthz":
                status, body = service.health()
            elif request.path == "/metrics":
                return _response(200, service.metrics.render(), CONTENT_TYPE, close=close)
            else:
                status, body = service.handle_json(request.path, request.body)
        except BadRequest as exc:
            service.metrics.count_bad_request(exc.kind)
            return _response(400, _json({"error": exc.error, "field": exc.field}), close=close)
        return _response(status, _json(body), close=close)

    # -- reading ---------------------------------------------------------------------
    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:  # half-closed mid-request: answer if it still reads, then close
            raise FramingError("the connection closed before the whole body arrived")
        return chunk

    def _read_request(self) -> Request | None:
        buffer = self.buffer.lstrip(b"\r\n")  # stray empty lines between requests are allowed
        end = buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise FramingError(f"request head larger than {MAX_HEAD_BYTES} bytes")
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                if buffer:
                    raise FramingError("request head incomplete (timed out)") from None
                return None
            if not chunk:
                return None  # closed between requests (or mid-head: nothing to answer)
            buffer = (buffer + chunk).lstrip(b"\r\n")
            end = buffer.find(b"\r\n\r\n")
        if end > MAX_HEAD_BYTES:
            raise FramingError(f"request head larger than {MAX_HEAD_BYTES} bytes")
        head, buffer = buffer[:end], buffer[end + 4 :]
        method, path, version, headers = _parse_head(head)
        keep_alive = version == "HTTP/1.1"
        connection = headers.get("connection", "").lower()
        if "close" in connection:
            keep_alive = False
        elif "keep-alive" in connection:
            keep_alive = True
        if "transfer-encoding" in headers:
            if "content-length" in headers:
                raise FramingError("both Transfer-Encoding and Content-Length")
            if headers["transfer-encoding"].lower() != "chunked":
                raise FramingError("only chunked transfer coding is understood")
            self._continue(headers)
            body, buffer = self._read_chunked(buffer)
        else:
            length = _content_length(headers.get("content-length"))
            if length:
                self._continue(headers)
            while len(buffer) < length:
                buffer += self._recv()
            body, buffer = buffer[:length], buffer[length:]
        self.buffer = buffer
        return Request(method, path, body, keep_alive)

    def _continue(self, headers: dict[str, str]) -> None:
        if headers.get("expect", "").lower() == "100-continue":
            self._send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _read_chunked(self, buffer: bytes) -> tuple[bytes, bytes]:
        body = b""
        while True:
            end = buffer.find(b"\r\n")
            while end < 0:
                if len(buffer) > 1024:
                    raise FramingError("bad chunk size line")
                buffer += self._recv()
                end = buffer.find(b"\r\n")
            size_text = buffer[:end].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise FramingError("bad chunk size") from None
            if size < 0 or len(body) + size > MAX_BODY_BYTES:
                raise FramingError(f"body larger than {MAX_BODY_BYTES} bytes")
            buffer = buffer[end + 2 :]
            if size == 0:
                # Trailers (usually none), up to the empty line.
                while (trailer_end := buffer.find(b"\r\n")) != 0:
                    if trailer_end < 0:
                        if len(buffer) > MAX_HEAD_BYTES:
                            raise FramingError("trailers too large")
                        buffer += self._recv()
                    else:
                        buffer = buffer[trailer_end + 2 :]
                return body, buffer[2:]
            while len(buffer) < size + 2:
                buffer += self._recv()
            if buffer[size : size + 2] != b"\r\n":
                raise FramingError("chunk not followed by CRLF")
            body += buffer[:size]
            buffer = buffer[size + 2 :]

    # -- writing ---------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _close_gently(self) -> None:
        """After an answer on a broken request: stop writing, read what is still coming for
        a moment (closing with unread data would reset the connection and lose the answer)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(0.25)
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and self.sock.recv(65536):
                pass
        except OSError:
            pass


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # latin-1 decodes any byte; kept for clarity
        raise FramingError("request head is not text") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        raise FramingError("bad request line (expected: METHOD /path HTTP/1.1)")
    method, target, version = parts
    path = target.split("?", 1)[0]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise FramingError("bad header line")
        name = name.lower()
        value = value.strip()
        if name == "content-length" and name in headers and headers[name] != value:
            raise FramingError("conflicting Content-Length headers")
        headers[name] = value
    return method, path, version, headers


def _content_length(value: str | None) -> int:
    if value is None:
        return 0
    if not value.isdigit() or len(value) > 12:
        raise FramingError("Content-Length must be a number of bytes")
    length = int(value)
    if length > MAX_BODY_BYTES:
        raise FramingError(f"body larger than {MAX_BODY_BYTES} bytes")
    return length


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
