"""The report API fuzzed from its OpenAPI description (docs/status-report.openapi.json).

Reports the contract allows are accepted; anything else gets a 4xx whose JSON body says
what is wrong and stores nothing; nothing gets a 5xx. Example counts stay small for CI.
"""

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitoring.models import ServerReport, UploadServer
from monitoring.reports import CLIENT_FIELDS, CLIENT_OPTIONAL_COUNTERS, MAX_BYTES, MAX_COUNT

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "status-report.openapi.json"
OPENAPI = json.loads(OPENAPI_PATH.read_text())
COMPONENTS = OPENAPI["components"]


def schema(name: str) -> dict:
    # The component with the document's components beside it, so its $refs resolve.
    return {**COMPONENTS["schemas"][name], "components": COMPONENTS}


def from_schema(node: dict) -> st.SearchStrategy:
    """Values a JSON schema allows, for the keywords the report contract uses.

    (hypothesis-jsonschema would do this, but its 0.23 release fails on current Hypothesis.)
    """
    if "$ref" in node:
        return from_schema(COMPONENTS["schemas"][node["$ref"].rsplit("/", 1)[-1]])
    kind = node.get("type")
    if kind == "integer":
        return st.integers(node.get("minimum"), node.get("maximum"))
    if kind == "number":
        return st.floats(node.get("minimum"), node.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "string":
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True)
        if node.get("format") == "date-time":
            return st.datetimes().map(lambda moment: moment.isoformat() + "Z")
        return st.text(max_size=node.get("maxLength"))
    if kind == "array":
        return st.lists(from_schema(node["items"]), max_size=min(node.get("maxItems", 3), 3))
    if kind == "object":
        return _object(node)
    raise NotImplementedError(f"schema keyword set not handled: {node}")


def _object(node: dict) -> st.SearchStrategy:
    properties, required = node.get("properties", {}), set(node.get("required", []))
    fixed = st.fixed_dictionaries(
        {name: from_schema(sub) for name, sub in properties.items() if name in required},
        optional={name: from_schema(sub) for name, sub in properties.items() if name not in required},
    )
    extra = node.get("additionalProperties")
    if not isinstance(extra, dict):
        return fixed
    names = st.from_regex(node["propertyNames"]["pattern"], fullmatch=True) if "propertyNames" in node else st.text()
    return st.tuples(fixed, st.dictionaries(names, from_schema(extra), max_size=4)).map(
        lambda pair: {**pair[1], **pair[0]}
    )


FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
TOTAL_MAXIMUMS = {
    name: MAX_BYTES if name == "bytes_in_flight" else MAX_COUNT for name in CLIENT_FIELDS + CLIENT_OPTIONAL_COUNTERS
}
REPORT_FIELDS = list(COMPONENTS["schemas"]["Report"]["properties"])


def stored_state() -> tuple:
    return (
        ServerReport.objects.count(),
        tuple(UploadServer.objects.values_list("last_sequence", "last_seen_at", "last_config_version")),
    )


def assert_refusal_explains_itself(response) -> None:
    assert response.status_code < 500, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    jsonschema.validate(body, schema("Error"))
    assert body["error"].strip()
    if response.status_code == 400 and body["error"] == "invalid report":
        assert body["fields"], "a 400 for an invalid report names the fields"


@given(report=from_schema(COMPONENTS["schemas"]["Report"]))
@FUZZ
def test_every_report_the_contract_allows_is_accepted(registered_server, post_report, report):
    # The contract's one rule a JSON schema cannot say: the sums over clients fit their columns.
    assume(
        all(
            sum(figures.get(name, 0) for figures in report.get("clients", {}).values()) <= maximum
            for name, maximum in TOTAL_MAXIMUMS.items()
        )
    )
    server, token = registered_server
    report["server_id"] = server.name
    response = post_report(token, report)
    assert response.status_code == 202, response.content[:500]
    jsonschema.validate(response.json(), schema("Accepted"))


@given(field=st.sampled_from(REPORT_FIELDS), value=json_values)
@FUZZ
def test_a_report_with_one_field_replaced_by_any_json_is_accepted_or_refused_with_reasons(
    registered_server, post_report, field, value
):
    server, token = registered_server
    report = {"server_id": server.name, "sequence": 10**6, "cpu_percent": 50, "config_version": 1, field: value}
    before = stored_state()
    response = post_report(token, report)
    if response.status_code == 202:
        return
    assert_refusal_explains_itself(response)
    assert stored_state() == before, "a refused report stores nothing"


@given(body=json_values)
@FUZZ
def test_any_json_body_is_refused_with_reasons_or_accepted(registered_server, post_report, body):
    _, token = registered_server
    before = stored_state()
    response = post_report(token, json.dumps(body))
    assert response.status_code != 202, "no random JSON is a complete report"
    assert_refusal_explains_itself(response)
    assert stored_state() == before


@given(body=st.binary(min_size=1, max_size=300))
@FUZZ
def test_any_bytes_are_refused_with_reasons(registered_server, post_report, body):
    _, token = registered_server
    before = stored_state()
    response = post_report(token, body)
    assert response.status_code == 400
    assert_refusal_explains_itself(response)
    assert stored_state() == before


@given(
    authorization=st.text(max_size=60),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", "application/jsonx", ""]
    ),
)
@FUZZ
def test_any_credentials_and_content_types_are_refused_with_reasons(
    registered_server, client, authorization, content_type
):
    server, _token = registered_server
    before = stored_state()
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization.isprintable() else {}
    response = client.post(
        "/api/v1/reports",
        json.dumps({"server_id": server.name, "sequence": 1, "cpu_percent": 5, "config_version": 1}),
        content_type=content_type,
        **headers,
    )
    assert response.status_code in (401, 415)
    assert_refusal_explains_itself(response)
    assert stored_state() == before


@pytest.mark.parametrize(
    "clients",
    [
        # Each client's figure is in range, their sum is not: the totals must still fit their columns.
        {f"c{i}": {"bytes_in_flight": 2**63 - 1} for i in range(3)},
        {f"c{i}": {"uploads_in_progress": 2**31 - 1} for i in range(3)},
        {f"c{i}": {"completed": 2**31 - 1} for i in range(3)},
    ],
)
def test_totals_too_large_for_storage_are_a_400_not_a_crash(registered_server, post_report, clients):
    server, token = registered_server
    response = post_report(
        token, {"server_id": server.name, "sequence": 1, "cpu_percent": 5, "config_version": 1, "clients": clients}
    )
    assert response.status_code == 400
    assert_refusal_explains_itself(response)
    assert not ServerReport.objects.exists()
