"""gunicorn's configuration for Upload Ops in production (docs/deploy.md).

    gunicorn dashboard.wsgi          # gunicorn reads ./gunicorn.conf.py by itself

Every value can be changed from the environment (the README's table) or on the command line,
which wins over this file. `make run` does not use gunicorn (Django's runserver, plain logs).
"""

import json
import multiprocessing
import os
import shutil
import tempfile
from datetime import UTC, datetime

from gunicorn.glogging import Logger

# 0.0.0.0: the load balancer reaches the targets from outside; the security group says who may.
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# One process per core, each with a few threads: a request waits on PostgreSQL most of its time.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# The web tier's 60 s request limit (upload servers give up then too).
timeout = 60
graceful_timeout = 30
# Longer than the ALB's idle timeout (60 s by default), so the ALB closes idle connections,
# never gunicorn: a connection gunicorn closes as the ALB reuses it is a 502.
keepalive = 75
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# prometheus_client's multiprocess mode: every worker writes its counters to files here and
# /metrics adds them up (dashboard/probes.py). It must be set before the workers import the app.
# By default one directory per gunicorn master (this file is read once, in the master), so two
# instances on one host never count into each other's files.
PROMETHEUS_MULTIPROC_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"upload-ops-prometheus-{os.getpid()}")
)

# One JSON object per request on stdout, beside the application's JSON logs ("-": stdout;
# GUNICORN_ACCESS_LOG="" turns it off, as the benches do).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


class JsonAccessLogger(Logger):
    """Access log lines as JSON, with the request id the app answered (X-Request-ID)."""

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        headers = {name.lower(): value for name, value in resp.headers}
        line = {
            "time": datetime.now(UTC).isoformat(),
            "level": "INFO",
            "logger": "gunicorn.access",
            "message": f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')} {resp.status_code}",
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING", ""),
            "status_code": resp.status_code,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
            "remote_addr": environ.get("REMOTE_ADDR", ""),
            "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR", ""),
            "user_agent": environ.get("HTTP_USER_AGENT", ""),
            "request_id": headers.get("x-request-id", ""),
            "pid": os.getpid(),
        }
        self.access_log.info(json.dumps(line))


logger_class = JsonAccessLogger


def on_starting(server) -> None:
    """Start with an empty multiprocess directory: files left by an earlier run would be added in."""
    shutil.rmtree(PROMETHEUS_MULTIPROC_DIR, ignore_errors=True)
    os.makedirs(PROMETHEUS_MULTIPROC_DIR, exist_ok=True)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    shutil.rmtree(PROMETHEUS_MULTIPROC_DIR, ignore_errors=True)
