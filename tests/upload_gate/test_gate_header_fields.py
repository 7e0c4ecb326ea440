"""RateLimit-Policy and RateLimit, read back with an independent Structured Fields parser
(http-sf, RFC 9651): every field parses at every column's maximum, r never exceeds q, and a
rate 429's Retry-After is never earlier than the rate item's t (docs/upload-gate.md)."""

from __future__ import annotations

import json

import http_sf
from gate_vectors_build import VECTORS_PATH
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import star_row
from upload_gate import LIMIT_RATE
from upload_gate.table import MAX_BIGINT, MAX_INTEGER

LIMIT_MAXIMUM = {
    "requests_per_minute": MAX_INTEGER,
    "burst": MAX_INTEGER,
    "max_concurrent_uploads": MAX_INTEGER,
    "max_bytes_in_flight": MAX_BIGINT,
    "daily_upload_bytes": MAX_BIGINT,
}


def parsed(fields: dict[str, str]) -> tuple[dict[str, dict], dict[str, dict]]:
    """(policy items, state items) by name; raises if either field is not a valid sf-list."""
    if "RateLimit-Policy" not in fields:
        assert "RateLimit" not in fields
        return {}, {}
    policy = http_sf.parse(fields["RateLimit-Policy"].encode(), tltype="list")
    state = http_sf.parse(fields["RateLimit"].encode(), tltype="list")
    return {name: params for name, params in policy}, {name: params for name, params in state}


def check_fields(decision) -> None:
    fields = decision.headers()
    policy, state = parsed(fields)
    assert policy.keys() == state.keys()
    for name, params in state.items():
        assert 0 <= params["r"] <= policy[name]["q"], (name, fields)
    if decision.limit == LIMIT_RATE and decision.status == 429:
        assert int(fields["Retry-After"]) >= state["rpm"]["t"], fields


def test_every_field_parses_with_every_column_at_its_maximum(make_gate):
    gate = make_gate([star_row(**LIMIT_MAXIMUM)])
    for size in (0, 1, MAX_BIGINT):
        decision = gate.admit("c", size)
        check_fields(decision)
    policy, _state = parsed(gate.admit("c", 1).headers())
    assert policy["daily-bytes"]["q"] == 999_999_999_999_999
    assert policy["rpm"]["q"] == MAX_INTEGER


def test_every_field_parses_with_the_maxima_shared_over_many_servers(make_gate):
    gate = make_gate([star_row(**LIMIT_MAXIMUM, live_server_count=MAX_INTEGER)])
    for _ in range(3):
        check_fields(gate.admit("c", 1))


def test_every_header_field_in_the_vectors_parses():
    for case in json.loads(VECTORS_PATH.read_text())["cases"]:
        for event in case["events"]:
            headers = (event.get("expect") or {}).get("headers")
            if headers:
                parsed(headers)


def test_the_burst_larger_than_the_rate_never_shows_r_above_q(make_gate):
    gate = make_gate([star_row(requests_per_minute=1, burst=3)])
    for _ in range(4):
        check_fields(gate.admit("c", 1))


limit_value = st.one_of(st.none(), st.integers(0, 8), st.integers(0, MAX_INTEGER), st.just(MAX_INTEGER))
byte_value = st.one_of(st.none(), st.integers(0, 5000), st.integers(0, MAX_BIGINT), st.just(MAX_BIGINT))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rpm=limit_value,
    burst=limit_value,
    concurrency=limit_value,
    in_flight=byte_value,
    daily=byte_value,
    servers=st.one_of(st.integers(1, 5), st.just(MAX_INTEGER)),
    steps=st.lists(st.tuples(st.integers(0, 3_000_000), st.integers(0, 2000), st.booleans()), max_size=25),
)
def test_random_limits_and_uploads_always_give_valid_fields(
    make_gate, clock, rpm, burst, concurrency, in_flight, daily, servers, steps
):
    row = star_row(
        requests_per_minute=rpm,
        burst=burst,
        max_concurrent_uploads=concurrency,
        max_bytes_in_flight=in_flight,
        daily_upload_bytes=daily,
        live_server_count=servers,
    )
    gate = make_gate([row])
    for wait_us, size, release in steps:
        clock.advance(microseconds=wait_us)
        decision = gate.admit("c", size)
        check_fields(decision)
        if decision.admitted and release:
            gate.release(decision.lease)
    gate.close()
