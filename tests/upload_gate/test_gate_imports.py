"""The gate is a library for upload servers: it must not drag Django (or Redis) in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUBMODULES = sorted(p.stem for p in (REPO / "upload_gate").glob("*.py") if p.stem != "__init__")

PROBE = f"""
import importlib, sys
import upload_gate
for name in {SUBMODULES!r}:
    importlib.import_module("upload_gate." + name)
from upload_gate import StaticSource, UploadGate
gate = UploadGate(source=StaticSource([{{"client_id": "*", "version": 1}}]), start=False)
gate.release(gate.admit("client", 10).lease)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("django", "redis"))
print(",".join(loaded))
"""


def run_probe(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_gate_and_every_submodule_loads_no_django_and_no_redis():
    assert run_probe(PROBE) == ""


def test_all_submodules_are_probed():
    assert {"gate", "table", "limits", "headers", "redis_counts", "refresh", "sources"} <= set(SUBMODULES)


def test_every_module_stays_small():
    sizes = {path.name: len(path.read_text().splitlines()) for path in (REPO / "upload_gate").glob("*.py")}
    assert max(sizes.values()) < 400, sizes
