"""Production settings pass Django's deployment checks; models and migrations agree."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "x7!k2p#q9v@m4w$z8r&t1y^u6i*o3e(a5s)d0f_g-h+j=k~l<n>b?c",
    "ALLOWED_HOSTS": "upload-ops.example.org",
    "DATABASE_URL": "postgres://ops@db.internal:5432/uploadops",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "EMAIL_URL": "smtp+tls://alerts:secret@smtp.example.org:587",
}


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    # Only the machine's basics: the test run's own settings (and Playwright's
    # DJANGO_ALLOW_ASYNC_UNSAFE) must not leak into "production".
    clean_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**clean_env, "DJANGO_SETTINGS_MODULE": "dashboard.settings", **env})


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_models_and_migrations_agree():
    result = manage("makemigrations", "--check", "--dry-run", env={})
    assert result.returncode == 0, result.stdout + result.stderr
