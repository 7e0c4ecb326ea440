"""Report tokens are compared in constant time, so response timing leaks nothing of a token."""

import hmac
from unittest import mock

from monitoring.models import ServerReport, hash_token
from tests.factories import report_body


def test_an_accepted_report_was_checked_with_a_constant_time_comparison(registered_server, post_report):
    _, token = registered_server
    with mock.patch("monitoring.models.hmac.compare_digest", wraps=hmac.compare_digest) as compare:
        response = post_report(token, report_body())
    assert response.status_code == 202
    compare.assert_called_once_with(registered_server[0].token_hash, hash_token(token))


def test_the_report_is_refused_when_the_constant_time_comparison_says_no(registered_server, post_report):
    """The comparison is what decides: the hash lookup alone does not let a report in."""
    _, token = registered_server
    with mock.patch("monitoring.models.hmac.compare_digest", return_value=False) as compare:
        response = post_report(token, report_body())
    assert compare.called
    assert response.status_code == 401
    assert not ServerReport.objects.exists()
