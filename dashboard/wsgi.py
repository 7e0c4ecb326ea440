import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
application = get_wsgi_application()

# Refuse to serve at boot rather than answer every request with a 500: without a key, sessions,
# CSRF tokens and password-reset links cannot be signed.
try:
    settings.SECRET_KEY  # noqa: B018 - Django raises on an empty key only when it is read
except ImproperlyConfigured:
    raise ImproperlyConfigured("SECRET_KEY is not set: set it in the environment (docs/deploy.md).") from None
