"""A deliberately naive model of the upload gate, written from docs/upload-gate.md alone.

It shares no code with `upload_gate` (lists instead of dicts, everything recomputed on
every call) so that agreeing with it means something: it produces the expected values
of docs/gate-test-vectors.json and is the oracle of the differential property test.
All times are integer microseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime

US = 1_000_000
DAY_US = 86_400 * US
REDUCED = {
    "max_concurrent_uploads": ("too many uploads in progress for the fleet's reduced capacity", "inflight"),
    "max_bytes_in_flight": ("too many bytes of uploads in progress for the fleet's reduced capacity", "inflight-bytes"),
}
RULE_ORDER = ["requests_per_minute", "max_concurrent_uploads", "max_bytes_in_flight", "daily_upload_bytes"]


def iso_to_us(text: str | None) -> int | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    delta = moment - epoch
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def sf(value: int) -> int:
    """Structured Fields integers have at most 15 digits."""
    return min(value, 10**15 - 1)


LIMIT_COLUMNS = ["requests_per_minute", "burst", "max_concurrent_uploads", "max_bytes_in_flight", "daily_upload_bytes"]
BIGINT = {"max_bytes_in_flight", "daily_upload_bytes"}


def bad_column(row: dict) -> str | None:
    """The first column of a row that cannot be parsed (docs/shared-config-table.md, "Bad data")."""

    def whole(value, top):
        return type(value) is int and 0 <= value <= top

    client_id = row.get("client_id")
    if type(client_id) is not str or not 1 <= len(client_id) <= 255:
        return "client_id"
    if not whole(row.get("version") or 0, 10**15 - 1):
        return "version"
    live = row.get("live_server_count")
    if live is not None and not whole(live, 2**31 - 1):
        return "live_server_count"
    for name in LIMIT_COLUMNS:
        for column in (name, f"shadow_{name}"):
            value = row.get(column)
            if value is not None and not whole(value, 2**63 - 1 if name in BIGINT else 2**31 - 1):
                return column
    for column in ("paused", "all_partners_paused"):
        if row.get(column) not in (None, True, False):  # JSON has no 0/1 booleans
            return column
    for column in ("pause_reason", "all_partners_pause_reason"):
        if row.get(column) is not None and type(row.get(column)) is not str:
            return column
    for column in ("resume_at", "updated_at", "all_partners_resume_at"):
        if row.get(column) is not None:
            try:
                iso_to_us(row[column])
            except (TypeError, ValueError, AttributeError):
                return column
    if row.get("priority") not in (None, "interactive", "bulk"):
        return "priority"
    reduced = row.get("reduced_limits")
    if reduced is not None:
        if type(reduced) is not str:
            return "reduced_limits"
        if any(name.strip() not in LIMIT_COLUMNS for name in reduced.split(",") if name.strip()):
            return "reduced_limits"
    return None


SHADOW_LIMITS = ("requests_per_minute", "burst", "max_concurrent_uploads", "max_bytes_in_flight", "daily_upload_bytes")


def has_shadow(row: dict) -> bool:
    return any(row.get(f"shadow_{name}") is not None for name in SHADOW_LIMITS)


def enforcing_shadow(row: dict) -> dict:
    """The row with each non-null shadow value in place of its enforced value."""
    values = {name: row[f"shadow_{name}"] for name in SHADOW_LIMITS if row.get(f"shadow_{name}") is not None}
    return {**row, **values}


class ReferenceGate:
    """The gate, naively. Shadow limits: a second ReferenceGate that enforces the shadow
    values on the same requests; what it throttles is what the real gate counts as
    would_have_throttled (only for clients whose row has shadow values)."""

    def __init__(
        self,
        rows: list[dict],
        *,
        lease_timeout_seconds: int = 900,
        busy_retry_after_seconds: int = 5,
        paused_retry_after_seconds: int = 60,
        fallback_limits: dict | None = None,
        is_shadow: bool = False,
    ) -> None:
        self.fallback = {"client_id": "*", **(fallback_limits or {})}
        self.lease_timeout_us = lease_timeout_seconds * US
        self.busy_wait_us = busy_retry_after_seconds * US
        self.paused_retry_after_seconds = paused_retry_after_seconds
        self.clients: dict[str, dict] = {}
        self.leases: dict[str, dict] = {}
        self.shadow = (
            None
            if is_shadow
            else ReferenceGate(
                [],
                lease_timeout_seconds=lease_timeout_seconds,
                busy_retry_after_seconds=busy_retry_after_seconds,
                paused_retry_after_seconds=paused_retry_after_seconds,
                is_shadow=True,
            )
        )
        self.set_rows(rows)

    def set_rows(self, rows: list[dict]) -> None:
        good = [row for row in rows if bad_column(row) is None]
        self.bad_rows = [{"client_id": row.get("client_id"), "column": bad_column(row)} for row in rows]
        self.bad_rows = [bad for bad in self.bad_rows if bad["column"] is not None]
        previous = getattr(self, "rows", {})
        new_rows = {row["client_id"]: row for row in good}
        if "*" not in new_rows and not any(bad["client_id"] == "*" for bad in self.bad_rows):
            self.bad_rows.append({"client_id": "*", "column": "client_id"})
        # A skipped row (or a missing `*` row) keeps the client's row from the previous table.
        for bad in self.bad_rows:
            if bad["client_id"] in previous and bad["client_id"] not in new_rows:
                new_rows[bad["client_id"]] = previous[bad["client_id"]]
        if self.shadow is not None:
            self.shadow.fallback = self.fallback
            self.shadow.set_rows([enforcing_shadow(row) for row in new_rows.values()])
        self.rows = new_rows
        star = self.rows.get("*", {})
        self.servers = max(1, star.get("live_server_count") or 1)

    # -- limits -----------------------------------------------------------------------
    def _row(self, client: str) -> tuple[dict, bool]:
        if client in self.rows and client != "*":
            return self.rows[client], True
        return self.rows.get("*", self.fallback), False

    def _share(self, value):
        if value is None:
            return None
        if value <= 0:
            return 0
        return ceil_div(value, self.servers)

    def limits(self, client: str) -> dict:
        row, _ = self._row(client)
        rpm = row.get("requests_per_minute")
        burst = None if rpm is None else max(1, row.get("burst") or 1)
        return {
            "rpm": self._share(rpm),
            "burst": self._share(burst),
            "concurrent": self._share(row.get("max_concurrent_uploads")),
            "bytes": self._share(row.get("max_bytes_in_flight")),
            "daily": self._share(row.get("daily_upload_bytes")),
        }

    # -- state --------------------------------------------------------------------------
    def _client(self, client: str) -> dict:
        return self.clients.setdefault(
            client,
            {
                "tat": 0,
                "day": None,
                "day_bytes": 0,
                "counts": dict(admitted=0, throttled=0, paused=0, completed=0, failed=0, timed_out=0),
            },
        )

    def _live_leases(self, client: str) -> list[dict]:
        return [lease for lease in self.leases.values() if lease["client"] == client and lease["live"]]

    def _expire(self, client: str, now: int) -> None:
        for lease in self._live_leases(client):
            if lease["deadline"] <= now:
                lease["live"] = False
                self._client(client)["counts"]["timed_out"] += 1

    # -- pause --------------------------------------------------------------------------
    def _pause(self, client: str, wall: int):
        row, has_row = self._row(client)
        star = self.rows.get("*", {})
        own_resume = iso_to_us(row.get("resume_at"))
        own = bool(row.get("paused")) and (own_resume is None or wall < own_resume)
        every_resume = iso_to_us(star.get("all_partners_resume_at"))
        every = has_row and bool(star.get("all_partners_paused")) and (every_resume is None or wall < every_resume)
        if not (own or every):
            return None
        resumes = ([own_resume] if own else []) + ([every_resume] if every else [])
        if None in resumes:
            retry = self.paused_retry_after_seconds
        else:
            retry = max(1, ceil_div(max(resumes) - wall, US))
        if own:
            return "paused", row.get("pause_reason") or "paused", retry
        return "all_partners_paused", star.get("all_partners_pause_reason") or "all partners paused", retry

    # -- admit / release ------------------------------------------------------------
    def admit(self, client: str, size: int, now: int, wall: int, lease_name: str | None) -> dict:
        state = self._client(client)
        self._expire(client, now)
        pause = self._pause(client, wall)
        if pause:
            state["counts"]["paused"] += 1
            limit, reason, retry = pause
            return {
                "admitted": False,
                "status": 503,
                "limit": limit,
                "reason": reason,
                "retry_after_seconds": retry,
                "headers": {"Retry-After": str(retry)},
            }
        if self.shadow is not None and has_shadow(self._row(client)[0]):
            lease_in_shadow = f"shadow:{lease_name or len(self.leases)}"
            if not self.shadow.admit(client, size, now, wall, lease_in_shadow)["admitted"]:
                state["counts"]["would_have_throttled"] = state["counts"].get("would_have_throttled", 0) + 1
        lim = self.limits(client)
        if state["day"] != wall // DAY_US:
            state["day"], state["day_bytes"] = wall // DAY_US, 0
        live = self._live_leases(client)
        uploads, in_flight = len(live), sum(lease["size"] for lease in live)
        interval = tolerance = None
        if lim["rpm"] is not None and lim["rpm"] > 0:
            interval = ceil_div(60 * US, lim["rpm"])
            tolerance = (lim["burst"] - 1) * interval
        gap = max(state["tat"], now) - now
        waits = {}
        if lim["rpm"] == 0:
            waits["requests_per_minute"] = 60 * US
        elif interval is not None and gap > tolerance:
            waits["requests_per_minute"] = gap - tolerance
        if lim["concurrent"] is not None and uploads + 1 > lim["concurrent"]:
            waits["max_concurrent_uploads"] = self.busy_wait_us
        if lim["bytes"] is not None and in_flight + size > lim["bytes"]:
            waits["max_bytes_in_flight"] = self.busy_wait_us
        if lim["daily"] is not None and state["day_bytes"] + size > lim["daily"]:
            waits["daily_upload_bytes"] = DAY_US - wall % DAY_US
        if waits:
            longest = max(waits.values())
            limit = next(name for name in RULE_ORDER if waits.get(name) == longest)
            retry = max(1, ceil_div(longest, US))
            state["counts"]["throttled"] += 1
            headers = self._headers(lim, gap, uploads, in_flight, state["day_bytes"], wall, interval, tolerance)
            headers["Retry-After"] = str(retry)
            row, _ = self._row(client)
            lowered = [name.strip() for name in (row.get("reduced_limits") or "").split(",")]
            if limit in lowered and limit in REDUCED:
                # A limit lowered for load (docs/upload-gate.md): 503 "temporary reduced capacity".
                return {
                    "admitted": False,
                    "status": 503,
                    "limit": limit,
                    "reason": REDUCED[limit][0],
                    "retry_after_seconds": retry,
                    "headers": headers,
                    "problem": {
                        "type": "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity",
                        "title": "Temporary Reduced Capacity",
                        "violated-policies": [REDUCED[limit][1]],
                    },
                }
            return {
                "admitted": False,
                "status": 429,
                "limit": limit,
                "retry_after_seconds": retry,
                "headers": headers,
            }
        if interval is not None:
            state["tat"] = max(state["tat"], now) + interval
            gap = state["tat"] - now
        if lim["daily"] is not None:
            state["day_bytes"] += size
        self.leases[lease_name or f"#{len(self.leases)}"] = {
            "client": client,
            "size": size,
            "deadline": now + self.lease_timeout_us,
            "live": True,
        }
        state["counts"]["admitted"] += 1
        headers = self._headers(lim, gap, uploads + 1, in_flight + size, state["day_bytes"], wall, interval, tolerance)
        return {
            "admitted": True,
            "status": 200,
            "limit": None,
            "retry_after_seconds": None,
            "headers": headers,
        }

    def release(self, lease_name: str, outcome: str, now: int) -> bool:
        lease = self.leases[lease_name]
        if self.shadow is not None and f"shadow:{lease_name}" in self.shadow.leases:
            self.shadow.release(f"shadow:{lease_name}", outcome, now)
        if not lease["live"]:
            return False
        counts = self._client(lease["client"])["counts"]
        lease["live"] = False
        if lease["deadline"] <= now:
            counts["timed_out"] += 1
            self._expire(lease["client"], now)
            return False
        counts[outcome] += 1
        return True

    def counters(self, now: int) -> dict:
        report = {}
        for client, state in self.clients.items():
            self._expire(client, now)
            live = self._live_leases(client)
            entry = dict(state["counts"], uploads_in_flight=len(live), bytes_in_flight=sum(x["size"] for x in live))
            state["counts"] = {name: 0 for name in state["counts"] if name != "would_have_throttled"}
            if any(entry.values()):
                report[client] = entry
        return report

    # -- headers ----------------------------------------------------------------------
    @staticmethod
    def _headers(lim, gap, uploads, in_flight, day_bytes, wall, interval, tolerance) -> dict:
        policy, current = [], []
        if lim["rpm"] is not None:
            if lim["rpm"] == 0:
                remaining, reset = 0, 60
            elif gap > tolerance:
                remaining, reset = 0, ceil_div(gap - tolerance, US)  # when the next one conforms
            else:
                remaining = min(lim["rpm"], (tolerance - gap) // interval + 1)
                reset = ceil_div(gap, US)
            policy.append(f'"rpm";q={lim["rpm"]};w=60')
            current.append(f'"rpm";r={remaining};t={reset}')
        if lim["concurrent"] is not None:
            policy.append(f'"inflight";q={lim["concurrent"]};qu="concurrent-requests"')
            current.append(f'"inflight";r={max(0, lim["concurrent"] - uploads)}')
        if lim["bytes"] is not None:
            policy.append(f'"inflight-bytes";q={sf(lim["bytes"])};qu="content-bytes"')
            current.append(f'"inflight-bytes";r={sf(max(0, lim["bytes"] - in_flight))}')
        if lim["daily"] is not None:
            policy.append(f'"daily-bytes";q={sf(lim["daily"])};qu="content-bytes";w=86400')
            current.append(
                f'"daily-bytes";r={sf(max(0, lim["daily"] - day_bytes))};t={ceil_div(DAY_US - wall % DAY_US, US)}'
            )
        if not policy:
            return {}
        return {"RateLimit-Policy": ", ".join(policy), "RateLimit": ", ".join(current)}
