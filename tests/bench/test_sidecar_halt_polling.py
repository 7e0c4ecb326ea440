"""bench/sidecar.py's guest halt polling: it says how the machine's idle vCPUs wait, refuses
what it cannot set, and leaves the machine's setting as it found it."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench import sidecar as bench

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_sysfs(tmp_path, monkeypatch):
    driver = tmp_path / "current_driver"
    poll_ns = tmp_path / "guest_halt_poll_ns"
    driver.write_text("haltpoll\n")
    poll_ns.write_text("0\n")
    monkeypatch.setattr(bench, "CPUIDLE_DRIVER", driver)
    monkeypatch.setattr(bench, "GUEST_HALT_POLL_NS", poll_ns)
    return driver, poll_ns


def test_the_setting_is_put_back_even_when_a_row_fails(fake_sysfs):
    _, poll_ns = fake_sysfs
    with pytest.raises(RuntimeError), bench.guest_halt_polling(200_000):
        assert poll_ns.read_text() == "200000"
        assert "polls first" in bench.idle_vcpus()
        raise RuntimeError("a client process failed")
    assert poll_ns.read_text() == "0"
    assert "halts at once" in bench.idle_vcpus()


def test_a_machine_without_the_haltpoll_driver_is_refused_by_name(fake_sysfs):
    driver, _ = fake_sysfs
    driver.write_text("acpi_idle\n")
    assert bench.halt_poll_refusal() == "the cpuidle driver is acpi_idle, not haltpoll (not a KVM guest with it)"
    assert bench.idle_vcpus() == "cpuidle driver acpi_idle"


def test_a_setting_of_zero_or_less_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, "bench/sidecar.py", "--smoke", "--guest-halt-poll-ns", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--guest-halt-poll-ns must be more than 0" in result.stderr
