"""The live fleet (`make run`) runs every second simulated server through a gate sidecar."""

from __future__ import annotations

import socket
from pathlib import Path

from fleet_sim.live import LiveFleet
from fleet_sim.sidecar import SidecarGate
from tests.factories import create_sqlite_table, insert_sqlite_row
from upload_gate import UploadGate


def sidecar_metrics(gate: SidecarGate) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(gate.server.address)
        conn.sendall(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer.decode()


def test_every_second_server_asks_its_sidecar_over_the_socket(tmp_path):
    db = tmp_path / "app.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=50, live_server_count=4)
    fleet = LiveFleet(f"sqlite:///{db}", "http://127.0.0.1:9", lambda name: "token", lambda: 4, seed=3)
    try:
        for _ in range(30):
            fleet.step()
        gates = [server.gate for server in fleet.sim.servers]
        assert [type(gate) for gate in gates] == [UploadGate, SidecarGate, UploadGate, SidecarGate]
        for gate in gates[1::2]:
            metrics = sidecar_metrics(gate)
            admitted = [
                line
                for line in metrics.splitlines()
                if line.startswith("upload_gate_decisions_total") and "admitted" in line
            ]
            assert admitted and float(admitted[0].rsplit(" ", 1)[1]) > 0, metrics[:2000]
            # The host's reporter reads the sidecar's gate: the dashboard sees its uploads.
            assert gate.gate.snapshot_counters(reset=False)["clients"]
        assert sum(fleet.sim.totals.started.values()) > 0
    finally:
        fleet.stop()
    assert not any(Path(gate.server.socket_path).exists() for gate in gates[1::2])  # stopped cleanly
