"""docs/gate-test-vectors.json, played against the real gate (and against Redis mode)."""

from __future__ import annotations

import json

import pytest
from gate_vectors_build import VECTORS_PATH, render
from gate_vectors_play import gate_for, play

VECTORS = json.loads(VECTORS_PATH.read_text())
CASES = VECTORS["cases"]
SINGLE_SERVER_CASES = [
    case
    for case in CASES
    if all((row.get("live_server_count") or 1) <= 1 for row in case["rows"])
    and not any(event["op"] == "table" for event in case["events"])
    # Redis mode counts fleet-wide and does not evaluate shadow limits (docs/upload-gate.md).
    and not any(key.startswith("shadow_") and value is not None for row in case["rows"] for key, value in row.items())
]


def test_the_vectors_file_has_at_least_forty_cases_with_unique_names():
    names = [case["name"] for case in CASES]
    assert len(names) >= 40 and len(set(names)) == len(names)


def test_the_vectors_file_is_what_the_builder_writes():
    assert VECTORS_PATH.read_text() == render(), "run: python tests/upload_gate/gate_vectors_build.py"


def test_the_vectors_cover_every_rule_and_outcome():
    limits, statuses, ops = set(), set(), set()
    for case in CASES:
        for event in case["events"]:
            ops.add(event["op"])
            expect = event.get("expect") or {}
            limits.add(expect.get("limit"))
            statuses.add(expect.get("status"))
    assert {
        "requests_per_minute",
        "max_concurrent_uploads",
        "max_bytes_in_flight",
        "daily_upload_bytes",
        "paused",
        "all_partners_paused",
    } <= limits
    assert {200, 429, 503} <= statuses
    assert {"admit", "release", "table", "counters", "bad_rows"} <= ops


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_the_gate_decides_as_the_vector_says(case):
    gate, clock, source = gate_for(case)
    try:
        play(case, gate, clock, source)
    finally:
        gate.close()


@pytest.mark.parametrize("case", SINGLE_SERVER_CASES, ids=[case["name"] for case in SINGLE_SERVER_CASES])
def test_redis_mode_decides_as_the_vector_says_on_a_single_server(case, redis_server, redis_prefix):
    # With one live server the fleet-wide count equals the share: same decisions expected.
    gate, clock, source = gate_for(case, redis_url=redis_server.url, redis_key_prefix=redis_prefix)
    try:
        play(case, gate, clock, source)
        assert gate.mode == "redis"
    finally:
        gate.close()
