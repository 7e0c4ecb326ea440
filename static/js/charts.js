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

  // Timeline events (limit changes, pauses, scaling, alerts) as a dotted vertical line each, plus
  // a marker per event at the top of the plot that carries the hover text: one trace per kind,
  // so the legend names the colours.
  function addTimeline(chart, timeline) {
    const byKind = {};
    chart.layout.shapes = (chart.layout.shapes || []).concat(timeline.events.map((event) => ({
      type: "line", xref: "x", yref: "paper", x0: event.at_ms, x1: event.at_ms, y0: 0, y1: 1,
      layer: "below", name: "timeline:" + event.kind, line: { color: event.color, width: 1.5, dash: "dot" },
    })));
    timeline.events.forEach((event) => {
      const trace = byKind[event.kind] || (byKind[event.kind] = {
        type: "scatter", mode: "markers", name: event.kind, x: [], y: [], hovertext: [], meta: "timeline",
        marker: { symbol: "triangle-down", size: 11, color: event.color }, cliponaxis: false,
        hovertemplate: "%{hovertext}<extra></extra>",
      });
      trace.x.push(event.at_ms);
      trace.y.push(100);
      trace.hovertext.push("<b>" + escapeText(event.title) + "</b><br>" + escapeText(event.detail) +
        "<br>by " + escapeText(event.actor));
    });
    chart.traces = chart.traces.concat(Object.values(byKind));
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
