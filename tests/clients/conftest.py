"""A real sidecar (`upload-gate serve`) for the PHP and Node clients' tests.

It listens on a Unix socket in a temp folder and reads its limits from an SQLite
`upload_limits` table there:

- `*` (every client id without a row, each with its own counters): 2 uploads at once,
  6000 requests per minute with a burst of 100, so RateLimit carries both policies;
- `fas-importer` (the example endpoints' second demo partner): paused, reason PAUSE_REASON;
- `reduced-partner`: 1 upload at once, a value lowered by load-coupled limits (`reduced_limits`),
  so its second upload is the reduced-capacity 503 with an RFC 9457 problem.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import create_sqlite_table, insert_sqlite_row

REPO = Path(__file__).resolve().parents[2]
PAUSE_REASON = "imports paused while the fleet catches up"


def binary_or_skip(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (apt-get install {package}); CI installs it")
    return found


class Sidecar:
    """`python -m upload_gate serve` on a socket; start(), stop(), and start() again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.database = folder / "limits.sqlite3"
        self.socket_path = str(folder / "gate.sock")
        self.log_path = folder / "sidecar.log"
        self.process: subprocess.Popen | None = None
        create_sqlite_table(self.database)
        insert_sqlite_row(self.database, client_id="*", max_concurrent_uploads=2, requests_per_minute=6000, burst=100)
        insert_sqlite_row(self.database, client_id="fas-importer", paused=1, pause_reason=PAUSE_REASON)
        insert_sqlite_row(
            self.database,
            client_id="reduced-partner",
            max_concurrent_uploads=1,
            reduced_limits="max_concurrent_uploads",
        )

    def start(self) -> None:
        command = [sys.executable, "-m", "upload_gate", "serve", f"sqlite:///{self.database}"]
        command += ["--socket", self.socket_path, "--poll-interval-seconds", "0.2"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"upload-gate serve exited: {self.log_path.read_text()[-2000:]}")
            if "listening on" in self.log_path.read_text():
                return
            time.sleep(0.05)
        raise RuntimeError(f"upload-gate serve did not listen: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None

    def environment(self, state: str, **extra: str) -> dict[str, str]:
        """What the PHP and Node test scripts read: where the sidecar is, and whether it runs."""
        return {
            **os.environ,
            "UPLOAD_GATE_SOCKET": self.socket_path,
            "UPLOAD_GATE_SIDECAR": state,
            "UPLOAD_GATE_PAUSED_CLIENT": "fas-importer",
            "UPLOAD_GATE_PAUSE_REASON": PAUSE_REASON,
            "UPLOAD_GATE_REDUCED_CLIENT": "reduced-partner",
            # The clients' own default (250 ms) is for an idle host; test machines are busy.
            "UPLOAD_GATE_TIMEOUT_MS": "5000",
            **extra,
        }


@pytest.fixture
def sidecar() -> Iterator[Sidecar]:
    # A folder of its own with a short name: a Unix socket path must stay under 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="gate-"))
    sidecar = Sidecar(folder)
    sidecar.start()
    yield sidecar
    sidecar.stop()
    shutil.rmtree(folder, ignore_errors=True)


def run(command: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a client's test script; its whole output is the failure message."""
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    return result
