"""Fixtures for the upload gate tests: clocks, gates, and real PostgreSQL / Redis servers.

None of these need Django or its test database. Servers bind to 127.0.0.1 on free ports
and live in throwaway directories.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Test helpers (reference model, vector cases) are plain modules next to the tests.
sys.path.insert(0, str(HERE))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from upload_gate import ManualClock, StaticSource, UploadGate  # noqa: E402

NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
TABLE_DOC = REPO / "docs" / "shared-config-table.md"


def table_ddl() -> str:
    """The DDL from the table contract (docs/shared-config-table.md), so the doc is what we test."""
    text = TABLE_DOC.read_text()
    section = text[text.index("## DDL") :]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def star_row(**values) -> dict:
    return {"client_id": "*", "version": 1, "live_server_count": 1, **values}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOON)


@pytest.fixture
def make_gate(clock: ManualClock) -> Iterator[Callable[..., UploadGate]]:
    """make_gate(rows, **gate kwargs): a gate over an in-memory table, on the manual clock."""
    gates: list[UploadGate] = []

    def make(rows=None, **kwargs) -> UploadGate:
        if "source" not in kwargs:
            kwargs["source"] = StaticSource(rows if rows is not None else [star_row()])
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("jitter_fraction", 0)
        kwargs.setdefault("start", False)
        gate = UploadGate(**kwargs)
        gates.append(gate)
        return gate

    yield make
    for gate in gates:
        gate.close()


# -- SQLite ----------------------------------------------------------------------------
def create_sqlite_table(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(table_ddl())


def insert_sqlite_row(path: Path, **values) -> None:
    row = {
        "requests_per_minute": None,
        "burst": None,
        "max_concurrent_uploads": None,
        "max_bytes_in_flight": None,
        "daily_upload_bytes": None,
        "paused": 0,
        "pause_reason": "",
        "resume_at": None,
        "priority": "interactive",
        "version": 1,
        "updated_at": "2025-03-01 00:00:00",
        "all_partners_paused": 0,
        "all_partners_pause_reason": "",
        "all_partners_resume_at": None,
        "live_server_count": 1,
        **values,
    }
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    with sqlite3.connect(path) as conn:
        conn.execute(f"INSERT OR REPLACE INTO upload_limits ({columns}) VALUES ({marks})", list(row.values()))


# -- PostgreSQL ----------------------------------------------------------------------------
def _pg_bin() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    preferred = Path("/usr/lib/postgresql/15/bin/initdb")
    found = preferred if preferred.exists() else (Path(candidates[0]) if candidates else None)
    if found is None:
        pytest.fail(
            "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin). "
            "Install them with `apt-get install -y postgresql`; "
            "the upload gate's fault tests need a real server."
        )
    return found.parent


class PostgresCluster:
    """A throwaway cluster: initdb in a temp dir, pg_ctl start/stop, trust auth on 127.0.0.1."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="upload-gate-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"
        )

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(self.dsn(name), autocommit=True) as conn:
            conn.execute(table_ddl())
        return self.dsn(name)

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.remove()


_database_counter = iter(range(1, 10_000))


@pytest.fixture
def pg_database(pg_cluster: PostgresCluster) -> str:
    """A fresh database with the upload_limits table; returns its DSN."""
    return pg_cluster.create_database(f"gate_{next(_database_counter)}")


# -- Redis ----------------------------------------------------------------------------
class RedisServer:
    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.fail("redis-server not found: install it with `apt-get install -y redis-server`")
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        for _ in range(200):
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.025)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A Redis server this test alone may stop and start."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


_prefix_counter = iter(range(1, 1_000_000))


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own, so tests sharing one Redis never see each other's keys."""
    return f"test{next(_prefix_counter)}-{os.getpid()}"
