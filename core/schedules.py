"""The worker's scheduled jobs: each app declares its own after migrate, by name, so a second
migrate updates them in place (django-q2 Schedule rows; the worker checks them about every 30 s)."""


def every_minute(func: str) -> dict:
    from django_q.models import Schedule

    return {"func": func, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1}


def hourly(func: str) -> dict:
    from django_q.models import Schedule

    return {"func": func, "schedule_type": Schedule.HOURLY, "repeats": -1}


def ensure(schedules: dict[str, dict]) -> None:
    """Create or update each named schedule: {name: fields}."""
    from django_q.models import Schedule

    for name, fields in schedules.items():
        Schedule.objects.update_or_create(name=name, defaults=fields)
