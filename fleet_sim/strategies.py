"""The strategies the team considered against the TheirStory incident, as simulation setups."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from fleet_sim.model import LoadModel, Scenario
from fleet_sim.simulation import Simulation


def limit_row(client_id: str, version: int = 1, live_server_count: int = 1, **limits) -> dict:
    return {"client_id": client_id, "version": version, "live_server_count": live_server_count,
            "priority": "bulk" if client_id != "*" else "interactive", **limits}


# The gate's limits for the "limits" strategies: TheirStory may keep 24 uploads in flight
# fleet-wide (3 cores' worth of parts wanting a core each, 0.1 core each is what a 100 MB
# part needs to beat the 60 s timeout); a direct user 6.
PARTNER_LIMITS = {"max_concurrent_uploads": 24}
USER_DEFAULT_LIMITS = {"max_concurrent_uploads": 6}


class TargetTrackingScaler:
    """Target tracking on fleet CPU, as the dashboard's policy does: out at once, in only
    after the CPU stayed low for the stabilization window, a step cap, min and max."""

    def __init__(self, target_percent: float = 70.0, min_servers: int = 1, max_servers: int = 8,
                 step_cap: int = 2, evaluate_every_seconds: float = 60.0, window_seconds: float = 180.0,
                 stabilization_seconds: float = 600.0, partner_limit_per_server: int | None = None):
        self.target = target_percent
        self.min_servers, self.max_servers, self.step_cap = min_servers, max_servers, step_cap
        self.every, self.window, self.stabilization = evaluate_every_seconds, window_seconds, stabilization_seconds
        self.partner_limit_per_server = partner_limit_per_server
        self.samples: deque = deque()
        self.next_at = 0.0

    def step(self, sim: Simulation) -> None:
        self.samples.append((sim.now, sim.fleet_cpu_percent()))
        while self.samples and self.samples[0][0] < sim.now - self.stabilization:
            self.samples.popleft()
        if sim.now < self.next_at:
            return
        self.next_at = sim.now + self.every
        current = len([s for s in sim.servers if not s.draining])
        recent = [cpu for at, cpu in self.samples if at >= sim.now - self.window]
        desired = math.ceil(current * (sum(recent) / len(recent)) / self.target) if recent else current
        if desired > current:
            for _ in range(min(desired, self.max_servers) - current):
                if _ >= self.step_cap:
                    break
                sim.add_server()
        elif desired < current and current > self.min_servers:
            if max(cpu for _, cpu in self.samples) < self.target and sim.now >= self.stabilization:
                sim.remove_server()
        self._follow_fleet_size(sim)

    def _follow_fleet_size(self, sim: Simulation) -> None:
        if self.partner_limit_per_server is None:
            return
        servers = len([s for s in sim.servers if not s.draining])
        sim.set_limit_rows([
            limit_row("*", live_server_count=servers, **USER_DEFAULT_LIMITS),
            limit_row(sim.scenario.backlog.client_id if sim.scenario.backlog else "theirstory-sdk",
                      live_server_count=servers, max_concurrent_uploads=self.partner_limit_per_server * servers),
        ])


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str

    def build(self, scenario: Scenario, model: LoadModel, seed: int) -> Simulation:
        raise NotImplementedError


class NoControls(Strategy):
    def build(self, scenario, model, seed):
        return Simulation(scenario, model, servers=1, seed=seed)


class BiggerBox(Strategy):
    def build(self, scenario, model, seed):
        return Simulation(scenario, model, servers=1, seed=seed, server_cores=[model.server_cores * 2])


class TwoBoxes(Strategy):
    def build(self, scenario, model, seed):
        return Simulation(scenario, model, servers=2, seed=seed)


class DedicatedPartnerBox(Strategy):
    def build(self, scenario, model, seed):
        sim = Simulation(scenario, model, servers=2, seed=seed)
        sim.servers[0].only_for, sim.servers[1].only_for = "user", "partner"
        return sim


class SdkPacing(Strategy):
    def build(self, scenario, model, seed):
        return Simulation(scenario, model, servers=1, seed=seed, partner_concurrency=8)


class GateLimits(Strategy):
    def build(self, scenario, model, seed):
        client_id = scenario.backlog.client_id if scenario.backlog else "theirstory-sdk"
        rows = [limit_row("*", **USER_DEFAULT_LIMITS), limit_row(client_id, **PARTNER_LIMITS)]
        return Simulation(scenario, model, servers=1, seed=seed, limit_rows=rows)


class GateLimitsWithScaling(Strategy):
    def build(self, scenario, model, seed):
        client_id = scenario.backlog.client_id if scenario.backlog else "theirstory-sdk"
        rows = [limit_row("*", **USER_DEFAULT_LIMITS), limit_row(client_id, **PARTNER_LIMITS)]
        scaler = TargetTrackingScaler(partner_limit_per_server=PARTNER_LIMITS["max_concurrent_uploads"])
        return Simulation(scenario, model, servers=1, seed=seed, limit_rows=rows, scaler=scaler)


STRATEGIES = [
    NoControls("no controls", "today: one 8-core box, no limits"),
    BiggerBox("box twice the size", "one 16-core box"),
    TwoBoxes("two boxes", "two 8-core boxes behind the balancer"),
    DedicatedPartnerBox("dedicated partner box", "TheirStory on its own 8-core box, users on another"),
    SdkPacing("SDK pacing", "TheirStory's SDK uploads 8 files at a time"),
    GateLimits("limits in the gate", "TheirStory at most 24 uploads in flight, a direct user 6"),
    GateLimitsWithScaling("limits + autoscaling", "the same limits per server, target tracking at 70 % CPU, 1–8 boxes"),
]
