"""How many of the project's Python files one request runs through: a measure of how many a
reader opens to follow that URL.

    .venv/bin/python scripts/files_per_url.py

It migrates a throwaway SQLite database, seeds the demo (`manage.py seed_demo`) and two upload
servers with a report each, then makes four requests as the ops user: POST a partner's limits,
POST a scaling of the local group (the request queues the task; the worker runs it later), GET
the risk page and GET /api/overview. Each request is made once to warm up (imports), then again
while a profiler records the files of this repository in which a function was called, leaving
out tests, migrations, settings, app configs and package `__init__` files. The ground floor
(core/, which every request shares, as Django itself) is counted apart.
"""

import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE = Path(tempfile.mkdtemp(prefix="files-per-url-")) / "db.sqlite3"
os.environ["DATABASE_URL"] = f"sqlite:///{DATABASE}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings_test")
os.environ["CHART_CACHE_SECONDS"] = "0"
# As in production: a scaling request queues its task (the ORM broker here) and returns.
os.environ["Q_SYNC"] = "false"

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

LEFT_OUT_PARTS = {"tests", "migrations", "scripts", ".venv", "bench"}
LEFT_OUT_NAMES = {"settings.py", "settings_test.py", "apps.py", "__init__.py", "wsgi.py", "manage.py"}


def project_file(filename: str) -> str | None:
    path = Path(filename)
    try:
        relative = path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    if path.suffix != ".py" or set(relative.parts) & LEFT_OUT_PARTS or path.name in LEFT_OUT_NAMES:
        return None
    return str(relative)


def files_run_by(request) -> tuple[int, list[str]]:
    seen: set[str] = set()

    def profile(frame, event, arg):
        if event == "call":
            name = project_file(frame.f_code.co_filename)
            if name:
                seen.add(name)

    sys.setprofile(profile)
    try:
        response = request()
    finally:
        sys.setprofile(None)
    return response.status_code, sorted(seen)


def seed(client: Client) -> None:
    call_command("migrate", verbosity=0)
    call_command("seed_demo", stdout=open(os.devnull, "w"))
    from monitoring import servers

    ops = get_user_model().objects.get(username="ops")
    for sequence, name in enumerate(["upload-1", "upload-2"], start=1):
        server_and_token = servers.register_server(ops, name, "files_per_url")
        token = server_and_token[1]
        body = {
            "server_id": name,
            "sequence": sequence,
            "boot_id": "b",
            "interval_seconds": 5,
            "cpu_percent": 50.0,
            "config_version": 1,
            "clients": {
                "theirstory-sdk": {
                    "uploads_in_progress": 2,
                    "bytes_in_flight": 10**9,
                    "admitted": 1,
                    "throttled": 0,
                    "timed_out": 0,
                    "completed": 1,
                    "failed": 0,
                }
            },
        }
        client.post(
            "/api/v1/reports", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )


def main() -> None:
    client = Client(HTTP_HOST="127.0.0.1")
    seed(client)
    client.force_login(get_user_model().objects.get(username="ops"))
    from fleet.models import ScalingGroup
    from partners.models import Partner

    def post_limits():
        partner = Partner.objects.get(slug="theirstory")
        rate = 100 if partner.requests_per_minute != 100 else 110
        return client.post(
            "/partners/theirstory/limits/",
            {
                "limits-requests_per_minute": str(rate),
                "limits-burst": "20",
                "limits-max_concurrent_uploads": "10",
                "limits-max_bytes_in_flight": "40 GB",
                "limits-daily_upload_bytes": "4 TB",
                "limits-reason": "files_per_url",
                "limits-revision": str(partner.revision),
            },
        )

    def post_scale():
        desired = ScalingGroup.objects.get(name="local-fleet").desired_capacity
        return client.post(
            "/fleet/local-fleet/scale/",
            {
                "from_capacity": str(desired),
                "to_capacity": str(desired + 1),
                "idempotency_key": str(uuid.uuid4()),
                "reason": "files_per_url",
            },
        )

    requests = [
        ("POST /partners/<slug>/limits/", post_limits),
        ("POST /fleet/<name>/scale/", post_scale),
        ("GET /risk/", lambda: client.get("/risk/")),
        ("GET /api/overview", lambda: client.get("/api/overview")),
    ]
    for label, request in requests:
        request()
        status, files = files_run_by(request)
        ground = [name for name in files if name.startswith("core/")]
        print(f"{label}: {len(files) - len(ground)} files of the apps + {len(ground)} of core/ (HTTP {status})")
        for name in files:
            print(f"    {name}")


if __name__ == "__main__":
    main()
