// fnhost dashboard: live updates, keyboard shortcuts and the theme switch. Every page
// works without this script; it only adds to them.
"use strict";

(function () {
  const root = document.documentElement;
  const THEMES = ["auto", "light", "dark"];

  // Theme: auto follows the system; light and dark are kept in this browser.
  function applyTheme(name) {
    if (name === "light" || name === "dark") {
      root.dataset.theme = name;
    } else {
      delete root.dataset.theme;
      name = "auto";
    }
    document.querySelectorAll("[data-theme-name]").forEach((el) => { el.textContent = name; });
    return name;
  }
  function storedTheme() {
    try { return localStorage.getItem("fnhost-theme") || "auto"; } catch (e) { return "auto"; }
  }
  function cycleTheme() {
    const next = THEMES[(THEMES.indexOf(storedTheme()) + 1) % THEMES.length];
    try { localStorage.setItem("fnhost-theme", next); } catch (e) { /* private mode */ }
    applyTheme(next);
  }
  applyTheme(storedTheme());

  function onReady() {
    applyTheme(storedTheme());
    document.querySelectorAll("[data-theme-toggle], [data-help]").forEach((b) => { b.hidden = false; });
    document.querySelectorAll("[data-theme-toggle]").forEach((b) => b.addEventListener("click", cycleTheme));
    document.querySelectorAll("[data-help]").forEach((b) => b.addEventListener("click", showHelp));
    enhance(document);
    startLive();
    startRefresh();
    root.dataset.js = "ready";
  }

  // enhance wires what a page (or a part swapped into it) holds: row clicks and
  // confirmations.
  function enhance(scope) {
    scope.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (ev) => {
        if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
      });
    });
    scope.querySelectorAll("tr[data-href]").forEach((row) => {
      row.addEventListener("click", (ev) => {
        if (ev.target.closest("a, button, input, select, textarea, form")) return;
        window.location.href = row.dataset.href;
      });
    });
  }

  function showHelp() {
    const dlg = document.getElementById("help");
    if (dlg && !dlg.open) dlg.showModal();
  }

  // swap replaces the children of el with html, keeping the keyboard focus on the
  // same link or button when it is still there.
  function swap(el, html) {
    const active = document.activeElement;
    let key = null;
    if (active && el.contains(active)) {
      key = active.getAttribute("href") || active.dataset.action || null;
    }
    el.innerHTML = html;
    enhance(el);
    if (key) {
      const again = el.querySelector(`[href="${CSS.escape(key)}"], [data-action="${CSS.escape(key)}"]`);
      if (again) again.focus();
    }
  }

  // Live overview: the server sends the rendered part whenever it changes.
  function startLive() {
    const live = document.querySelector("[data-live-src]");
    if (!live || !window.EventSource) return;
    const es = new EventSource(live.dataset.liveSrc);
    es.addEventListener("overview", (ev) => {
      swap(live, ev.data);
      live.dataset.updated = new Date().toISOString();
    });
    window.addEventListener("pagehide", () => es.close());
  }

  // Pages of something still running refresh their main part until it finishes.
  function startRefresh() {
    const marker = document.querySelector("[data-refresh]");
    if (!marker) return;
    const every = Math.max(500, parseInt(marker.dataset.refresh, 10) || 2000);
    const main = document.getElementById("main");
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "main");
    let timer = null;
    async function tick() {
      if (document.hidden) { timer = setTimeout(tick, every); return; }
      try {
        const res = await fetch(url, { headers: { "Accept": "text/html" }, credentials: "same-origin" });
        if (res.ok) {
          const html = await res.text();
          const open = Array.from(main.querySelectorAll("details")).map((d) => d.open);
          swap(main, html);
          main.querySelectorAll("details").forEach((d, i) => { if (i < open.length - 1) d.open = open[i]; });
        }
      } catch (e) { /* the host restarts: try again */ }
      if (main.querySelector("[data-refresh]")) timer = setTimeout(tick, every);
    }
    timer = setTimeout(tick, every);
    window.addEventListener("pagehide", () => clearTimeout(timer));
  }

  // Keyboard shortcuts.
  let pendingG = 0;
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }
  function rows() {
    return Array.from(document.querySelectorAll("table[data-rows] tbody tr"));
  }
  function moveSelection(step) {
    const all = rows();
    if (all.length === 0) return;
    let i = all.findIndex((r) => r.classList.contains("selected"));
    if (i < 0) {
      i = step > 0 ? 0 : all.length - 1;
    } else {
      all[i].classList.remove("selected");
      all[i].removeAttribute("aria-selected");
      i = Math.min(all.length - 1, Math.max(0, i + step));
    }
    const row = all[i];
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    const link = row.querySelector("a");
    if (link) link.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }
  function click(selector) {
    const el = document.querySelector(selector);
    if (el) el.click();
    return !!el;
  }
  document.addEventListener("keydown", (ev) => {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    const dlg = document.getElementById("help");
    if (dlg && dlg.open) return;
    const k = ev.key;
    if (pendingG && Date.now() - pendingG < 1500) {
      pendingG = 0;
      const link = document.querySelector(`nav a[data-key="${CSS.escape(k)}"]`);
      if (link) { ev.preventDefault(); link.click(); }
      return;
    }
    pendingG = 0;
    switch (k) {
      case "g": pendingG = Date.now(); break;
      case "?": ev.preventDefault(); showHelp(); break;
      case "/": {
        const f = document.querySelector("[data-filter]") || document.querySelector(".filters select, .filters input");
        if (f) { ev.preventDefault(); f.focus(); }
        break;
      }
      case "j": ev.preventDefault(); moveSelection(1); break;
      case "k": ev.preventDefault(); moveSelection(-1); break;
      case "Enter": {
        const sel = document.querySelector("tr.selected");
        if (sel && !ev.target.closest("a, button")) { ev.preventDefault(); window.location.href = sel.dataset.href; }
        break;
      }
      case "n": if (click("[data-next]")) ev.preventDefault(); break;
      case "r": if (click('[data-action="retry"]')) ev.preventDefault(); break;
      case "c": if (click('[data-action="cancel"]')) ev.preventDefault(); break;
      case "t": ev.preventDefault(); cycleTheme(); break;
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", onReady);
  } else {
    onReady();
  }
})();
