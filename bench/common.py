"""Shared by the benchmarks: a fresh database (SQLite, or PostgreSQL from DATABASE_URL) and
manage.py run against it with production-like settings (DEBUG off: no query log); a free
port and a redis-server of the bench's own."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else sys.executable


def bench_env(database_url: str) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        # Tasks go through the broker as in production, even when started from the test suite
        # (whose settings module sets Q_SYNC=true in the environment it passes on).
        "Q_SYNC": "false",
        "PYTHONPATH": str(ROOT),
    }


def manage(args: list[str], env: dict) -> str:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def postgres_from_environment() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres", "pgsql")) else None


def fresh_database(tmp: Path, name: str, postgres_url: str | None = None) -> dict:
    """Environment for a new, migrated database: on the PostgreSQL server of postgres_url
    (a database named bench_<name>), else an SQLite file in tmp."""
    if postgres_url:
        url = urlparse(postgres_url)
        database = f"bench_{name}"
        admin_url = url._replace(path="/postgres").geturl()
        _psql(admin_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        _psql(admin_url, f"CREATE DATABASE {database}")
        database_url = url._replace(path=f"/{database}").geturl()
    else:
        database_url = f"sqlite:///{tmp / f'{name}.sqlite3'}"
    env = bench_env(database_url)
    manage(["migrate", "--noinput", "-v0"], env)
    return env


def _psql(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)


def start_gunicorn(env: dict, port: int, workers: int, worker_threads: int, worker_class: str) -> subprocess.Popen:
    """The dashboard under gunicorn on 127.0.0.1:port, as production runs it (keep-alive on)."""
    command = [str(ROOT / ".venv/bin/gunicorn"), "dashboard.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers), "--threads", str(worker_threads), "--worker-class", worker_class]
    command += ["--log-level", "warning", "--keep-alive", "30"]
    # gunicorn.conf.py applies (gunicorn reads it from the working directory); its access log
    # would print a line per request of the load, so it is off here.
    return subprocess.Popen(command, cwd=ROOT, env={"GUNICORN_ACCESS_LOG": "", **env})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(unix_socket_dir: Path | None = None) -> tuple[subprocess.Popen, str] | None:
    """A redis-server of the bench's own, nothing persisted, on a free 127.0.0.1 port or on a
    Unix socket in unix_socket_dir: (process, URL) once it accepts connections, or None where
    redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    if unix_socket_dir is not None:
        sock = unix_socket_dir / "redis.sock"
        listen, url = ["--port", "0", "--unixsocket", str(sock)], f"unix://{sock}"
    else:
        port = free_port()
        listen, url = ["--bind", "127.0.0.1", "--port", str(port)], f"redis://127.0.0.1:{port}/0"
    process = subprocess.Popen(
        [binary, *listen, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(400):
        if _redis_answers(url):
            return process, url
        time.sleep(0.025)
    process.terminate()
    return None


def _redis_answers(url: str) -> bool:
    if url.startswith("unix://"):
        family, address = socket.AF_UNIX, url.removeprefix("unix://")
    else:
        family, address = socket.AF_INET, ("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0]))
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(address) == 0
