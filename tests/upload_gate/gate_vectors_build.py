"""Builds docs/gate-test-vectors.json: `python tests/upload_gate/gate_vectors_build.py`.

Each case below states its inputs and, by hand, the outcome that matters (admitted,
status, limit, Retry-After). The naive reference model (gate_reference_model.py) then
fills in the rest (the exact header fields, counters) and must agree with every hand
expectation, or the build fails. The real gate is tested against the written file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gate_reference_model import ReferenceGate, iso_to_us  # noqa: E402

VECTORS_PATH = Path(__file__).resolve().parents[2] / "docs" / "gate-test-vectors.json"

from gate_vectors_cases import CASES  # noqa: E402


def _expand(case_def: dict) -> dict:
    """Run the reference model over one case and write full expectations into its events."""
    config = case_def["config"]
    model = ReferenceGate(
        case_def["rows"],
        lease_timeout_seconds=config["lease_timeout_seconds"],
        busy_retry_after_seconds=config["busy_retry_after_seconds"],
        paused_retry_after_seconds=config["paused_retry_after_seconds"],
        fallback_limits=config["fallback_limits"],
    )
    start_us = iso_to_us(case_def["start"])
    events = []
    for event in case_def["events"]:
        event = dict(event)
        hand = event.pop("_hand", None)
        now = event["t_ms"] * 1000
        wall = start_us + now
        if event["op"] == "admit":
            expect = model.admit(event["client"], event["size_bytes"], now, wall, event.get("lease"))
        elif event["op"] == "release":
            expect = {"released": model.release(event["lease"], event["outcome"], now)}
        elif event["op"] == "table":
            model.set_rows(event["rows"])
            expect = None
        elif event["op"] == "counters":
            expect = {"clients": model.counters(now)}
        elif event["op"] == "bad_rows":
            expect = {"bad_rows": model.bad_rows}
        else:
            expect = None
        if hand:
            _check_hand(case_def["name"], event, hand, expect)
        if expect is not None:
            event["expect"] = expect
        events.append(event)
    return {**case_def, "events": events}


def _check_hand(name: str, event: dict, hand: dict, expect: dict | None) -> None:
    if event["op"] == "bad_rows":
        if hand != expect:
            raise AssertionError(f"{name} t={event['t_ms']} bad_rows: hand {hand}, model {expect}")
        return
    if event["op"] == "counters":
        for client, counts in hand.items():
            got = (expect or {}).get("clients", {}).get(client, {})
            wrong = {k: (v, got.get(k, 0)) for k, v in counts.items() if got.get(k, 0) != v}
            if wrong:
                raise AssertionError(f"{name} t={event['t_ms']} counters {client}: (hand, model) {wrong}")
        return
    wrong = {k: (v, (expect or {}).get(k)) for k, v in hand.items() if (expect or {}).get(k) != v}
    if wrong:
        raise AssertionError(f"{name} t={event['t_ms']} {event['op']}: (hand, model) {wrong}")


def build() -> dict:
    return {
        "format": 1,
        "about": (
            "Language-neutral test vectors for the upload gate (docs/upload-gate.md). For each case: "
            "load `rows` as the upload_limits table, set both clocks to `start` (UTC wall clock; the "
            "monotonic clock starts anywhere), then play `events` in order. `t_ms` is milliseconds since "
            "start and never decreases; move both clocks to it before the event. Ops: admit (expect the "
            "decision: admitted, status, limit, retry_after_seconds, header fields; reason on 503; problem, "
            "the RFC 9457 members, on a reduced-capacity 503), "
            "release (expect released: true, or false when already ended or expired), table (replace the "
            "table with `rows` and reload), counters (expect the per-client counts since the previous "
            "counters event, then reset them; only clients with a non-zero value are listed), bad_rows "
            "(expect the rows skipped because they cannot be parsed, as client_id and column, in table "
            "order; a missing `*` row is listed as column client_id). Rows may hold bad values on purpose "
            "(docs/shared-config-table.md, Bad data). "
            "Jitter is 0, so Retry-After is exact. `config` gives lease timeout, fixed waits and the "
            "fallback limits (used for clients without a row when the table has no `*` row)."
        ),
        "cases": [_expand(case_def) for case_def in CASES],
    }


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


if __name__ == "__main__":
    VECTORS_PATH.write_text(render())
    print(f"wrote {VECTORS_PATH} ({len(build()['cases'])} cases)")
