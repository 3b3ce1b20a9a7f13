// payments-sandbox dashboard: confirmations and live updates. No framework, no network but the sandbox.
"use strict";
(function () {
  const POLL_MS = 1000;
  const toggle = document.getElementById("live-toggle");
  const status = document.getElementById("live-status");
  let live = true;

  // Every action form carries data-confirm: ask first, then tell the server it was confirmed.
  // (Without this script the server shows its own confirmation step instead.)
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!form.dataset || !form.dataset.confirm) return;
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    form.elements.confirmed.value = "yes";
  });

  function say(text) {
    if (status.textContent !== text) status.textContent = text;
  }

  async function fetchOk(url) {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) throw new Error("Signed out: reload to sign in.");
    if (response.status === 404) throw new Error("Gone: this tenant or charge no longer exists (reset?).");
    if (!response.ok) throw new Error("The sandbox answered " + response.status + ".");
    return response;
  }

  // Server-rendered regions (data-live="block"): ask for the same page's block, sending the version we
  // show (data-version); the server answers 204 while that is current, else the block and its new
  // version (Sandbox-Version), so an unchanged region costs it no rendering. The first poll also
  // catches what changed since the page loaded.
  function pollRegion(region) {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", region.dataset.live);
    return async function () {
      url.searchParams.set("version", region.dataset.version || "");
      const response = await fetchOk(url);
      if (response.status === 204) return;
      const html = await response.text();
      if (!live) return; // paused while the request was in flight
      region.innerHTML = html;
      region.dataset.version = response.headers.get("Sandbox-Version") || "";
    };
  }

  // The request journal: ask for what arrived after the newest id we know and prepend it.
  function pollJournal(list) {
    const empty = document.getElementById("requests-empty");
    const summary = document.getElementById("requests-summary");
    const limit = Number(list.dataset.limit || 200);
    let matching = Number(summary ? summary.dataset.count : 0);
    return async function () {
      const url = new URL(list.dataset.feed, window.location.href);
      new URLSearchParams(window.location.search).forEach(function (v, k) { if (k !== "after") url.searchParams.set(k, v); });
      url.searchParams.set("after", list.dataset.cursor);
      const data = await (await fetchOk(url)).json();
      if (!live) return;
      list.dataset.cursor = data.cursor;
      if (data.reset) list.innerHTML = "";
      if (data.html.trim()) {
        const template = document.createElement("template");
        template.innerHTML = data.html;
        for (const item of template.content.children) item.classList.add("fresh");
        list.prepend(template.content);
        while (list.children.length > limit) list.lastElementChild.remove();
      }
      if (empty) empty.hidden = list.children.length > 0;
      if (summary && (data.reset || data.count)) {
        matching = data.reset ? data.count : matching + data.count;
        summary.textContent = matching + " matching request" + (matching === 1 ? "" : "s") +
          (matching > limit ? "; the newest " + limit + " are shown" : "") + ".";
      }
    };
  }

  const pollers = [];
  document.querySelectorAll("[data-live]").forEach(function (region) { pollers.push(pollRegion(region)); });
  const journal = document.querySelector("[data-feed]");
  if (journal) pollers.push(pollJournal(journal));
  if (!pollers.length) return;

  toggle.hidden = false;
  toggle.addEventListener("click", function () {
    live = !live;
    toggle.setAttribute("aria-pressed", String(live));
  });

  let busy = false;
  async function tick() {
    if (live && !busy && !document.hidden) {
      busy = true;
      try {
        for (const poll of pollers) await poll();
        say("");
      } catch (error) {
        say(error.message);
      } finally {
        busy = false;
      }
    }
    window.setTimeout(tick, POLL_MS);
  }
  tick();
})();
