"""What the overview and partner pages draw: Plotly traces and layouts, ready for Plotly.react."""

from core import roles
from monitoring import metrics
from monitoring.queries import RANGES_SECONDS, Window, raw_cpu_series, rollup_band, rollup_series, rounded
from partners.access import visible_partners
from partners.models import Partner

OTHER_TRAFFIC = "direct users & other clients"
HIDDEN_PARTNERS = "other partners"


def _layout(title: str, y_title: str, **extra) -> dict:
    return {
        "title": {"text": title, "font": {"size": 14}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "xaxis": {"type": "date"},
        "margin": {"l": 56, "r": 16, "t": 36, "b": 36},
        "legend": {"orientation": "h", "y": -0.2},
        "hovermode": "x unified",
        **extra,
    }


def _chart(window: Window, traces: list[dict], layout: dict) -> dict:
    # Pin the x axis to the range asked for, so an empty or sparse chart still reads as "now".
    layout["xaxis"]["range"] = window.x_range_ms()
    return {"range": window.name, "resolution_seconds": window.resolution_seconds, "traces": traces, "layout": layout}


# Up to an hour, a line per server; beyond, 50 lines of a thousand points each are noise:
# the band between the coolest and the hottest server says what matters.
PER_SERVER_MAX_RANGE_SECONDS = RANGES_SECONDS["1h"]
# Nor are more lines than this readable in any range (a fleet scaled out for a backlog):
# the band then too, from the raw reports; each server's CPU is in the servers table.
MAX_SERVER_LINES = 30


def cpu_chart(window: Window, threshold_percent: float) -> dict:
    if window.seconds > PER_SERVER_MAX_RANGE_SECONDS:
        traces = _cpu_band_traces(window)
    else:
        traces = _cpu_per_server_traces(window)
    threshold = {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": threshold_percent,
        "y1": threshold_percent,
        "line": {"color": "#c0322b", "dash": "dash", "width": 2},
    }
    layout = _layout(
        "Fleet CPU",
        "CPU %",
        shapes=[threshold],
        annotations=[
            {
                "xref": "paper",
                "x": 1,
                "y": threshold_percent,
                "xanchor": "right",
                "yanchor": "bottom",
                "showarrow": False,
                "text": f"alert at {threshold_percent:g}%",
                "font": {"color": "#c0322b"},
            }
        ],
    )
    layout["yaxis"]["range"] = [0, 100]
    return _chart(window, traces, layout)


def _cpu_per_server_traces(window: Window) -> list[dict]:
    if window.resolution_seconds is None:
        per_server, fleet = raw_cpu_series(window)
        if len(per_server) > MAX_SERVER_LINES:
            return _band_traces(fleet["x"], fleet["low"], fleet["high"], fleet["y"])
    else:
        per_server = {
            subject.removeprefix("server:"): series
            for subject, series in rollup_series(metrics.CPU_PERCENT, window, subject_prefix="server:").items()
        }
        if len(per_server) > MAX_SERVER_LINES:
            return _cpu_band_traces(window)
        fleet = rollup_series(metrics.CPU_PERCENT, window, subjects=[metrics.FLEET]).get(
            metrics.FLEET, {"x": [], "y": []}
        )
    traces = [
        {
            "type": "scattergl",
            "mode": "lines+markers",
            "name": name,
            "line": {"width": 1},
            "marker": {"size": 3},
            "opacity": 0.6,
            **rounded(series),
        }
        for name, series in sorted(per_server.items())
    ]
    traces.append(_fleet_average_trace(fleet["x"], fleet["y"]))
    return traces


def _cpu_band_traces(window: Window) -> list[dict]:
    band = rollup_band(metrics.CPU_PERCENT, metrics.FLEET, window)
    return _band_traces(band["x"], band["low"], band["high"], band["mean"])


def _band_traces(x: list, low: list, high: list, mean: list) -> list[dict]:
    coolest = {
        "type": "scattergl",
        "mode": "lines",
        "name": "coolest server",
        "x": x,
        "y": [round(v, 2) for v in low],
        "line": {"width": 0.5, "color": "#8aa2d8"},
    }
    hottest = {
        "type": "scattergl",
        "mode": "lines",
        "name": "hottest server",
        "x": x,
        "y": [round(v, 2) for v in high],
        "line": {"width": 0.5, "color": "#c0322b"},
        "fill": "tonexty",
        "fillcolor": "rgba(37, 87, 214, 0.12)",
    }
    return [coolest, hottest, _fleet_average_trace(x, mean)]


def _fleet_average_trace(x: list, y: list) -> dict:
    return {
        "type": "scattergl",
        "mode": "lines+markers",
        "name": "fleet average",
        "line": {"width": 3, "color": "#151b2b"},
        "marker": {"size": 4},
        **rounded({"x": x, "y": y}),
    }


def _client_labels(user) -> dict[str, str]:
    """client id → the name shown; partners the user may not see are merged into one."""
    names = dict(Partner.objects.values_list("client_id", "name"))
    if roles.sees_everything(user):
        return names
    visible = set(visible_partners(user).values_list("client_id", flat=True))
    return {client_id: (name if client_id in visible else HIDDEN_PARTNERS) for client_id, name in names.items()}


def partner_stack_chart(window: Window, metric: str, user) -> dict:
    """Uploads in progress or bytes in flight, stacked by partner (minute level or coarser)."""
    labels = _client_labels(user)
    stacked: dict[str, dict] = {}
    for subject, series in rollup_series(metric, window, subject_prefix="client:").items():
        client_id = subject.removeprefix("client:")
        label = labels.get(client_id, OTHER_TRAFFIC)
        target = stacked.setdefault(label, {})
        for moment, value in zip(series["x"], series["y"]):
            target[moment] = target.get(moment, 0.0) + value
    traces = []
    for label in sorted(stacked, key=lambda name: (name in (OTHER_TRAFFIC, HIDDEN_PARTNERS), name)):
        points = sorted(stacked[label].items())
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "stackgroup": "partners",
                "name": label,
                "x": [p[0] for p in points],
                "y": [p[1] for p in points],
            }
        )
    title, unit = (
        ("Uploads in progress", "uploads") if metric == metrics.UPLOADS_IN_PROGRESS else ("Bytes in flight", "bytes")
    )
    return _chart(window, traces, _layout(f"{title} by partner", unit))


def outcomes_chart(window: Window) -> dict:
    traces = []
    for metric, label, color in (
        (metrics.THROTTLED, "throttled", "#b25e09"),
        (metrics.TIMED_OUT, "timed out", "#c0322b"),
    ):
        series = rollup_series(metric, window, subjects=[metrics.FLEET]).get(metrics.FLEET, {"x": [], "y": []})
        traces.append({"type": "bar", "name": label, "marker": {"color": color}, **rounded(series)})
    return _chart(window, traces, _layout("Throttled and timed-out uploads per minute", "per minute", barmode="group"))


def queues_chart(window: Window) -> dict:
    traces = []
    for metric, kind in ((metrics.QUEUE_VISIBLE, "visible"), (metrics.QUEUE_IN_FLIGHT, "in flight")):
        for subject, series in sorted(rollup_series(metric, window, subject_prefix="queue:").items()):
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{subject.removeprefix('queue:')} ({kind})",
                    "line": {"dash": "solid" if kind == "visible" else "dot"},
                    **rounded(series),
                }
            )
    return _chart(window, traces, _layout("SQS queue depth", "messages"))


def partner_usage_chart(window: Window, partner: Partner) -> dict:
    subject = metrics.client_subject(partner.client_id)
    traces = []
    for metric, limit, label, axis in (
        (metrics.UPLOADS_IN_PROGRESS, partner.max_concurrent_uploads, "uploads in progress", "y"),
        (metrics.BYTES_IN_FLIGHT, partner.max_bytes_in_flight, "bytes in flight", "y2"),
    ):
        series = rollup_series(metric, window, subjects=[subject]).get(subject, {"x": [], "y": []})
        traces.append({"type": "scatter", "mode": "lines", "name": label, "yaxis": axis, **rounded(series)})
        if limit is not None:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{label} limit",
                    "yaxis": axis,
                    "line": {"dash": "dash"},
                    "x": window.x_range_ms(),
                    "y": [limit, limit],
                }
            )
    throttled = rollup_series(metrics.THROTTLED, window, subjects=[subject]).get(subject, {"x": [], "y": []})
    traces.append({"type": "bar", "name": "throttled per minute", "yaxis": "y", "opacity": 0.5, **rounded(throttled)})
    layout = _layout(f"{partner.name}: usage against limits", "uploads")
    layout["yaxis2"] = {"title": {"text": "bytes"}, "overlaying": "y", "side": "right", "rangemode": "tozero"}
    return _chart(window, traces, layout)
