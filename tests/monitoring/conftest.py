import json

import pytest
from django.urls import reverse

from monitoring import servers


def report_body(server_id="upload-1", sequence=1, **overrides) -> dict:
    body = {
        "server_id": server_id, "sequence": sequence, "boot_id": "boot-a", "interval_seconds": 5,
        "cpu_percent": 42.5, "config_version": 3,
        "clients": {"theirstory-sdk": {"uploads_in_progress": 4, "bytes_in_flight": 8_000_000_000,
                                       "admitted": 2, "throttled": 1, "timed_out": 0, "completed": 1,
                                       "failed": 0}},
    }
    body.update(overrides)
    return body


@pytest.fixture
def registered_server(ops_user):
    server, token = servers.register_server(ops_user, "upload-1", "test")
    return server, token


@pytest.fixture
def post_report(client):
    def post(token, body, content_type="application/json"):
        payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        return client.post(reverse("monitoring:reports"), payload, content_type=content_type, **headers)
    return post
