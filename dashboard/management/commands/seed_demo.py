"""Seed a demo: one user per role, a few partners with limits, published to the table.

Safe to run again: it creates what is missing and resets the demo users' passwords.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from core.apps import ensure_role_groups
from core.roles import ENGINEERS_GROUP, OPS_GROUP
from core.units import parse_bytes
from partners import changes
from partners.models import FleetSettings, Partner, Priority

DEMO_USERS = [
    # username, password, role
    ("ops", "ops-demo-pass", "ops"),
    ("theirstory-manager", "manager-demo-pass", "manager of TheirStory"),
    ("archive-manager", "manager-demo-pass", "manager of Family Archive Scans"),
    ("engineer", "engineer-demo-pass", "engineer"),
]

DEMO_PARTNERS = [
    {
        "name": "TheirStory",
        "slug": "theirstory",
        "client_id": "theirstory-sdk",
        "contact_email": "ops@theirstory.example",
        "priority": Priority.BULK,
        "managers": ["theirstory-manager"],
        "limits": {
            "requests_per_minute": 120,
            "burst": 20,
            "max_concurrent_uploads": 16,
            "max_bytes_in_flight": "40 GB",
            "daily_upload_bytes": "4 TB",
        },
        "ceilings": {
            "requests_per_minute": 300,
            "burst": 50,
            "max_concurrent_uploads": 40,
            "max_bytes_in_flight": "100 GB",
            "daily_upload_bytes": "10 TB",
        },
    },
    {
        "name": "Family Archive Scans",
        "slug": "family-archive-scans",
        "client_id": "fas-importer",
        "contact_email": "it@familyarchive.example",
        "priority": Priority.BULK,
        "managers": ["archive-manager"],
        "limits": {
            "requests_per_minute": 60,
            "max_concurrent_uploads": 8,
            "max_bytes_in_flight": "5 GB",
            "daily_upload_bytes": "500 GB",
        },
        "ceilings": {
            "requests_per_minute": 120,
            "max_concurrent_uploads": 16,
            "max_bytes_in_flight": "20 GB",
            "daily_upload_bytes": "2 TB",
        },
    },
    {
        "name": "Permanent Mobile",
        "slug": "permanent-mobile",
        "client_id": "permanent-mobile-app",
        "contact_email": "",
        "priority": Priority.INTERACTIVE,
        "managers": [],
        "limits": {},
        "ceilings": {},
    },
]

DEFAULT_LIMITS = {
    "requests_per_minute": 600,
    "burst": 100,
    "max_concurrent_uploads": 20,
    "max_bytes_in_flight": "20 GB",
    "daily_upload_bytes": None,
}


def _values(spec: dict) -> dict:
    return {k: parse_bytes(v) if isinstance(v, str) else v for k, v in spec.items()}


class Command(BaseCommand):
    help = "Create demo users (one per role) and partners, and publish them."

    def handle(self, *args, **options) -> None:
        users = self._seed_users()
        ops = users["ops"]
        for spec in DEMO_PARTNERS:
            self._seed_partner(spec, ops, users)
        fleet = FleetSettings.load()
        if fleet.revision == 0:
            changes.change_default_limits(ops, _values(DEFAULT_LIMITS), "Demo defaults", 0)
        self._print_logins()

    def _seed_users(self) -> dict:
        ensure_role_groups()
        ops_group = Group.objects.get(name=OPS_GROUP)
        engineers = Group.objects.get(name=ENGINEERS_GROUP)
        users = {}
        for username, password, role in DEMO_USERS:
            user, _ = get_user_model().objects.get_or_create(
                username=username, defaults={"email": f"{username}@upload-ops.example"}
            )
            user.set_password(password)
            user.is_staff = role == "ops"
            user.save()
            if role == "ops":
                user.groups.add(ops_group)
            if role == "engineer":
                user.groups.add(engineers)
            users[username] = user
        return users

    def _seed_partner(self, spec: dict, ops, users: dict) -> None:
        if Partner.objects.filter(slug=spec["slug"]).exists():
            return
        values = {k: spec[k] for k in ("name", "slug", "client_id", "contact_email", "priority")}
        values.update({f"ceiling_{k}": v for k, v in _values(spec["ceilings"]).items()})
        managers = [users[name] for name in spec["managers"]]
        partner = changes.create_partner(ops, values, managers, "Demo seed")
        if spec["limits"]:
            changes.change_limits(
                partner, ops, {**dict.fromkeys(partner.limit_values()), **_values(spec["limits"])}, "Demo seed", None
            )

    def _print_logins(self) -> None:
        self.stdout.write("\nDemo logins (http://127.0.0.1:8000/):")
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"  {role:<32} {username:<20} {password}")
        self.stdout.write("")
