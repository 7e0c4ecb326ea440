"""A thin client of the host's gate sidecar (`upload-gate serve`), for Python servers that
would rather share the host's gate than hold one per process. Standard library only.

    from upload_gate.client import SidecarClient
    gate = SidecarClient("/run/upload-gate/gate.sock")          # or SidecarClient(port=8101)
    decision = gate.admit(client_id, size_bytes)
    if not decision["admitted"]:
        respond(decision["status"], decision, headers=decision["headers"])
    else:
        try: ...upload...; gate.release(decision["lease_id"], "completed")
        except Exception: gate.release(decision["lease_id"], "failed")

A decision is the sidecar's answer (docs/upload-gate.md, "The wire protocol") plus
`source`: "sidecar", or, when the sidecar cannot be reached (socket missing, refused,
timed out, reset, a 5xx or an answer that is not the protocol), "fail-open" (the default:
admitted, status 200, no lease) or "fail-closed" (not admitted, status 503, Retry-After
from the configuration). Both are counted (`failures`) and logged. Release and renew of
no lease (None) do nothing.

One keep-alive connection per thread; a request on a connection the sidecar closed while
it was idle is sent again once on a new connection (the sidecar never saw it).
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from json.encoder import encode_basestring_ascii as _json_string  # type: ignore[attr-defined]
from typing import Any

from .jsontext import loads

log = logging.getLogger("upload_gate.client")

SOURCE_SIDECAR = "sidecar"
SOURCE_FAIL_OPEN = "fail-open"
SOURCE_FAIL_CLOSED = "fail-closed"
MAX_ANSWER_BYTES = 1024 * 1024
# Made once: json.dumps(..., separators=...) would build a new encoder on every call.
_encode = json.JSONEncoder(separators=(",", ":")).encode


class SidecarUnavailable(Exception):
    """The sidecar could not be asked, or did not answer with the protocol."""


class SidecarRequestError(ValueError):
    """The sidecar refused the request (400): the caller passed something invalid."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__(f"{status}: {body.get('error')} (field {body.get('field')})")
        self.status = status
        self.body = body
        self.field = body.get("field")


class _Connection:
    """One keep-alive HTTP/1.1 connection to the sidecar (used by one thread).

    Requests sent without waiting (a release whose answer changes nothing for the worker)
    are pipelined: their answers are read, in order, before the next request's own."""

    def __init__(self, address: Any, family: int, timeout_seconds: float) -> None:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout_seconds)
        try:
            sock.connect(address)
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Kernel timeouts from here on: Python's timeout mode would poll before every
            # send and recv (two more system calls per request).
            sock.settimeout(None)
            seconds = max(0.001, timeout_seconds)
            timeval = struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.used = False
        self.buffer = b""
        self.unanswered: list[bytes] = []  # sent without waiting, answers not read yet

    def send(self, request: bytes) -> None:
        """Send a request whose answer the caller does not wait for."""
        self.sock.sendall(request)
        self.unanswered.append(request)

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request, read one answer: (status, body)."""
        self.sock.sendall(request)
        while self.unanswered:
            status, body = self._read_answer()
            self.unanswered.pop(0)
            if status != 200:  # only a caller's bug gets here: the release was malformed
                log.warning("the sidecar refused a request sent without waiting: %s %s", status, body[:200])
        return self._read_answer()

    def _read_answer(self) -> tuple[int, bytes]:
        sock = self.sock
        buffer = self.buffer or sock.recv(65536)
        end = buffer.find(b"\r\n\r\n")
        while end < 0:
            if not buffer and self.used:
                raise ConnectionResetError("closed by the sidecar")  # idle close: safe to resend
            chunk = sock.recv(65536)
            if not chunk:
                raise SidecarUnavailable("connection closed mid-answer")
            buffer += chunk
            if len(buffer) > MAX_ANSWER_BYTES:
                raise SidecarUnavailable("answer head too large")
            end = buffer.find(b"\r\n\r\n")
        head = buffer[:end].lower()
        try:
            status = int(head[9:12])
        except ValueError:
            raise SidecarUnavailable("not an HTTP answer") from None
        length = _content_length(head)
        body_end = end + 4 + length
        while len(buffer) < body_end:
            chunk = sock.recv(65536)
            if not chunk:
                raise SidecarUnavailable("connection closed mid-answer")
            buffer += chunk
        self.buffer = buffer[body_end:]
        self.used = True
        if b"\r\nconnection: close" in head:
            self.close()
            self.sock = None  # type: ignore[assignment]
        return status, buffer[end + 4 : body_end]

    def close(self) -> None:
        try:
            self.sock.close()
        except (OSError, AttributeError):
            pass


def _content_length(lower: bytes) -> int:
    """Content-Length of an answer's head, given in lower case."""
    start = lower.find(b"\r\ncontent-length:")
    if start < 0:
        raise SidecarUnavailable("answer without Content-Length")
    end = lower.find(b"\r\n", start + 2)
    try:
        length = int(lower[start + 17 : end if end >= 0 else None])
    except ValueError:
        raise SidecarUnavailable("bad Content-Length") from None
    if not 0 <= length <= MAX_ANSWER_BYTES:
        raise SidecarUnavailable("answer too large")
    return length


class SidecarClient:
    """Thread-safe; one connection per thread, opened on first use."""

    def __init__(
        self,
        socket_path: str | None = "/run/upload-gate/gate.sock",
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        timeout_seconds: float = 0.5,
        fail_open: bool = True,
        fail_closed_retry_after_seconds: int = 5,
        log_every_seconds: float = 60.0,
    ) -> None:
        if port is not None:
            self._address: Any = (host, port)
            self._family = socket.AF_INET
            self.where = f"{host}:{port}"
        elif socket_path:
            self._address = socket_path
            self._family = socket.AF_UNIX
            self.where = socket_path
        else:
            raise ValueError("give the sidecar's socket path or its port")
        self.timeout_seconds = timeout_seconds
        self.fail_open = fail_open
        self.fail_closed_retry_after_seconds = fail_closed_retry_after_seconds
        self.log_every_seconds = log_every_seconds
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self.failures = 0  # requests the sidecar did not answer (each one failed open or closed)
        self.last_error: str | None = None
        self._last_logged = -float("inf")
        self._host_header = f"Host: {'gate' if port is None else self.where}\r\n".encode()

    # -- the protocol -------------------------------------------------------------------
    def admit(self, client_id: str, size_bytes: int) -> dict:
        """The sidecar's decision for one upload, plus `source` (see the module docstring)."""
        if type(client_id) is str and type(size_bytes) is int:  # bool is an int but not a size
            body = b'{"client_id":%s,"size_bytes":%d}' % (_json_string(client_id).encode(), size_bytes)
        else:  # the sidecar names what is wrong with it
            body = _encode({"client_id": client_id, "size_bytes": size_bytes}).encode()
        try:
            answer = self._post(b"/v1/admit", body)
        except SidecarUnavailable as exc:
            return self._unreachable_decision(exc)
        answer["source"] = SOURCE_SIDECAR
        return answer

    def release(self, lease_id: str | None, outcome: str = "completed", *, wait: bool = True) -> dict:
        """End an upload: {"released": bool, "source": ...}; no lease (None): nothing to do.

        wait=False sends the release without waiting for its answer ({"released": None}):
        the answer changes nothing for a worker whose upload has ended, and is read before
        the next request's own on this connection (pipelined), so the release costs no
        round trip. The sidecar applies requests in order, so the next admit sees it."""
        if lease_id is None:
            return {"released": False, "source": None}
        if type(lease_id) is str and type(outcome) is str:
            body = b'{"lease_id":%s,"outcome":%s}' % (_json_string(lease_id).encode(), _json_string(outcome).encode())
        else:
            body = _encode({"lease_id": lease_id, "outcome": outcome}).encode()
        if not wait:
            return self._send_without_waiting(b"/v1/release", body, {"released": None})
        return self._call(b"/v1/release", body, {"released": False})

    def renew(self, lease_id: str | None) -> dict:
        """Keep a long upload's lease: {"renewed": bool, "expires_in_seconds": int|None, "source": ...}."""
        if lease_id is None:
            return {"renewed": False, "expires_in_seconds": None, "source": None}
        body = _encode({"lease_id": lease_id}).encode()
        return self._call(b"/v1/renew", body, {"renewed": False, "expires_in_seconds": None})

    def health(self) -> dict:
        """GET /healthz: the sidecar's answer plus `http_status`; raises SidecarUnavailable."""
        status, body = self._request(b"GET /healthz HTTP/1.1\r\n" + self._host_header + b"\r\n")
        answer = _decode(body)
        answer["http_status"] = status
        return answer

    # -- transport ------------------------------------------------------------------------
    def _call(self, path: bytes, body: bytes, when_unreachable: dict) -> dict:
        try:
            answer = self._post(path, body)
        except SidecarUnavailable as exc:
            self._record_failure(exc)
            return when_unreachable | {"source": self._failure_source()}
        answer["source"] = SOURCE_SIDECAR
        return answer

    def _post_request(self, path: bytes, body: bytes) -> bytes:
        return (
            b"POST "
            + path
            + b" HTTP/1.1\r\n"
            + self._host_header
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    def _send_without_waiting(self, path: bytes, body: bytes, sent: dict) -> dict:
        request = self._post_request(path, body)
        try:
            connection = self._connection()
            connection.send(request)
        except (OSError, SidecarUnavailable) as exc:
            self._drop_connection()
            self._record_failure(exc)
            return {**sent, "released": False, "source": self._failure_source()}
        return {**sent, "source": SOURCE_SIDECAR}

    def _post(self, path: bytes, body: bytes) -> dict:
        status, answer = self._request(self._post_request(path, body))
        if status >= 500 or status == 404 or status == 405:
            raise SidecarUnavailable(f"the sidecar answered {status}")
        decoded = _decode(answer)
        if status != 200:
            raise SidecarRequestError(status, decoded)
        return decoded

    def _request(self, request: bytes) -> tuple[int, bytes]:
        unanswered: list[bytes] = []
        for attempt in (1, 2):
            connection = self._connection()
            reused = connection.used or bool(connection.unanswered)
            try:
                for earlier in unanswered:  # a release is safe to send twice: the second finds no lease
                    connection.send(earlier)
                return connection.exchange(request)
            except (ConnectionResetError, BrokenPipeError) as exc:
                unanswered = connection.unanswered
                self._drop_connection()
                if not (reused and attempt == 1):
                    raise SidecarUnavailable(f"{type(exc).__name__}: {exc}") from exc
            except (OSError, SidecarUnavailable) as exc:  # timed out, refused, bad answer
                self._drop_connection()
                if isinstance(exc, SidecarUnavailable):
                    raise
                raise SidecarUnavailable(f"{type(exc).__name__}: {exc}") from exc
        raise SidecarUnavailable("unreachable")  # not reached: the second attempt returns or raises

    def _connection(self) -> _Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.sock is None:
            try:
                connection = _Connection(self._address, self._family, self.timeout_seconds)
            except OSError as exc:  # socket missing, refused, connect timed out
                raise SidecarUnavailable(f"cannot connect to {self.where}: {exc}") from exc
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        self._drop_connection()

    # -- failing open or closed ------------------------------------------------------
    def _failure_source(self) -> str:
        return SOURCE_FAIL_OPEN if self.fail_open else SOURCE_FAIL_CLOSED

    def _record_failure(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._count_lock:
            self.failures += 1
            self.last_error = str(exc)
            loud = now - self._last_logged >= self.log_every_seconds
            if loud:
                self._last_logged = now
        if loud:  # once a minute at most: a dead sidecar must not flood the workers' logs
            log.warning(
                "upload gate sidecar at %s unreachable (%s); failing %s (%d failures so far)",
                self.where,
                exc,
                "open" if self.fail_open else "closed",
                self.failures,
            )

    def _unreachable_decision(self, exc: BaseException) -> dict:
        self._record_failure(exc)
        if self.fail_open:
            return {
                "admitted": True,
                "status": 200,
                "reason": "",
                "limit": None,
                "retry_after_seconds": None,
                "lease_id": None,
                "lease_expires_in_seconds": None,
                "headers": {},
                "problem": None,
                "source": SOURCE_FAIL_OPEN,
            }
        retry_after = self.fail_closed_retry_after_seconds
        return {
            "admitted": False,
            "status": 503,
            "reason": "upload admission is unavailable; try again later",
            "limit": None,
            "retry_after_seconds": retry_after,
            "lease_id": None,
            "lease_expires_in_seconds": None,
            "headers": {"Retry-After": str(retry_after)},
            "problem": {
                "type": "about:blank",
                "title": "Service Unavailable",
                "status": 503,
                "detail": "upload admission is unavailable; try again later",
            },
            "source": SOURCE_FAIL_CLOSED,
        }


def _decode(body: bytes) -> dict:
    try:
        value = loads(body.decode())
    except ValueError:  # UnicodeDecodeError included
        raise SidecarUnavailable("the sidecar's answer is not JSON") from None
    if not isinstance(value, dict):
        raise SidecarUnavailable("the sidecar's answer is not a JSON object")
    return value
