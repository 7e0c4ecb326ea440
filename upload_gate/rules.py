"""Which limit binds when an upload is throttled, and how long the client should wait.

Only the rejection path comes here; the admit path in gate.py checks the same rules
inline. Every failing rule has a wait; the longest one decides Retry-After (a shorter
one would just earn another 429), and ties go to the first rule in this order:
requests_per_minute, max_concurrent_uploads, max_bytes_in_flight, daily_upload_bytes.
"""

from __future__ import annotations

from .limits import (
    LIMIT_BYTES_IN_FLIGHT,
    LIMIT_CONCURRENCY,
    LIMIT_DAILY_BYTES,
    LIMIT_RATE,
    US_PER_DAY,
    US_PER_MINUTE,
    Limits,
)

# With rpm = 0 nothing ever conforms; advertise the one-minute window as the wait.
RATE_BLOCKED_WAIT_US = US_PER_MINUTE

REASONS = {
    LIMIT_RATE: "too many upload requests: request rate limit reached",
    LIMIT_CONCURRENCY: "too many uploads in progress",
    LIMIT_BYTES_IN_FLIGHT: "too many bytes of uploads in progress",
    LIMIT_DAILY_BYTES: "daily upload bytes used up (resets at 00:00 UTC)",
}


# draft-ietf-httpapi-ratelimit-headers, "Temporary Reduced Capacity": the server has less to
# give right now (a limit lowered because the fleet is loaded); not the client's fault.
PROBLEM_REDUCED_CAPACITY_TYPE = "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
PROBLEM_REDUCED_CAPACITY_TITLE = "Temporary Reduced Capacity"
REDUCED_REASONS = {
    LIMIT_CONCURRENCY: "too many uploads in progress for the fleet's reduced capacity",
    LIMIT_BYTES_IN_FLIGHT: "too many bytes of uploads in progress for the fleet's reduced capacity",
}
# The RateLimit-Policy item names of the limits the controller can lower.
POLICY_NAMES = {LIMIT_CONCURRENCY: "inflight", LIMIT_BYTES_IN_FLIGHT: "inflight-bytes"}


def reduced_capacity_problem(limit: str) -> dict:
    return {
        "type": PROBLEM_REDUCED_CAPACITY_TYPE,
        "title": PROBLEM_REDUCED_CAPACITY_TITLE,
        "violated-policies": [POLICY_NAMES[limit]],
    }


def binding_limit(
    limits: Limits,
    gap_us: int,
    uploads_in_flight: int,
    bytes_in_flight: int,
    day_bytes: int,
    wall_us: int | None,
    size_bytes: int,
    busy_wait_us: int,
) -> tuple[str, int] | None:
    """(limit name, wait in microseconds) of the failing rule with the longest wait, or None.

    gap_us = max(tat, now) - now. The GCRA wait is the time until the request conforms:
    tat - tolerance - now = gap - tolerance. Concurrency and bytes in flight have no
    known end (an upload ends when it ends): they wait busy_wait_us. The daily quota
    waits until the next 00:00 UTC.
    """
    binding: tuple[str, int] | None = None
    if limits.interval_us is not None and gap_us > limits.tolerance_us:
        wait_us = RATE_BLOCKED_WAIT_US if limits.interval_us == 0 else gap_us - limits.tolerance_us
        binding = (LIMIT_RATE, wait_us)
    cap = limits.max_concurrent_uploads
    if cap is not None and uploads_in_flight >= cap:
        binding = _longer(binding, LIMIT_CONCURRENCY, busy_wait_us)
    cap = limits.max_bytes_in_flight
    if cap is not None and bytes_in_flight + size_bytes > cap:
        binding = _longer(binding, LIMIT_BYTES_IN_FLIGHT, busy_wait_us)
    cap = limits.daily_upload_bytes
    if cap is not None and wall_us is not None and day_bytes + size_bytes > cap:
        binding = _longer(binding, LIMIT_DAILY_BYTES, US_PER_DAY - wall_us % US_PER_DAY)
    return binding


def _longer(current: tuple[str, int] | None, name: str, wait_us: int) -> tuple[str, int]:
    if current is None or wait_us > current[1]:
        return (name, wait_us)
    return current
