"""Settings for Upload Ops, all read from the environment through django-environ.

Every setting has a working default for local use (SQLite, django-q2 on the ORM broker,
emails to the console). Production sets DEBUG=false, SECRET_KEY, ALLOWED_HOSTS,
DATABASE_URL, REDIS_URL and the SMTP settings; a malformed value fails at start with the
variable's name (django-environ raises ImproperlyConfigured).
"""

import ipaddress
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Off unless set: a forgotten variable must not serve debug pages (with the public local
# SECRET_KEY). `make run` and the test settings set DEBUG=true; a `.env` can, for local use.
DEBUG = env.bool("DEBUG", default=False)

_LOCAL_SECRET_KEY = "local-only-insecure-key-never-used-when-DEBUG-is-false"
# Empty without DEBUG: commands that sign nothing (migrate, makemigrations --check, collectstatic)
# still run, while serving refuses to start (dashboard/wsgi.py) and `check --deploy` fails.
SECRET_KEY = env.str("SECRET_KEY", default=_LOCAL_SECRET_KEY if DEBUG else "")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # django.contrib.admin, its site open to ops (core/admin_site.py).
    "core.apps.OpsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "axes",
    "csp",
    # The apps, from the pages that combine (top) to the ground floor; imports point down
    # (.importlinter).
    "dashboard",
    "alerting",
    "fleet",
    "partners",
    "monitoring",
    "core",
]

MIDDLEWARE = [
    # First: X-Forwarded-* count only from TRUSTED_PROXY_IPS (see the security block below).
    "core.middleware.ForwardedHeadersFromTrustedProxies",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.middleware.PrivatePagesAreNotCached",
    "core.middleware.SessionIdleTimeout",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # An empty 405 from require_POST becomes a page (or JSON) that says what to do.
    "dashboard.errors.MethodNotAllowedPage",
    # Every page needs login unless its view is marked @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Last, as django-axes asks: it turns a refused login of a locked-out client into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.roles.user_roles",
                "alerting.context.open_alerts",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Keep connections between requests (report posts arrive every few seconds per server).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# A health check costs a round trip per request; a broken connection is dropped at the end
# of the request that saw the error anyway.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Server-side binding lets psycopg prepare the statements a connection repeats (the
    # report API's three), sparing PostgreSQL a parse and plan per report.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "server_side_binding", env.bool("DATABASE_SERVER_SIDE_BINDING", default=True)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and the demo fleet share one SQLite file: wait for locks instead of
    # failing; WAL lets readers run beside the writer, and in WAL mode synchronous=NORMAL
    # stays consistent after a crash while sparing an fsync per commit.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out user name or address is refused before the password is checked.
    "core.login_throttle.LoginThrottleBackend",
    # Django's, refusing temporary ops logins past their end (manage.py temporary_ops_login).
    "core.login_throttle.ExpiringModelBackend",
]

# Login throttling (core/login_throttle.py): after LOGIN_FAILURE_LIMIT failures for one user
# name from one address, or LOGIN_ADDRESS_FAILURE_LIMIT from one address over any user names,
# logins from it wait LOGIN_LOCKOUT_MINUTES. A user name is never locked out from every
# address (a stranger could keep ops out). Counted in the database, so all web processes
# share the count. `manage.py unlock_login` lifts a lockout.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=30)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "core.login_throttle.LoginThrottleHandler"
# A fixed wait the page can state; retries during it do not extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "core.login_throttle.locked_out"
AXES_CLIENT_IP_CALLABLE = "core.login_throttle.client_ip"
# Ops read lockouts in the logs by user name and address (passwords are never logged).
AXES_SENSITIVE_PARAMETERS = []
# The version banner on every manage.py command adds noise to ops output.
AXES_VERBOSE = False
# How many reverse proxies append to X-Forwarded-For in front of the app (0: use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# Everything an operator reads and types is UTC: the fleet spans time zones and the
# upload servers' daily byte quotas reset at UTC midnight.
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "dashboard.staticfinders.PlotlyFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Email: the console locally, SMTP in production (EMAIL_URL=smtp://user:pass@host:587/?tls=True).
_email = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(_email)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="upload-ops@localhost")

# django-q2: the ORM broker locally, Redis in production. It reads this at import time.
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "upload-ops",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 60,
    "retry": 120,
    "max_attempts": 3,
    "catch_up": False,
    "sync": env.bool("Q_SYNC", default=False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# The fleet's size before any upload server has reported: the share each gate enforces.
FLEET_CONFIGURED_SERVER_COUNT = env.int("FLEET_CONFIGURED_SERVER_COUNT", default=2)
# Hosts enrolling with a wrong fleet enrolment secret (monitoring/enrolment.py): after
# ENROLMENT_FAILURE_LIMIT failures from one address, its enrolments wait ENROLMENT_LOCKOUT_MINUTES.
ENROLMENT_FAILURE_LIMIT = env.int("ENROLMENT_FAILURE_LIMIT", default=10)
ENROLMENT_LOCKOUT_MINUTES = env.int("ENROLMENT_LOCKOUT_MINUTES", default=15)

# AWS (boto3): region, optional endpoint (moto's server in tests), and what the worker polls.
AWS_REGION = env.str("AWS_REGION", default="us-east-1")
AWS_ENDPOINT_URL = env.str("AWS_ENDPOINT_URL", default="") or None
AWS_CONNECT_TIMEOUT_SECONDS = env.float("AWS_CONNECT_TIMEOUT_SECONDS", default=3.0)
AWS_READ_TIMEOUT_SECONDS = env.float("AWS_READ_TIMEOUT_SECONDS", default=10.0)
AWS_MAX_ATTEMPTS = env.int("AWS_MAX_ATTEMPTS", default=3)
# Seeded as metric sources at migrate; ops add or disable more in the admin.
METRICS_AUTOSCALING_GROUPS = env.list("METRICS_AUTOSCALING_GROUPS", default=[])
METRICS_SQS_QUEUES = env.list("METRICS_SQS_QUEUES", default=[])

# Metric retention (days): raw reports, then per-minute, per-10-minute and hourly rollups.
METRICS_RAW_RETENTION_HOURS = env.int("METRICS_RAW_RETENTION_HOURS", default=6)
METRICS_MINUTE_RETENTION_DAYS = env.int("METRICS_MINUTE_RETENTION_DAYS", default=14)
METRICS_TEN_MINUTE_RETENTION_DAYS = env.int("METRICS_TEN_MINUTE_RETENTION_DAYS", default=90)
METRICS_HOUR_RETENTION_DAYS = env.int("METRICS_HOUR_RETENTION_DAYS", default=400)
# Open dashboards poll the same charts every 5 s; one result serves them all this long.
CHART_CACHE_SECONDS = env.int("CHART_CACHE_SECONDS", default=2)

# ---- Security: headers, sessions, proxies (core/middleware.py) ---------------------------
# Strict whenever DEBUG is off (`manage.py check --deploy` is clean then).
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): scripts only from our own static files, never inline
# (an injected <script> or on…= handler does not run). Styles: plotly.js sets style attributes
# on the charts it draws, which 'unsafe-inline' for styles allows; no script can come of it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# A session ends SESSION_IDLE_MINUTES after its last request (core.middleware.SessionIdleTimeout
# moves the expiry on, at most once a minute), not 14 days after login.
SESSION_COOKIE_AGE = env.int("SESSION_IDLE_MINUTES", default=60) * 60
# Reverse proxies in front of the app (addresses or networks): only their X-Forwarded-Proto
# and X-Forwarded-For are believed; from anyone else those headers are dropped. Behind a TLS
# proxy this must be set, or HTTPS requests look like plain HTTP (and are redirected forever).
TRUSTED_PROXY_IPS = env.list("TRUSTED_PROXY_IPS", default=[])
if TRUSTED_PROXY_COUNT and not TRUSTED_PROXY_IPS:
    # X-Forwarded-For is dropped from peers not in TRUSTED_PROXY_IPS: the count alone would
    # silently give every user the proxy's address (and its lockouts).
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT needs TRUSTED_PROXY_IPS: the proxies' addresses")
if TRUSTED_PROXY_IPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
# Password reset emails (core/password_reset.py): per email address, and requests per client address.
PASSWORD_RESET_EMAILS_PER_HOUR = env.int("PASSWORD_RESET_EMAILS_PER_HOUR", default=3)
PASSWORD_RESET_REQUESTS_PER_HOUR = env.int("PASSWORD_RESET_REQUESTS_PER_HOUR", default=10)
# ---- end of the security block -------------------------------------------------------------

# Alerts: links in alert emails point here; SMTP gives up on an attempt after this long.
# Required when DEBUG is off (core/checks.py): a local default would send engineers to 127.0.0.1.
DASHBOARD_BASE_URL = env.str("DASHBOARD_BASE_URL", default="http://127.0.0.1:8000" if DEBUG else "")
ALERT_EMAIL_TIMEOUT_SECONDS = env.float("ALERT_EMAIL_TIMEOUT_SECONDS", default=10.0)
ALERT_RUNBOOK_URL = env.str(
    "ALERT_RUNBOOK_URL", default="https://github.com/PermanentOrg/upload-ops/blob/main/docs/runbooks.md"
)

# Expiring overrides (temporary limits, pauses with an end time): the author's reminder
# email goes this long before the end; an override may last at most OVERRIDE_MAX_DAYS.
OVERRIDE_REMINDER_MINUTES = env.int("OVERRIDE_REMINDER_MINUTES", default=30)
OVERRIDE_MAX_DAYS = env.int("OVERRIDE_MAX_DAYS", default=30)

# The risk page (dashboard/risk.py): partner caps above this many times what the fleet can
# carry are flagged; a pause on for this many days is a risk; the weekly summary goes to ops.
RISK_OVERCOMMIT_WARNING_RATIO = env.float("RISK_OVERCOMMIT_WARNING_RATIO", default=1.5)
RISK_PAUSE_DAYS = env.float("RISK_PAUSE_DAYS", default=2.0)


# ---- Running it for real: probes, heartbeat, metrics, cache, logs, error reports -----------
# (docs/deploy.md). One block, so that other changes to the settings above merge cleanly.

# First the request id (every log line of the request carries it), then /healthz, /readyz and
# /metrics, answered before SecurityMiddleware and CommonMiddleware: a load balancer's health
# check comes over plain HTTP with the target's address as Host (dashboard/probes.py).
MIDDLEWARE.insert(0, "dashboard.probes.ProbesMiddleware")
MIDDLEWARE.insert(0, "core.request_log.RequestIdMiddleware")

# The worker beats every minute (core/heartbeat.py); older than this, it counts as stopped.
WORKER_HEARTBEAT_STALE_SECONDS = env.int("WORKER_HEARTBEAT_STALE_SECONDS", default=180)

# /metrics: a scraper sends this as a bearer token, or comes from one of these addresses
# (addresses or networks, e.g. 10.0.0.0/16); empty token: addresses only.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
try:
    METRICS_ALLOWED_NETWORKS = [
        ipaddress.ip_network(item.strip(), strict=False)
        for item in env.list("METRICS_ALLOWED_ADDRESSES", default=["127.0.0.1", "::1"])
        if item.strip()
    ]
except ValueError as error:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_ADDRESSES: {error}") from error

# One cache for every web process when Redis is there (the chart cache: dashboard/api.py), so
# "one request rebuilds the chart" holds across processes and machines; per process otherwise.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "upload-ops",
            # A Redis that stops answering must not hold a page for long.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Who gets Django's emails about 500s: ADMINS="Ops <ops@example.org>,oncall@example.org".
ADMINS = []
for _admin in env.list("ADMINS", default=[]):
    _name, _address = parseaddr(_admin)
    if "@" not in _address:
        raise ImproperlyConfigured(f"ADMINS: {_admin!r} is not an email address")
    ADMINS.append((_name, _address))
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)

# Logs: JSON lines in production (one object per line, with the request id, the user and a
# refused report's reason as fields), plain lines under `make run`.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "core.request_log.RequestContextFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_context"]},
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["console", "mail_admins"], "level": "INFO", "propagate": False},
        # django-q2 adds a handler of its own unless its logger already has one.
        "django-q": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# Error tracking: Sentry (or anything that speaks its protocol) when a DSN is set.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    import sentry_sdk

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
        send_default_pii=False,
    )
