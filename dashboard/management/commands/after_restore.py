"""After a database restore: move the config version past anything upload servers have seen.

A restored database carries the version counter as it was at the backup. Upload servers
may hold a newer version than that (changes made after the backup); if the counter simply
went on from the old value, a later change could reuse a version a server already holds,
and that server would never reload (it reloads when `max(version)` differs from its own).
So the counter jumps above `--min-version` (the highest version any server applied: from
the servers' logs, the old database, or the fleet page before the outage) and every row is
republished at the new version, which all servers then load.

    manage.py after_restore --min-version 1234
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from monitoring.models import UploadServer
from partners import publisher
from partners.models import ConfigVersion


class Command(BaseCommand):
    help = "After a restore: raise the config version above what upload servers hold, and republish."

    def add_arguments(self, parser):
        parser.add_argument(
            "--min-version",
            type=int,
            default=0,
            help="the highest config version any upload server applied before the restore",
        )

    def handle(self, *args, min_version: int, **options):
        with transaction.atomic():
            counter, _ = ConfigVersion.objects.select_for_update().get_or_create(pk=1)
            reported = max(
                UploadServer.objects.values_list("last_config_version", flat=True).exclude(last_config_version=None),
                default=0,
            )
            floor = max(counter.value, min_version, reported)
            ConfigVersion.objects.filter(pk=1).update(value=floor)
            version = publisher.republish_all()
        self.stdout.write(f"Republished every row at config version {version} (above {floor}).")
