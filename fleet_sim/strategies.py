"""The strategies the team considered against the TheirStory incident, as simulation setups."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from fleet_sim.load_control import ControlSettings, PartnerLimits, control
from fleet_sim.model import LoadModel, Scenario
from fleet_sim.simulation import Simulation
from upload_gate.pacing import PacerSettings


def limit_row(client_id: str, version: int = 1, live_server_count: int = 1, **limits) -> dict:
    return {
        "client_id": client_id,
        "version": version,
        "live_server_count": live_server_count,
        "priority": "bulk" if client_id != "*" else "interactive",
        **limits,
    }


# The gate's limits for the "limits" strategies: TheirStory may keep 24 uploads in flight
# fleet-wide (3 cores' worth of parts wanting a core each, 0.1 core each is what a 100 MB
# part needs to beat the 60 s timeout); a direct user 6.
PARTNER_LIMITS = {"max_concurrent_uploads": 24}
USER_DEFAULT_LIMITS = {"max_concurrent_uploads": 6}


class TargetTrackingScaler:
    """Target tracking on fleet CPU, as the dashboard's policy does: out at once, in only
    after the CPU stayed low for the stabilization window, a step cap, min and max."""

    def __init__(
        self,
        target_percent: float = 70.0,
        min_servers: int = 1,
        max_servers: int = 8,
        step_cap: int = 2,
        evaluate_every_seconds: float = 60.0,
        window_seconds: float = 180.0,
        stabilization_seconds: float = 600.0,
        partner_limit_per_server: int | None = None,
    ):
        self.target = target_percent
        self.min_servers, self.max_servers, self.step_cap = min_servers, max_servers, step_cap
        self.every, self.window, self.stabilization = evaluate_every_seconds, window_seconds, stabilization_seconds
        self.partner_limit_per_server = partner_limit_per_server
        self.samples: deque = deque()
        self.next_at = 0.0
        # Gates reload only when max(version) moves, so each publish needs a new version;
        # the strategy's initial rows are version 1.
        self.version = 1
        self.published_servers: int | None = None

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
        if servers == self.published_servers:
            return
        self.published_servers = servers
        self.version += 1
        sim.set_limit_rows(
            [
                limit_row("*", version=self.version, live_server_count=servers, **USER_DEFAULT_LIMITS),
                limit_row(
                    sim.scenario.backlog.client_id if sim.scenario.backlog else "theirstory-sdk",
                    version=self.version,
                    live_server_count=servers,
                    max_concurrent_uploads=self.partner_limit_per_server * servers,
                ),
            ]
        )


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


def sdk_pacer(model: LoadModel, max_concurrency: int) -> PacerSettings:
    """The SDK pacer (docs/sdk-pacing.md) with its defaults, giving a part up after as many
    timeouts in a row as the model's SDK does."""
    return PacerSettings(max_concurrency=max_concurrency, max_attempts=model.partner_attempts_per_part)


# The SDK's own ceiling in "SDK pacing": 8 files at a time, what the team weighed.
SDK_PACING_CONCURRENCY = 8


class SdkPacing(Strategy):
    """The SDK pacer against servers without limits: it grows to its own ceiling, and halves
    on a timeout (there is no RateLimit to follow)."""

    def build(self, scenario, model, seed):
        pacer = sdk_pacer(model, SDK_PACING_CONCURRENCY)
        return Simulation(scenario, model, servers=1, seed=seed, partner_pacer=pacer)


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


class PacerWithGateLimitsAndScaling(Strategy):
    """'limits + autoscaling', with the partner's SDK running the pacer: up to the backlog's
    own concurrency (100 files), as far as the gate's RateLimit says there is room."""

    def build(self, scenario, model, seed):
        client_id = scenario.backlog.client_id if scenario.backlog else "theirstory-sdk"
        rows = [limit_row("*", **USER_DEFAULT_LIMITS), limit_row(client_id, **PARTNER_LIMITS)]
        scaler = TargetTrackingScaler(partner_limit_per_server=PARTNER_LIMITS["max_concurrent_uploads"])
        ceiling = (scenario.backlog.concurrency if scenario.backlog else None) or 100
        pacer = sdk_pacer(model, ceiling)
        return Simulation(scenario, model, servers=1, seed=seed, limit_rows=rows, scaler=scaler, partner_pacer=pacer)


STRATEGIES = [
    NoControls("no controls", "today: one 8-core box, no limits"),
    BiggerBox("box twice the size", "one 16-core box"),
    TwoBoxes("two boxes", "two 8-core boxes behind the balancer"),
    DedicatedPartnerBox("dedicated partner box", "TheirStory on its own 8-core box, users on another"),
    SdkPacing("SDK pacing", "TheirStory's SDK runs the pacer, at most 8 files at a time, no limits in the gate"),
    GateLimits("limits in the gate", "TheirStory at most 24 uploads in flight, a direct user 6"),
    GateLimitsWithScaling("limits + autoscaling", "the same limits per server, target tracking at 70 % CPU, 1–8 boxes"),
    PacerWithGateLimitsAndScaling(
        "pacer + gate limits + scaling", "limits + autoscaling, and TheirStory's SDK runs the pacer (up to 100 files)"
    ),
]


class LoadCoupledScaler:
    """Target tracking plus load-coupled limits: the dashboard's controller
    (fleet_sim.load_control, the same code) shrinks the partner's effective concurrency while
    the fleet's CPU stays above its target and grows it back when it stays below; the
    configured limit follows the fleet size as in "limits + autoscaling"."""

    def __init__(
        self,
        settings,
        partner_limit_per_server: int,
        control_every_seconds: float = 30.0,
        scaler: TargetTrackingScaler | None = None,
    ):
        self.settings = settings
        self.per_server = partner_limit_per_server
        self.every = control_every_seconds
        self.scaler = scaler or TargetTrackingScaler()
        self.samples: deque = deque()
        self.partner = None
        self.next_at = 0.0
        self.changes = 0
        self.version = 1

    def step(self, sim: Simulation) -> None:
        self.scaler.step(sim)
        self.samples.append((sim.now, sim.fleet_cpu_percent()))
        while self.samples and self.samples[0][0] < sim.now - self.settings.window_seconds:
            self.samples.popleft()
        if sim.now < self.next_at:
            return
        self.next_at = sim.now + self.every
        self._control(sim)

    def _control(self, sim: Simulation) -> None:
        servers = len([s for s in sim.servers if not s.draining])
        configured = self.per_server * servers
        client_id = sim.scenario.backlog.client_id if sim.scenario.backlog else "theirstory-sdk"
        if self.partner is None:
            self.partner = PartnerLimits(client_id, configured, None, configured, None)
        # The configured limit follows the fleet size; a reduced effective limit keeps its
        # proportion of it (what the dashboard does when the live server count changes).
        effective = max(1, round(self.partner.effective_uploads * configured / self.partner.configured_uploads))
        self.partner = PartnerLimits(
            client_id, configured, None, effective, None, self.partner.changed_at_seconds, self.partner.reason
        )
        tick = control(
            list(self.samples),
            sim.now,
            [self.partner],
            self.settings,
            fleet_upload_capacity=self._fleet_upload_capacity(sim),
        )
        self.changes += len(tick.changed)
        self.partner = tick.partners[0]
        # A new version each time: the gates reload only when max(version) moves.
        self.version += 1
        sim.set_limit_rows(
            [
                limit_row("*", version=self.version, live_server_count=servers, **USER_DEFAULT_LIMITS),
                limit_row(
                    client_id,
                    version=self.version,
                    live_server_count=servers,
                    max_concurrent_uploads=self.partner.effective_uploads,
                ),
            ]
        )

    @staticmethod
    def _fleet_upload_capacity(sim: Simulation) -> int:
        """Uploads the ready servers carry at once with each still beating the timeout: a
        part needs cpu_seconds(part) / timeout cores to finish in time."""
        model = sim.model
        cores_per_upload = model.cpu_seconds(model.part_bytes) / model.request_timeout_seconds
        cores = sum(s.cores for s in sim.servers if s.ready_at <= sim.now and not s.draining)
        return int(cores / cores_per_upload)


# The controller's settings for the simulated fleet: it acts above the scaler's 70 % target,
# so the scaler adds servers first and the limits shrink only when the fleet is full.
LOAD_COUPLED_SETTINGS = {
    "cpu_target_percent": 99.0,
    "window_seconds": 120.0,
    "hold_seconds": 120.0,
    "reserved_share_percent": 30.0,
    "decrease_factor": 0.85,
    "increase_step_percent": 10.0,
    "hysteresis_percent": 5.0,
}
LOAD_COUPLED_LIMIT_PER_SERVER = PARTNER_LIMITS["max_concurrent_uploads"]


@dataclass(frozen=True)
class LoadCoupledWithScaling(Strategy):
    # The controller's fleet CPU target (bench/incident.py --cpu-targets tries others).
    cpu_target_percent: float = LOAD_COUPLED_SETTINGS["cpu_target_percent"]

    def build(self, scenario, model, seed):
        client_id = scenario.backlog.client_id if scenario.backlog else "theirstory-sdk"
        rows = [
            limit_row("*", **USER_DEFAULT_LIMITS),
            limit_row(client_id, max_concurrent_uploads=LOAD_COUPLED_LIMIT_PER_SERVER),
        ]
        settings = ControlSettings(**{**LOAD_COUPLED_SETTINGS, "cpu_target_percent": self.cpu_target_percent})
        scaler = LoadCoupledScaler(settings, LOAD_COUPLED_LIMIT_PER_SERVER)
        return Simulation(scenario, model, servers=1, seed=seed, limit_rows=rows, scaler=scaler)


STRATEGIES.append(
    LoadCoupledWithScaling(
        "load-coupled + scaling",
        "load-coupled limits plus automatic scaling: 24 per server configured, × 0.85 while CPU > 99 % for 2 min",
    )
)
