"""`upload-gate check DATABASE_URL`: what a gate would enforce, read from the real table.

It reads the table once, the way a gate does, and prints per client the fleet-wide limits,
this server's share and any pause, then every row the gate could not use. Exit status: 0
when the table was read and every row is usable, 1 when some row is bad, 2 when the table
could not be read at all.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from .gate import UploadGate
from .sources import SourceUnavailable, source_from_url
from .table import DEFAULTS_CLIENT_ID, SELECT_ROWS_SQL, TableSnapshot, row_from_tuple


def bad_rows_of(snapshot: Any) -> list[dict]:
    """The rows the table module reported as skipped, each as {client_id, column, problem}."""
    rows = []
    for bad in getattr(snapshot, "bad_rows", None) or ():
        if hasattr(bad, "as_dict"):
            rows.append(dict(bad.as_dict()))
        else:
            rows.append({name: getattr(bad, name, None) for name in ("client_id", "column", "problem")})
    return rows


def _rows_one_by_one(source: Any) -> tuple[Any, list[dict]]:
    """When the table module refuses the whole table, parse it row by row to name the rows
    that fail (the gate itself would keep its last good copy)."""
    rows, bad = [], []
    for values in source._query(SELECT_ROWS_SQL):
        try:
            rows.append(row_from_tuple(values))
        except (ValueError, TypeError) as exc:
            bad.append({"client_id": str(values[0]), "column": None, "problem": str(exc)})
    return TableSnapshot.from_rows(rows), bad


def table_report(database_url: str) -> dict:
    source = source_from_url(database_url)
    try:
        try:
            snapshot = source.read_snapshot()
            bad_rows = bad_rows_of(snapshot)
        except (ValueError, TypeError):
            snapshot, bad_rows = _rows_one_by_one(source)
    finally:
        source.close()
    gate = UploadGate(source=_Fixed(snapshot), start=False)
    try:
        clients = {client_id: gate.client_config(client_id) for client_id in sorted(snapshot.rows)}
        if DEFAULTS_CLIENT_ID not in clients:
            clients[DEFAULTS_CLIENT_ID] = gate.client_config("\x00no-row\x00") | {"client_id": DEFAULTS_CLIENT_ID}
    finally:
        gate.close()
    return {
        "database": _redacted(database_url),
        "config_version": snapshot.version,
        "live_server_count": snapshot.live_server_count,
        "has_defaults_row": DEFAULTS_CLIENT_ID in snapshot.rows,
        "clients": clients,
        "bad_rows": bad_rows,
    }


class _Fixed:
    """A source that hands the gate the snapshot already read (one read, one truth)."""

    supports_notify = False

    def __init__(self, snapshot: Any) -> None:
        self._snapshot = snapshot

    def max_version(self) -> int:
        return self._snapshot.version

    def read_snapshot(self) -> Any:
        return self._snapshot

    def close(self) -> None:
        pass


def _redacted(database_url: str) -> str:
    """The URL without its password, for printing."""
    scheme, sep, rest = database_url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return database_url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def _limits_text(limits: dict) -> str:
    parts = [f"{name}={value}" for name, value in limits.items() if value is not None]
    return ", ".join(parts) if parts else "no limits"


def print_report(report: dict, out: TextIO) -> None:
    out.write(
        f"upload_limits at {report['database']}: version {report['config_version']}, "
        f"{report['live_server_count']} live server(s)\n"
    )
    if not report["has_defaults_row"] and not any(bad["client_id"] == DEFAULTS_CLIENT_ID for bad in report["bad_rows"]):
        out.write("warning: no `*` row: clients without a row of their own get the fallback limits\n")
    for client_id, config in report["clients"].items():
        if client_id != DEFAULTS_CLIENT_ID:
            label = client_id
        elif report["has_defaults_row"]:
            label = "* (every client without a row of its own)"
        else:
            label = "* (no `*` row: clients without a row get the fallback limits)"
        out.write(f"\n{label}\n")
        out.write(f"  fleet-wide:   {_limits_text(config['fleet_limits'])}\n")
        out.write(f"  this server:  {_limits_text(config['server_share'])}\n")
        if config.get("paused"):
            out.write(f"  PAUSED: {config.get('pause_reason') or '(no reason given)'}\n")
        if config.get("all_partners_paused"):
            out.write(f"  PAUSED (all partners): {config.get('all_partners_pause_reason') or '(no reason given)'}\n")
        if config.get("shadow_server_share"):
            out.write(f"  shadow:       {_limits_text(config['shadow_server_share'])}\n")
        if config.get("reduced_limits"):
            out.write(f"  reduced:      {', '.join(config['reduced_limits'])}\n")
    bad = report["bad_rows"]
    out.write(f"\n{len(bad)} bad row(s)\n")
    for row in bad:
        where = f"row {row.get('client_id')!r}" + (f", column {row['column']}" if row.get("column") else "")
        out.write(f"  BAD {where}: {row.get('problem')}\n")


def check(database_url: str, *, as_json: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        report = table_report(database_url)
    except (SourceUnavailable, ValueError, ImportError) as exc:
        print(f"upload-gate check: cannot read upload_limits: {exc}", file=sys.stderr)
        return 2
    if as_json:
        out.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        print_report(report, out)
    return 1 if report["bad_rows"] else 0
