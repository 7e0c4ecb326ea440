"""The load model's parameters, file mixes and scenarios (docs/load-model.md).

Everything here is plain data: the simulation (fleet_sim.simulation) reads it, and so can
any other code that needs the same model (one model, not two).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MB = 1_000_000
GB = 1_000_000_000


@dataclass(frozen=True)
class LoadModel:
    # An upload server's vCPUs, shared among its uploads in progress.
    server_cores: int = 8
    # CPU an upload costs per GB received (TLS, hashing, writing to storage): one core takes
    # in about 17 MB/s, so an 8-core server takes in about 130 MB/s.
    cpu_core_seconds_per_gb: float = 60.0
    # Files travel in parts; the web tier kills any request after this long.
    part_bytes: int = 100 * MB
    request_timeout_seconds: float = 60.0
    # What a single request can send, whatever the server's CPU: a home connection for direct
    # users, a data-centre link for a partner's SDK.
    user_bandwidth_bytes_per_second: float = 5 * MB
    partner_bandwidth_bytes_per_second: float = 50 * MB
    # A client whose part timed out tries that part again after this long, a few times: a
    # person gives up after 3 failures of the same file, the partner's SDK after 10.
    timeout_retry_seconds: float = 5.0
    user_attempts_per_part: int = 3
    partner_attempts_per_part: int = 10
    # A new server boots and warms up before the load balancer sends it uploads.
    server_warmup_seconds: float = 120.0
    # Simulation step: processor sharing is recomputed once a step.
    step_seconds: float = 1.0

    def cpu_seconds(self, size_bytes: int) -> float:
        return size_bytes / GB * self.cpu_core_seconds_per_gb

    def cores_wanted(self, bandwidth_bytes_per_second: float) -> float:
        """Cores one request uses when nothing else competes: its bandwidth's worth."""
        return min(1.0, bandwidth_bytes_per_second / GB * self.cpu_core_seconds_per_gb)

    def server_bytes_per_second(self) -> float:
        """What one server can take in with every core busy."""
        return self.server_cores * GB / self.cpu_core_seconds_per_gb


@dataclass(frozen=True)
class FileKind:
    name: str
    weight: float
    min_bytes: int
    max_bytes: int


# What direct users upload (Permanent's mix: mostly photos and documents, some video).
USER_FILE_MIX = (
    FileKind("photo", 0.70, 2 * MB, 8 * MB),
    FileKind("document", 0.22, 100_000, 3 * MB),
    FileKind("video", 0.08, 50 * MB, 600 * MB),
)
# A partner's backlog of oral-history recordings.
BACKLOG_VIDEO = FileKind("large video", 1.0, GB // 2, 4 * GB)


@dataclass(frozen=True)
class PartnerBacklog:
    client_id: str = "theirstory-sdk"
    files: int = 2000
    kind: FileKind = BACKLOG_VIDEO
    # Files the importer uploads at once: the whole backlog is queued, and the SDK runs this
    # many uploads in parallel with no pacing of its own.
    concurrency: int | None = 100
    starts_at_seconds: float = 60.0
    # Several kinds of file, drawn by weight (the what-if's size mixes); empty means `kind`.
    mix: tuple[FileKind, ...] = ()


@dataclass(frozen=True)
class BigUser:
    """One direct user who drops 5 large videos and 45 photos into the browser at once."""

    client_id: str = "user-big"
    videos: int = 5
    photos: int = 45
    starts_at_seconds: float = 60.0


@dataclass(frozen=True)
class Scenario:
    name: str
    user_uploads_per_minute: float
    duration_seconds: float
    backlog: PartnerBacklog | None = None
    big_user: BigUser | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)


SCENARIOS = {
    "steady": Scenario(
        "steady",
        user_uploads_per_minute=120,
        duration_seconds=1800,
        notes="Mostly direct users: photos, documents, a few videos.",
    ),
    "theirstory-backlog": Scenario(
        "theirstory-backlog",
        user_uploads_per_minute=120,
        duration_seconds=6 * 3600,
        backlog=PartnerBacklog(),
        notes="TheirStory pushes about 2,000 videos of 0.5–4 GB at once over normal traffic.",
    ),
    "big-user": Scenario(
        "big-user",
        user_uploads_per_minute=120,
        duration_seconds=1800,
        big_user=BigUser(),
        notes="One user uploads 5 large videos and 45 photos at once.",
    ),
}
