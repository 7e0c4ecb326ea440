"""End to end over HTTP: the reporter of a host enrols itself with the fleet enrolment secret,
shares one token with every gate on the host through its token file, enrols again when its
token stops counting, and deregisters at an orderly shutdown."""

import json
import os
import threading

import pytest

from core.models import AuditEntry
from monitoring import enrolment as dashboard_enrolment
from monitoring import servers
from monitoring.models import ServerAudit, UploadServer
from tests.factories import star_row
from upload_gate import StaticSource, UploadGate
from upload_gate import enrolment as host_enrolment
from upload_gate.reporter import StatusReporter

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def secret(ops_user):
    return dashboard_enrolment.rotate_secret(ops_user, "fleet")


@pytest.fixture
def make_reporter(live_server, tmp_path):
    made = []

    def make(secret, host_id="host-a", token_file=tmp_path / "token.json", **kwargs) -> StatusReporter:
        gate = UploadGate(source=StaticSource([star_row()]), start=False)
        reporter = StatusReporter(
            gate,
            live_server.url,
            None,
            None,
            enrolment_secret=secret,
            token_file=str(token_file),
            host_id=host_id,
            instance_id="",
            start=False,
            cpu_percent=lambda: 12.5,
            **kwargs,
        )
        made.append((reporter, gate))
        return reporter

    yield make
    for reporter, gate in made:
        reporter.stop(final_report=False)
        gate.close()


def test_the_gates_of_one_host_enrol_once_and_count_once(make_reporter, secret, tmp_path):
    reporters = [make_reporter(secret) for _ in range(4)]
    threads = [threading.Thread(target=reporter.send_now) for reporter in reporters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for reporter in reporters:  # SQLite may refuse a concurrent write (503): that report is sent again
        if reporter.queued:
            reporter.send_now()
    assert all(reporter.stats()["sent"] >= 1 and reporter.queued == 0 for reporter in reporters)
    server = UploadServer.objects.get()
    assert (server.name, server.host_id) == ("host-a", "host-a") and UploadServer.live_count() == 1
    assert AuditEntry.objects.filter(action=ServerAudit.SERVER_ENROLLED).count() == 1
    kept = json.loads((tmp_path / "token.json").read_text())
    assert server.token_matches(kept["token"]) and oct(os.stat(tmp_path / "token.json").st_mode & 0o777) == "0o600"


def test_a_restarted_host_reuses_its_kept_token(make_reporter, secret):
    make_reporter(secret).send_now()
    assert make_reporter(secret).send_now() == 1
    assert AuditEntry.objects.filter(action=ServerAudit.SERVER_ENROLLED).count() == 1


def test_an_orderly_shutdown_deregisters_and_forgets_the_token(make_reporter, secret, tmp_path):
    reporter = make_reporter(secret)
    reporter.send_now()
    reporter.stop(deregister=True, deregister_reason="deploy")
    server = UploadServer.objects.get()
    assert server.gone_at is not None and "deploy" in server.gone_reason
    assert not (tmp_path / "token.json").exists() and not reporter.enrolled


def test_a_host_marked_gone_by_mistake_enrols_again_when_its_token_is_refused(make_reporter, secret):
    reporter = make_reporter(secret)
    reporter.send_now()
    servers.mark_gone(UploadServer.objects.get(), "terminated (wrongly)")
    assert reporter.send_now() == 1
    server = UploadServer.objects.get()
    assert server.gone_at is None and UploadServer.objects.count() == 1
    assert reporter.stats()["rejected"] == 0


def test_a_wrong_secret_enrols_nothing_and_says_why(make_reporter, secret):
    reporter = make_reporter("uoe_wrong")
    assert reporter.send_now() == 0
    assert reporter.last_status == 401 and "wrong enrolment secret" in reporter.last_error
    assert reporter.queued == 1 and not UploadServer.objects.exists()


def test_enrol_and_deregister_can_be_called_directly(live_server, secret):
    enrolled = host_enrolment.enrol(live_server.url, secret, "i-0direct", instance_id="i-0direct")
    assert enrolled.created and enrolled.server_id == "i-0direct"
    with pytest.raises(host_enrolment.EnrolmentError) as refused:
        host_enrolment.enrol(live_server.url, "uoe_wrong", "i-0direct")
    assert refused.value.status == 401 and not refused.value.retryable
    assert host_enrolment.deregister(live_server.url, enrolled.token, reason="scale-in hook") is True
    assert host_enrolment.deregister(live_server.url, enrolled.token) is False
    assert UploadServer.objects.get().gone_at is not None
