"""What the overview and partner pages draw: Plotly traces and layouts, ready for Plotly.react."""

from core import roles
from core.units import format_bytes_short
from monitoring import metrics
from monitoring.models import MetricSource
from monitoring.queries import Window, raw_cpu_minutes, rollup_band, rollup_series, rounded
from partners.access import visible_partners
from partners.models import Partner

OTHER_TRAFFIC = "direct users & other clients"
HIDDEN_PARTNERS = "other partners"


def _layout(title: str, y_title: str, **extra) -> dict:
    return {
        "title": {"text": title, "font": {"size": 14}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        # Times are UTC, as in every table: charts.js hands Plotly UTC strings, never the
        # browser's local time, and the axis says so.
        "xaxis": {
            "type": "date",
            "title": {"text": "time (UTC)", "font": {"size": 11}, "standoff": 2},
            "hoverformat": "%Y-%m-%d %H:%M:%S UTC",
        },
        "margin": {"l": 64, "r": 16, "t": 36, "b": 40},
        "legend": {"orientation": "h", "y": -0.28},
        "hovermode": "x unified",
        **extra,
    }


def _say_on_chart(layout: dict, text: str) -> None:
    """An empty chart says why, in its middle, rather than drawing a bare 0–4 axis."""
    layout.setdefault("annotations", []).append(
        {
            "xref": "paper",
            "yref": "paper",
            "x": 0.5,
            "y": 0.5,
            "showarrow": False,
            "text": text,
            "font": {"size": 14, "color": "#5b6475"},
            "name": "empty",
        }  # fmt: skip
    )
    layout["yaxis"]["showticklabels"] = False


def _chart(window: Window, traces: list[dict], layout: dict, byte_axes: list[str] | None = None) -> dict:
    """byte_axes: the y axes ("yaxis", "yaxis2") in bytes: charts.js writes their ticks and
    hover values in decimal units ("1.5 GB"), which Plotly's own formats cannot ("1.5G")."""
    # Pin the x axis to the range asked for, so an empty or sparse chart still reads as "now".
    layout["xaxis"]["range"] = window.x_range_ms()
    said = any(note.get("name") == "empty" for note in layout.get("annotations", []))
    if not said and not any(trace["x"] for trace in traces if not trace["name"].endswith(" limit")):
        _say_on_chart(layout, f"No data in the last {window.name}")
    return {
        "range": window.name,
        "resolution_seconds": window.resolution_seconds,
        "traces": traces,
        "layout": layout,
        "byte_axes": byte_axes or [],
    }


CPU_RED = "#c0322b"
LIVE_MEAN_NAME = "fleet, 1-min average (what the alert compares)"


def cpu_chart(window: Window, threshold_percent: float | None) -> dict:
    """Fleet CPU as the "Fleet CPU high" alert sees it: its 1-minute averages as the line,
    with the threshold of that rule (None: no such rule enabled, no line), and the spread
    behind the averages as a band. Raw 5 s samples swing across the line while the average
    the alert compares stays below it: drawn as lines, they showed red where no alert fires.
    Each server's CPU is in the servers table."""
    if window.resolution_seconds is None:
        band = raw_cpu_minutes(window)
        band_name, mean_name = "range of the 5 s reports", LIVE_MEAN_NAME
    else:
        band = rollup_band(metrics.CPU_PERCENT, metrics.FLEET, window)
        minutes = window.resolution_seconds // 60
        band_name, mean_name = "coolest to hottest server", f"fleet, {minutes}-min average"
    traces = _band_traces(band, band_name, mean_name)
    layout = _layout("Fleet CPU", "CPU %")
    layout["yaxis"].update(range=[0, 105], ticksuffix=" %")
    if threshold_percent is not None:
        layout["shapes"] = [_threshold_line(threshold_percent)]
        layout["annotations"] = [_threshold_label(threshold_percent)]
    return _chart(window, traces, layout)


def _threshold_line(threshold_percent: float) -> dict:
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": threshold_percent,
        "y1": threshold_percent,
        "line": {"color": CPU_RED, "dash": "dash", "width": 2},
    }


def _threshold_label(threshold_percent: float) -> dict:
    # On a white box above the line at the left, so that no trace crosses it unreadably.
    return {
        "xref": "paper",
        "x": 0.01,
        "y": threshold_percent,
        "xanchor": "left",
        "yanchor": "bottom",
        "showarrow": False,
        "text": f"alert at {threshold_percent:g} % (1-min average)",
        "font": {"color": CPU_RED, "size": 12},
        "bgcolor": "rgba(255, 255, 255, 0.9)",
        "bordercolor": CPU_RED,
        "borderpad": 2,
    }


def _band_traces(band: dict, band_name: str, mean_name: str) -> list[dict]:
    low = {
        "type": "scatter",
        "mode": "lines",
        "name": f"{band_name} (lowest)",
        "showlegend": False,
        "x": band["x"],
        "y": [round(v, 2) for v in band["low"]],
        "line": {"width": 0.5, "color": "#8aa2d8"},
        "hovertemplate": "lowest %{y:.1f} %<extra></extra>",
    }
    high = {
        "type": "scatter",
        "mode": "lines",
        "name": band_name,
        "x": band["x"],
        "y": [round(v, 2) for v in band["high"]],
        "line": {"width": 0.5, "color": "#8aa2d8"},
        "fill": "tonexty",
        "fillcolor": "rgba(37, 87, 214, 0.15)",
        "hovertemplate": "highest %{y:.1f} %<extra></extra>",
    }
    mean = {
        "type": "scatter",
        "mode": "lines+markers",
        "name": mean_name,
        "line": {"width": 3, "color": "#151b2b"},
        "marker": {"size": 5},
        "hovertemplate": "fleet average %{y:.1f} %<extra></extra>",
        **rounded({"x": band["x"], "y": band["mean"]}),
    }
    return [low, high, mean]


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
    if metric == metrics.UPLOADS_IN_PROGRESS:
        return _chart(window, traces, _layout("Uploads in progress by partner", "uploads"))
    return _chart(window, traces, _layout("Bytes in flight by partner", "bytes in flight"), byte_axes=["yaxis"])


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
    if not MetricSource.objects.filter(kind=MetricSource.Kind.SQS_QUEUE, enabled=True).exists():
        layout = _layout("SQS queue depth", "messages")
        _say_on_chart(layout, "Not configured: no SQS source")
        return _chart(window, [], layout)
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


# Where each limit line sits, as a share of its axis: apart, so that the two lines never
# lie on one another whatever the limits are (each axis has its own scale).
LIMIT_HEIGHT_SHARE = {"y": 0.8, "y2": 0.6}


def partner_usage_chart(window: Window, partner: Partner) -> dict:
    subject = metrics.client_subject(partner.client_id)
    traces, annotations, ranges = [], [], {}
    for metric, limit, label, axis in (
        (metrics.UPLOADS_IN_PROGRESS, partner.max_concurrent_uploads, "uploads in progress", "y"),
        (metrics.BYTES_IN_FLIGHT, partner.max_bytes_in_flight, "bytes in flight", "y2"),
    ):
        series = rollup_series(metric, window, subjects=[subject]).get(subject, {"x": [], "y": []})
        traces.append({"type": "scatter", "mode": "lines", "name": label, "yaxis": axis, **rounded(series)})
        if limit is None:
            continue
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
        highest = max([limit, *series["y"]])
        ranges[axis] = [0, max(limit / LIMIT_HEIGHT_SHARE[axis], highest * 1.1)]
        shown = format_bytes_short(limit) if axis == "y2" else f"{limit:,}"
        annotations.append(
            {
                "xref": "paper",
                "yref": axis,
                "x": 0.01 if axis == "y" else 0.99,
                "xanchor": "left" if axis == "y" else "right",
                "y": limit,
                "yanchor": "bottom",
                "showarrow": False,
                "text": f"{label} limit {shown}",
                "bgcolor": "rgba(255, 255, 255, 0.9)",
            }
        )
    throttled = rollup_series(metrics.THROTTLED, window, subjects=[subject]).get(subject, {"x": [], "y": []})
    traces.append({"type": "bar", "name": "throttled per minute", "yaxis": "y", "opacity": 0.5, **rounded(throttled)})
    if "y" in ranges and throttled["y"]:
        ranges["y"][1] = max(ranges["y"][1], max(throttled["y"]) * 1.1)
    layout = _layout(f"{partner.name}: usage against limits", "uploads", annotations=annotations)
    layout["yaxis2"] = {"title": {"text": "bytes in flight"}, "overlaying": "y", "side": "right", "rangemode": "tozero"}
    # Room for the right axis's ticks ("40 GB") and title.
    layout["margin"] = {**layout["margin"], "r": 84}
    for axis, axis_range in ranges.items():
        layout["yaxis" if axis == "y" else "yaxis2"]["range"] = axis_range
    return _chart(window, traces, layout, byte_axes=["yaxis2"])
