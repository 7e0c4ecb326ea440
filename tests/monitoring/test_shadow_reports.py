"""The optional per-client `would_have_throttled` count: accepted, stored and rolled up."""

from datetime import timedelta

import pytest

from monitoring import metrics, rollups
from monitoring.models import Rollup, ServerReport
from tests.factories import report_body


def with_shadow_count(count, client="theirstory-sdk") -> dict:
    body = report_body()
    body["clients"][client]["would_have_throttled"] = count
    return body


def test_a_report_with_would_have_throttled_is_stored_and_rolled_up_per_partner(registered_server, post_report):
    _, token = registered_server
    body = with_shadow_count(7)
    body["clients"]["*"] = {"admitted": 1, "would_have_throttled": 2}
    assert post_report(token, body).status_code == 202
    stored = ServerReport.objects.get()
    assert stored.would_have_throttled == 9
    assert stored.clients["theirstory-sdk"]["would_have_throttled"] == 7
    assert stored.throttled == 1  # the enforced count is kept apart

    rollups.roll_up(stored.received_at + timedelta(minutes=2))
    minute = metrics.bucket_start(stored.received_at, 60)
    by_subject = dict(
        Rollup.objects.filter(
            metric=metrics.WOULD_HAVE_THROTTLED, resolution_seconds=60, bucket_start=minute
        ).values_list("subject", "total")
    )
    assert by_subject == {"client:theirstory-sdk": 7, "client:*": 2, metrics.FLEET: 9}


def test_a_report_without_it_stores_zero_and_keeps_the_client_figures_as_sent(registered_server, post_report):
    _, token = registered_server
    assert post_report(token, report_body()).status_code == 202
    stored = ServerReport.objects.get()
    assert stored.would_have_throttled == 0
    assert "would_have_throttled" not in stored.clients["theirstory-sdk"]


@pytest.mark.parametrize("value", [-1, "3", 1.5, True, 2**31])
def test_a_bad_would_have_throttled_gets_a_400_naming_it(registered_server, post_report, value):
    _, token = registered_server
    response = post_report(token, with_shadow_count(value))
    assert response.status_code == 400
    assert "clients.theirstory-sdk.would_have_throttled" in response.json()["fields"]
    assert ServerReport.objects.count() == 0
