"""HTTP/1.1 for the sidecar: a small reader and writer of its own on a blocking socket.

One connection is served by one thread: recv, parse the head, read the body (Content-Length
or chunked, Expect: 100-continue honoured), answer, repeat while keep-alive. The answers to
pipelined requests already received go out together, just before the next recv. http.server's
header parsing alone would cost more than the decision. A request whose framing cannot be
trusted gets a 400 and its connection is closed; nothing a client sends raises out of here.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
from typing import Any

from .metrics import CONTENT_TYPE
from .service import BadRequest, GateService

log = logging.getLogger("upload_gate.server")

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 16 * 1024  # an admit body is ~60 bytes; anything near this is not a client of ours
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


class FramingError(BadRequest):
    """The request itself is broken (head, length, encoding): answer, then close."""

    def __init__(self, error: str) -> None:
        super().__init__(error, None, "bad_http")


# -- HTTP/1.1 on a socket --------------------------------------------------------------------
class Request:
    __slots__ = ("method", "path", "body", "keep_alive")

    def __init__(self, method: str, path: str, body: bytes, keep_alive: bool) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.keep_alive = keep_alive


_OK_JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "


def _response(status: int, body: bytes, content_type: str = "application/json", close: bool = False) -> bytes:
    if status == 200 and not close and content_type == "application/json":  # nearly every answer
        return b"".join((_OK_JSON_HEAD, str(len(body)).encode(), b"\r\n\r\n", body))
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
    """Reads requests off one client connection and answers them, until it closes."""

    def __init__(self, sock: socket.socket, service: GateService, idle_timeout_seconds: float) -> None:
        self.sock = sock
        self.service = service
        self.buffer = b""
        # Answers not sent yet: the answers to requests a client pipelined go out together,
        # in one send, just before the connection next waits for input.
        self.unsent: list[bytes] = []
        # A blocking socket with kernel timeouts, not settimeout(): Python's timeout mode polls
        # before every recv and send, two more system calls per request on the hot path.
        sock.settimeout(None)
        seconds = max(0.001, idle_timeout_seconds)
        timeval = struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)

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
                if not request.keep_alive:
                    self._send(answer)
                    return
                self.unsent.append(answer)
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
                return _response(200, service.handle_json(request.path, request.body), close=close)
        except BadRequest as exc:
            service.metrics.count_bad_request(exc.kind)
            return _response(400, _json({"error": exc.error, "field": exc.field}), close=close)
        except Exception:  # a bug, not the input: answer, so the worker fails open or closed at once
            log.exception("request %s %s failed", request.method, request.path)
            return _response(500, _json({"error": "internal error in the upload gate sidecar"}), close=True)
        return _response(status, _json(body), close=close)

    # -- reading ---------------------------------------------------------------------
    def _wait_for_input(self) -> bytes:
        """recv, after sending what is answered: a client waits for those answers."""
        if self.unsent:
            self._flush()
        return self.sock.recv(65536)

    def _recv(self) -> bytes:
        chunk = self._wait_for_input()
        if not chunk:  # half-closed mid-request: answer if it still reads, then close
            raise FramingError("the connection closed before the whole body arrived")
        return chunk

    def _read_request(self) -> Request | None:
        buffer = self.buffer
        if buffer[:1] in (b"\r", b"\n"):  # stray empty lines between requests are allowed
            buffer = buffer.lstrip(b"\r\n")
        end = buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise FramingError(f"request head larger than {MAX_HEAD_BYTES} bytes")
            try:
                chunk = self._wait_for_input()
            except (TimeoutError, BlockingIOError):  # idle past the timeout (SO_RCVTIMEO)
                if buffer:
                    raise FramingError("request head incomplete (timed out)") from None
                return None
            if not chunk:
                return None  # closed between requests (or mid-head: nothing to answer)
            buffer = (buffer + chunk).lstrip(b"\r\n")
            end = buffer.find(b"\r\n\r\n")
        if end > MAX_HEAD_BYTES:
            raise FramingError(f"request head larger than {MAX_HEAD_BYTES} bytes")
        head = buffer[:end]
        method, path, keep_alive, length, expects_continue = _framing(head)
        buffer = buffer[end + 4 :]
        if length == CHUNKED:
            if expects_continue:
                self._send(CONTINUE)
            body, buffer = self._read_chunked(buffer)
        else:
            if length and expects_continue:
                self._send(CONTINUE)
            while len(buffer) < length:
                buffer += self._recv()
            body, buffer = buffer[:length], buffer[length:]
        self.buffer = buffer
        return Request(method, path, body, keep_alive)

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
        """Send now, after the answers before it (order is the protocol)."""
        self.unsent.append(data)
        self._flush()

    def _flush(self) -> None:
        data = self.unsent[0] if len(self.unsent) == 1 else b"".join(self.unsent)
        self.unsent.clear()
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


CHUNKED = -1  # the length _framing gives a chunked body
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Framing of the heads seen lately: a worker sends the same few heads over and over (only
# Content-Length changes with the client id), and reading one is a pure function of its bytes.
_KNOWN_HEADS: dict[bytes, tuple[str, str, bool, int, bool]] = {}
MAX_KNOWN_HEADS = 512
MAX_KNOWN_HEAD_BYTES = 1024


def _framing(head: bytes) -> tuple[str, str, bool, int, bool]:
    """(method, path, keep-alive, body length or CHUNKED, expects 100-continue) of a head."""
    try:
        return _KNOWN_HEADS[head]
    except KeyError:
        pass
    framing = _read_framing(head)
    if len(head) <= MAX_KNOWN_HEAD_BYTES:
        if len(_KNOWN_HEADS) >= MAX_KNOWN_HEADS:
            _KNOWN_HEADS.clear()  # heads that vary (a client of another kind): start again
        _KNOWN_HEADS[head] = framing
    return framing


def _read_framing(head: bytes) -> tuple[str, str, bool, int, bool]:
    method, path, version, headers = _parse_head(head)
    keep_alive = version == "HTTP/1.1"
    connection = headers.get("connection", "").lower()
    if "close" in connection:
        keep_alive = False
    elif "keep-alive" in connection:
        keep_alive = True
    expects_continue = headers.get("expect", "").lower() == "100-continue"
    if "transfer-encoding" in headers:
        if "content-length" in headers:
            raise FramingError("both Transfer-Encoding and Content-Length")
        if headers["transfer-encoding"].lower() != "chunked":
            raise FramingError("only chunked transfer coding is understood")
        return method, path, keep_alive, CHUNKED, expects_continue
    return method, path, keep_alive, _content_length(headers.get("content-length")), expects_continue


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
