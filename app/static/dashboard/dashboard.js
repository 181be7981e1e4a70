// ferry dashboard: polls /stats/scannerPoolStats, /migrations and /stats/history (the server's own
// last hour, so a reload loses nothing), draws inline SVG charts with axes, and sends stop,
// resume and start. No build step and no third-party code: the page must work offline.
"use strict";

(() => {
  const TOKEN_KEY = "ferry.token";
  const params = new URLSearchParams(window.location.search);
  // ?interval=500 polls faster (tests use it); never faster than 4 times a second.
  const INTERVAL_MS = Math.max(250, Number(params.get("interval")) || 2000);
  const HOUR_MS = 60 * 60 * 1000;
  const MIN_SPAN_MS = 5 * 60 * 1000;
  const STATE_ORDER = ["RUNNING", "SCHEDULED", "FAILED", "STOPPED", "NONSCHEDULED", "COMPLETED"];
  // The actions a state allows (SPEC 3), as the buttons a row offers.
  const ACTIONS = {
    RUNNING: [["stop", "Stop"]],
    SCHEDULED: [["stop", "Stop"]],
    STOPPED: [["resume", "Resume"]],
    FAILED: [["resume", "Resume"]],
    NONSCHEDULED: [["start", "Start"]],
    COMPLETED: [["start", "Run again"]],
  };
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  const samples = []; // server history, oldest first: {t, bytesPerSecond, poolSize, allocated, active, migrations}
  let lastSampleTime = null; // the server's ISO time of the newest sample, for ?since=
  let historyEvery = null;

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
    return `${value.toFixed(unit === 0 || value >= 100 ? 0 : 1)} ${units[unit]}`;
  }

  function count(n) {
    return typeof n === "number" ? n.toLocaleString("en") : "–";
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

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // -- the server ---------------------------------------------------------------------------

  function token() {
    return window.sessionStorage.getItem(TOKEN_KEY);
  }

  async function call(method, path) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    const response = await fetch(path, { method, headers, cache: "no-store" });
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

  async function loadHistory() {
    const path = lastSampleTime ? `/stats/history?since=${encodeURIComponent(lastSampleTime)}` : "/stats/history";
    const answer = await call("GET", path);
    historyEvery = answer.intervalSeconds;
    for (const sample of answer.samples) samples.push({ ...sample, t: Date.parse(sample.time) });
    if (answer.samples.length) lastSampleTime = answer.samples[answer.samples.length - 1].time;
    const horizon = (answer.horizonSeconds || 3600) * 1000;
    while (samples.length && samples[0].t < samples[samples.length - 1].t - horizon) samples.shift();
  }

  // -- charts -------------------------------------------------------------------------------

  // The smallest 1, 2 or 5 times a power of ten at or above n.
  function niceCeil(n) {
    if (n <= 0) return 1;
    const power = 10 ** Math.floor(Math.log10(n));
    for (const step of [1, 2, 5, 10]) if (step * power >= n) return step * power;
    return 10 * power;
  }

  function timeSpan(now) {
    const oldest = samples.length ? samples[0].t : now;
    return Math.min(HOUR_MS, Math.max(MIN_SPAN_MS, now - oldest));
  }

  function minutesAgo(ms) {
    const minutes = Math.round(ms / 60000);
    return minutes ? `−${minutes} min` : "now";
  }

  // The pool's chart: transfer speed as an area on the left axis, threads active and granted as
  // lines on the right axis, time along the bottom.
  function poolChart(width, now) {
    const height = 180;
    const m = { left: 64, right: 44, top: 22, bottom: 24 };
    const w = Math.max(100, width - m.left - m.right);
    const h = height - m.top - m.bottom;
    const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    const span = timeSpan(now);
    const shown = samples.filter((s) => s.t >= now - span);
    svg.dataset.points = String(shown.length);
    const peak = niceCeil(Math.max(1, ...shown.map((s) => s.bytesPerSecond)));
    const threads = Math.max(1, ...shown.map((s) => s.poolSize));
    const x = (t) => m.left + w - ((now - t) / span) * w;
    const ySpeed = (v) => m.top + h - (v / peak) * h;
    const yThreads = (v) => m.top + h - (v / threads) * h;
    svg.appendChild(svgEl("title", {}, `transfer speed and threads over the last ${duration(span / 1000)}`));

    const grid = svgEl("g", { class: "axis" });
    for (let i = 0; i <= 4; i += 1) {
      const y = m.top + h - (i / 4) * h;
      grid.appendChild(svgEl("line", { x1: m.left, x2: m.left + w, y1: y, y2: y, class: i ? "grid" : "base" }));
      grid.appendChild(svgEl("text", { x: m.left - 6, y: y + 4, "text-anchor": "end", class: "y-speed" }, `${bytes((peak * i) / 4)}/s`));
      grid.appendChild(svgEl("text", { x: m.left + w + 6, y: y + 4, class: "y-threads" }, String(Math.round((threads * i) / 4))));
    }
    for (let i = 0; i <= 4; i += 1) {
      const t = now - span + (i / 4) * span;
      grid.appendChild(svgEl("text", { x: x(t), y: height - 6, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", class: "x-time" }, minutesAgo(now - t)));
    }
    grid.appendChild(svgEl("text", { x: m.left - 6, y: 10, "text-anchor": "end", class: "unit" }, "speed"));
    grid.appendChild(svgEl("text", { x: m.left + w + 6, y: 10, class: "unit" }, "threads"));
    svg.appendChild(grid);

    if (shown.length > 1) {
      const points = (f) => shown.map((s) => `${x(s.t).toFixed(1)},${f(s).toFixed(1)}`).join(" ");
      const speed = points((s) => ySpeed(s.bytesPerSecond));
      const first = x(shown[0].t).toFixed(1);
      const last = x(shown[shown.length - 1].t).toFixed(1);
      svg.appendChild(svgEl("path", { class: "area", d: `M${first},${m.top + h} L${speed.replaceAll(" ", " L")} L${last},${m.top + h} Z` }));
      svg.appendChild(svgEl("polyline", { class: "line speed", points: speed }));
      svg.appendChild(svgEl("polyline", { class: "line granted", points: points((s) => yThreads(s.allocated)) }));
      svg.appendChild(svgEl("polyline", { class: "line active", points: points((s) => yThreads(s.active)) }));
    }
    return svg;
  }

  // A migration's speed over the last hour of samples, with its peak as the only label.
  function sparkline(id, now) {
    const width = 118;
    const height = 30;
    const span = timeSpan(now);
    const series = samples.filter((s) => s.t >= now - span).map((s) => ({ t: s.t, v: s.migrations[id] || 0 }));
    const peak = Math.max(0, ...series.map((p) => p.v));
    const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    svg.dataset.points = String(series.length);
    svg.appendChild(svgEl("title", {}, `speed over the last ${duration(span / 1000)}: peak ${bytes(peak)}/s`));
    const top = peak > 0 ? niceCeil(peak) : 1;
    const x = (t) => width - ((now - t) / span) * width;
    const y = (v) => height - 11 - (v / top) * (height - 13);
    svg.appendChild(svgEl("line", { x1: 0, x2: width, y1: height - 11, y2: height - 11, class: "base" }));
    if (series.length > 1) {
      const points = series.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
      svg.appendChild(svgEl("polyline", { class: "line speed", points: points.join(" ") }));
    }
    svg.appendChild(svgEl("text", { x: 0, y: height - 1, class: "x-time" }, minutesAgo(span)));
    svg.appendChild(svgEl("text", { x: width, y: height - 1, "text-anchor": "end", class: "x-time" }, peak > 0 ? `peak ${bytes(peak)}/s` : "idle"));
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
    $("pool-bar").setAttribute("aria-label", `${stats.active} threads active and ${stats.allocated} granted of ${limit}`);
    $("pool-bar").title = `${stats.active} active, ${stats.allocated} granted, ${Math.max(0, limit - stats.allocated)} free of ${limit}`;
    $("history-every").textContent = historyEvery ? String(historyEvery) : "few";
    const box = $("pool-chart");
    box.replaceChildren(poolChart(box.clientWidth || 900, now));
    const shares = stats.priorityAllocations;
    $("pool-shares").textContent =
      `shares LOW ${shares.LOW}, NORMAL ${shares.NORMAL}, HIGH ${shares.HIGH}; ` +
      `at most ${stats.maxThreadsPerMigration} threads per migration and ` +
      `${stats.maxRunningMigrations || "unlimited"} running at once`;
  }

  function renderNodes(stats) {
    const nodes = Array.isArray(stats.nodes) ? stats.nodes : [];
    $("nodes").hidden = nodes.length === 0;
    const rows = nodes.map((node) => {
      const tr = el("tr");
      tr.dataset.node = node.nodeId;
      const age = node.heartbeatAgeSeconds;
      tr.appendChild(el("td", "id", node.nodeId));
      tr.appendChild(el("td", "", node.host));
      const heartbeat = tr.appendChild(el("td", "", typeof age === "number" ? `${age.toFixed(1)} s ago` : "–"));
      if (typeof age === "number" && age > 15) heartbeat.classList.add("warn");
      tr.appendChild(el("td", "", String(node.granted)));
      tr.appendChild(el("td", "", String(node.active)));
      tr.appendChild(el("td", "", String(node.runningMigrations)));
      return tr;
    });
    document.querySelector("#nodes-table tbody").replaceChildren(...rows);
  }

  // What a migration's bytes are made of, each figure with its label: a disk skips holes and
  // zeroes runs, an incremental files pass checks everything and copies little.
  function figures(migration) {
    const p = migration.progress || {};
    const parts = [];
    const add = (label, value, title) => parts.push({ label, value, title });
    add("copied", bytes(p.bytesCopied), "bytes read from the source and written");
    if (migration.kind === "disk") {
      if (p.bytesZeroed) add("zeroed", bytes(p.bytesZeroed), "zero runs written as zeroes, without data");
      if (p.bytesSkipped) add("skipped", bytes(p.bytesSkipped), "holes and ranges the target already held");
    } else if (migration.kind === "files") {
      if (typeof p.filesCopied === "number") parts[0].value += ` (${count(p.filesCopied)} files)`;
      if (p.filesSkipped) add("skipped", `${count(p.filesSkipped)} files`, "files already equal on the target");
      if (typeof p.bytesScanned === "number") add("checked", `${bytes(p.bytesScanned)} (${count(p.filesScanned)} files)`, "what the scan has found and compared so far");
      if (p.filesDeleted) add("deleted", `${count(p.filesDeleted)} files`, "target entries absent from the source");
      if (p.directoriesDeleted) add("deleted dirs", `${count(p.directoriesDeleted)} directories`, "target directories absent from the source");
    }
    if (typeof p.bytesTotal === "number" && p.bytesTotal > 0) add("of", bytes(p.bytesTotal), "the whole work of this pass");
    return parts;
  }

  function warnings(migration, live) {
    const p = migration.progress || {};
    const found = [];
    // A RUNNING migration with an error is waiting for its source or target (the row below says which).
    if (migration.state === "RUNNING" && migration.error) found.push(["waiting", "waiting for a server"]);
    if (p.retries) found.push(["retries", `${count(p.retries)} retries`]);
    if (p.filesFailed) found.push(["failed", `${count(p.filesFailed)} files failed`]);
    if (migration.state === "RUNNING" && live && live.granted === 0) found.push(["threads", "waiting for threads"]);
    return found;
  }

  function row(migration, live, now) {
    const id = migration.migrationId;
    const progress = migration.progress || {};
    const pool = migration.pool;
    const running = migration.state === "RUNNING";
    const speed = running ? (live ? live.bytesPerSecond : progress.bytesPerSecond) || 0 : 0;

    const tr = el("tr");
    tr.dataset.id = id;
    tr.dataset.state = migration.state;
    const percent = typeof progress.percentComplete === "number" ? progress.percentComplete : null;
    tr.dataset.percent = percent === null ? "" : String(percent);

    const name = tr.appendChild(el("td", "id"));
    name.appendChild(el("div", "name", id)).title = `${migration.source} → ${migration.target}`;
    const share = `${pool.percentage}${pool.percentageSource === "override" ? " own" : ""}`;
    name.appendChild(el("div", "sub", `${migration.kind} · ${migration.priority} · ${share}`));

    const stateCell = tr.appendChild(el("td", "state-cell"));
    stateCell.appendChild(el("span", `state ${migration.state}`, migration.state));
    for (const [kind, text] of warnings(migration, live)) {
      const chip = stateCell.appendChild(el("div", `warning ${kind}`, text));
      chip.title = text;
    }

    const threads = tr.appendChild(el("td", "threads", `${pool.active} / ${pool.granted} / ${pool.requested}`));
    threads.title = `${pool.active} at work, ${pool.granted} granted, ${pool.requested} requested`;

    const cell = tr.appendChild(el("td", "progress-cell"));
    const box = cell.appendChild(el("div", "progress"));
    const bar = box.appendChild(el("div", "bar"));
    bar.appendChild(el("div")).style.width = `${percent === null ? 0 : percent}%`;
    box.appendChild(el("span", "pct", percent === null ? "–" : `${percent.toFixed(1)}%`));
    const list = cell.appendChild(el("div", "figures"));
    for (const part of figures(migration)) {
      const item = list.appendChild(el("span", "figure"));
      item.dataset.label = part.label;
      item.title = part.title;
      item.append(el("b", "", part.label), ` ${part.value}`);
    }

    const speedCell = tr.appendChild(el("td", "speed-cell"));
    speedCell.appendChild(el("div", "speed", running ? `${bytes(speed)}/s` : "–"));
    speedCell.appendChild(el("div", "eta", running ? `ETA ${duration(progress.etaSeconds)}` : ""));
    tr.appendChild(el("td", "chart")).appendChild(sparkline(id, now));

    const actions = tr.appendChild(el("td", "actions"));
    for (const [action, label] of ACTIONS[migration.state] || []) {
      const button = actions.appendChild(el("button", `action ${action}`, label));
      button.type = "button";
      button.dataset.action = action;
      button.dataset.id = id;
    }
    if (migration.error) {
      const errorRow = el("tr");
      errorRow.dataset.errorOf = id;
      const td = errorRow.appendChild(el("td", "error", migration.error));
      td.colSpan = 7;
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
  }

  function setStatus(text, isError) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  // What an action answered stays in the status line for a while, over the polls' "updated".
  let notice = null;
  const NOTICE_MS = 15000;

  function tell(text, isError) {
    notice = { text, isError, until: Date.now() + NOTICE_MS };
    setStatus(text, isError);
  }

  // Ask for a token: the server wants one (401), or a stronger one (403).
  function askForToken(why) {
    $("token-form").classList.add("needed");
    $("token").placeholder = why;
    $("token").focus();
  }

  function explain(error) {
    if (error.status === 401) {
      askForToken("paste a token: viewer to watch, operator to act");
      return "A token is needed: paste a viewer (or stronger) token and press Use.";
    }
    if (error.status === 403) return `This token may not read the stats: ${error.message}`;
    if (error.status) return `The server answered ${error.status}: ${error.message}`;
    return `Cannot reach ferry (${error.message}); retrying.`;
  }

  // -- polling and acting -------------------------------------------------------------------

  let timer = null;
  let latest = null; // the last poll's answers, drawn again when the window is resized

  function render(now) {
    renderPool(latest.stats, now);
    renderNodes(latest.stats);
    renderMigrations(latest.stats, latest.migrations, now);
  }

  async function poll() {
    window.clearTimeout(timer);
    try {
      const [stats, migrations] = await Promise.all([call("GET", "/stats/scannerPoolStats"), call("GET", "/migrations"), loadHistory()]);
      const now = Date.now();
      latest = { stats, migrations };
      render(now);
      if (notice && notice.until > now) {
        setStatus(notice.text, notice.isError);
      } else {
        notice = null;
        $("token-form").classList.remove("needed");
        setStatus(`updated ${new Date(now).toLocaleTimeString()}, every ${INTERVAL_MS / 1000} s`, false);
      }
    } catch (error) {
      setStatus(explain(error), true);
    } finally {
      timer = window.setTimeout(poll, INTERVAL_MS);
    }
  }

  async function act(button) {
    const { action, id } = button.dataset;
    button.disabled = true;
    try {
      const migration = await call("POST", `/migrations/${encodeURIComponent(id)}/${action}`);
      tell(`${action}: ${id} is now ${migration.state}`, false);
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        askForToken(`an operator token, to ${action} ${id}`);
        tell(`To ${action} ${id}, paste an operator (or admin) token and press Use. (${error.message})`, true);
      } else {
        tell(`Could not ${action} ${id}: ${error.message}`, true);
      }
    } finally {
      poll();
    }
  }

  document.querySelector("#migrations tbody").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) act(button);
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = $("token").value.trim();
    if (typed) window.sessionStorage.setItem(TOKEN_KEY, typed);
    notice = null;
    $("token").value = "";
    $("token").placeholder = token() ? "token kept for this tab" : "bearer token";
    poll();
  });
  $("token-forget").addEventListener("click", () => {
    window.sessionStorage.removeItem(TOKEN_KEY);
    $("token").placeholder = "bearer token";
    poll();
  });
  window.addEventListener("resize", () => latest && render(Date.now()));
  if (token()) $("token").placeholder = "token kept for this tab";
  poll();
})();
