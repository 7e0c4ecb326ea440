"""The overview's single poll (/api/overview): what the seven endpoints would answer, in one."""

from django.urls import reverse

from tests.factories import seed_fleet_metrics


def without_clock(body: dict) -> dict:
    """A chart or status without what moves with the request's clock (the x-axis end, "now")."""
    body = {k: v for k, v in body.items() if k != "now"}
    if "layout" in body:
        body["layout"] = {**body["layout"], "xaxis": {k: v for k, v in body["layout"]["xaxis"].items() if k != "range"}}
    return body


def test_the_overview_poll_answers_what_the_seven_endpoints_answer(login, ops_user, manager_a, partner_a, partner_b):
    seed_fleet_metrics(servers=2, minutes=10)
    for user in (ops_user, manager_a):
        client = login(user)
        poll = client.get(reverse("overview-poll"), {"range": "15m"})
        assert poll.status_code == 200
        body = poll.json()
        for name in ("cpu", "uploads", "bytes", "outcomes", "queues", "timeline"):
            alone = client.get(reverse(f"chart-{name}"), {"range": "15m"}).json()
            assert without_clock(body[name]) == without_clock(alone), name
        status = client.get(reverse("fleet-status")).json()
        assert without_clock(body["status"]) == without_clock(status)
    manager_traces = [
        t["name"] for t in login(manager_a).get(reverse("overview-poll"), {"range": "15m"}).json()["uploads"]["traces"]
    ]
    assert partner_b.name not in manager_traces


def test_the_overview_poll_names_a_bad_range(login, ops_user):
    response = login(ops_user).get(reverse("overview-poll"), {"range": "2y"})
    assert response.status_code == 400 and response.json()["error"].startswith("range must be one of 15m")
