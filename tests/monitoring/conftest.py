"""Fixtures of the report API tests: a registered upload server and a client that posts reports
with its token (report bodies: tests.factories.report_body)."""

import json

import pytest
from django.urls import reverse

from monitoring import servers


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
