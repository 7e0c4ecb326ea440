"""The what-if: a partner's upload, its limits and the fleet's size → projected completion
time, fleet CPU and timeouts (docs/load-model.md, "The what-if").

It runs the simulated fleet on a scenario built from the inputs, with the same Simulation,
LoadModel and gate as bench/incident.py: one model, not two. So that it answers within a
web request, it simulates at most `horizon_seconds` after the partner starts; an upload
still running then is extrapolated at the rate the simulation reached (partner bytes per
second, timeouts per second) and the projection says so.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from fleet_sim.model import BACKLOG_VIDEO, MB, USER_FILE_MIX, FileKind, LoadModel, PartnerBacklog, Scenario
from fleet_sim.simulation import Simulation
from fleet_sim.strategies import limit_row

# Simulated time after the partner starts, at most: about 1–2 s of wall time on one core.
HORIZON_SECONDS = 2 * 3600
# Direct users keep arriving at the rate of the model's scenarios while the partner uploads.
USER_UPLOADS_PER_MINUTE = 120.0
# The partner's SDK queues the whole upload and runs this many files at once (the incident's).
SDK_CONCURRENCY = 100
PARTNER_STARTS_AT_SECONDS = 60.0
PARTNER_LIMIT_NAMES = ("requests_per_minute", "burst", "max_concurrent_uploads", "max_bytes_in_flight")


@dataclass(frozen=True)
class SizeMix:
    label: str
    kinds: tuple[FileKind, ...]


SIZE_MIXES = {
    "small-documents": SizeMix("small documents (0.1–3 MB)", (FileKind("document", 1.0, 100_000, 3 * MB),)),
    "photos": SizeMix("photos (2–8 MB)", (USER_FILE_MIX[0],)),
    "mixed": SizeMix("mixed: 70 % photos, 22 % documents, 8 % videos of 50–600 MB", USER_FILE_MIX),
    "large-videos": SizeMix("large videos (0.5–4 GB)", (BACKLOG_VIDEO,)),
}


def explicit_mix(min_bytes: int, max_bytes: int) -> SizeMix:
    """Files of sizes spread evenly between two sizes."""
    return SizeMix("explicit sizes", (FileKind("file", 1.0, min_bytes, max_bytes),))


@dataclass(frozen=True)
class WhatIf:
    client_id: str
    files: int
    mix: SizeMix
    servers: int
    # The partner's fleet-wide limits (None: no limit); each server enforces its share.
    requests_per_minute: int | None = None
    burst: int | None = None
    max_concurrent_uploads: int | None = None
    max_bytes_in_flight: int | None = None
    # The `*` row's limits, which direct users get.
    default_limits: dict = field(default_factory=dict)
    user_uploads_per_minute: float = USER_UPLOADS_PER_MINUTE
    sdk_concurrency: int = SDK_CONCURRENCY
    seed: int = 1

    def partner_limits(self) -> dict:
        return {name: getattr(self, name) for name in PARTNER_LIMIT_NAMES if getattr(self, name) is not None}

    def scenario(self) -> Scenario:
        backlog = PartnerBacklog(
            client_id=self.client_id,
            files=self.files,
            kind=self.mix.kinds[0],
            concurrency=self.sdk_concurrency,
            starts_at_seconds=PARTNER_STARTS_AT_SECONDS,
            mix=self.mix.kinds if len(self.mix.kinds) > 1 else (),
        )
        return Scenario(
            f"what-if {self.client_id}",
            user_uploads_per_minute=self.user_uploads_per_minute,
            duration_seconds=PARTNER_STARTS_AT_SECONDS,
            backlog=backlog,
        )

    def limit_rows(self) -> list[dict]:
        defaults = {k: v for k, v in self.default_limits.items() if v is not None}
        return [
            limit_row("*", live_server_count=self.servers, **defaults),
            limit_row(self.client_id, live_server_count=self.servers, **self.partner_limits()),
        ]

    def simulation(self, model: LoadModel | None = None) -> Simulation:
        return Simulation(
            self.scenario(), model or LoadModel(), servers=self.servers, seed=self.seed, limit_rows=self.limit_rows()
        )


@dataclass(frozen=True)
class Projection:
    # From the partner's start to its last file; None when it makes no progress at all.
    completion_seconds: float | None
    simulated_seconds: float
    extrapolated: bool
    total_bytes: int
    mean_cpu_percent: float
    peak_cpu_percent: float  # the busiest minute's mean
    cpu_p95_percent: float  # of the per-second samples, as bench/incident.py prints
    partner_timeouts: float  # expected over the whole upload
    others_timeouts: float
    partner_files_given_up: int
    partner_throttled: int
    cpu_by_minute: list[float]

    @property
    def timeout_risk(self) -> str:
        if self.others_timeouts >= 1:
            return "high"
        if self.partner_timeouts >= 1 or self.partner_files_given_up:
            return "medium"
        return "low"


def project(what_if: WhatIf, model: LoadModel | None = None, horizon_seconds: float = HORIZON_SECONDS) -> Projection:
    sim = what_if.simulation(model)
    total_bytes = _partner_bytes_left(sim)
    stop_at = PARTNER_STARTS_AT_SECONDS + horizon_seconds
    while sim.totals.backlog_done_at is None and sim.now < stop_at:
        sim.step()
    return _projection(sim, total_bytes)


def _partner_bytes_left(sim: Simulation) -> int:
    left = 0
    for client in sim.clients:
        if client.kind == "partner":
            left += sum(client.files) + sum(part.size_bytes for slot in client.slots for part in slot.parts)
    return left


def _projection(sim: Simulation, total_bytes: int) -> Projection:
    totals = sim.totals
    elapsed = sim.now - PARTNER_STARTS_AT_SECONDS
    finished = totals.backlog_done_at is not None
    if finished:
        completion = totals.backlog_done_at - PARTNER_STARTS_AT_SECONDS
    else:
        completion = _extrapolate(sim, elapsed)
    # Timeouts keep coming at the simulated rate for the rest of the upload.
    scale = completion / elapsed if completion and not finished and elapsed > 0 else 1.0
    cpu = totals.cpu_samples
    by_minute = _per_minute(cpu, sim.model.step_seconds)
    return Projection(
        completion_seconds=completion,
        simulated_seconds=elapsed,
        extrapolated=not finished,
        total_bytes=total_bytes,
        mean_cpu_percent=statistics.fmean(cpu) if cpu else 0.0,
        peak_cpu_percent=max(by_minute, default=0.0),
        cpu_p95_percent=sorted(cpu)[int(len(cpu) * 0.95) - 1] if cpu else 0.0,
        partner_timeouts=totals.timed_out["partner"] * scale,
        others_timeouts=totals.timed_out["user"] * scale,
        partner_files_given_up=totals.files_abandoned["partner"],
        partner_throttled=totals.throttled["partner"],
        cpu_by_minute=by_minute,
    )


def _extrapolate(sim: Simulation, elapsed: float) -> float | None:
    done = sim.totals.bytes_completed["partner"]
    if elapsed <= 0 or done <= 0:
        return None
    return elapsed + _partner_bytes_left(sim) / (done / elapsed)


def _per_minute(samples: list[float], step_seconds: float) -> list[float]:
    per_minute = max(1, round(60 / step_seconds))
    return [statistics.fmean(samples[i : i + per_minute]) for i in range(0, len(samples), per_minute)]
