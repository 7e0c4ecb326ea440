"""HTTP header fields for a decision: RateLimit-Policy, RateLimit and Retry-After.

Syntax of draft-ietf-httpapi-ratelimit-headers (structured-field lists of quota policy
items, identifiers as sf-strings):

    RateLimit-Policy: "rpm";q=100;w=60, "inflight";q=10;qu="concurrent-requests"
    RateLimit: "rpm";r=42;t=12, "inflight";r=3

Only built when a caller asks (Decision.headers()). The policy depends on the limits alone
and is built once per Limits; the state is built per decision.

Every value is a Structured Fields integer, which has at most 15 digits (RFC 9651 3.3.1):
a larger quota or remainder (a bigint column holds up to 2^63 - 1) is written as
999 999 999 999 999, so one huge daily quota cannot make the whole field malformed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .limits import US_PER_DAY, US_PER_SECOND, Limits

if TYPE_CHECKING:
    from .decision import Decision

POLICY_RATE = "rpm"
POLICY_CONCURRENCY = "inflight"
POLICY_BYTES_IN_FLIGHT = "inflight-bytes"
POLICY_DAILY_BYTES = "daily-bytes"


SF_INTEGER_MAX = 999_999_999_999_999


def ceil_seconds(microseconds: int) -> int:
    return -(-microseconds // US_PER_SECOND)


def sf_integer(value: int) -> int:
    """The value, or the largest Structured Fields integer if it is larger."""
    return value if value <= SF_INTEGER_MAX else SF_INTEGER_MAX


def gcra_remaining(limits: Limits, gap_us: int) -> int:
    """Requests that could be admitted back to back now, given gap = max(tat, now) - now;
    never more than the quota q (the burst may be larger than the rate)."""
    if limits.interval_us == 0 or gap_us > limits.tolerance_us:
        return 0
    remaining = (limits.tolerance_us - gap_us) // limits.interval_us + 1
    return min(remaining, limits.requests_per_minute)  # type: ignore[type-var]


def gcra_reset_seconds(limits: Limits, gap_us: int) -> int:
    """`t` of the rate item: with requests left, seconds until the bucket is full again; with
    none left, seconds until the next one conforms, which is what a rate 429's Retry-After
    waits, so Retry-After is never earlier than `t`. 60 when rpm = 0 (it never refills)."""
    if limits.interval_us == 0:
        return 60
    if gap_us > limits.tolerance_us:
        return ceil_seconds(gap_us - limits.tolerance_us)
    return ceil_seconds(gap_us)


def policy_field(limits: Limits) -> str:
    """RateLimit-Policy for these limits ("" when none is set). It depends on the limits
    alone, so it is built once per Limits (one per client and table version)."""
    try:
        return limits.policy_field
    except AttributeError:
        pass
    policy: list[str] = []
    if limits.requests_per_minute is not None:
        policy.append(f'"{POLICY_RATE}";q={limits.requests_per_minute};w=60')
    if limits.max_concurrent_uploads is not None:
        policy.append(f'"{POLICY_CONCURRENCY}";q={limits.max_concurrent_uploads};qu="concurrent-requests"')
    if limits.max_bytes_in_flight is not None:
        policy.append(f'"{POLICY_BYTES_IN_FLIGHT}";q={sf_integer(limits.max_bytes_in_flight)};qu="content-bytes"')
    if limits.daily_upload_bytes is not None:
        policy.append(f'"{POLICY_DAILY_BYTES}";q={sf_integer(limits.daily_upload_bytes)};qu="content-bytes";w=86400')
    limits.policy_field = ", ".join(policy)
    return limits.policy_field


def state_field(
    limits: Limits,
    gap_us: int,
    uploads_in_flight: int,
    bytes_in_flight: int,
    day_bytes: int,
    wall_us: int | None,
) -> str:
    """RateLimit: what remains of each limit that is set, after this decision."""
    state: list[str] = []
    if limits.requests_per_minute is not None:
        reset = gcra_reset_seconds(limits, gap_us)
        state.append(f'"{POLICY_RATE}";r={gcra_remaining(limits, gap_us)};t={reset}')
    cap = limits.max_concurrent_uploads
    if cap is not None:
        state.append(f'"{POLICY_CONCURRENCY}";r={cap - uploads_in_flight if cap > uploads_in_flight else 0}')
    cap = limits.max_bytes_in_flight
    if cap is not None:
        state.append(f'"{POLICY_BYTES_IN_FLIGHT}";r={sf_integer(max(0, cap - bytes_in_flight))}')
    cap = limits.daily_upload_bytes
    if cap is not None and wall_us is not None:  # the gate reads the clock whenever a daily quota is set
        to_midnight_us = US_PER_DAY - wall_us % US_PER_DAY
        state.append(f'"{POLICY_DAILY_BYTES}";r={sf_integer(max(0, cap - day_bytes))};t={ceil_seconds(to_midnight_us)}')
    return ", ".join(state)


def build_headers(decision: Decision) -> dict[str, str]:
    fields: dict[str, str] = {}
    view = decision._view
    if view is not None:
        policy = policy_field(view[0])
        if policy:  # an empty list is not a valid field value: omit both fields
            fields["RateLimit-Policy"] = policy
            fields["RateLimit"] = state_field(*view)
    if decision.retry_after_seconds is not None:
        fields["Retry-After"] = str(decision.retry_after_seconds)
    return fields


# -- reading them back (the SDK pacer, upload_gate/pacer.py) --------------------------------

_ITEM_NAME = re.compile(r'\s*"([^"\\]*)"')
_PARAMETER = re.compile(r';\s*([a-z*][a-z0-9_.*-]*)(?:=("(?:[^"\\]|\\.)*"|[^;,\s]*))?')


def parse_quota_items(value: str | None) -> dict[str, dict[str, int | str]]:
    """A RateLimit or RateLimit-Policy field as {policy name: {parameter: value}}:
    integers as int, sf-strings unquoted. Items that do not parse are skipped, so one odd
    item from a proxy cannot hide the others; None or "" gives {}."""
    items: dict[str, dict[str, int | str]] = {}
    for raw_item in _split_items(value or ""):
        name = _ITEM_NAME.match(raw_item)
        if name is None:
            continue
        parameters: dict[str, int | str] = {}
        for key, raw in _PARAMETER.findall(raw_item[name.end() :]):
            if raw.startswith('"'):
                parameters[key] = raw[1:-1]
            elif raw.lstrip("-").isdigit():
                parameters[key] = int(raw)
        items[name.group(1)] = parameters
    return items


def _split_items(value: str) -> list[str]:
    """Split a structured-field list on the commas outside sf-strings."""
    items, current, quoted = [], [], False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item for item in items if item.strip()]
