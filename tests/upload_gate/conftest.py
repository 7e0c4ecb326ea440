"""Fixtures for the upload gate tests: clocks, gates, and real PostgreSQL / Redis servers
(the plain builders they use are in tests/factories.py).

None of these need Django's test database. Servers bind to 127.0.0.1 on free ports
and live in throwaway directories.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Test helpers (reference model, vector cases) are plain modules next to the tests.
sys.path.insert(0, str(HERE))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.factories import NOON, PostgresCluster, free_port, star_row  # noqa: E402
from upload_gate import ManualClock, StaticSource, UploadGate  # noqa: E402


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
