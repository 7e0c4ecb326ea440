"""Settings for the test suite: the normal settings with tasks run in-process."""

import os

# django-q2 reads Q_CLUSTER at import time, so sync mode must be set before settings load.
os.environ.setdefault("Q_SYNC", "true")
os.environ.setdefault("DEBUG", "true")

from dashboard.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # The audit table refuses TRUNCATE (core's first migration) unless a session says so;
    # Django's flush between transactional tests truncates every table, so tests say so.
    # Set at connection start, it survives the rollbacks that SET inside a test would not.
    _options = DATABASES["default"].setdefault("OPTIONS", {})  # noqa: F405
    _options["options"] = (_options.get("options", "") + " -c upload_ops.allow_audit_truncate=on").strip()

# Tests read what they just wrote; the chart cache has a test of its own.
CHART_CACHE_SECONDS = 0
