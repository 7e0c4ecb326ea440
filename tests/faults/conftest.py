"""Fixtures of the fault tests."""

import socket
import threading

import pytest


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
