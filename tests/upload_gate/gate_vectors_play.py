"""Playing one case of docs/gate-test-vectors.json against a real gate (a plain helper module)."""

from __future__ import annotations

from datetime import datetime

from upload_gate import ManualClock, StaticSource, UploadGate


def play(case: dict, gate: UploadGate, clock: ManualClock, source: StaticSource) -> None:
    leases = {}
    elapsed_ms = 0
    for index, event in enumerate(case["events"]):
        clock.advance(microseconds=(event["t_ms"] - elapsed_ms) * 1000)
        elapsed_ms = event["t_ms"]
        where = f"{case['name']} event {index} ({event['op']} at {event['t_ms']} ms)"
        expect = event.get("expect")
        if event["op"] == "admit":
            decision = gate.admit(event["client"], event["size_bytes"])
            got = {
                "admitted": decision.admitted,
                "status": decision.status,
                "limit": decision.limit,
                "retry_after_seconds": decision.retry_after_seconds,
                "headers": decision.headers(),
            }
            if "reason" in expect:
                got["reason"] = decision.reason
            if "problem" in expect:
                got["problem"] = decision.problem
            assert got == expect, where
            if "lease" in event:
                leases[event["lease"]] = decision.lease
        elif event["op"] == "release":
            assert {"released": gate.release(leases[event["lease"]], event["outcome"])} == expect, where
        elif event["op"] == "table":
            source.set_rows(event["rows"])
            assert gate.refresh_now(), where
        elif event["op"] == "counters":
            clients = gate.snapshot_counters(reset=True)["clients"]
            assert {"clients": clients} == expect, where
        elif event["op"] == "bad_rows":
            named = [{"client_id": bad["client_id"], "column": bad["column"]} for bad in gate.bad_rows]
            assert {"bad_rows": named} == expect, where


def gate_for(case: dict, **extra) -> tuple[UploadGate, ManualClock, StaticSource]:
    clock = ManualClock(datetime.fromisoformat(case["start"].replace("Z", "+00:00")))
    source = StaticSource(case["rows"])
    config = case["config"]
    gate = UploadGate(
        source=source,
        clock=clock,
        start=False,
        lease_timeout_seconds=config["lease_timeout_seconds"],
        busy_retry_after_seconds=config["busy_retry_after_seconds"],
        paused_retry_after_seconds=config["paused_retry_after_seconds"],
        jitter_fraction=config["jitter_fraction"],
        fallback_limits=config["fallback_limits"],
        **extra,
    )
    return gate, clock, source
