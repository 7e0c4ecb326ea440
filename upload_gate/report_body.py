"""What a status report says (docs/status-report.md): the body the reporter builds from one
gate snapshot, bounded as the dashboard checks it, so no figure the dashboard would refuse
costs the whole report. A mixin of StatusReporter (it reads the reporter's gate and CPU probe)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

log = logging.getLogger("upload_gate.reporter")

# As the dashboard checks (matched whole: with `$`, an id ending in a newline would pass).
CLIENT_ID_RE = re.compile(r"\*|[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}")
DEFAULTS_CLIENT_ID = "*"
MAX_COUNT = 2**31 - 1
MAX_BYTES = 2**63 - 1
CLIENT_FIGURES = ("uploads_in_progress", "bytes_in_flight", "admitted", "throttled", "timed_out", "completed", "failed")
# As the dashboard checks (docs/status-report.openapi.json, BadRow): more or longer is cut.
MAX_BAD_ROWS = 100
BAD_ROW_FIELD_CHARS = {"client_id": 300, "column": 64, "problem": 300}


class ReportBody:
    def build_report(self, snapshot: dict, sequence: int) -> dict:
        """The report body for one gate snapshot (docs/status-report.md)."""
        clients: dict[str, dict[str, int]] = {}
        for client_id, counts in snapshot.get("clients", {}).items():
            # Clients without a row of their own are reported together as `*`, as are ids
            # the dashboard would refuse (one bad id would otherwise cost the whole report).
            key = client_id if self._has_row(client_id) and CLIENT_ID_RE.fullmatch(client_id) else "*"
            figures = clients.setdefault(key, dict.fromkeys(CLIENT_FIGURES, 0))
            figures["uploads_in_progress"] += counts.get("uploads_in_flight", 0)
            figures["bytes_in_flight"] += counts.get("bytes_in_flight", 0)
            figures["admitted"] += counts.get("admitted", 0)
            # The report has no field for pauses: a 503 (paused) is reported as throttled.
            figures["throttled"] += counts.get("throttled", 0) + counts.get("paused", 0)
            for name in ("timed_out", "completed", "failed"):
                figures[name] += counts.get(name, 0)
            if counts.get("would_have_throttled"):  # optional: only clients with shadow limits
                figures["would_have_throttled"] = (
                    figures.get("would_have_throttled", 0) + counts["would_have_throttled"]
                )
        for figures in clients.values():
            for name, value in figures.items():
                figures[name] = max(0, min(MAX_BYTES if name == "bytes_in_flight" else MAX_COUNT, value))
        try:
            cpu = float(self._cpu())
        except Exception:  # a broken CPU probe must not cost the report
            log.exception("cpu_percent() failed; reporting 0")
            cpu = 0.0
        cpu = round(max(0.0, min(100.0, cpu)), 1) if cpu == cpu else 0.0  # NaN -> 0
        return {
            "server_id": self.server_id,
            "boot_id": self.boot_id,
            "sequence": sequence,
            "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "interval_seconds": max(1, min(3600, round(self.interval_seconds))),
            "cpu_percent": cpu,
            # null while the gate runs on its fallback limits: no table version applied yet.
            "config_version": snapshot.get("config_version") or 0,
            "clients": clients,
            # Rows of upload_limits this gate skipped because they cannot be parsed ([] when none,
            # so the servers page clears them once fixed).
            "bad_rows": [
                {name: str(bad.get(name, ""))[:chars] for name, chars in BAD_ROW_FIELD_CHARS.items()}
                for bad in snapshot.get("bad_rows", [])[:MAX_BAD_ROWS]
            ],
        }

    def _has_row(self, client_id: str) -> bool:
        try:
            return bool(self.gate.client_config(client_id).get("has_row", True))
        except Exception:
            return True
