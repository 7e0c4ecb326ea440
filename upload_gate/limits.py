"""Turning table rows into the limits one server enforces for one client.

Everything here runs when the table is (re)loaded, never per request: the hot path only
reads precomputed integers (GCRA interval and tolerance in microseconds, shares).

Definitions (docs/upload-gate.md has the full algorithm):
- share(L, N) = ceil(L / N) for L >= 1; 0 stays 0 (blocks); None stays None (no limit).
  N = live_server_count from the `*` row, at least 1.
- GCRA: interval T = ceil(60 000 000 / rpm) microseconds, tolerance = (burst - 1) * T.
  burst null (or < 1) with a rate means a burst of 1. rpm = 0 means never admit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from .clock import datetime_to_epoch_us
from .table import DEFAULTS_CLIENT_ID, LimitRow, TableSnapshot

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60_000_000
US_PER_DAY = 86_400_000_000

# Names of the rules, as reported in Decision.limit (the table's column names).
LIMIT_PAUSED = "paused"
LIMIT_ALL_PARTNERS_PAUSED = "all_partners_paused"
LIMIT_RATE = "requests_per_minute"
LIMIT_CONCURRENCY = "max_concurrent_uploads"
LIMIT_BYTES_IN_FLIGHT = "max_bytes_in_flight"
LIMIT_DAILY_BYTES = "daily_upload_bytes"
RATE_RULES_IN_ORDER = (LIMIT_RATE, LIMIT_CONCURRENCY, LIMIT_BYTES_IN_FLIGHT, LIMIT_DAILY_BYTES)


def share(limit: int | None, live_server_count: int) -> int | None:
    """This server's part of a fleet-wide limit: ceil(limit / servers), so 1 still admits one."""
    if limit is None:
        return None
    if limit <= 0:
        return 0
    return -(-limit // max(1, live_server_count))


def gcra_parameters(requests_per_minute: int | None, burst: int | None) -> tuple[int | None, int]:
    """(interval_us, tolerance_us) for GCRA; interval None means no rate limit."""
    if requests_per_minute is None:
        return None, 0
    if requests_per_minute <= 0:
        return 0, -1  # max(tat, now) - now > -1 always: nothing ever conforms
    # Rounding the interval up makes the enforced rate at most rpm, never above it.
    interval_us = -(-US_PER_MINUTE // requests_per_minute)
    return interval_us, (max(1, burst or 1) - 1) * interval_us


class Limits:
    """The numbers one gate enforces for one client (a share, or the fleet-wide values)."""

    __slots__ = (
        "requests_per_minute",
        "burst",
        "interval_us",
        "tolerance_us",
        "max_concurrent_uploads",
        "max_bytes_in_flight",
        "daily_upload_bytes",
        "policy_field",  # RateLimit-Policy, built on first use (headers.policy_field)
    )

    def __init__(
        self,
        requests_per_minute: int | None = None,
        burst: int | None = None,
        max_concurrent_uploads: int | None = None,
        max_bytes_in_flight: int | None = None,
        daily_upload_bytes: int | None = None,
    ) -> None:
        if requests_per_minute is not None:
            burst = max(1, burst or 1)
        else:
            burst = None  # a burst without a rate means nothing
        self.requests_per_minute = requests_per_minute
        self.burst = burst
        self.interval_us, self.tolerance_us = gcra_parameters(requests_per_minute, burst)
        self.max_concurrent_uploads = max_concurrent_uploads
        self.max_bytes_in_flight = max_bytes_in_flight
        self.daily_upload_bytes = daily_upload_bytes

    @classmethod
    def fleet_wide(cls, row: LimitRow) -> Limits:
        return cls(
            row.requests_per_minute,
            row.burst,
            row.max_concurrent_uploads,
            row.max_bytes_in_flight,
            row.daily_upload_bytes,
        )

    @classmethod
    def server_share(cls, row: LimitRow, live_server_count: int) -> Limits:
        burst = max(1, row.burst or 1) if row.requests_per_minute is not None else None
        return cls(
            share(row.requests_per_minute, live_server_count),
            share(burst, live_server_count),
            share(row.max_concurrent_uploads, live_server_count),
            share(row.max_bytes_in_flight, live_server_count),
            share(row.daily_upload_bytes, live_server_count),
        )

    def as_dict(self) -> dict[str, int | None]:
        return {
            "requests_per_minute": self.requests_per_minute,
            "burst": self.burst,
            "max_concurrent_uploads": self.max_concurrent_uploads,
            "max_bytes_in_flight": self.max_bytes_in_flight,
            "daily_upload_bytes": self.daily_upload_bytes,
        }


def _epoch_us_or_none(moment: datetime | None) -> int | None:
    return None if moment is None else datetime_to_epoch_us(moment)


class ClientPolicy:
    """Everything the gate needs to decide for one client id, precomputed at reload."""

    __slots__ = (
        "client_id",
        "has_row",
        "priority",
        "row",
        "share",
        "fleet",
        "pause_configured",
        "own_pause",
        "own_pause_reason",
        "own_resume_us",
        "all_pause",
        "all_pause_reason",
        "all_resume_us",
        "config_version",
        "live_server_count",
        "shadow",
        "reduced",
    )

    def __init__(self, row: LimitRow, defaults: LimitRow | None, snapshot: TableSnapshot, has_row: bool) -> None:
        servers = snapshot.live_server_count
        self.client_id = row.client_id
        self.has_row = has_row
        self.priority = row.priority
        self.row = row
        self.share = Limits.server_share(row, servers)
        self.fleet = Limits.fleet_wide(row)
        self.own_pause = row.paused
        self.own_pause_reason = row.pause_reason
        self.own_resume_us = _epoch_us_or_none(row.resume_at)
        # The global pause lives on the `*` row and applies to every row except `*`.
        self.all_pause = bool(
            has_row and row.client_id != DEFAULTS_CLIENT_ID and defaults and defaults.all_partners_paused
        )
        self.all_pause_reason = defaults.all_partners_pause_reason if self.all_pause and defaults else ""
        self.all_resume_us = _epoch_us_or_none(defaults.all_partners_resume_at) if self.all_pause and defaults else None
        self.pause_configured = self.own_pause or self.all_pause
        self.config_version = snapshot.version
        self.live_server_count = servers
        # None (the common case) keeps shadow evaluation off the admit path entirely.
        self.shadow = Limits.server_share(shadow_row(row), servers) if row.has_shadow else None
        self.reduced = row.reduced_limits

    def active_pause(self, wall_us: int) -> tuple[str, str, int | None] | None:
        """(limit name, reason, resume_us or None if open-ended) of the pause in force, if any.

        A pause whose resume time has passed is over, even before the dashboard clears it.
        When both pauses hold, the client's own pause names the limit and the later (or an
        open-ended) resume time counts, since both must end before an upload is admitted.
        """
        own = self.own_pause and (self.own_resume_us is None or wall_us < self.own_resume_us)
        every = self.all_pause and (self.all_resume_us is None or wall_us < self.all_resume_us)
        if not (own or every):
            return None
        resumes = []
        if own:
            resumes.append(self.own_resume_us)
        if every:
            resumes.append(self.all_resume_us)
        resume_us = None if None in resumes else max(resumes)  # type: ignore[type-var]
        if own:
            return LIMIT_PAUSED, self.own_pause_reason or "paused", resume_us
        return LIMIT_ALL_PARTNERS_PAUSED, self.all_pause_reason or "all partners paused", resume_us

    def describe(self) -> dict:
        """The client's configuration as applied (JSON-serialisable)."""
        return {
            "client_id": self.client_id,
            "has_row": self.has_row,
            "priority": self.priority,
            "config_version": self.config_version,
            "live_server_count": self.live_server_count,
            "fleet_limits": self.fleet.as_dict(),
            "server_share": self.share.as_dict(),
            "paused": self.own_pause,
            "pause_reason": self.own_pause_reason,
            "all_partners_paused": self.all_pause,
            "all_partners_pause_reason": self.all_pause_reason,
            "shadow_server_share": None if self.shadow is None else self.shadow.as_dict(),
            "reduced_limits": sorted(self.reduced),
        }


def shadow_row(row: LimitRow) -> LimitRow:
    """The row as it would be if its shadow values were enforced.

    A shadow value replaces its enforced value; limits without one stay as enforced. The
    rate and burst go together: a shadow rate keeps the enforced burst unless it has its own.
    """
    return replace(
        row,
        requests_per_minute=_first_set(row.shadow_requests_per_minute, row.requests_per_minute),
        burst=_first_set(row.shadow_burst, row.burst),
        max_concurrent_uploads=_first_set(row.shadow_max_concurrent_uploads, row.max_concurrent_uploads),
        max_bytes_in_flight=_first_set(row.shadow_max_bytes_in_flight, row.max_bytes_in_flight),
        daily_upload_bytes=_first_set(row.shadow_daily_upload_bytes, row.daily_upload_bytes),
    )


def _first_set(shadow: int | None, enforced: int | None) -> int | None:
    return enforced if shadow is None else shadow


def build_policies(snapshot: TableSnapshot, fallback: LimitRow) -> tuple[dict[str, ClientPolicy], ClientPolicy]:
    """One policy per row, plus the policy for clients without a row (the `*` row)."""
    defaults = snapshot.defaults
    policies = {
        client_id: ClientPolicy(row, defaults, snapshot, has_row=True)
        for client_id, row in snapshot.rows.items()
        if client_id != DEFAULTS_CLIENT_ID
    }
    # No `*` row (should not happen once migrated): fall back to the configured defaults.
    default_row = defaults if defaults is not None else fallback
    default_policy = ClientPolicy(default_row, defaults, snapshot, has_row=False)
    return policies, default_policy


def checked_size_bytes(size_bytes: Any) -> int:
    """An upload's declared size as an int >= 0 (integer types such as numpy's are accepted)."""
    if isinstance(size_bytes, bool) or not hasattr(size_bytes, "__index__"):
        raise TypeError(f"size_bytes must be an integer number of bytes, not {size_bytes!r}")
    size = size_bytes.__index__()
    if size < 0:
        raise ValueError(f"size_bytes must be >= 0, not {size}")
    return size
