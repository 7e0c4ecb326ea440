"""The `upload-gate` command: `serve` (the host's sidecar) and `check` (what a table means).

    upload-gate serve postgresql://gate_reader@db/app --socket /run/upload-gate/gate.sock \\
        --dashboard-url https://ops.internal --server-id upload-7 --token-file /etc/upload-gate/token
    upload-gate check sqlite:////srv/app/db.sqlite3

Every option of `serve` can also be given as an environment variable (UPLOAD_GATE_<NAME>,
e.g. UPLOAD_GATE_DATABASE_URL, UPLOAD_GATE_TOKEN), so a unit file needs no secrets on
its command line.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("upload_gate.cli")


def _env(name: str, default: Any = None) -> Any:
    return os.environ.get(f"UPLOAD_GATE_{name}", default)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="upload-gate", description="The upload gate: sidecar and table check.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="hold the gate for every upload worker on this host")
    serve.add_argument(
        "database_url",
        nargs="?",
        default=_env("DATABASE_URL"),
        help="postgresql://... or sqlite:////path (env UPLOAD_GATE_DATABASE_URL); none: fallback limits only",
    )
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--socket", default=_env("SOCKET"), help="Unix socket path (default /run/upload-gate/gate.sock)")
    where.add_argument("--port", type=int, default=_env("PORT"), help="listen on 127.0.0.1:PORT instead of a socket")
    serve.add_argument("--socket-mode", default=_env("SOCKET_MODE", "660"), help="octal mode of the socket file")
    serve.add_argument("--redis-url", default=_env("REDIS_URL"), help="count fleet-wide in Redis")
    serve.add_argument(
        "--leased-budgets",
        action="store_true",
        default=_env("LEASED_BUDGETS", "").lower() in ("1", "true", "yes"),
        help="with --redis-url: decide locally on slices of the fleet-wide limits that Redis grants",
    )
    serve.add_argument(
        "--fallback-limits",
        default=_env("FALLBACK_LIMITS"),
        help="JSON limits until the table is read, e.g. '{\"max_concurrent_uploads\": 4}'",
    )
    serve.add_argument("--lease-timeout-seconds", type=float, default=float(_env("LEASE_TIMEOUT_SECONDS", 900)))
    serve.add_argument("--poll-interval-seconds", type=float, default=float(_env("POLL_INTERVAL_SECONDS", 1)))
    serve.add_argument("--server-id", default=_env("SERVER_ID"), help="this host's id in reports and Redis")
    serve.add_argument("--dashboard-url", default=_env("DASHBOARD_URL"), help="send status reports here")
    serve.add_argument("--token", default=_env("TOKEN"), help="the host's report token (prefer --token-file)")
    serve.add_argument("--token-file", default=_env("TOKEN_FILE"), help="file holding the report token")
    serve.add_argument(
        "--enrolment-secret-file",
        default=_env("ENROLMENT_SECRET_FILE"),
        help="enrol the host with the fleet enrolment secret in this file (or UPLOAD_GATE_ENROLMENT_SECRET) "
        "instead of a token; it deregisters on an orderly stop",
    )
    serve.add_argument(
        "--enrolled-token-file",
        default=_env("ENROLLED_TOKEN_FILE", "/var/lib/upload-gate/token.json"),
        help="where the host keeps the token it enrolled for (one per host)",
    )
    serve.add_argument("--scaling-group", default=_env("SCALING_GROUP", ""), help="the host's scaling group, if any")
    serve.add_argument("--report-interval-seconds", type=float, default=float(_env("REPORT_INTERVAL_SECONDS", 5)))
    serve.add_argument("--idle-timeout-seconds", type=float, default=float(_env("IDLE_TIMEOUT_SECONDS", 120)))
    serve.add_argument("--max-connections", type=int, default=int(_env("MAX_CONNECTIONS", 2048)))
    serve.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))

    check = commands.add_parser("check", help="read the table and print what the gate would enforce")
    check.add_argument("database_url", help="postgresql://... or sqlite:////path")
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    from .check import check

    return check(args.database_url, as_json=args.json)


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as token_file:
            return token_file.read().strip()
    return args.token


def _enrolment_secret(args: argparse.Namespace) -> str | None:
    if args.enrolment_secret_file:
        with open(args.enrolment_secret_file, encoding="utf-8") as secret_file:
            return secret_file.read().strip()
    return os.environ.get("UPLOAD_GATE_ENROLMENT_SECRET") or None


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .gate import UploadGate
    from .server import DEFAULT_SOCKET_PATH, GateService, SidecarServer

    try:
        fallback = json.loads(args.fallback_limits) if args.fallback_limits else None
        socket_mode = int(str(args.socket_mode), 8)
        token = _token(args)
        secret = None if token else _enrolment_secret(args)
    except (ValueError, OSError) as exc:
        print(f"upload-gate serve: {exc}", file=sys.stderr)
        return 2
    if args.leased_budgets and not args.redis_url:
        print("upload-gate serve: --leased-budgets needs --redis-url (the coordinator)", file=sys.stderr)
        return 2
    if args.dashboard_url and not token and not secret:
        print(
            "upload-gate serve: --dashboard-url needs --token-file (or UPLOAD_GATE_TOKEN), or"
            " --enrolment-secret-file (or UPLOAD_GATE_ENROLMENT_SECRET) to enrol the host",
            file=sys.stderr,
        )
        return 2
    gate = UploadGate(
        args.database_url,
        fallback_limits=fallback,
        lease_timeout_seconds=args.lease_timeout_seconds,
        poll_interval_seconds=args.poll_interval_seconds,
        redis_url=args.redis_url,
        leased_budgets=args.leased_budgets,
        server_id=args.server_id,
    )
    reporter = None
    if args.dashboard_url:
        from .reporter import StatusReporter

        enrolment = {}
        if secret:  # the sidecar speaks for the host: it enrols, and deregisters on an orderly stop
            enrolment = {
                "enrolment_secret": secret,
                "token_file": args.enrolled_token_file,
                "scaling_group": args.scaling_group,
            }
        reporter = StatusReporter(
            gate,
            args.dashboard_url,
            args.server_id,
            token,
            interval_seconds=args.report_interval_seconds,
            **enrolment,
        )
    service = GateService(gate, reporter=reporter)
    try:
        server = SidecarServer(
            service,
            socket_path=None if args.port is not None else (args.socket or DEFAULT_SOCKET_PATH),
            port=args.port,
            socket_mode=socket_mode,
            idle_timeout_seconds=args.idle_timeout_seconds,
            max_connections=args.max_connections,
        )
    except OSError as exc:
        print(f"upload-gate serve: cannot listen: {exc}", file=sys.stderr)
        if reporter is not None:
            reporter.stop(final_report=False)
        gate.close()
        return 1
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # What was built to start (modules, the table, the gate) lives as long as the process:
    # kept out of the collector, so a full collection does not walk it on the request path.
    # Collected first, so no start-up garbage is kept for good.
    gc.collect()
    gc.freeze()
    server.start()
    log.info("upload gate sidecar on %s (table version %s, mode %s)", server.address, gate.config_version, gate.mode)
    print(f"listening on {server.address}", flush=True)
    while not stopping.wait(1.0):
        pass
    server.close()
    if reporter is not None:
        reporter.stop(deregister=bool(secret))  # the last figures go out; an enrolled host deregisters
    gate.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
