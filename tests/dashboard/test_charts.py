"""Chart JSON endpoints: who may read them, what they draw, a fixed query count, and the cache
open dashboards share. (The overview's single poll: test_overview_poll.py; the fleet status:
test_fleet_status.py.)"""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerting.models import AlertRule
from dashboard import charts
from monitoring.models import ServerReport
from monitoring.queries import RANGES_SECONDS, Window, resolution_for
from tests.factories import make_server, seed_fleet_metrics

CHARTS = ["chart-cpu", "chart-uploads", "chart-bytes", "chart-outcomes", "chart-queues", "fleet-status"]


@pytest.mark.parametrize("url_name", CHARTS)
def test_anonymous_is_sent_to_login(client, url_name):
    response = client.get(reverse(url_name))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("url_name", CHARTS[:-1])
def test_a_bad_range_gets_a_400_naming_the_choices(login, engineer, url_name):
    response = login(engineer).get(reverse(url_name), {"range": "2 weeks"})
    assert response.status_code == 400
    assert "15m, 1h, 6h, 24h, 7d, 30d" in response.json()["error"]


@pytest.mark.parametrize("url_name", CHARTS)
@pytest.mark.parametrize("range_name", list(RANGES_SECONDS))
def test_each_endpoint_runs_the_same_queries_whatever_the_data_volume(login, ops_user, url_name, range_name):
    client = login(ops_user)
    client.get(reverse(url_name), {"range": range_name})  # warm the session and user caches
    with CaptureQueriesContext(connection) as empty:
        assert client.get(reverse(url_name), {"range": range_name}).status_code == 200
    seed_fleet_metrics(servers=4, minutes=90)
    with CaptureQueriesContext(connection) as full:
        assert client.get(reverse(url_name), {"range": range_name}).status_code == 200
    # 13: the fleet status also names the top consumers and the alert state (3 are the session's).
    assert len(full) == len(empty) <= 13


BAND_AND_AVERAGE = ["range of the 5 s reports (lowest)", "range of the 5 s reports", charts.LIVE_MEAN_NAME]


def reports_in_one_minute(cpu_by_server: dict[str, list[float]]) -> None:
    """Reports 5 s apart, all within the minute before now."""
    # The minute before this one: all of it in the past, whatever second the test starts at.
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1)
    for name, samples in cpu_by_server.items():
        server = make_server(name, seen_at=timezone.now())
        for k, cpu in enumerate(samples):
            ServerReport.objects.create(server=server, sequence=k, received_at=start + timedelta(seconds=5 * k),
                interval_seconds=5, cpu_percent=cpu, config_version=1, uploads_in_progress=0, bytes_in_flight=0,
                admitted=0, throttled=0, timed_out=0, completed=0)  # fmt: skip


def test_the_cpu_chart_draws_what_the_alert_compares_and_the_raw_swings_as_a_band(login, ops_user):
    # Raw samples swing up to 95 % while each server's 1-minute average stays at 70 and 80:
    # the fleet's average, what "Fleet CPU high" compares with its 80 %, is 75 %.
    reports_in_one_minute({"s0": [60, 80, 60, 80], "s1": [65, 95, 65, 95]})
    chart = login(ops_user).get(reverse("chart-cpu"), {"range": "15m"}).json()
    low, high, mean = chart["traces"]
    assert [low["name"], high["name"], mean["name"]] == BAND_AND_AVERAGE
    assert mean["y"] == [75.0] and (low["y"], high["y"]) == ([60.0], [95.0])
    assert high["fill"] == "tonexty" and "%" in mean["hovertemplate"]
    assert chart["layout"]["shapes"][0]["y0"] == 80
    assert chart["layout"]["annotations"][0]["bgcolor"]  # the label sits on a box, not behind lines


def test_the_threshold_line_is_the_rules_not_a_setting(login, ops_user):
    AlertRule.objects.filter(slug="fleet-cpu-high").update(threshold=70)
    chart = login(ops_user).get(reverse("chart-cpu"), {"range": "15m"}).json()
    assert chart["layout"]["shapes"][0]["y0"] == 70 and "70 %" in chart["layout"]["annotations"][0]["text"]
    AlertRule.objects.filter(slug="fleet-cpu-high").update(enabled=False)
    cache.clear()
    chart = login(ops_user).get(reverse("chart-cpu"), {"range": "1h"}).json()
    assert "shapes" not in chart["layout"]


def test_a_large_fleet_is_still_three_traces(login, ops_user):
    seed_fleet_metrics(servers=40, minutes=10, cpu_of_server=lambda index: 10 + index)
    chart = login(ops_user).get(reverse("chart-cpu"), {"range": "15m"}).json()
    low, high, mean = chart["traces"]
    assert min(low["y"]) == 10 and max(high["y"]) == 49
    assert all(lo <= average <= hi for lo, average, hi in zip(low["y"], mean["y"], high["y"]))


def test_uploads_are_stacked_by_partner_name(login, ops_user, partner_a, partner_b):
    seed_fleet_metrics(servers=1, minutes=10)
    chart = login(ops_user).get(reverse("chart-uploads"), {"range": "6h"}).json()
    assert [t["name"] for t in chart["traces"]] == ["Family Archive", "TheirStory", "direct users & other clients"]
    assert all(t["stackgroup"] == "partners" for t in chart["traces"])


def test_a_manager_sees_other_partners_merged(login, manager_a, partner_a, partner_b):
    seed_fleet_metrics(servers=1, minutes=10)
    chart = login(manager_a).get(reverse("chart-uploads"), {"range": "6h"}).json()
    assert [t["name"] for t in chart["traces"]] == ["TheirStory", "direct users & other clients", "other partners"]


def test_partner_usage_follows_the_partner_access_rules(login, manager_a, manager_b, partner_a, partner_b):
    url = reverse("chart-partner-usage", args=[partner_a.slug])
    chart = login(manager_a).get(url, {"range": "24h"}).json()
    limit_trace = next(t for t in chart["traces"] if t["name"] == "uploads in progress limit")
    assert limit_trace["y"] == [16, 16]
    assert login(manager_b).get(url).status_code == 404


@pytest.mark.parametrize(
    "range_name,resolution", [("15m", None), ("1h", 60), ("6h", 60), ("24h", 600), ("7d", 600), ("30d", 3600)]
)
def test_no_series_holds_much_more_than_a_thousand_points(range_name, resolution):
    seconds = RANGES_SECONDS[range_name]
    assert resolution_for(seconds) == resolution
    assert seconds / (resolution or 5) <= 1010
    assert Window.parse(range_name).resolution_seconds == resolution


def test_long_ranges_draw_the_fleet_band_instead_of_every_server(login, ops_user):
    seed_fleet_metrics(servers=3, minutes=30)
    chart = login(ops_user).get(reverse("chart-cpu"), {"range": "6h"}).json()
    names = ["coolest to hottest server (lowest)", "coolest to hottest server", "fleet, 1-min average"]
    assert [t["name"] for t in chart["traces"]] == names
    assert chart["traces"][1]["fill"] == "tonexty"


def test_x_values_are_epoch_milliseconds_within_the_range(login, ops_user):
    seed_fleet_metrics(servers=2, minutes=20)
    chart = login(ops_user).get(reverse("chart-cpu"), {"range": "15m"}).json()
    start_ms, end_ms = chart["layout"]["xaxis"]["range"]
    xs = [x for trace in chart["traces"] for x in trace["x"]]
    assert xs and all(isinstance(x, int) and start_ms - 5000 <= x <= end_ms for x in xs)
    assert end_ms - start_ms == 15 * 60 * 1000


@pytest.fixture
def chart_cache(settings):
    from django.core.cache import cache

    settings.CHART_CACHE_SECONDS = 60
    cache.clear()
    yield
    cache.clear()


def test_open_dashboards_share_one_chart_for_a_moment(login, ops_user, engineer, chart_cache):
    from django.core.cache import cache

    seed_fleet_metrics(servers=3, minutes=10)
    first = login(engineer).get(reverse("chart-cpu"), {"range": "15m"}).json()
    assert [t["name"] for t in first["traces"]] == BAND_AND_AVERAGE and first["traces"][2]["x"]
    ServerReport.objects.all().delete()  # what changes within the cache's lifetime
    with CaptureQueriesContext(connection) as queries:
        shared = login(ops_user).get(reverse("chart-cpu"), {"range": "15m"}).json()
    assert shared == first
    assert not [q for q in queries if "serverreport" in q["sql"].lower()]
    cache.clear()  # the lifetime is over
    fresh = login(ops_user).get(reverse("chart-cpu"), {"range": "15m"}).json()
    assert [len(t["x"]) for t in fresh["traces"]] == [0, 0, 0]


def test_a_manager_never_gets_the_chart_cached_for_ops(
    login, ops_user, manager_a, manager_b, partner_a, partner_b, chart_cache
):
    seed_fleet_metrics(servers=1, minutes=10)

    def names(user):
        return [t["name"] for t in login(user).get(reverse("chart-uploads"), {"range": "6h"}).json()["traces"]]

    assert names(ops_user) == ["Family Archive", "TheirStory", "direct users & other clients"]
    assert names(manager_a) == ["TheirStory", "direct users & other clients", "other partners"]
    url = reverse("chart-partner-usage", args=[partner_a.slug])
    assert login(manager_a).get(url, {"range": "24h"}).status_code == 200
    assert login(manager_b).get(url, {"range": "24h"}).status_code == 404


def test_the_timeline_cached_for_ops_is_never_shown_to_a_manager_or_an_engineer(
    login, ops_user, engineer, manager_a, partner_a, partner_b, chart_cache
):
    from partners import changes

    changes.change_limits(
        partner_b, ops_user, {"max_concurrent_uploads": 4}, "only ops and B's managers see this", None
    )
    url = reverse("chart-timeline")
    for_ops = login(ops_user).get(url, {"range": "1h"}).json()["events"]
    assert [e["title"] for e in for_ops] == [f"Limits changed: {partner_b.name}"]
    assert for_ops[0]["link"], "ops get a link to the partner"

    assert login(manager_a).get(url, {"range": "1h"}).json()["events"] == []
    for_engineer = login(engineer).get(url, {"range": "1h"}).json()["events"]
    assert [e["title"] for e in for_engineer] == [f"Limits changed: {partner_b.name}"]


def test_while_one_request_rebuilds_a_chart_the_others_get_the_previous_one(chart_cache):
    from django.core.cache import cache

    from dashboard.api import _shared_for_a_moment

    assert _shared_for_a_moment("chart:k", lambda: {"built": 1}) == {"built": 1}
    cache.delete("chart:k")  # its lifetime is over
    assert cache.add("chart:k:building", True, 30)  # a request is rebuilding it now

    def must_not_build():
        raise AssertionError("a second request built the chart again")

    assert _shared_for_a_moment("chart:k", must_not_build) == {"built": 1}
    cache.delete("chart:k:building")  # that rebuild died without a body
    assert _shared_for_a_moment("chart:k", lambda: {"built": 2}) == {"built": 2}
    assert cache.get("chart:k:building") is None, "the claim is released after the rebuild"


def test_charts_are_built_without_the_cache_while_redis_is_away(login, ops_user, settings):
    from tests.factories import free_port

    settings.CHART_CACHE_SECONDS = 60
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        }
    }
    seed_fleet_metrics(servers=2, minutes=5)
    response = login(ops_user).get(reverse("chart-cpu"), {"range": "15m"})
    assert response.status_code == 200
    assert response.json()["traces"]


def test_every_chart_says_its_times_are_utc(login, ops_user):
    client = login(ops_user)
    for name in ("chart-cpu", "chart-uploads", "chart-bytes", "chart-outcomes", "chart-queues"):
        xaxis = client.get(reverse(name), {"range": "1h"}).json()["layout"]["xaxis"]
        assert "UTC" in xaxis["title"]["text"] and xaxis["hoverformat"].endswith("UTC"), name


def test_byte_axes_are_named_for_the_browser_to_write_in_decimal_units(login, ops_user, partner_a):
    client = login(ops_user)
    assert client.get(reverse("chart-bytes"), {"range": "1h"}).json()["byte_axes"] == ["yaxis"]
    assert client.get(reverse("chart-uploads"), {"range": "1h"}).json()["byte_axes"] == []


def test_the_two_limit_lines_sit_at_different_heights_each_labelled(login, ops_user, partner_a):
    chart = login(ops_user).get(reverse("chart-partner-usage", args=[partner_a.slug]), {"range": "1h"}).json()
    layout = chart["layout"]
    assert chart["byte_axes"] == ["yaxis2"]
    uploads_height = 16 / layout["yaxis"]["range"][1]
    bytes_height = 40 * 10**9 / layout["yaxis2"]["range"][1]
    assert abs(uploads_height - bytes_height) > 0.1
    assert [a["text"] for a in layout["annotations"]] == [
        "uploads in progress limit 16",
        "bytes in flight limit 40 GB",
        "No data in the last 1h",  # the limits alone are no usage
    ]
    assert layout["margin"]["r"] >= 80  # the right axis's "40 GB" ticks are not cut off


def test_the_sqs_chart_says_not_configured_without_an_sqs_source(login, ops_user):
    chart = login(ops_user).get(reverse("chart-queues"), {"range": "1h"}).json()
    notes = [a["text"] for a in chart["layout"].get("annotations", [])]
    assert len(notes) == 1 and notes[0].startswith("Not configured")


@pytest.mark.parametrize("range_name", ["7d", "30d"])
def test_an_empty_long_range_says_no_data(login, ops_user, range_name):
    chart = login(ops_user).get(reverse("chart-uploads"), {"range": range_name}).json()
    assert [a["text"] for a in chart["layout"]["annotations"]] == [f"No data in the last {range_name}"]
    seed_fleet_metrics(servers=1, minutes=5)
    cache.clear()
    chart = login(ops_user).get(reverse("chart-uploads"), {"range": range_name}).json()
    assert "annotations" not in chart["layout"]


def test_a_server_that_never_reported_is_waiting_not_silent(login, ops_user):
    make_server("upload-new")
    row = login(ops_user).get(reverse("fleet-status")).json()["servers"][0]
    assert row["waiting"] is True
    html = login(ops_user).get(reverse("monitoring:servers")).content.decode()
    assert "waiting for its first report" in html
