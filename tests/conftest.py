"""The fixtures every folder's tests use: the base set of users and partners, logging in, a fake AWS
environment and moto's server. Plain builders are in tests/factories.py."""

import functools
import threading
import urllib.request

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection

from core.roles import ENGINEERS_GROUP, OPS_GROUP
from tests.factories import REGION, make_partner, make_user


@pytest.fixture
def database_turn(monkeypatch):
    """On in-memory SQLite, the live server's request threads and the test's thread share one
    connection, and Django's docs warn that queries made through it at the same time may fail
    at random. One such failure leaves the shared connection needing a rollback, so every
    transactional test after it fails at setup. Here the live server answers one request at a
    time. Returns `in_turn(function)`, for a test whose own thread queries while requests are
    answered, or None where each thread has a connection of its own (PostgreSQL)."""
    if connection.vendor != "sqlite" or not connection.is_in_memory_db():
        return None
    turn = threading.RLock()

    def in_turn(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with turn:
                return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(WSGIHandler, "__call__", in_turn(WSGIHandler.__call__))
    return in_turn


@pytest.fixture(autouse=True)
def _live_server_requests_take_turns(request):
    if "live_server" in request.fixturenames:
        request.getfixturevalue("database_turn")


@pytest.fixture
def ops_user(db):
    return make_user("olivia-ops", OPS_GROUP, is_staff=True)


@pytest.fixture
def manager_a(db):
    return make_user("mara-manager-a")


@pytest.fixture
def manager_b(db):
    return make_user("bert-manager-b")


@pytest.fixture
def engineer(db):
    return make_user("erin-engineer", ENGINEERS_GROUP)


@pytest.fixture
def partner_a(ops_user, manager_a):
    """TheirStory: managed by manager A, with ceilings."""
    return make_partner(
        "TheirStory",
        ops_user,
        [manager_a],
        slug="theirstory",
        client_id="theirstory-sdk",
        ceiling_requests_per_minute=300,
        ceiling_burst=50,
        ceiling_max_concurrent_uploads=40,
        ceiling_max_bytes_in_flight=100 * 10**9,
        ceiling_daily_upload_bytes=10 * 10**12,
        requests_per_minute=120,
        burst=20,
        max_concurrent_uploads=16,
        max_bytes_in_flight=40 * 10**9,
        daily_upload_bytes=4 * 10**12,
    )


@pytest.fixture
def partner_b(ops_user, manager_b):
    return make_partner(
        "Family Archive",
        ops_user,
        [manager_b],
        slug="family-archive",
        client_id="fas-importer",
        max_concurrent_uploads=8,
    )


@pytest.fixture
def login(client):
    def log_in_as(user):
        if user is not None:
            client.force_login(user)
        return client

    return log_in_as


@pytest.fixture
def fake_aws_environment(monkeypatch, settings):
    """Fake credentials only, and no profile, config file or instance metadata to fall back on."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings.AWS_REGION = REGION
    settings.AWS_ENDPOINT_URL = None


@pytest.fixture
def moto_server_url(fake_aws_environment, settings):
    """moto's server on a free local port; AWS_ENDPOINT_URL points at it."""
    # requirements-dev.txt pins flask and flask-cors for moto's server: missing is a failure.
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    settings.AWS_ENDPOINT_URL = url
    try:
        yield url
    finally:
        # The server keeps its state in this process's moto backends: leave them empty.
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=5)
        server.stop()
