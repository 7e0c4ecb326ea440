// Live charts: every [data-chart-url] element is drawn with Plotly.react from its JSON
// endpoint and redrawn every few seconds. Polling stops while the tab is hidden and
// resumes (with an immediate refresh) when it is shown again.
(function () {
  "use strict";
  const POLL_MS = 5000;
  const PLOT_CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
  const refreshers = [];
  let range = new URLSearchParams(location.search).get("range") || "15m";
  let timer = null;

  async function drawChart(element) {
    const url = element.dataset.chartUrl + "?range=" + encodeURIComponent(range);
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.status + " " + response.statusText);
      const chart = await response.json();
      Plotly.react(element, chart.traces, chart.layout, PLOT_CONFIG);
      element.dataset.points = chart.traces.reduce((sum, trace) => sum + (trace.x ? trace.x.length : 0), 0);
      element.dataset.drawnAt = Date.now();
      element.removeAttribute("data-error");
    } catch (error) {
      element.dataset.error = "Could not refresh: " + error.message;
    }
  }

  function refreshAll() {
    const charts = Array.from(document.querySelectorAll("[data-chart-url]"));
    return Promise.all([...charts.map(drawChart), ...refreshers.map((refresh) => refresh(range))]);
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
