#!/usr/bin/env python
"""Mixed load over loopback: gunicorn + a django-q2 worker (qcluster) on a fresh database.

Expected load (as bench/ingest.py: a fleet of ~50 upload servers reporting every 5 s; 20 open
dashboards; a few staff edits a minute):
  - reports:   50 upload servers POST /api/v1/reports every 5 s with their own token  -> 10/s
  - polls:     20 overview pages poll what static/js/charts.js polls every 5 s: one
               /api/overview (5 charts, the timeline, the fleet status; range=15m,
               logged-in sessions)                                                  -> 4/s
               (--per-chart: the 7 endpoints one by one instead, as before the
               combined poll                                                        -> 28/s)
  - edits:     ops edits through the real forms (login session, CSRF token, current
               revision read from the partner page): limits change, pause, resume in turn
               on the demo partners, 4 a minute                                     -> 0.07/s
At --scale 10 every rate is ten times that (500 servers, 200 dashboards, 40 edits a minute;
the 200 dashboards are tabs of 20 logged-in sessions).

Every upload server reports once before the measured run (warm-up, unmeasured). The load is
open-loop and bounded: every request has a start time fixed in advance (evenly
spread per source, with a random phase); a bounded thread pool sends them, so a slow server
makes requests late (counted as "late > 1 s") rather than making the load lighter. Latency is
measured from the moment a request is sent to the end of its response body.

    .venv/bin/python bench/load.py                          # SQLite, scale 1 and 10
    DATABASE_URL=postgres://postgres@127.0.0.1:54329/app .venv/bin/python bench/load.py
    .venv/bin/python bench/load.py --scales 10 --seconds 30
    .venv/bin/python bench/load.py --smoke                  # 0.1x for 4 s, 3 edits: seconds

Target: zero errors and p95 <= 200 ms at 10x the expected load. The machine's load average
is printed beside the figures: on a shared machine latencies are inflated.
"""

import argparse
import http.client
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import PYTHON, free_port, fresh_database, manage, postgres_from_environment, start_gunicorn  # noqa: E402
from bench.ingest import report, wait_for  # noqa: E402

EXPECTED_SERVERS = 50
REPORT_INTERVAL_SECONDS = 5
EXPECTED_DASHBOARDS = 20
POLL_INTERVAL_SECONDS = 5  # POLL_MS in static/js/charts.js
EXPECTED_EDITS_PER_MINUTE = 4
POLL_PATH = "/api/overview"
# What the overview polled before /api/overview: each chart, the timeline, the fleet status.
PER_CHART_PATHS = [
    *(f"/api/charts/{name}" for name in ("cpu", "uploads", "bytes", "outcomes", "queues", "timeline")),
    "/api/fleet-status",
]
TARGET_P95_MS = 200
LATE_SECONDS = 1.0
WORKER_NICENESS = 10
KINDS = ("report", "poll", "edit")
DASHBOARD_LOGINS = (("ops", "ops-demo-pass"), ("engineer", "engineer-demo-pass"))
EDITOR_LOGIN = ("ops", "ops-demo-pass")


@dataclass
class Outcome:
    kind: str
    latency_ms: float
    late_seconds: float
    error: str = ""
    start_seconds: float = 0.0  # when it was due, from the start of the run


@dataclass
class Results:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


class Client:
    """One keep-alive connection per pool thread; cookies travel per request (per session)."""

    def __init__(self, port: int):
        self.port = port
        self.local = threading.local()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body, headers or {})
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self.local.connection = None
            raise


class Session:
    """A browser's login session: cookies from Set-Cookie, CSRF token from the forms."""

    def __init__(self, client: Client):
        self.client = client
        self.cookies: dict[str, str] = {}

    def _headers(self, extra: dict | None = None) -> dict:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return {"Cookie": cookie, **(extra or {})} if cookie else dict(extra or {})

    def _remember(self, headers) -> None:
        for name, value in headers:
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key.strip()] = rest.split(";", 1)[0]

    def get(self, path: str, accept: str = "text/html") -> tuple[int, bytes]:
        status, headers, body = self.client.request("GET", path, headers=self._headers({"Accept": accept}))
        self._remember(headers)
        return status, body

    def post_form(self, path: str, fields: dict, referer_path: str) -> tuple[int, bytes]:
        data = urlencode({**fields, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")}).encode()
        headers = self._headers(
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://127.0.0.1:{self.client.port}{referer_path}",
            }
        )
        status, response_headers, body = self.client.request("POST", path, data, headers)
        self._remember(response_headers)
        return status, body

    def login(self, username: str, password: str) -> None:
        self.get("/accounts/login/")
        status, body = self.post_form(
            "/accounts/login/", {"username": username, "password": password}, "/accounts/login/"
        )
        if status != 302 or "sessionid" not in self.cookies:
            raise SystemExit(f"login of {username} failed: {status} {body[:200]!r}")


class Editor:
    """Staff edits through the partner page's forms: limits, pause, resume in turn per partner.
    One edit per partner at a time, as one person works: the stale-edit check stays quiet."""

    def __init__(self, session: Session, slugs: list[str]):
        self.session = session
        self.slugs = slugs
        self.turn = 0
        self.locks = {slug: threading.Lock() for slug in slugs}
        self.steps = {slug: 0 for slug in slugs}
        self.lock = threading.Lock()

    def edit(self) -> str:
        with self.lock:
            slug = self.slugs[self.turn % len(self.slugs)]
            self.turn += 1
        with self.locks[slug]:
            step = self.steps[slug] % 3
            self.steps[slug] += 1
            page = f"/partners/{slug}/"
            status, body = self.session.get(page)
            if status != 200:
                return f"GET {page}: {status}"
            if step == 0:
                return self._change_limits(slug, page, body)
            if step == 1:
                return self._expect_redirect(
                    self.session.post_form(f"{page}pause/", {"pause-reason": "load bench: pause"}, page)
                )
            return self._expect_redirect(
                self.session.post_form(f"{page}resume/", {"resume-reason": "load bench: resume"}, page)
            )

    def _change_limits(self, slug: str, page: str, body: bytes) -> str:
        match = re.search(rb'name="limits-revision" value="(\d+)"', body)
        if not match:
            return "no limits form (revision) on the partner page"
        fields = {
            "limits-revision": match.group(1).decode(),
            "limits-reason": "load bench: limit change",
            "limits-requests_per_minute": str(random.randint(60, 600)),
            "limits-burst": "",
            "limits-max_concurrent_uploads": str(random.randint(5, 50)),
            "limits-max_bytes_in_flight": "20 GB",
            "limits-daily_upload_bytes": "",
        }
        return self._expect_redirect(self.session.post_form(f"{page}limits/", fields, page))

    @staticmethod
    def _expect_redirect(result: tuple[int, bytes]) -> str:
        status, body = result
        return "" if status == 302 else f"{status}: {body[:120]!r}"


def prepare(env: dict, servers: int) -> tuple[dict[str, str], list[str]]:
    """Demo users and partners (seed_demo), and `servers` registered upload servers."""
    manage(["collectstatic", "--noinput", "-v0"], env)  # pages use the manifest storage with DEBUG off
    manage(["seed_demo"], env)
    code = (
        "import json; from django.contrib.auth import get_user_model; from monitoring import servers;"
        "from partners.models import Partner;"
        "ops = get_user_model().objects.get(username='ops');"
        f"tokens = {{f'upload-{{i}}': servers.register_server(ops, f'upload-{{i}}', 'load')[1]"
        f" for i in range({servers})}};"
        "print(json.dumps({'tokens': tokens, 'slugs': sorted(Partner.objects.values_list('slug', flat=True))}))"
    )
    import json

    data = json.loads(manage(["shell", "-c", code], env).strip().splitlines()[-1])
    return data["tokens"], data["slugs"]


def schedule(scale: float, seconds: float, server_count: int, edits_per_minute: float) -> list[tuple[float, str, int]]:
    """(start offset, kind, source index) for every request, sorted by start."""
    events = []
    servers = int(EXPECTED_SERVERS * scale)
    for server in range(servers):
        events += _periodic(REPORT_INTERVAL_SECONDS, seconds, "report", server % server_count)
    for dashboard in range(int(EXPECTED_DASHBOARDS * scale)):
        events += _periodic(POLL_INTERVAL_SECONDS, seconds, "poll", dashboard)
    events += _periodic(60 / edits_per_minute, seconds, "edit", 0, at_least_once=True)
    return sorted(events)


def _periodic(interval: float, seconds: float, kind: str, source: int, at_least_once: bool = False):
    phase = random.uniform(0, min(interval, seconds))
    starts = [
        phase + n * interval for n in range(int((seconds - phase) // interval) + 1) if phase + n * interval < seconds
    ]
    return [(start, kind, source) for start in starts or ([phase] if at_least_once else [])]


def run_load(
    port: int,
    tokens: dict[str, str],
    slugs: list[str],
    scale: float,
    seconds: float,
    edits_per_minute: float,
    pool_threads: int,
    per_chart: bool = False,
) -> tuple[Results, float]:
    client = Client(port)
    # At most 20 logins (each costs a password hash): above that, dashboards are more tabs of
    # the same people, sharing a session as browser tabs do.
    sessions = []
    for index in range(min(int(EXPECTED_DASHBOARDS * scale), EXPECTED_DASHBOARDS)):
        username, password = DASHBOARD_LOGINS[index % len(DASHBOARD_LOGINS)]
        session = Session(client)
        session.login(username, password)
        sessions.append(session)
    dashboards = [sessions[index % len(sessions)] for index in range(int(EXPECTED_DASHBOARDS * scale))]
    editor_session = Session(client)
    editor_session.login(*EDITOR_LOGIN)
    editor = Editor(editor_session, slugs)
    names = sorted(tokens)
    sequences = dict.fromkeys(names, 0)
    sequence_lock = threading.Lock()
    results = Results()

    def send_report(server: int) -> str:
        name = names[server]
        with sequence_lock:
            sequences[name] += 1
            sequence = sequences[name]
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {tokens[name]}"}
        status, _, body = client.request("POST", "/api/v1/reports", report(name, sequence), headers)
        return "" if status < 300 else f"{status}: {body[:120]!r}"

    def poll_dashboard(dashboard: int) -> list[tuple[float, str]]:
        """One refresh of the overview page (per chart: the requests go in turn on one
        connection, each timed on its own)."""
        timings = []
        for path in PER_CHART_PATHS if per_chart else [POLL_PATH]:
            started = time.perf_counter()
            status, body = dashboards[dashboard].get(f"{path}?range=15m", accept="application/json")
            error = "" if status == 200 else f"{status} {path}"
            timings.append(((time.perf_counter() - started) * 1000, error))
        return timings

    def fire(start: float, kind: str, source: int, origin: float) -> None:
        late = time.monotonic() - origin - start
        started = time.perf_counter()
        try:
            if kind == "poll":
                for latency_ms, error in poll_dashboard(source):
                    results.add(Outcome(kind, latency_ms, late, error, start))
                return
            error = send_report(source) if kind == "report" else editor.edit()
        except (OSError, http.client.HTTPException) as exc:
            error = repr(exc)
        results.add(Outcome(kind, (time.perf_counter() - started) * 1000, late, error, start))

    warm_up([lambda server=server: send_report(server) for server in range(len(names))])
    events = schedule(scale, seconds, len(names), edits_per_minute)
    origin = time.monotonic()
    with ThreadPoolExecutor(max_workers=pool_threads) as pool:
        for start, kind, source in events:
            delay = origin + start - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(fire, start, kind, source, origin)
    return results, time.monotonic() - origin


def warm_up(calls: list) -> None:
    """Before the measured run, every upload server reports once, in turn and unmeasured:
    the run then measures a fleet the dashboard already counts, not 10x the servers
    appearing at once (each new server republishes the live count: a one-off queue of
    ~0.5 s at 500)."""
    errors = [error for error in (call() for call in calls) if error]
    if errors:
        raise SystemExit(f"warm-up failed: {errors[:3]}")


def summarize(results: Results, wall_seconds: float) -> dict[str, dict]:
    rows = {}
    for kind in (*KINDS, "overall"):
        picked = [o for o in results.outcomes if kind == "overall" or o.kind == kind]
        latencies = sorted(o.latency_ms for o in picked)
        rows[kind] = {
            "requests": len(picked),
            "per_second": len(picked) / wall_seconds if wall_seconds else 0.0,
            "p50_ms": _percentile(latencies, 50),
            "p95_ms": _percentile(latencies, 95),
            "max_ms": latencies[-1] if latencies else 0.0,
            "errors": sum(1 for o in picked if o.error),
            "late": sum(1 for o in picked if o.late_seconds > LATE_SECONDS),
            "first_errors": [o.error for o in picked if o.error][:3],
        }
    return rows


def _percentile(sorted_values: list[float], percent: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * percent / 100))]


def print_summary(
    database: str,
    scale: float,
    seconds: float,
    edits_per_minute: float,
    rows: dict[str, dict],
    load_before: str,
    load_after: str,
    server_setup: str,
    per_chart: bool = False,
) -> None:
    overall = rows["overall"]
    met = overall["errors"] == 0 and overall["p95_ms"] <= TARGET_P95_MS
    print(f"\nload on {database}, scale {scale:g}x expected for {seconds:g} s ({server_setup})")
    print(
        f"  expected x{scale:g}: {int(EXPECTED_SERVERS * scale)} servers reporting every "
        f"{REPORT_INTERVAL_SECONDS} s, "
        f"{int(EXPECTED_DASHBOARDS * scale)} dashboards polling {len(PER_CHART_PATHS) if per_chart else 1} "
        f"URL{'s' if per_chart else ''} every {POLL_INTERVAL_SECONDS} s, "
        f"{edits_per_minute:g} edits/min"
    )
    print(f"  load average (1, 5, 15 min): before {load_before}, after {load_after}  ({os.cpu_count()} cores)")
    print(
        f"  {'kind':<8} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'errors':>6} "
        f"{'late>1s':>7}"
    )
    for kind, row in rows.items():
        print(
            f"  {kind:<8} {row['requests']:>8} {row['per_second']:>7.1f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
            f"{row['max_ms']:>8.1f} {row['errors']:>6} {row['late']:>7}"
        )
        for error in row["first_errors"]:
            print(f"      e.g. {error}")
    print(f"  target (zero errors, overall p95 <= {TARGET_P95_MS} ms): {'met' if met else 'NOT met'}")


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def start_servers(env: dict, port: int, args) -> list[subprocess.Popen]:
    gunicorn = start_gunicorn(env, port, args.workers, args.worker_threads, args.worker_class)
    # The worker's every-minute jobs (rollups, alert rules, load control) are a burst of
    # CPU at 10x; run below the web's priority, as docs/operations.md says production does,
    # they wait for idle cores instead of holding up requests.
    worker = subprocess.Popen(
        ["nice", "-n", str(WORKER_NICENESS), PYTHON, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return [gunicorn, worker]


def stop_servers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def bench(args, scale: float, tmp: Path) -> dict[str, dict]:
    env = fresh_database(tmp, f"load_{str(scale).replace('.', '_')}", postgres_from_environment())
    tokens, slugs = prepare(env, int(EXPECTED_SERVERS * scale))
    edits_per_minute = args.edits_per_minute or EXPECTED_EDITS_PER_MINUTE * scale
    if args.smoke:
        slugs = slugs[:1]  # its three edits in turn: a limits change, a pause, a resume
    port = free_port()
    processes = start_servers(env, port, args)
    try:
        wait_for(port)
        load_before = load_average()
        results, wall_seconds = run_load(
            port, tokens, slugs, scale, args.seconds, edits_per_minute, args.pool_threads, args.per_chart
        )
        load_after = load_average()
    finally:
        stop_servers(processes)
    rows = summarize(results, wall_seconds)
    setup = (
        f"gunicorn {args.workers} {args.worker_class} workers x {args.worker_threads} threads + qcluster, "
        f"client pool {args.pool_threads} threads"
    )
    print_summary(
        env["DATABASE_URL"].split(":", 1)[0],
        scale,
        args.seconds,
        edits_per_minute,
        rows,
        load_before,
        load_after,
        setup,
        args.per_chart,
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 10], help="multiples of the expected load")
    parser.add_argument("--seconds", type=float, default=30, help="how long each scale runs")
    parser.add_argument("--pool-threads", type=int, default=48, help="client threads (bounds requests in flight)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (one per core)")
    parser.add_argument("--worker-threads", type=int, default=4, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (sync, gthread)")
    parser.add_argument(
        "--per-chart", action="store_true", help="dashboards poll the 7 endpoints one by one instead of /api/overview"
    )
    parser.add_argument("--edits-per-minute", type=float, help=f"default {EXPECTED_EDITS_PER_MINUTE} x the scale")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="0.1x the expected load for 4 s with 3 edits on one partner: seconds, for the test suite",
    )
    args = parser.parse_args()
    if args.smoke:
        # 5 servers, 2 dashboards (an ops and an engineer login: each login costs a password
        # hash); 45 edits a minute so that 4 s hold the three kinds of edit.
        args.scales, args.seconds, args.edits_per_minute = [0.1], 4, 45
    random.seed(10)
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            bench(args, scale, Path(tmp))


if __name__ == "__main__":
    main()
