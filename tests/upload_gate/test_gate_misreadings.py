"""Seven plausible misreadings of docs/upload-gate.md, each built as a small variant of the real
gate: every one must fail the vector written to catch it (docs/gate-test-vectors.json).

A port that passes every vector cannot have made any of these mistakes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from gate_vectors_build import VECTORS_PATH
from gate_vectors_play import gate_for, play

from upload_gate import limits as limits_module
from upload_gate.gate import UploadGate
from upload_gate.limits import Limits
from upload_gate.state import ClientState

CASES = json.loads(VECTORS_PATH.read_text())["cases"]


def n_from_the_clients_own_row(monkeypatch):
    share = Limits.server_share.__func__
    monkeypatch.setattr(Limits, "server_share", classmethod(lambda cls, row, n: share(cls, row, row.live_server_count)))


def shadow_rate_with_a_burst_of_one(monkeypatch):
    shadow_row = limits_module.shadow_row
    monkeypatch.setattr(limits_module, "shadow_row", lambda row: replace(shadow_row(row), burst=row.shadow_burst))


def shadow_only_expiry_counted_as_timed_out(monkeypatch):
    expire = ClientState._expire_shadow_only

    def counting(self, now_us):
        before = len(self.shadow_only_leases)
        expire(self, now_us)
        self.timed_out += before - len(self.shadow_only_leases)

    monkeypatch.setattr(ClientState, "_expire_shadow_only", counting)


def expiry_keeps_the_shadow_slot(monkeypatch):
    def end_lease(self, lease):
        del self.leases[lease.lease_id]
        self.uploads_in_flight -= 1
        self.bytes_in_flight -= lease.size_bytes

    monkeypatch.setattr(ClientState, "end_lease", end_lease)


def _reset(state: ClientState) -> None:
    state.tat_us = 0
    state.day_bytes = 0


def reload_resets_rate_and_day_bytes(monkeypatch):
    apply = UploadGate._apply_snapshot

    def resetting(self, snapshot):
        apply(self, snapshot)
        for state in self._states.values():
            _reset(state)

    monkeypatch.setattr(UploadGate, "_apply_snapshot", resetting)


def re_added_row_starts_afresh(monkeypatch):
    apply = UploadGate._apply_snapshot

    def resetting(self, snapshot):
        had_row = {client_id for client_id, state in self._states.items() if state.policy.has_row}
        apply(self, snapshot)
        for client_id in had_row:
            if not self._states[client_id].policy.has_row:
                _reset(self._states[client_id])

    monkeypatch.setattr(UploadGate, "_apply_snapshot", resetting)


def idle_clients_forgotten_with_their_day_bytes(monkeypatch):
    is_idle = ClientState.is_idle

    def forgetful(self, now_us, today):
        day_bytes, self.day_bytes = self.day_bytes, 0
        try:
            return is_idle(self, now_us, today)
        finally:
            self.day_bytes = day_bytes

    monkeypatch.setattr(ClientState, "is_idle", forgetful)


MISREADINGS = [
    (n_from_the_clients_own_row, "share_divides_by_the_star_rows_server_count_not_the_clients_own"),
    (shadow_rate_with_a_burst_of_one, "shadow_rate_keeps_the_enforced_burst"),
    (shadow_only_expiry_counted_as_timed_out, "shadow_only_lease_expiry_is_not_a_timed_out_upload"),
    (expiry_keeps_the_shadow_slot, "enforced_lease_expiry_frees_its_shadow_slot"),
    (reload_resets_rate_and_day_bytes, "reload_keeps_rate_state_and_day_bytes"),
    (re_added_row_starts_afresh, "deleting_and_re_adding_a_row_keeps_the_clients_state"),
    (idle_clients_forgotten_with_their_day_bytes, "forgetting_idle_clients_keeps_their_day_bytes"),
]


def failing_cases() -> list[str]:
    failed = []
    for case in CASES:
        gate, clock, source = gate_for(case)
        try:
            play(case, gate, clock, source)
        except AssertionError:
            failed.append(case["name"])
        finally:
            gate.close()
    return failed


def test_the_real_gate_passes_every_vector():
    assert failing_cases() == []


@pytest.mark.parametrize(("misreading", "catching_case"), MISREADINGS, ids=[m.__name__ for m, _ in MISREADINGS])
def test_each_misreading_fails_the_vector_written_for_it(monkeypatch, misreading, catching_case):
    misreading(monkeypatch)
    assert catching_case in failing_cases()
