"""HTTP/1.1 for the sidecar: a small non-blocking reader and writer of its own.

A Connection holds what one client sent and what it has not been sent yet; the server's
event loop (server.py) calls `readable()` and `writable()` when epoll says so. Every
complete request in what arrived is answered, in order, and the answers go out together in
one send. Bodies come with Content-Length or chunked; Expect: 100-continue is honoured.
http.server's header parsing alone would cost more than the decision. A request whose
framing cannot be trusted gets a 400 and its connection is closed; nothing a client sends
raises out of here.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

from .framing import CHUNKED, CONTINUE, MAX_HEAD_BYTES, FramingError, chunked_body, framing
from .metrics import CONTENT_TYPE
from .service import BadRequest, GateService

log = logging.getLogger("upload_gate.server")

RECV_BYTES = 65536
# A client that sends requests and reads no answers: past this much unsent, it is not read
# from until it has read what it was sent.
MAX_UNSENT_BYTES = 1024 * 1024
CLOSE_GENTLY_SECONDS = 0.5

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
ROUTES = {
    "/v1/admit": "POST",
    "/v1/release": "POST",
    "/v1/renew": "POST",
    "/healthz": "GET",
    "/metrics": "GET",
}
JSON_POSTS = frozenset(path for path, method in ROUTES.items() if method == "POST")  # all JSON bodies


# -- HTTP/1.1 on a socket --------------------------------------------------------------------
class Request:
    __slots__ = ("method", "path", "body", "keep_alive")

    def __init__(self, method: str, path: str, body: bytes, keep_alive: bool) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.keep_alive = keep_alive


_OK_JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "


def _ok_json(body: bytes) -> bytes:
    """A 200 with a JSON body, keep-alive: nearly every answer."""
    return b"".join((_OK_JSON_HEAD, str(len(body)).encode(), b"\r\n\r\n", body))


def _response(status: int, body: bytes, content_type: str = "application/json", close: bool = False) -> bytes:
    if status == 200 and not close and content_type == "application/json":
        return _ok_json(body)
    head = f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}\r\nContent-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    if status == 405:
        head += "Allow: GET, POST\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode("latin-1") + body


_encode = json.JSONEncoder(separators=(",", ":")).encode


def _json(value: Any) -> bytes:
    return _encode(value).encode()


class Connection:
    """One client connection, driven by the server's event loop (edge-triggered: every event
    is taken to the end, reading until the socket is drained)."""

    def __init__(self, sock: socket.socket, service: GateService) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.service = service
        self.buffer = b""  # received, not answered yet
        self.unsent = b""  # answered, not sent yet
        self.last_active = time.monotonic()
        self.peer_closed = False  # it shut down its side (or reset): answer what came, then close
        self.closed = False
        self._read_to_end = False  # the loop saw the peer shut down: read until the end
        self._stalled = False  # stopped reading until the client takes its answers
        self._continued = False  # 100 Continue sent for the request being received
        self._after_flush: str | None = None  # "close", or "close gently" after a broken request
        self._draining_until: float | None = None

    # -- events from the loop ----------------------------------------------------------
    def readable(self, peer_closed: bool | int = False) -> None:
        """Read what arrived, answer every complete request, send the answers."""
        if self.closed:
            return
        if self._draining_until is not None:
            self._drain()
            return
        self._read_to_end = self._read_to_end or peer_closed
        if len(self.unsent) > MAX_UNSENT_BYTES:
            self._stalled = True  # writable() reads on once the client has taken its answers
            self.writable()
            return
        if self._receive():
            self.last_active = time.monotonic()
        if self.buffer or self.peer_closed:  # also what waited while it was held back
            self._answer_received()
        self.writable()

    def writable(self) -> None:
        """Send what is unsent; then close if that was the last of it."""
        if self.closed:
            return
        if self.unsent:
            try:
                sent = self.sock.send(self.unsent)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close()
                return
            self.unsent = self.unsent[sent:]
            if self.unsent:
                if sent:
                    self.last_active = time.monotonic()  # a slow reader, still reading
                return  # the rest on the next writable edge
            if self._stalled and self._after_flush is None:
                self._stalled = False
                self.readable()
                return
        if self._after_flush == "close":
            self.close()
        elif self._after_flush == "close gently":
            self._start_draining()
        elif self.peer_closed:
            self.close()  # half-closed after its last request (or mid-head): answered, done

    def idle_check(self, now: float, idle_timeout_seconds: float) -> None:
        """Called by the loop now and then: ends connections idle (or stuck) too long."""
        if self._draining_until is not None:
            if now >= self._draining_until:
                self.close()
            return
        if now - self.last_active < idle_timeout_seconds:
            return
        if self.buffer.strip(b"\r\n") and not self.unsent:
            self._refuse(FramingError("request incomplete (timed out)"))
            self.writable()
        else:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    # -- reading -------------------------------------------------------------------------
    def _receive(self) -> bool:
        """Read what arrived, until the socket is drained: True if anything did."""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self.sock.recv(RECV_BYTES)
            except BlockingIOError:
                break
            except OSError:  # reset: nothing to answer
                self.peer_closed = True
                self.buffer = b""
                self._after_flush = "close"
                return False
            if not chunk:
                self.peer_closed = True
                break
            # A stream socket gives all that is queued, up to the size asked: a shorter read
            # drained it (more arriving later is a new edge), unless the peer also shut down.
            drained = len(chunk) < RECV_BYTES and not self._read_to_end
            if drained and not chunks:  # nearly always: one read, one or two requests
                self.buffer = self.buffer + chunk if self.buffer else chunk
                return True
            chunks.append(chunk)
            if drained:
                break
        if not chunks:
            return False
        self.buffer += b"".join(chunks)
        return True

    def _answer_received(self) -> None:
        while True:
            if len(self.unsent) > MAX_UNSENT_BYTES:
                self._stalled = True
                return
            try:
                request = self._next_request()
            except FramingError as exc:
                self._refuse(exc)
                return
            if request is None:
                break
            self.unsent += self._answer(request)
            if not request.keep_alive:
                self.buffer = b""
                self._after_flush = "close"
                return
        if self.peer_closed and b"\r\n\r\n" in self.buffer:
            # Half-closed after a head, mid-body: answer if it still reads, then close.
            self._refuse(FramingError("the connection closed before the whole body arrived"))

    def _next_request(self) -> Request | None:
        """The first complete request in the buffer (taken out of it), or None."""
        buffer = self.buffer
        if not buffer:  # the common end: every request that came is answered
            return None
        if buffer[:1] in (b"\r", b"\n"):  # stray empty lines between requests are allowed
            buffer = self.buffer = buffer.lstrip(b"\r\n")
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise FramingError(f"request head larger than {MAX_HEAD_BYTES} bytes")
            return None
        if end > MAX_HEAD_BYTES:
            raise FramingError(f"request head larger than {MAX_HEAD_BYTES} bytes")
        method, path, keep_alive, length, expects_continue = framing(buffer[:end])
        start = end + 4
        if expects_continue and length and not self._continued:
            self._continued = True
            self.unsent += CONTINUE
        if length == CHUNKED:
            chunked = chunked_body(buffer, start)
            if chunked is None:
                return None
            body, stop = chunked
        else:
            stop = start + length
            if len(buffer) < stop:
                return None
            body = buffer[start:stop]
        self.buffer = buffer[stop:]
        self._continued = False
        return Request(method, path, body, keep_alive)

    def _answer(self, request: Request) -> bytes:
        service = self.service
        close = not request.keep_alive
        path = request.path
        try:
            if path in JSON_POSTS and request.method == "POST":  # nearly every request
                body = service.handle_json(path, request.body)
                return _ok_json(body) if not close else _response(200, body, close=True)
            expected = ROUTES.get(path)
            if expected is None:
                service.metrics.count_bad_request("not_found")
                return _response(404, _json({"error": f"no such path: {path[:200]}"}), close=close)
            if request.method != expected:
                service.metrics.count_bad_request("wrong_method")
                return _response(405, _json({"error": f"{path} takes {expected}"}), close=close)
            if path == "/metrics":
                return _response(200, service.metrics.render(), CONTENT_TYPE, close=close)
            status, health = service.health()
            return _response(status, _json(health), close=close)
        except BadRequest as exc:
            service.metrics.count_bad_request(exc.kind)
            return _response(400, _json({"error": exc.error, "field": exc.field}), close=close)
        except Exception:  # a bug, not the input: answer, so the worker fails open or closed at once
            log.exception("request %s %s failed", request.method, path)
            return _response(500, _json({"error": "internal error in the upload gate sidecar"}), close=True)

    # -- ending ------------------------------------------------------------------------
    def _refuse(self, exc: FramingError) -> None:
        """A request that cannot be trusted: answer 400, then close gently."""
        self.service.metrics.count_bad_request(exc.kind)
        self.unsent += _response(400, _json({"error": exc.error, "field": None}), close=True)
        self.buffer = b""
        self._after_flush = "close gently"

    def _start_draining(self) -> None:
        """After an answer on a broken request: stop writing, read what is still coming for
        a moment (closing with unread data would reset the connection and lose the answer)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self._draining_until = time.monotonic() + CLOSE_GENTLY_SECONDS
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                if not self.sock.recv(RECV_BYTES):
                    break
            except BlockingIOError:
                return
            except OSError:
                break
        self.close()
