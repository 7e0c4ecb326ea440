"""Simulated servers that run their gate as a sidecar, the way PHP and Node hosts do.

The server's workers do not hold a gate: they ask the host's sidecar over its Unix socket
with the thin client (the same HTTP/1.1 JSON protocol the PHP and Node clients speak). The
sidecar holds the real UploadGate, and the host's status reporter reports that gate, so on
the dashboard such a server looks like any other. Used by the live fleet (`make run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from upload_gate.client import SidecarClient
from upload_gate.server import GateService, SidecarServer


class SidecarDecision:
    """The sidecar's answer, with the attributes the simulation reads off a gate's Decision."""

    __slots__ = ("admitted", "status", "retry_after_seconds", "limit", "lease", "source")

    def __init__(self, answer: dict) -> None:
        self.admitted = bool(answer["admitted"])
        self.status = answer["status"]
        self.retry_after_seconds = answer.get("retry_after_seconds") or 0
        self.limit = answer.get("limit")
        self.lease = answer.get("lease_id")  # an opaque id: released through the sidecar
        self.source = answer["source"]


class SidecarGate:
    """Looks like an UploadGate to the simulation; every decision crosses the socket."""

    def __init__(self, gate: Any, socket_path: Path) -> None:
        self.gate = gate  # the sidecar's own gate (the status reporter reads it)
        self.service = GateService(gate)
        self.server = SidecarServer(self.service, socket_path=str(socket_path))
        self.server.start()
        self.client = SidecarClient(self.server.address)

    @property
    def server_id(self) -> str:
        return self.gate.server_id

    def admit(self, client_id: str, size_bytes: int) -> SidecarDecision:
        return SidecarDecision(self.client.admit(client_id, size_bytes))

    def release(self, lease: str | None, outcome: str = "completed") -> bool:
        return bool(self.client.release(lease, outcome)["released"])

    def refresh_now(self) -> bool:
        return self.gate.refresh_now()

    def close(self) -> None:
        self.client.close()
        self.server.close()
        self.gate.close()
