"""Every bench in bench/ still runs: its --smoke mode (tiny sizes, one round) exits 0 and
prints its figures. The figures themselves are not checked: on a shared 2-core machine they
say little, and the full modes are what the README quotes."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A bench is a script with a main(); bench/common.py and bench/__init__.py are not.
BENCHES = sorted(
    path.stem for path in (ROOT / "bench").glob("*.py") if re.search(r"^def main\(", path.read_text(), re.M)
)
# Each smoke run takes seconds; a hung server or a bench that lost its --smoke would not.
TIMEOUT_SECONDS = 120


def test_the_benches_are_found():
    assert {"gate", "incident", "load"} <= set(BENCHES)


@pytest.mark.parametrize("name", BENCHES)
def test_bench_runs_in_smoke_mode_and_prints_figures(name):
    result = subprocess.run(
        [sys.executable, f"bench/{name}.py", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    output = f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert result.returncode == 0, output
    assert any(re.search(r"\d", line) for line in result.stdout.splitlines()), output
