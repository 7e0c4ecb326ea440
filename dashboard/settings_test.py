"""Settings for the test suite: the normal settings with tasks run in-process."""

import os

# django-q2 reads Q_CLUSTER at import time, so sync mode must be set before settings load.
os.environ.setdefault("Q_SYNC", "true")
os.environ.setdefault("DEBUG", "true")

from dashboard.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
