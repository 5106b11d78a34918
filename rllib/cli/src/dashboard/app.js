// The dashboard page: polls /api/status every second while the tab is visible and renders it.
// Every text from the API goes through textContent or setAttribute: it is never parsed as HTML.
"use strict";

const POLL_MS = 1000;
const FINISHED_CURVES = 3; // The most recent finished jobs whose curves stay on the page.
const TRAIN = "env_runners/episode_return_mean";
const EVAL = "evaluation/episode_return_mean";
const SVG_NS = "http://www.w3.org/2000/svg";
const FINISHED = new Set(["SUCCEEDED", "FAILED", "STOPPED"]);

let timer = null;
let inFlight = false;
// Curves of finished jobs, fetched once after they ended: job id -> progress JSON.
const finishedCurves = new Map();

// ---- small DOM helpers ----

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : text(c));
  return node;
}

function svg(tag, attrs, content) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (content !== undefined) node.textContent = content;
  return node;
}

function text(v) {
  return v === null || v === undefined || v === "" ? "—" : String(v);
}

function td(v, cls) {
  return el("td", cls ? { class: cls } : {}, text(v));
}

function stateCell(state) {
  return el("td", { class: "state state-" + String(state).replace(/[^A-Za-z_]/g, "") }, text(state));
}

function fillTable(id, rows, columns, emptyText) {
  const body = document.querySelector("#" + id + " tbody");
  const countEl = document.getElementById(id + "-count");
  if (countEl) countEl.textContent = "(" + rows.length + ")";
  if (rows.length === 0) {
    body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: columns }, emptyText)));
  } else {
    body.replaceChildren(...rows);
  }
}

// ---- formatting ----

function num(v, digits) {
  if (typeof v !== "number" || !isFinite(v)) return "—";
  return Number.isInteger(v) ? String(v) : v.toFixed(digits === undefined ? 1 : digits);
}

function bytes(v) {
  if (typeof v !== "number" || !isFinite(v)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(1)) + " " + units[i];
}

function duration(ms) {
  if (typeof ms !== "number" || !isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return Math.round(ms) + " ms";
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function time(ms) {
  return typeof ms === "number" && isFinite(ms) ? new Date(ms).toLocaleString() : "—";
}

function steps(v) {
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(v % 1e6 === 0 ? 0 : 1) + "M";
  if (Math.abs(v) >= 1e3) return (v / 1e3).toFixed(v % 1e3 === 0 ? 0 : 1) + "k";
  return num(v, 0);
}

// ---- tables ----

function nodeRow(n) {
  const total = (n.resources_total || {}).CPU;
  const free = (n.resources_free || {}).CPU;
  const cpu = typeof total === "number" ? num(typeof free === "number" ? total - free : null) + " / " + num(total) : "—";
  const others = Object.keys(n.resources_total || {}).filter(k => k !== "CPU").sort()
    .map(k => k + " " + num((n.resources_total[k] || 0) - ((n.resources_free || {})[k] || 0)) + "/" + num(n.resources_total[k]))
    .join(", ");
  const store = bytes(n.store_used_bytes) + " / " + (n.store_capacity_bytes > 0 ? bytes(n.store_capacity_bytes) : "—");
  const heartbeat = typeof n.last_heartbeat_ms_ago === "number" ? duration(n.last_heartbeat_ms_ago) + " ago" : null;
  return el("tr", { class: "node", "data-node-id": n.id, "data-state": n.state },
    td(n.id, "num"), stateCell(n.state), td(n.role), td(n.address), td(n.pid, "num"), td(cpu, "num"),
    td(others), td(store, "num"), td(bytes(n.spilled_bytes), "num"), td(bytes(n.bytes_pulled), "num"),
    td(bytes(n.bytes_served), "num"), td(heartbeat, "num"), td(n.death_reason, "wrap"));
}

function actorRow(a) {
  return el("tr", { class: "actor", "data-actor-id": a.id, "data-state": a.state },
    td(a.id, "num"), td(a.name), td(a.type), td(a.node, "num"), stateCell(a.state), td(a.restarts, "num"),
    td(a.death_reason, "wrap"));
}

function placementGroupRow(g) {
  const bundles = (g.bundles || []).map(b => {
    const res = Object.entries(b.resources || {}).map(([k, v]) => k + " " + num(v)).join(", ");
    return "{" + res + "}" + (b.node === null || b.node === undefined ? " unplaced" : " @ node " + b.node);
  }).join("  ");
  return el("tr", { class: "placement-group", "data-pg-id": g.id, "data-state": g.state },
    td(g.id, "num"), td(g.name), td(g.strategy), stateCell(g.state), td(bundles, "wrap"));
}

function jobRow(j, now) {
  const end = typeof j.ended_at_ms === "number" ? j.ended_at_ms : (j.state === "RUNNING" ? now : null);
  const took = typeof j.submitted_at_ms === "number" && end !== null ? duration(end - j.submitted_at_ms) : null;
  return el("tr", { class: "job", "data-job-id": j.id, "data-state": j.state },
    td(j.id), td(j.name), stateCell(j.state), td(j.entrypoint, "wrap"), td(time(j.submitted_at_ms)), td(took, "num"));
}

// ---- learning curves ----

// The jobs whose curves are shown: running ones, then the latest finished ones.
function curveJobs(jobs) {
  const running = jobs.filter(j => j.state === "RUNNING");
  const latest = j => (typeof j.ended_at_ms === "number" ? j.ended_at_ms : (j.submitted_at_ms || 0));
  const finished = jobs.filter(j => FINISHED.has(j.state)).sort((a, b) => latest(b) - latest(a)).slice(0, FINISHED_CURVES);
  return running.concat(finished);
}

async function fetchCurve(job) {
  if (FINISHED.has(job.state) && finishedCurves.has(job.id)) return finishedCurves.get(job.id);
  const data = await getJson("/api/jobs/" + encodeURIComponent(job.id) + "/progress");
  if (FINISHED.has(job.state)) finishedCurves.set(job.id, data);
  return data;
}

function chart(jobId, data) {
  const W = 520, H = 240, left = 52, right = 12, top = 10, bottom = 30;
  const names = [TRAIN, EVAL].filter(n => Array.isArray((data.series || {})[n]));
  const all = names.flatMap(n => data.series[n]);
  const train = (data.series || {})[TRAIN] || [];
  const root = svg("svg", { class: "curve", "data-job-id": jobId, "data-points": train.length,
    viewBox: "0 0 " + W + " " + H, role: "img" });
  root.append(svg("title", {}, "Episode return over env steps, job " + jobId));
  if (all.length === 0) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no points"));
    return root;
  }
  let [x0, x1] = [Math.min(...all.map(p => p[0])), Math.max(...all.map(p => p[0]))];
  let [y0, y1] = [Math.min(...all.map(p => p[1])), Math.max(...all.map(p => p[1]))];
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= 1; y1 += 1; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  const sx = x => left + (x - x0) / (x1 - x0) * (W - left - right);
  const sy = y => top + (1 - (y - y0) / (y1 - y0)) * (H - top - bottom);
  for (let i = 0; i <= 4; i++) {
    const y = y0 + (y1 - y0) * i / 4;
    root.append(svg("line", { class: "grid", x1: left, x2: W - right, y1: sy(y), y2: sy(y) }));
    root.append(svg("text", { x: left - 4, y: sy(y) + 4, "text-anchor": "end" }, y.toFixed(y1 - y0 < 10 ? 2 : y1 - y0 < 100 ? 1 : 0)));
  }
  root.append(svg("line", { class: "axis", x1: left, x2: W - right, y1: H - bottom, y2: H - bottom }));
  root.append(svg("line", { class: "axis", x1: left, x2: left, y1: top, y2: H - bottom }));
  root.append(svg("text", { x: left, y: H - bottom + 14, "text-anchor": "start" }, steps(x0)));
  root.append(svg("text", { x: W - right, y: H - bottom + 14, "text-anchor": "end" }, steps(x1)));
  root.append(svg("text", { x: (left + W - right) / 2, y: H - 4, "text-anchor": "middle" }, data.x || "env steps"));
  names.forEach((name, i) => {
    const points = data.series[name];
    if (points.length === 0) return;
    const line = svg("polyline", { class: "series series-" + i, "data-series": name, "data-points": points.length,
      points: points.map(p => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" ") });
    root.append(line);
    if (points.length === 1 || name === EVAL) {
      for (const p of points) root.append(svg("circle", { class: "series-" + i, cx: sx(p[0]), cy: sy(p[1]), r: 2.5 }));
    }
  });
  return root;
}

function curveFigure(job, data) {
  const train = ((data.series || {})[TRAIN] || []);
  const last = train.length ? " last " + num(train[train.length - 1][1], 1) : "";
  const note = el("span", { class: "note" }, " " + job.state + ", " + (data.rows || 0) + " rows" + last);
  const legend = el("div", { class: "legend" },
    ...[TRAIN, EVAL].filter(n => (data.series || {})[n]).map((n, i) =>
      el("span", {}, el("span", { class: "swatch series-" + i }), n)));
  return el("figure", { class: "job-curve", "data-job-id": job.id },
    el("figcaption", {}, text(job.name) + " (" + job.id + ")", note), chart(job.id, data), legend);
}

async function renderCurves(jobs) {
  const shown = curveJobs(jobs);
  const results = await Promise.allSettled(shown.map(fetchCurve));
  const figures = [];
  const failures = [];
  shown.forEach((job, i) => {
    const r = results[i];
    if (r.status === "fulfilled") {
      figures.push(curveFigure(job, r.value));
    } else {
      failures.push("job " + job.id + ": " + r.reason.message);
      const old = document.querySelector('#curves figure.job-curve[data-job-id="' + CSS.escape(String(job.id)) + '"]');
      if (old) figures.push(old);
    }
  });
  document.getElementById("curves").replaceChildren(...figures);
  if (figures.length === 0) {
    document.getElementById("curves").append(el("p", { class: "empty" }, "No running or finished jobs."));
  }
  if (failures.length) throw new Error("cannot load learning curves: " + failures.join("; "));
}

// ---- polling ----

async function getJson(path) {
  let res;
  try {
    res = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  } catch (e) {
    throw new Error("cannot reach the dashboard at " + location.host + " (" + e.message + ")");
  }
  if (res.status === 401) {
    throw new Error("not authenticated: open /?token=TOKEN with the cluster token (SESSION_DIR/token on the head)");
  }
  const body = await res.text();
  let value;
  try {
    value = JSON.parse(body);
  } catch (e) {
    throw new Error(path + " answered " + res.status + " with something that is not JSON");
  }
  if (!res.ok) throw new Error(path + ": " + (value && value.error ? value.error : "HTTP " + res.status));
  return value;
}

function showError(message) {
  const banner = document.getElementById("error");
  banner.textContent = message;
  banner.hidden = false;
}

async function refresh() {
  const s = await getJson("/api/status");
  const nodes = Array.isArray(s.nodes) ? s.nodes : [];
  const actors = Array.isArray(s.actors) ? s.actors : [];
  const groups = Array.isArray(s.placement_groups) ? s.placement_groups : [];
  const jobs = Array.isArray(s.jobs) ? s.jobs : [];
  const now = Date.now();
  document.getElementById("head").textContent = text(s.head);
  const alive = nodes.filter(n => n.state === "ALIVE");
  const cpus = alive.reduce((acc, n) => acc + ((n.resources_total || {}).CPU || 0), 0);
  const used = alive.reduce((acc, n) => acc + (n.store_used_bytes || 0), 0);
  document.getElementById("summary").textContent =
    alive.length + " of " + nodes.length + " nodes alive, " + num(cpus) + " CPUs, store " + bytes(used) + " used";
  fillTable("nodes", nodes.map(nodeRow), 13, "No nodes.");
  fillTable("jobs", jobs.map(j => jobRow(j, now)), 6, "No jobs.");
  fillTable("actors", actors.map(actorRow), 7, "No actors.");
  fillTable("placement-groups", groups.map(placementGroupRow), 5, "No placement groups.");
  await renderCurves(jobs);
  document.getElementById("updated").textContent = new Date(now).toLocaleTimeString();
}

async function tick() {
  timer = null;
  if (inFlight) return;
  inFlight = true;
  try {
    await refresh();
    document.getElementById("error").hidden = true;
  } catch (e) {
    showError(e.message);
  } finally {
    inFlight = false;
    schedule();
  }
}

function schedule() {
  if (!document.hidden && timer === null) timer = setTimeout(tick, POLL_MS);
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    clearTimeout(timer);
    timer = null;
  } else if (!inFlight && timer === null) {
    tick();
  }
});

tick();
