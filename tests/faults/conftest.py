"""Fixtures of the fault tests."""

import socket
import subprocess
import threading
import time

import pytest
import redis
from django_q.conf import Conf


@pytest.fixture
def silent_aws(settings, fake_aws_environment):
    """An endpoint on 127.0.0.1 that accepts connections and never answers; AWS_ENDPOINT_URL
    points at it. Yields the connections it accepted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    stop = threading.Event()

    def accept_and_say_nothing():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_say_nothing, daemon=True)
    thread.start()
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings.AWS_READ_TIMEOUT_SECONDS = 0.5
    settings.AWS_MAX_ATTEMPTS = 1
    yield accepted
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, port: int):
        self.port, self.process = port, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def redis_broker(monkeypatch):
    server = RedisServer(_free_port())
    server.start()
    # Conf is read once at import; point it at this Redis instead of the ORM broker and sync mode.
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "REDIS", server.url)
    yield server
    if server.process.poll() is None:
        server.stop()
