// Pages that show live state without charts (fleet, alerts, risk) refresh themselves: every
// REFRESH_MS while the tab is visible, the page is fetched again and each [data-live] element
// (by id) is replaced by its new rendering, with the title and the nav's alert count, all from
// one server render, so no part can contradict another. A part holding a form someone is
// filling in (focus inside, or a field changed) is left alone until they are done.
(function () {
  "use strict";
  const REFRESH_MS = 12000;
  let timer = null;
  const dirty = new Set();

  function partOf(element) {
    return element && element.closest ? element.closest("[data-live]") : null;
  }

  document.addEventListener("input", (event) => {
    const part = partOf(event.target);
    if (part) dirty.add(part.id);
  });

  function busy(part) {
    return dirty.has(part.id) || part.contains(document.activeElement) && document.activeElement !== document.body;
  }

  // The nav's open-alert badge and the title's count, as the server rendered them.
  function applyAlertCount(fresh) {
    document.title = fresh.title;
    const link = document.querySelector("header nav a[href$='/alerts/']");
    const freshLink = fresh.querySelector("header nav a[href$='/alerts/']");
    if (link && freshLink) link.innerHTML = freshLink.innerHTML;
    const icon = document.querySelector("link[rel=icon]"), freshIcon = fresh.querySelector("link[rel=icon]");
    if (icon && freshIcon) icon.href = freshIcon.href;
  }

  async function refresh() {
    const response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    document.querySelectorAll("[data-live]").forEach((part) => {
      const next = fresh.getElementById(part.id);
      if (next && !busy(part)) part.replaceWith(document.importNode(next, true));
    });
    applyAlertCount(fresh);
    document.documentElement.dataset.liveRefreshedAt = Date.now();
  }

  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (document.hidden) return;
    timer = setTimeout(async () => {
      try { await refresh(); } catch (error) { /* the next refresh tries again */ }
      schedule();
    }, REFRESH_MS);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) { clearTimeout(timer); timer = null; } else { refresh().catch(() => {}).then(schedule); }
  });
  document.addEventListener("DOMContentLoaded", schedule);
  window.UploadOpsLive = { isPolling: () => timer !== null, refresh: refresh };
})();
