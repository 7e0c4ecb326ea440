from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PartnersConfig(AppConfig):
    name = "partners"

    def ready(self) -> None:
        from partners import setup

        post_migrate.connect(setup.after_migrate, sender=self)
