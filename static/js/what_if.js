// The what-if page: choosing another partner reloads its current limits into the form, and
// the result's projected fleet CPU is drawn once with Plotly.
(function () {
  "use strict";
  const partner = document.getElementById("id_partner");
  if (partner && !new URLSearchParams(location.search).has("files")) {
    partner.addEventListener("change", function () {
      location.search = "?partner=" + encodeURIComponent(partner.value);
    });
  }
  const data = document.getElementById("what-if-chart-data");
  const chart = document.getElementById("what-if-cpu-chart");
  if (!data || !chart || !window.Plotly) return;
  const series = JSON.parse(data.textContent);
  const trace = { x: series.minutes, y: series.cpu, type: "scatter", mode: "lines", name: "fleet CPU" };
  Plotly.newPlot(chart, [trace], {
    height: 220, margin: { l: 40, r: 10, t: 10, b: 35 },
    xaxis: { title: { text: "minutes from now" } }, yaxis: { title: { text: "CPU %" }, range: [0, 105] },
  }, { displaylogo: false, responsive: true });
  chart.dataset.points = series.cpu.length;
})();
