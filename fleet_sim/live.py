"""The simulated fleet in real time, for `make run`: the dashboard sees a living fleet.

Each simulated server runs a real UploadGate reading the dashboard's database and a real
StatusReporter posting to the dashboard's report API; every `sidecar_every`-th server (by
default every second one) runs that gate as a sidecar and asks it over a Unix socket, as a
PHP or Node host does (fleet_sim/sidecar.py). The fleet follows the desired capacity
of the local scaling group, steady direct-user traffic flows all the time, and now and then
a partner starts a backlog, so the charts move and alerts can fire. No Django here: the
caller passes in how to register a server and how to read the desired capacity.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from fleet_sim.model import SCENARIOS, LoadModel, PartnerBacklog
from fleet_sim.sidecar import SidecarGate
from fleet_sim.simulation import Server, Simulation
from upload_gate import UploadGate
from upload_gate.reporter import StatusReporter

REPORT_INTERVAL_SECONDS = 5


class LiveFleet:
    def __init__(
        self,
        database_url: str,
        dashboard_url: str,
        register_server: Callable[[str], str],
        desired_capacity: Callable[[], int],
        *,
        backlog_every_seconds: float = 1200,
        backlog: PartnerBacklog | None = None,
        seed: int = 1,
        model: LoadModel | None = None,
        sidecar_every: int = 2,
    ):
        self.database_url = database_url
        self.dashboard_url = dashboard_url
        self.register_server = register_server
        self.desired_capacity = desired_capacity
        self.backlog_every_seconds = backlog_every_seconds
        self.backlog = backlog or PartnerBacklog(files=150, concurrency=100, starts_at_seconds=0)
        self.reporters: dict[str, StatusReporter] = {}
        # 0: no sidecars; 2: servers 1, 3, 5 ... ask a sidecar over its socket.
        self.sidecar_every = sidecar_every
        self._gates_made = 0
        self._socket_dir: Path | None = None
        scenario = replace(SCENARIOS["steady"], duration_seconds=float("inf"))
        self.sim = Simulation(scenario, model or LoadModel(), servers=0, seed=seed, gate_factory=self._gate)
        self.sim.on_server_retired = self._retired
        self._next_backlog_at = 120.0

    def _gate(self, name: str) -> UploadGate | SidecarGate:
        gate = UploadGate(self.database_url, server_id=name, poll_interval_seconds=1.0)
        self._gates_made += 1
        self.reporters[name] = StatusReporter(
            gate,
            self.dashboard_url,
            name,
            self.register_server(name),
            interval_seconds=REPORT_INTERVAL_SECONDS,
            cpu_percent=lambda: self._cpu_percent(name),
        )
        if self.sidecar_every and self._gates_made % self.sidecar_every == 0:
            if self._socket_dir is None:
                self._socket_dir = Path(tempfile.mkdtemp(prefix="sim-sidecars-"))
            return SidecarGate(gate, self._socket_dir / f"{name}.sock")
        return gate

    def _cpu_percent(self, name: str) -> float:
        server = next((s for s in self.sim.servers if s.name == name), None)
        return 0.0 if server is None else min(100.0, 100.0 * server.busy_cores / server.cores)

    def _retired(self, server: Server) -> None:
        reporter = self.reporters.pop(server.name, None)
        if reporter is not None:
            reporter.stop(final_report=False)
        server.gate.close()

    def follow_desired_capacity(self) -> None:
        running = [s for s in self.sim.servers if not s.draining]
        desired = max(0, self.desired_capacity())
        for _ in range(desired - len(running)):
            # The first servers are there from the start; later ones warm up first.
            self.sim.add_server(warm=self.sim.now == 0)
        for _ in range(len(running) - desired):
            self.sim.remove_server()

    def step(self) -> None:
        self.follow_desired_capacity()
        if self.sim.now >= self._next_backlog_at and not any(c.kind == "partner" for c in self.sim.clients):
            self.sim.start_backlog(self.backlog)
            self._next_backlog_at = self.sim.now + self.backlog_every_seconds
        self.sim.step()

    def run(self, seconds: float | None = None) -> None:
        """Step once a second of wall time (bounded by `seconds` when given)."""
        started = time.monotonic()
        step_seconds = self.sim.model.step_seconds
        try:
            while seconds is None or time.monotonic() - started < seconds:
                tick = time.monotonic()
                self.step()
                time.sleep(max(0.0, step_seconds - (time.monotonic() - tick)))
        finally:
            self.stop()

    def stop(self) -> None:
        for reporter in self.reporters.values():
            reporter.stop(final_report=False)
        for server in self.sim.servers:
            server.gate.close()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
