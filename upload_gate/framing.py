"""What a request head says about its request: method, path, keep-alive, and how its body
is framed (Content-Length, chunked, Expect: 100-continue), for the sidecar's HTTP/1.1
reader (wire.py). Pure functions of bytes; anything that cannot be trusted raises
FramingError, which is answered 400 before the connection is closed.
"""

from __future__ import annotations

from .service import BadRequest

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 16 * 1024  # an admit body is ~60 bytes; anything near this is not a client of ours


class FramingError(BadRequest):
    """The request itself is broken (head, length, encoding): answer, then close."""

    def __init__(self, error: str) -> None:
        super().__init__(error, None, "bad_http")


CHUNKED = -1  # the length framing() gives a chunked body
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Framing of the heads seen lately: a worker sends the same few heads over and over (only
# Content-Length changes with the client id), and reading one is a pure function of its bytes.
_KNOWN_HEADS: dict[bytes, tuple[str, str, bool, int, bool]] = {}
MAX_KNOWN_HEADS = 512
MAX_KNOWN_HEAD_BYTES = 1024


def framing(head: bytes) -> tuple[str, str, bool, int, bool]:
    """(method, path, keep-alive, body length or CHUNKED, expects 100-continue) of a head."""
    try:
        return _KNOWN_HEADS[head]
    except KeyError:
        pass
    read = _read_framing(head)
    if len(head) <= MAX_KNOWN_HEAD_BYTES:
        if len(_KNOWN_HEADS) >= MAX_KNOWN_HEADS:
            _KNOWN_HEADS.clear()  # heads that vary (a client of another kind): start again
        _KNOWN_HEADS[head] = read
    return read


def chunked_body(buffer: bytes, start: int) -> tuple[bytes, int] | None:
    """(body, where it ends) of a chunked body from `start`, or None if not all there yet."""
    parts: list[bytes] = []
    size_total = 0
    at = start
    while True:
        end = buffer.find(b"\r\n", at)
        if end < 0:
            if len(buffer) - at > 1024:
                raise FramingError("bad chunk size line")
            return None
        size_text = buffer[at:end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise FramingError("bad chunk size") from None
        if size < 0 or size_total + size > MAX_BODY_BYTES:
            raise FramingError(f"body larger than {MAX_BODY_BYTES} bytes")
        at = end + 2
        if size == 0:
            # Trailers (usually none), up to the empty line.
            while (trailer_end := buffer.find(b"\r\n", at)) != at:
                if trailer_end < 0:
                    if len(buffer) - at > MAX_HEAD_BYTES:
                        raise FramingError("trailers too large")
                    return None
                at = trailer_end + 2
            return b"".join(parts), at + 2
        if len(buffer) < at + size + 2:
            return None
        if buffer[at + size : at + size + 2] != b"\r\n":
            raise FramingError("chunk not followed by CRLF")
        parts.append(buffer[at : at + size])
        size_total += size
        at += size + 2


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
