// Live charts: every [data-chart-url] element is drawn with Plotly.react from its JSON
// endpoint and redrawn every few seconds. A page with a [data-poll-url] (the overview) gets
// all its charts in one request a poll instead: each [data-poll-key] element draws that key
// of the answer, and the page's refreshers get the whole answer. Polling stops while the tab
// is hidden and resumes (with an immediate refresh) when it is shown again.
(function () {
  "use strict";
  const POLL_MS = 5000;
  const PLOT_CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
  const refreshers = [];
  let range = new URLSearchParams(location.search).get("range") || "15m";
  let timer = null;

  async function fetchJson(baseUrl) {
    const url = baseUrl + "?range=" + encodeURIComponent(range);
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    return response.json();
  }

  // Plotly reads a few HTML tags in hover text; names and reasons are people's words, shown as text.
  function escapeText(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  // Decimal units, as the tables and forms write them: 1500000000 → "1.5 GB" (Plotly's own
  // format would say "1.5G", a billion).
  const BYTE_UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];
  function formatBytes(size) {
    let value = Number(size), unit = 0;
    while (Math.abs(value) >= 1000 && unit < BYTE_UNITS.length - 1) { value /= 1000; unit += 1; }
    return (unit ? Number(value.toPrecision(3)) : Math.round(value)) + " " + BYTE_UNITS[unit];
  }

  // Ticks at 1, 2 or 5 × 10^n bytes up to the axis's top, written in decimal units.
  function byteTicks(top) {
    if (!(top > 0)) return { tickvals: [0], ticktext: ["0 B"] };
    const rough = top / 5, power = Math.pow(10, Math.floor(Math.log10(rough)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough);
    const tickvals = [];
    for (let value = 0; value <= top * 1.0001; value += step) tickvals.push(value);
    return { tickvals: tickvals, ticktext: tickvals.map(formatBytes) };
  }

  function applyByteAxes(chart) {
    (chart.byte_axes || []).forEach((axisName) => {
      const ref = axisName === "yaxis" ? "y" : "y" + axisName.slice(5);
      const axis = chart.layout[axisName] = chart.layout[axisName] || {};
      const traces = chart.traces.filter((trace) => (trace.yaxis || "y") === ref);
      // A stack's top is the sum of its traces at one moment.
      const stacked = {};
      let top = 0;
      traces.forEach((trace) => (trace.y || []).forEach((value, i) => {
        const key = trace.stackgroup ? trace.stackgroup + "@" + trace.x[i] : null;
        if (key) stacked[key] = (stacked[key] || 0) + value;
        top = Math.max(top, key ? stacked[key] : value);
      }));
      if (axis.range) top = axis.range[1];
      else axis.range = [0, top * 1.1 || 1];
      Object.assign(axis, byteTicks(axis.range[1]), { tickmode: "array" });
      traces.forEach((trace) => {
        trace.customdata = (trace.y || []).map(formatBytes);
        trace.hovertemplate = escapeText(trace.name) + ": %{customdata}<extra></extra>";
      });
    });
  }

  // Epoch milliseconds as UTC date strings without a zone: Plotly draws those as written, so
  // a chart reads the same UTC times as the tables beside it, wherever the browser is.
  function utc(ms) {
    return typeof ms === "number" ? new Date(ms).toISOString().replace("T", " ").replace("Z", "") : ms;
  }

  function toUtc(chart) {
    chart.traces.forEach((trace) => { if (trace.x) trace.x = trace.x.map(utc); });
    if (chart.layout.xaxis && chart.layout.xaxis.range) chart.layout.xaxis.range = chart.layout.xaxis.range.map(utc);
    (chart.layout.shapes || []).forEach((shape) => {
      if (shape.xref === "x") { shape.x0 = utc(shape.x0); shape.x1 = utc(shape.x1); }
    });
  }

  // Markers of events less than this far apart are set one below the other, not on one another.
  const SAME_MOMENT_MS = 60000;

  // Timeline events (limit changes, pauses, scaling, alerts) as a dotted vertical line each, plus
  // a marker per event at the top of the plot that carries the hover text: one trace per kind,
  // so the legend names the colours.
  function addTimeline(chart, timeline) {
    const byKind = {};
    let previousMs = null, row = 0;
    chart.layout.shapes = (chart.layout.shapes || []).concat(timeline.events.map((event) => ({
      type: "line", xref: "x", yref: "paper", x0: event.at_ms, x1: event.at_ms, y0: 0, y1: 1,
      layer: "below", name: "timeline:" + event.kind, line: { color: event.color, width: 1.5, dash: "dot" },
    })));
    timeline.events.forEach((event) => {
      const trace = byKind[event.kind] || (byKind[event.kind] = {
        type: "scatter", mode: "markers", name: event.kind, x: [], y: [], hovertext: [], meta: "timeline", yaxis: "y9",
        marker: { symbol: "triangle-down", size: 11, color: event.color }, cliponaxis: false,
        hovertemplate: "%{hovertext}<extra></extra>",
      });
      row = previousMs !== null && Math.abs(event.at_ms - previousMs) < SAME_MOMENT_MS ? row + 1 : 0;
      previousMs = event.at_ms;
      trace.x.push(event.at_ms);
      trace.y.push(1 - 0.07 * (row % 8));
      trace.hovertext.push("<b>" + escapeText(event.title) + "</b><br>" + escapeText(event.detail) +
        "<br>by " + escapeText(event.actor));
    });
    chart.traces = chart.traces.concat(Object.values(byKind));
    // The markers' own axis (0 to 1, hidden), so that they sit at the top whatever the chart's scale.
    chart.layout.yaxis9 = { overlaying: "y", range: [0, 1.02], visible: false, fixedrange: true };
  }

  async function timelineFor(element) {
    if (!element.dataset.timelineUrl) return null;
    try {
      return await fetchJson(element.dataset.timelineUrl);
    } catch (error) {
      return null;  // the chart still draws; the annotations come back with the next poll
    }
  }

  // The page's combined poll: its answer, or {error} so each chart can say what went wrong.
  async function fetchPoll() {
    const element = document.querySelector("[data-poll-url]");
    if (!element) return null;
    try {
      return await fetchJson(element.dataset.pollUrl);
    } catch (error) {
      return { error: error };
    }
  }

  function chartAndTimeline(element, poll) {
    if (!element.dataset.pollKey) return Promise.all([fetchJson(element.dataset.chartUrl), timelineFor(element)]);
    if (!poll || poll.error) throw (poll && poll.error) || new Error("no data");
    return [poll[element.dataset.pollKey], element.dataset.timelineKey ? poll[element.dataset.timelineKey] : null];
  }

  async function drawChart(element, poll) {
    try {
      const [chart, timeline] = await chartAndTimeline(element, poll);
      if (timeline) addTimeline(chart, timeline);
      element.dataset.timelineEvents = timeline ? timeline.events.length : "";
      applyByteAxes(chart);
      toUtc(chart);
      Plotly.react(element, chart.traces, chart.layout, PLOT_CONFIG);
      element.dataset.points = chart.traces.filter((trace) => trace.meta !== "timeline")
        .reduce((sum, trace) => sum + (trace.x ? trace.x.length : 0), 0);
      element.dataset.drawnAt = Date.now();
      element.removeAttribute("data-error");
    } catch (error) {
      element.dataset.error = "Could not refresh: " + error.message;
    }
  }

  async function refreshAll() {
    const poll = await fetchPoll();
    const charts = Array.from(document.querySelectorAll("[data-chart-url], [data-poll-key]"));
    return Promise.all([...charts.map((element) => drawChart(element, poll)),
      ...refreshers.map((refresh) => refresh(range, poll && !poll.error ? poll : null))]);
  }

  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (document.hidden) return;
    timer = setTimeout(async () => { await refreshAll(); schedule(); }, POLL_MS);
  }

  function selectRange(newRange) {
    range = newRange;
    document.querySelectorAll("[data-range]").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.range === range));
    });
    const url = new URL(location.href);
    url.searchParams.set("range", range);
    history.replaceState(null, "", url);
    refreshAll().then(schedule);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) { clearTimeout(timer); timer = null; } else { refreshAll().then(schedule); }
  });
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-range]").forEach((button) => {
      button.addEventListener("click", () => selectRange(button.dataset.range));
    });
    selectRange(range);
  });

  window.UploadOpsCharts = { onRefresh: (refresh) => refreshers.push(refresh), isPolling: () => timer !== null };
})();
