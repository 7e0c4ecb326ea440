"""The incident report: what a simulated run did, one row per strategy.

bench/incident.py prints it for every strategy the team considered; `manage.py simulate` prints
it for the limits in force.
"""


def summarize(sim) -> dict:
    totals = sim.totals
    cpu = sorted(totals.cpu_samples)
    backlog = sim.scenario.backlog
    row = {
        "timeouts_users": totals.timed_out["user"],
        "timeouts_partner": totals.timed_out["partner"],
        "throttled": totals.throttled["user"] + totals.throttled["partner"],
        "abandoned_files": totals.files_abandoned["user"] + totals.files_abandoned["partner"],
        "partner_gave_up": totals.files_abandoned["partner"],
        "has_backlog": backlog is not None,
        "cpu_p95": cpu[int(len(cpu) * 0.95) - 1] if cpu else 0.0,
        "machine_hours": totals.server_seconds / 3600,
        "completion_s": None,
        "ideal_s": None,
        "throughput_share": None,
        # How often the load-coupled controller changed the partner's effective limit.
        "limit_changes": getattr(sim.scaler, "changes", None),
    }
    if backlog and totals.capacity_core_seconds_pending:
        row["throughput_share"] = totals.useful_core_seconds_pending / totals.capacity_core_seconds_pending
        if totals.backlog_done_at is not None and not row["partner_gave_up"]:
            row["completion_s"] = totals.backlog_done_at - backlog.starts_at_seconds
            mean_cores = totals.capacity_core_seconds_pending / row["completion_s"]
            row["ideal_s"] = totals.useful_core_seconds_pending / mean_cores
    return row


def print_table(scenario_name: str, rows: list[tuple[str, dict]], seconds: float, write=print) -> None:
    write(f"scenario {scenario_name} (simulated; {seconds:.1f} s of wall time)")
    header = (
        f"{'strategy':<30}{'timeouts users':>15}{'partner':>9}{'throttled':>10}{'abandoned':>10}"
        f"{'backlog done':>13}{'× ideal':>8}{'CPU p95':>8}{'useful/capacity':>16}{'machine-h':>10}"
        f"{'limit changes':>14}"
    )
    write(header)
    for name, row in rows:
        done = (
            f"{row['completion_s'] / 3600:.2f} h"
            if row["completion_s"] is not None
            else "gave up"
            if row["partner_gave_up"]
            else "not done"
            if row["has_backlog"]
            else "—"
        )
        ratio = f"{row['completion_s'] / row['ideal_s']:.2f}" if row["ideal_s"] else "—"
        share = f"{row['throughput_share']:.0%}" if row["throughput_share"] is not None else "—"
        changes = "—" if row["limit_changes"] is None else str(row["limit_changes"])
        write(
            f"{name:<30}{row['timeouts_users']:>15}{row['timeouts_partner']:>9}{row['throttled']:>10}"
            f"{row['abandoned_files']:>10}{done:>13}{ratio:>8}{row['cpu_p95']:>7.0f}%{share:>16}"
            f"{row['machine_hours']:>10.1f}{changes:>14}"
        )
