"""The sidecar's protocol without sockets: validation, the leases it handed out by opaque
id, and the JSON-ready answers of admit / release / renew / healthz (docs/upload-gate.md,
"The wire protocol"). server.py puts it on a socket; wire.py reads and writes HTTP/1.1.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _json_string  # type: ignore[attr-defined]
from typing import Any

from .jsontext import loads
from .metrics import ADMITTED, PAUSED, THROTTLED, SidecarMetrics
from .rejections import STATUS_PAUSED
from .state import OUTCOMES, Lease

MAX_CLIENT_ID_CHARS = 255
MAX_SIZE_BYTES = 2**63 - 1
LEASE_ID_RE = re.compile(r"^[0-9a-f]{8}-[1-9][0-9]{0,18}$")
_encode = json.JSONEncoder(separators=(",", ":")).encode
RELEASED = b'{"released":true}'
NOT_RELEASED = b'{"released":false}'


class BadRequest(Exception):
    """Input the sidecar cannot act on: answered 400 with what is wrong."""

    def __init__(self, error: str, field: str | None = None, kind: str = "bad_field") -> None:
        super().__init__(error)
        self.error = error
        self.field = field
        self.kind = kind


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
    """The sidecar's answers: the JSON body of each request's 200, or BadRequest."""

    def __init__(self, gate: Any, *, reporter: Any = None) -> None:
        self.gate = gate
        self.leases = LeaseBook()
        self.metrics = SidecarMetrics(gate, lambda: len(self.leases), reporter)
        self._labels: dict[str, str] = {}
        self._labels_version: int | None = None
        self._lease_timeout_seconds = int(gate.lease_timeout_seconds)
        self._handlers: dict[str, Callable[[Any], bytes]] = {
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

    def handle_json(self, path: str, body: bytes) -> bytes:
        try:
            payload = loads(body.decode())
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
            raise BadRequest("the body is not JSON", None, "bad_json") from None
        if not isinstance(payload, dict):
            raise BadRequest("the body must be a JSON object", None, "bad_json")
        return self._handlers[path](payload)

    def admit(self, payload: dict) -> bytes:
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
            lease_id = self.leases.add(lease)
            self.metrics.count_decision(label, ADMITTED, None)
            return admitted_json(lease_id, self._lease_timeout_seconds, headers)
        outcome = PAUSED if decision.status == STATUS_PAUSED else THROTTLED
        self.metrics.count_decision(label, outcome, decision.limit)
        return _encode(
            {
                "admitted": decision.admitted,
                "status": decision.status,
                "reason": decision.reason,
                "limit": decision.limit,
                "retry_after_seconds": decision.retry_after_seconds,
                "lease_id": None,
                "lease_expires_in_seconds": None,
                "headers": headers,
                "problem": decision.problem,
            }
        ).encode()

    def release(self, payload: dict) -> bytes:
        lease_id = _lease_id(payload)
        outcome = payload.get("outcome")
        if type(outcome) is not str or outcome not in OUTCOMES:
            raise BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}", "outcome")
        lease = self.leases.take(lease_id)
        if lease is None:
            return NOT_RELEASED
        released = self.gate.release(lease, outcome)
        # Too late counts as timed out, whatever the worker said (the gate did the same).
        self.metrics.count_lease_end(self.client_label(lease.client_id), outcome if released else "timed_out")
        return RELEASED if released else NOT_RELEASED

    def renew(self, payload: dict) -> bytes:
        lease = self.leases.get(_lease_id(payload))
        if lease is None:
            return _encode({"renewed": False, "expires_in_seconds": None}).encode()
        renewed = self.gate.renew(lease)
        self.metrics.count_renewal(self.client_label(lease.client_id), renewed)
        expires = self._lease_timeout_seconds if renewed else None
        return _encode({"renewed": renewed, "expires_in_seconds": expires}).encode()

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


def admitted_json(lease_id: str, lease_expires_in_seconds: int, headers: dict[str, str]) -> bytes:
    """The admitted answer, formatted directly: the same JSON the encoder would write for
    the dict (docs/upload-gate.md), at a fraction of its cost on the sidecar's hot path."""
    return (
        '{"admitted":true,"status":200,"reason":"","limit":null,"retry_after_seconds":null,'
        f'"lease_id":{_json_string(lease_id)},"lease_expires_in_seconds":{lease_expires_in_seconds},'
        f'"headers":{headers_json(headers)},"problem":null}}'
    ).encode()


def headers_json(headers: dict[str, str]) -> str:
    """The JSON object of a decision's header fields."""
    fields = []
    for name, value in headers.items():
        text = _policy_json(value) if name == "RateLimit-Policy" else _json_string(value)
        fields.append(f"{_json_string(name)}:{text}")
    return "{" + ",".join(fields) + "}"


@functools.lru_cache(maxsize=4096)
def _policy_json(policy: str) -> str:
    """A RateLimit-Policy value as JSON text. A policy is one string per client and table
    version, so it is escaped once, not in every answer (its quotes make escaping costly)."""
    return _json_string(policy)


def _lease_id(payload: dict) -> str:
    lease_id = payload.get("lease_id")
    if type(lease_id) is not str:
        raise BadRequest("lease_id must be the string /v1/admit returned", "lease_id")
    return lease_id
