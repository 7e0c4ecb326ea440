// The overview's servers table, pauses and collector health: the "status" of the page's
// combined poll (charts.js), or /api/fleet-status when that poll failed.
(function () {
  "use strict";
  const statusUrl = document.querySelector("[data-status-url]").dataset.statusUrl;

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function bytes(size) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = size, unit = 0;
    while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
    return (unit ? value.toPrecision(3) : value) + " " + units[unit];
  }

  function ago(iso, now) {
    if (!iso) return "never";
    const seconds = Math.max(0, Math.round((new Date(now) - new Date(iso)) / 1000));
    return seconds < 120 ? seconds + " s ago" : Math.round(seconds / 60) + " min ago";
  }

  function renderServers(status) {
    const body = document.querySelector("#servers tbody");
    body.replaceChildren(...status.servers.map((server) => {
      const row = document.createElement("tr");
      row.dataset.server = server.name;
      if (server.silent && !server.waiting) row.className = "silent";
      row.append(
        cell(server.name),
        cell(server.cpu_percent === null ? "—" : server.cpu_percent.toFixed(1) + " %", "num"),
        cell(String(server.uploads_in_progress), "num"),
        cell(bytes(server.bytes_in_flight), "num"),
        cell(server.config_version === null ? "—" : "v" + server.config_version, server.config_current ? "num" : "num stale"),
        cell(server.waiting ? "not yet" : ago(server.last_seen_at, status.now)),
        server.waiting ? cell("waiting for its first report", "state muted") :
          cell(server.silent ? "silent" : "live", server.silent ? "state bad" : "state ok"),
      );
      return row;
    }));
    if (!status.servers.length) {
      const row = document.createElement("tr");
      const td = cell("No upload server has reported yet.", "empty");
      td.colSpan = 7;
      row.append(td);
      body.append(row);
    }
    document.querySelector("#applied").textContent = status.config_version === null ? "" :
      "config v" + status.config_version + " applied by " + status.applied_newest + "/" + status.live_servers + " live servers";
  }

  // The banner, the "paused" tile and the "Paused now" list, all from the same answer, so that
  // one never says "paused" while another says otherwise; partners keep their links.
  function renderPaused(status) {
    const banner = document.querySelector("#pause-all-banner");
    banner.hidden = !status.all_partners_paused;
    document.querySelector("#pause-all-reason").textContent = status.all_partners_pause_reason;
    const tile = document.querySelector("#tile-paused");
    tile.querySelector(".big").textContent = status.paused_count;
    tile.classList.toggle("warn", status.paused_count > 0);
    const items = [];
    if (status.all_partners_paused) {
      const strong = document.createElement("strong");
      strong.textContent = "All partner imports";
      items.push([strong, ": " + status.all_partners_pause_reason]);
    }
    status.paused_partners.forEach((p) => {
      const link = document.createElement("a");
      link.href = p.url;
      link.textContent = p.name;
      items.push([link, ": " + p.reason]);
    });
    const list = document.querySelector("#paused-now");
    list.replaceChildren(...(items.length ? items : [["Nothing is paused."]]).map((parts) => {
      const li = document.createElement("li");
      li.append(...parts);
      if (!items.length) li.className = "muted";
      return li;
    }));
  }

  function link(text, href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  // "12 of 40": the figure beside the limit it is held to ("per client" for direct users).
  function figureOfLimit(figure, limit, perClient) {
    const td = cell(figure, "num");
    if (limit !== null && limit !== undefined) {
      const of = document.createElement("span");
      of.className = "of";
      of.textContent = " of " + limit + (perClient ? " each" : "");
      td.append(of);
    }
    return td;
  }

  function renderConsumers(status) {
    const body = document.querySelector("#top-consumers tbody");
    if (!body) return;
    body.replaceChildren(...status.top_consumers.map((who) => {
      const row = document.createElement("tr");
      row.dataset.consumer = who.name;
      const name = document.createElement("td");
      name.append(link(who.name, who.url));
      if (who.paused) name.append(" (paused)");
      const act = document.createElement("td");
      act.append(link(who.kind === "direct" ? "Lower defaults" : "Lower limits", who.lower_url));
      if (who.pause_url && !who.paused) act.append(link("Pause", who.pause_url));
      row.append(
        name,
        figureOfLimit(String(who.uploads_in_progress), who.max_concurrent_uploads, who.limits_per_client),
        figureOfLimit(bytes(who.bytes_in_flight), who.max_bytes_in_flight === null ? null : bytes(who.max_bytes_in_flight), who.limits_per_client),
        act,
      );
      return row;
    }));
    if (!status.top_consumers.length) {
      const row = document.createElement("tr");
      const td = cell("No uploads in progress.", "empty");
      td.colSpan = 4;
      row.append(td);
      body.append(row);
    }
  }

  function renderAlerts(status) {
    const tile = document.querySelector("#tile-alerts");
    if (!tile || !status.alerts) return;
    tile.querySelector(".big").textContent = status.alerts.open_alert_count;
    tile.querySelector("#tile-alerts-text").textContent = status.alerts.worst_alert_severity ?
      "open alerts, worst " + status.alerts.worst_alert_severity : "open alerts";
    tile.classList.toggle("bad", status.alerts.worst_alert_severity === "critical");
    tile.classList.toggle("warn", status.alerts.worst_alert_severity === "warning");
    renderAlertCount(status.alerts);
  }

  // The title's "(N)" and the nav's badge follow the same poll as the tile (base.html draws
  // them once per page load).
  function renderAlertCount(alerts) {
    const open = alerts.open_alert_count, firing = alerts.firing_alert_count;
    document.title = (open ? "(" + open + ") " : "") + document.title.replace(/^\(\d+\) /, "");
    const link = document.querySelector("header nav a[href$='/alerts/']");
    if (!link) return;
    const old = link.querySelector(".badge");
    if (old) old.remove();
    if (!open) return;
    const badge = document.createElement("span");
    badge.className = "badge " + (firing ? "firing" : "pending");
    badge.title = firing + " firing, " + open + " open";
    const hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = " open";
    badge.append(String(open), hidden);
    link.append(" ", badge);
  }

  function renderSources(status) {
    const list = document.querySelector("#sources");
    if (!list || !status.sources.length) return;
    list.replaceChildren(...status.sources.map((source) => {
      const li = document.createElement("li");
      li.textContent = source.name + (source.failing ? " — failing: " + source.last_error : source.last_success_at ? " — ok" : " — not collected yet");
      if (source.failing) li.className = "error";
      return li;
    }));
  }

  async function fetchStatus() {
    const response = await fetch(statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
    return response.ok ? response.json() : null;
  }

  window.UploadOpsCharts.onRefresh(async function (range, poll) {
    const status = poll ? poll.status : await fetchStatus();
    if (!status) return;
    renderServers(status);
    if (status.config_version !== null) document.querySelector("#tile-config-version").textContent = "v" + status.config_version;
    document.querySelector("#tile-live-servers").textContent = status.live_servers_counted;
    renderPaused(status);
    renderConsumers(status);
    renderAlerts(status);
    renderSources(status);
  });
})();
