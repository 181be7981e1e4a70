// ferry dashboard: polls /stats/scannerPoolStats and /migrations, keeps a few minutes of
// throughput per migration in the page, and draws it as small inline SVG charts.
// No build step and no third-party code: the page must work offline.
"use strict";

(() => {
  const TOKEN_KEY = "ferry.token";
  const params = new URLSearchParams(window.location.search);
  // ?interval=500 polls faster (tests use it); never faster than 4 times a second.
  const INTERVAL_MS = Math.max(250, Number(params.get("interval")) || 2000);
  const HISTORY_MS = 5 * 60 * 1000;
  const STATE_ORDER = ["RUNNING", "SCHEDULED", "FAILED", "STOPPED", "NONSCHEDULED", "COMPLETED"];
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  const history = new Map(); // migrationId -> [{t, v}] bytes per second
  const poolHistory = [];

  class HttpError extends Error {
    constructor(status, detail) {
      super(detail || `HTTP ${status}`);
      this.status = status;
    }
  }

  // -- formatting ---------------------------------------------------------------------------

  function bytes(n) {
    if (typeof n !== "number") return "–";
    const units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let value = n;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
  }

  function duration(seconds) {
    if (typeof seconds !== "number") return "–";
    const s = Math.round(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (h) return `${h}h${String(m).padStart(2, "0")}m`;
    return m ? `${m}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // -- data ---------------------------------------------------------------------------------

  async function getJson(path) {
    const headers = { Accept: "application/json" };
    const token = window.localStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, { headers, cache: "no-store" });
    if (!response.ok) {
      let detail = "";
      try {
        const problem = await response.json();
        detail = problem.detail || problem.title || "";
      } catch (_) {
        detail = response.statusText;
      }
      throw new HttpError(response.status, detail);
    }
    return response.json();
  }

  function remember(series, now, value) {
    series.push({ t: now, v: value });
    while (series.length && series[0].t < now - HISTORY_MS) series.shift();
  }

  // -- charts -------------------------------------------------------------------------------

  function chart(series, width, height) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("preserveAspectRatio", "none");
    const peak = Math.max(1, ...series.map((p) => p.v));
    const now = series.length ? series[series.length - 1].t : Date.now();
    // The time axis covers what the page has seen (at least 20 polls), up to five minutes.
    const span = Math.min(HISTORY_MS, Math.max(20 * INTERVAL_MS, series.length ? now - series[0].t : 0));
    const x = (t) => width - ((now - t) / span) * width;
    const y = (v) => height - 1 - (v / peak) * (height - 2);
    const title = document.createElementNS(SVG, "title");
    const last = series.length ? series[series.length - 1].v : 0;
    title.textContent = `now ${bytes(last)}/s, peak ${bytes(peak)}/s over the last ${duration(span / 1000)}`;
    svg.appendChild(title);
    if (series.length > 1) {
      const points = series.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
      const area = document.createElementNS(SVG, "path");
      area.setAttribute("class", "area");
      area.setAttribute("d", `M${x(series[0].t).toFixed(1)},${height} L${points.join(" L")} L${width},${height} Z`);
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("class", "line");
      line.setAttribute("points", points.join(" "));
      svg.append(area, line);
    }
    return svg;
  }

  // -- rendering ----------------------------------------------------------------------------

  function renderPool(stats, now) {
    const limit = stats.poolSize;
    $("pool-limit").textContent = limit;
    $("pool-granted").textContent = stats.allocated;
    $("pool-active").textContent = stats.active;
    $("pool-idle").textContent = stats.idle;
    $("pool-running").textContent = stats.runningMigrations;
    $("pool-waiting").textContent = stats.waitingMigrations;
    $("pool-scheduled").textContent = stats.scheduledMigrations;
    const speed = stats.migrations.reduce((sum, m) => sum + (m.bytesPerSecond || 0), 0);
    $("pool-speed").textContent = `${bytes(speed)}/s`;
    $("pool-granted-bar").style.width = `${Math.min(100, (100 * stats.allocated) / limit)}%`;
    $("pool-active-bar").style.width = `${Math.min(100, (100 * stats.active) / limit)}%`;
    remember(poolHistory, now, speed);
    $("pool-chart").replaceChildren(chart(poolHistory, 1000, 56));
    const shares = stats.priorityAllocations;
    $("pool-shares").textContent =
      `shares LOW ${shares.LOW}, NORMAL ${shares.NORMAL}, HIGH ${shares.HIGH}; ` +
      `at most ${stats.maxThreadsPerMigration} threads per migration and ` +
      `${stats.maxRunningMigrations || "unlimited"} running at once`;
  }

  function row(migration, live, now) {
    const id = migration.migrationId;
    const progress = migration.progress || {};
    const pool = migration.pool;
    const running = migration.state === "RUNNING";
    const speed = running ? (live ? live.bytesPerSecond : progress.bytesPerSecond) || 0 : 0;
    if (!history.has(id)) history.set(id, []);
    remember(history.get(id), now, speed);

    const tr = el("tr");
    tr.dataset.id = id;
    tr.dataset.state = migration.state;
    const percent = typeof progress.percentComplete === "number" ? progress.percentComplete : null;
    tr.dataset.percent = percent === null ? "" : String(percent);

    tr.appendChild(el("td", "id", id)).title = `${migration.kind}: ${migration.source} → ${migration.target}`;
    tr.appendChild(el("td")).appendChild(el("span", `state ${migration.state}`, migration.state));
    tr.appendChild(el("td", "", migration.priority));
    const share = `${pool.percentage}${pool.percentageSource === "override" ? " (own)" : ""}`;
    tr.appendChild(el("td", "", share));
    tr.appendChild(el("td", "threads", `${pool.active} / ${pool.granted} / ${pool.requested}`));

    const cell = el("td");
    const box = cell.appendChild(el("div", "progress"));
    const bar = box.appendChild(el("div", "bar"));
    bar.appendChild(el("div")).style.width = `${percent === null ? 0 : percent}%`;
    box.appendChild(el("span", "pct", percent === null ? "–" : `${percent.toFixed(1)}%`));
    tr.appendChild(cell);

    const total = typeof progress.bytesTotal === "number" && progress.bytesTotal > 0 ? ` of ${bytes(progress.bytesTotal)}` : "";
    tr.appendChild(el("td", "copied", `${bytes(progress.bytesCopied)}${total}`));
    tr.appendChild(el("td", "speed", running ? `${bytes(speed)}/s` : "–"));
    tr.appendChild(el("td", "eta", running ? duration(progress.etaSeconds) : "–"));
    const chartCell = tr.appendChild(el("td", "chart"));
    chartCell.appendChild(chart(history.get(id), 160, 28));
    if (migration.error) {
      const errorRow = el("tr");
      errorRow.dataset.errorOf = id;
      const td = errorRow.appendChild(el("td", "error", migration.error));
      td.colSpan = 10;
      return [tr, errorRow];
    }
    return [tr];
  }

  function renderMigrations(stats, migrations, now) {
    const live = new Map(stats.migrations.map((m) => [m.migrationId, m]));
    const rank = (m) => STATE_ORDER.indexOf(m.state);
    const sorted = [...migrations].sort((a, b) => rank(a) - rank(b) || a.migrationId.localeCompare(b.migrationId));
    const rows = sorted.flatMap((m) => row(m, live.get(m.migrationId), now));
    document.querySelector("#migrations tbody").replaceChildren(...rows);
    $("empty").hidden = migrations.length > 0;
    const known = new Set(migrations.map((m) => m.migrationId));
    for (const id of history.keys()) if (!known.has(id)) history.delete(id);
  }

  function setStatus(text, isError) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function explain(error) {
    if (error.status === 401) return "A token is needed: paste a viewer (or stronger) token and press Use.";
    if (error.status === 403) return `This token may not read the stats: ${error.message}`;
    if (error.status) return `The server answered ${error.status}: ${error.message}`;
    return `Cannot reach ferry (${error.message}); retrying.`;
  }

  // -- polling ------------------------------------------------------------------------------

  let timer = null;

  async function poll() {
    window.clearTimeout(timer);
    try {
      const [stats, migrations] = await Promise.all([getJson("/stats/scannerPoolStats"), getJson("/migrations")]);
      const now = Date.now();
      renderPool(stats, now);
      renderMigrations(stats, migrations, now);
      setStatus(`updated ${new Date(now).toLocaleTimeString()}, every ${INTERVAL_MS / 1000} s`, false);
    } catch (error) {
      setStatus(explain(error), true);
    } finally {
      timer = window.setTimeout(poll, INTERVAL_MS);
    }
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (token) window.localStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    $("token").placeholder = token ? "token saved in this browser" : $("token").placeholder;
    poll();
  });
  $("token-forget").addEventListener("click", () => {
    window.localStorage.removeItem(TOKEN_KEY);
    $("token").placeholder = "bearer token (viewer or better)";
    poll();
  });
  if (window.localStorage.getItem(TOKEN_KEY)) $("token").placeholder = "token saved in this browser";
  poll();
})();
