"""A fleet of simulated upload servers, each with the real upload gate, in simulated time.

Time advances in fixed steps. Each step: new direct users arrive; every client with a part
ready asks a server (the least busy one that has warmed up) and that server's gate admits or
rejects it; each server shares its cores among its uploads in progress (processor sharing,
max-min fair: no upload gets more than its own bandwidth's worth); an upload that has not
finished within the web tier's timeout fails and is tried again. Deterministic for a seed.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fleet_sim.model import USER_FILE_MIX, FileKind, LoadModel, PartnerBacklog, Scenario
from upload_gate import ManualClock, StaticSource, UploadGate
from upload_gate.pacing import PacerCore, PacerSettings

# CPU seconds left below which an upload counts as done (float rounding).
CPU_DONE = 1e-9


@dataclass
class Part:
    size_bytes: int
    is_last: bool


@dataclass
class Slot:
    """One file a client uploads part after part; clients run several slots at once."""

    parts: deque
    ready_at: float = 0.0
    in_flight: bool = False
    failures: int = 0


@dataclass
class Client:
    client_id: str
    kind: str  # "user" or "partner"
    bandwidth_bytes_per_second: float
    files: deque  # sizes of files not started yet
    concurrency: int
    arrived_at: float
    slots: list = field(default_factory=list)
    retry_not_before: float = 0.0  # after a rejection, the client waits Retry-After
    # An SDK running the pacer (upload_gate/pacing.py): it holds the files (one Slot each) and
    # decides when each part is sent; files, concurrency and retry_not_before are then unused.
    pacer: PacerCore | None = None

    def done(self) -> bool:
        if self.pacer is not None:
            return self.pacer.finished
        return not self.files and not any(slot.parts for slot in self.slots)


@dataclass
class Upload:
    client: Client
    slot: Slot
    part: Part
    cpu_left: float
    cores_wanted: float
    started_at: float
    lease: object
    pacer_entry: object = None  # the pacer's entry for this file, when the client runs the pacer


@dataclass
class Server:
    name: str
    gate: UploadGate
    ready_at: float
    uploads: list = field(default_factory=list)
    draining: bool = False
    busy_cores: float = 0.0
    cores: int = 8
    only_for: str | None = None  # "user" or "partner": a box dedicated to one kind of client


@dataclass
class Totals:
    """What happened, per kind of client."""

    started: dict = field(default_factory=lambda: {"user": 0, "partner": 0})
    completed: dict = field(default_factory=lambda: {"user": 0, "partner": 0})
    timed_out: dict = field(default_factory=lambda: {"user": 0, "partner": 0})
    throttled: dict = field(default_factory=lambda: {"user": 0, "partner": 0})
    bytes_completed: dict = field(default_factory=lambda: {"user": 0, "partner": 0})
    files_completed: dict = field(default_factory=lambda: {"user": 0, "partner": 0})
    files_abandoned: dict = field(default_factory=lambda: {"user": 0, "partner": 0})
    cpu_samples: list = field(default_factory=list)  # fleet CPU % per step
    capacity_cores: list = field(default_factory=list)  # ready cores per step
    server_seconds: float = 0.0  # what the fleet costs
    backlog_done_at: float | None = None
    # While the partner's backlog is pending: CPU spent on uploads that completed, and the
    # fleet's ready CPU (core-seconds), for throughput as a share of capacity.
    useful_core_seconds_pending: float = 0.0
    capacity_core_seconds_pending: float = 0.0


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        model: LoadModel | None = None,
        *,
        servers: int = 1,
        limit_rows: list[dict] | None = None,
        seed: int = 1,
        partner_concurrency: int | None = None,
        scaler=None,
        server_cores: list[int] | None = None,
        gate_factory=None,
        partner_pacer: PacerSettings | None = None,
    ):
        self.scenario = scenario
        # The bench gives every server a gate on a simulated clock; the live fleet gives each a
        # gate that reads the dashboard's database on the real clock.
        self.gate_factory = gate_factory or self._simulated_gate
        self.model = model or LoadModel()
        self.rng = random.Random(seed)
        self.clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
        self.source = StaticSource(limit_rows or [])
        self.now = 0.0
        self.clients: list[Client] = []
        self.servers: list[Server] = []
        self.totals = Totals()
        self.scaler = scaler
        self._user_ids = 0
        self._servers_added = 0
        self._server_cores = server_cores
        for index in range(servers):
            self.add_server(warm=True, cores=(server_cores or [None] * servers)[index])
        self._add_backlog(partner_concurrency, partner_pacer)
        self._add_big_user()

    # Fleet

    def _simulated_gate(self, name: str) -> UploadGate:
        # A scenario without limit rows models servers without limits: say so, since a gate's
        # default for a table without a `*` row is its (limiting) fallback.
        return UploadGate(
            source=self.source,
            clock=self.clock,
            start=False,
            jitter_fraction=0.0,
            server_id=name,
            fallback_limits={},
        )

    def add_server(self, warm: bool = False, cores: int | None = None) -> Server:
        name = f"sim-{self._servers_added}"
        self._servers_added += 1
        server = Server(
            name, self.gate_factory(name), ready_at=self.now if warm else self.now + self.model.server_warmup_seconds
        )
        server.cores = cores or self.model.server_cores
        self.servers.append(server)
        return server

    def remove_server(self) -> None:
        """Stop sending uploads to the newest server; it leaves once its uploads end."""
        for server in reversed(self.servers):
            if not server.draining:
                server.draining = True
                return

    def live_servers(self) -> list[Server]:
        return [s for s in self.servers if s.ready_at <= self.now and not s.draining]

    def set_limit_rows(self, rows: list[dict]) -> None:
        self.source.set_rows(rows)
        for server in self.servers:
            server.gate.refresh_now()

    # Clients

    def start_backlog(self, backlog: PartnerBacklog) -> None:
        """A partner starts pushing a backlog now (the live fleet does this now and then)."""
        sizes = deque(self._size(backlog.kind) for _ in range(backlog.files))
        self.clients.append(
            Client(
                backlog.client_id,
                "partner",
                self.model.partner_bandwidth_bytes_per_second,
                sizes,
                backlog.concurrency or backlog.files,
                self.now,
            )
        )

    def _add_backlog(self, concurrency: int | None, pacer: PacerSettings | None = None) -> None:
        backlog = self.scenario.backlog
        if backlog is None:
            return
        sizes = deque(self._backlog_size(backlog) for _ in range(backlog.files))
        parallel = concurrency or backlog.concurrency or backlog.files
        client = Client(
            backlog.client_id,
            "partner",
            self.model.partner_bandwidth_bytes_per_second,
            sizes,
            parallel,
            backlog.starts_at_seconds,
        )
        if pacer is not None:
            # The pacer's jitter draws from the simulation's generator: still one seed.
            client.pacer = PacerCore((Slot(self._parts(size)) for size in sizes), pacer, random=self.rng.random)
            client.files = deque()
        self.clients.append(client)

    def _add_big_user(self) -> None:
        big = self.scenario.big_user
        if big is None:
            return
        kinds = [USER_FILE_MIX[2]] * big.videos + [USER_FILE_MIX[0]] * big.photos
        video = FileKind("large video", 1, 1_000_000_000, 4_000_000_000)
        sizes = deque(self._size(video if kind.name == "video" else kind) for kind in kinds)
        self.clients.append(
            Client(
                big.client_id,
                "user",
                self.model.user_bandwidth_bytes_per_second,
                sizes,
                len(sizes),
                big.starts_at_seconds,
            )
        )

    def _arrivals(self) -> None:
        expected = self.scenario.user_uploads_per_minute / 60 * self.model.step_seconds
        for _ in range(self._poisson(expected)):
            self._user_ids += 1
            kind = self.rng.choices(USER_FILE_MIX, weights=[k.weight for k in USER_FILE_MIX])[0]
            self.clients.append(
                Client(
                    f"user-{self._user_ids}",
                    "user",
                    self.model.user_bandwidth_bytes_per_second,
                    deque([self._size(kind)]),
                    1,
                    self.now,
                )
            )

    def _poisson(self, expected: float) -> int:
        # Knuth's method: exact and cheap for the small means of one step.
        limit, count, product = pow(2.718281828459045, -expected), 0, self.rng.random()
        while product > limit:
            count += 1
            product *= self.rng.random()
        return count

    def _backlog_size(self, backlog: PartnerBacklog) -> int:
        if not backlog.mix:
            return self._size(backlog.kind)
        return self._size(self.rng.choices(backlog.mix, weights=[k.weight for k in backlog.mix])[0])

    def _size(self, kind: FileKind) -> int:
        return int(self.rng.uniform(kind.min_bytes, kind.max_bytes))

    def _parts(self, size_bytes: int) -> deque:
        part = self.model.part_bytes
        sizes = [part] * (size_bytes // part) + ([size_bytes % part] if size_bytes % part else [])
        return deque(Part(s, i == len(sizes) - 1) for i, s in enumerate(sizes))

    # The step

    def run(self, until_seconds: float | None = None) -> Totals:
        end = until_seconds if until_seconds is not None else self.scenario.duration_seconds
        while self.now < end:
            self.step()
            if self._backlog_finished() and until_seconds is None and self.now >= self.scenario.duration_seconds:
                break
        return self.totals

    def step(self) -> None:
        dt = self.model.step_seconds
        self._arrivals()
        self._start_parts()
        self._progress(dt)
        if self.scaler is not None:
            self.scaler.step(self)
        self._retire_drained_servers()
        self.now += dt
        self.clock.advance(dt)
        self._note_backlog_done()

    def _start_parts(self) -> None:
        live = self.live_servers()
        if not live:
            return
        for client in self.clients:
            if client.arrived_at > self.now or client.retry_not_before > self.now:
                continue
            servers = [s for s in live if s.only_for in (None, client.kind)]
            if servers and client.pacer is not None:
                self._start_paced(client, servers)
                continue
            self._open_slots(client)
            if not servers:
                continue
            for slot in client.slots:
                if slot.in_flight or not slot.parts or slot.ready_at > self.now:
                    continue
                if not self._start(client, slot, min(servers, key=lambda s: len(s.uploads))):
                    break
        self.clients = [c for c in self.clients if not c.done()]

    def _open_slots(self, client: Client) -> None:
        client.slots = [slot for slot in client.slots if slot.parts or slot.in_flight]
        while client.files and len(client.slots) < client.concurrency:
            client.slots.append(Slot(self._parts(client.files.popleft()), ready_at=self.now))

    def _start_paced(self, client: Client, servers: list[Server]) -> None:
        """The pacer decides which file sends its next part now; the gate's answer (with
        its headers, as an upload server would send them) goes back to the pacer."""
        pacer = client.pacer
        while (entry := pacer.next_start(self.now)) is not None:
            slot = entry.item
            server = min(servers, key=lambda s: len(s.uploads))
            decision = server.gate.admit(client.client_id, slot.parts[0].size_bytes)
            if not decision.admitted:
                self.totals.throttled[client.kind] += 1
                pacer.rejected(entry, self.now, decision.status, decision.headers())
                continue
            pacer.admitted(entry, self.now, decision.headers())
            self._run_upload(client, slot, server, decision.lease, entry)

    def _run_upload(self, client: Client, slot: Slot, server: Server, lease, pacer_entry=None) -> None:
        part = slot.parts[0]
        server.uploads.append(
            Upload(
                client,
                slot,
                part,
                self.model.cpu_seconds(part.size_bytes),
                self.model.cores_wanted(client.bandwidth_bytes_per_second),
                self.now,
                lease,
                pacer_entry,
            )
        )
        slot.in_flight = True
        self.totals.started[client.kind] += 1

    def _start(self, client: Client, slot: Slot, server: Server) -> bool:
        part = slot.parts[0]
        decision = server.gate.admit(client.client_id, part.size_bytes)
        if not decision.admitted:
            self.totals.throttled[client.kind] += 1
            client.retry_not_before = self.now + max(1, decision.retry_after_seconds)
            return False
        self._run_upload(client, slot, server, decision.lease)
        return True

    def _progress(self, dt: float) -> None:
        ready_cores = 0
        busy = 0.0
        for server in self.servers:
            if server.ready_at <= self.now:
                ready_cores += server.cores
            self.totals.server_seconds += dt
            server.busy_cores = self._share_cores(server, dt)
            busy += server.busy_cores
            still_running = []
            for upload in server.uploads:
                if upload.cpu_left <= CPU_DONE:
                    self._finish(server, upload)
                elif self.now + dt - upload.started_at >= self.model.request_timeout_seconds:
                    self._time_out(server, upload)
                else:
                    still_running.append(upload)
            server.uploads = still_running
        self.totals.cpu_samples.append(100.0 * busy / ready_cores if ready_cores else 0.0)
        self.totals.capacity_cores.append(ready_cores)
        if self._backlog_pending():
            self.totals.capacity_core_seconds_pending += ready_cores * dt

    @staticmethod
    def _share_cores(server: Server, dt: float) -> float:
        """Run the server's uploads for dt seconds; returns its mean busy cores.

        Processor sharing is exact within the step: when an upload finishes part-way, the
        cores it held go to the others for the rest of the step, as a real server's
        scheduler gives them at once (a 1 s step that kept them idle lost ~5 % of a
        saturated fleet's capacity).
        """
        left, core_seconds = dt, 0.0
        running = [u for u in server.uploads if u.cpu_left > CPU_DONE]
        if sum(u.cores_wanted for u in running) <= server.cores:
            # Room for all: each runs at what it wants, and a finish frees nothing another
            # could use.
            for upload in running:
                spent = min(upload.cpu_left, upload.cores_wanted * dt)
                upload.cpu_left -= spent
                core_seconds += spent
            return core_seconds / dt
        while left > 0 and running:
            shares = max_min_shares([u.cores_wanted for u in running], server.cores)
            until_first_done = min(u.cpu_left / cores for u, cores in zip(running, shares) if cores > 0)
            span = min(left, until_first_done)
            for upload, cores in zip(running, shares):
                upload.cpu_left -= cores * span
            core_seconds += sum(shares) * span
            left -= span
            running = [u for u in running if u.cpu_left > CPU_DONE]
        return core_seconds / dt

    def _finish(self, server: Server, upload: Upload) -> None:
        server.gate.release(upload.lease, "completed")
        upload.slot.parts.popleft()
        upload.slot.in_flight = False
        kind = upload.client.kind
        self.totals.completed[kind] += 1
        self.totals.bytes_completed[kind] += upload.part.size_bytes
        if self._backlog_pending():
            self.totals.useful_core_seconds_pending += self.model.cpu_seconds(upload.part.size_bytes)
        if upload.part.is_last:
            self.totals.files_completed[kind] += 1
        if upload.pacer_entry is not None:
            upload.client.pacer.succeeded(upload.pacer_entry, self.now, more=bool(upload.slot.parts))

    def _time_out(self, server: Server, upload: Upload) -> None:
        server.gate.release(upload.lease, "timed_out")
        slot, kind = upload.slot, upload.client.kind
        slot.in_flight = False
        slot.ready_at = self.now + self.model.timeout_retry_seconds
        slot.failures += 1
        self.totals.timed_out[kind] += 1
        if upload.pacer_entry is not None:
            # The pacer retries with jittered backoff and gives up after max_attempts in a row.
            if not upload.client.pacer.transient_error(upload.pacer_entry, self.now, "timed out"):
                slot.parts.clear()
                self.totals.files_abandoned[kind] += 1
            return
        attempts = self.model.user_attempts_per_part if kind == "user" else self.model.partner_attempts_per_part
        if slot.failures >= attempts:
            slot.parts.clear()  # the client gives up this file
            self.totals.files_abandoned[kind] += 1

    def _retire_drained_servers(self) -> None:
        retired = [s for s in self.servers if s.draining and not s.uploads]
        self.servers = [s for s in self.servers if s not in retired]
        for server in retired:
            self.on_server_retired(server)

    def on_server_retired(self, server: Server) -> None:
        """A hook for the live fleet, which stops the server's reporter."""

    def _backlog_pending(self) -> bool:
        backlog = self.scenario.backlog
        return backlog is not None and self.now >= backlog.starts_at_seconds and self.totals.backlog_done_at is None

    def _backlog_finished(self) -> bool:
        return not any(c.kind == "partner" for c in self.clients)

    def _note_backlog_done(self) -> None:
        if self.scenario.backlog and self.totals.backlog_done_at is None and self._backlog_finished():
            self.totals.backlog_done_at = self.now

    def fleet_cpu_percent(self) -> float:
        ready = [s for s in self.servers if s.ready_at <= self.now]
        cores = sum(s.cores for s in ready)
        return 100.0 * sum(s.busy_cores for s in ready) / cores if cores else 0.0


def max_min_shares(wanted: list[float], cores: float) -> list[float]:
    """Processor sharing: each upload gets an equal share of the cores, never more than it
    wants; what the modest ones leave is shared by the rest (max-min fairness)."""
    if sum(wanted) <= cores:
        return list(wanted)
    # Uploads want one of a few amounts (one per kind of client): share per amount.
    counts = Counter(wanted)
    left, remaining = float(cores), len(wanted)
    given = {}
    for amount in sorted(counts):
        share = min(amount, left / remaining)
        given[amount] = share
        left -= share * counts[amount]
        remaining -= counts[amount]
    return [given[amount] for amount in wanted]
