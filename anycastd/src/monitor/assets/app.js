// anycastd monitor: plain JS, no framework, no request to any other host.
// Data: GET /api/me, /api/status, /api/history once; then /api/events (SSE) pushes
// every change. Actions POST with the session's CSRF token in X-CSRF-Token.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let me = null;          // {user, role, csrf}
let history = [];       // [{t, local, peers: {name: load}, spill: {name: share}}]
let status = null;
let statusAt = 0;       // performance.now() when `status` arrived
let feed = null;

function h(tag, attrs, ...kids) {
  const el = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of kids.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(method, path, body) {
  const headers = {};
  if (method !== "GET" && me) headers["X-CSRF-Token"] = me.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch (_) { /* 204 */ }
  if (r.status === 401 && path !== "/api/login") { showLogin(data && data.error); }
  return { ok: r.ok, status: r.status, data };
}

function toast(msg, bad) {
  const t = $("toast");
  t.textContent = msg;
  t.className = "toast" + (bad ? " bad" : "");
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

function confirmDialog(title, text, okLabel) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = okLabel;
    d.returnValue = "cancel";
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
  });
}

// ---- login ----
function showLogin(msg) {
  if (feed) { feed.close(); feed = null; }
  me = null;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = msg || "";
  $("login-user").focus();
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  const r = await api("POST", "/api/login", { user: $("login-user").value, password: $("login-password").value });
  $("login-password").value = "";
  if (!r.ok) { $("login-error").textContent = (r.data && r.data.error) || ("error " + r.status); return; }
  me = r.data;
  start();
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/api/logout");
  showLogin("logged out");
});

async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("who-user").textContent = me.user + " (" + me.role + ")";
  const [st, hist] = await Promise.all([api("GET", "/api/status"), api("GET", "/api/history")]);
  if (!st.ok) return;
  history = hist.ok ? hist.data : [];
  render(st.data);
  connect();
}

function connect() {
  if (feed) feed.close();
  feed = new EventSource("/api/events");
  feed.addEventListener("open", () => setLive(true));
  feed.addEventListener("error", () => setLive(false));
  feed.addEventListener("status", (e) => {
    const f = JSON.parse(e.data);
    if (f.sample && (!history.length || history[history.length - 1].t < f.sample.t)) {
      history.push(f.sample);
      while (history.length > 360) history.shift();
    }
    render(f.status);
  });
  feed.addEventListener("expired", () => { feed.close(); feed = null; showLogin("the session expired: log in again"); });
}

function setLive(on) {
  const l = $("live");
  l.className = "live " + (on ? "on" : "off");
  l.textContent = on ? "live" : "reconnecting";
}

// ---- rendering ----
const fmtLoad = (l) => (l === null || l === undefined ? "∞" : l.toFixed(2));
const pct = (x) => Math.round(x * 100) + "%";
// Clock fields (ages, uptimes) count on here from the last status: the daemon pushes
// a status only when something changed, never to move a clock.
const elapsed = () => (status ? Math.floor((performance.now() - statusAt) / 1000) : 0);
function ago(unix) {
  if (!unix || !status) return "-";
  const s = Math.max(0, status.now + elapsed() - unix);
  if (s < 90) return s + "s ago";
  if (s < 5400) return Math.round(s / 60) + "m ago";
  return Math.round(s / 3600) + "h ago";
}
// kind "ago": v is a Unix time; "age": seconds at the status's `now`; "up": uptime then.
function clockText(kind, v) {
  if (kind === "ago") return ago(v);
  if (kind === "age") return (v + elapsed()) + "s ago";
  return Math.round((v + elapsed()) / 60) + "m";
}
const clock = (kind, v) => h("span", { class: "clock", "data-kind": kind, "data-v": v }, clockText(kind, v));
setInterval(() => {
  for (const el of document.querySelectorAll(".clock")) {
    const t = clockText(el.dataset.kind, Number(el.dataset.v));
    if (el.textContent !== t) el.textContent = t;
  }
}, 1000);
function loadClass(l) {
  if (l === null || l === undefined) return "s-bad";
  return l > 1.1 ? "s-bad" : l >= 0.7 ? "s-warn" : "s-ok";
}
const STATE_CLASS = { announced: "s-ok", withdrawn: "s-bad", draining: "s-warn", drained: "s-idle",
  up: "s-ok", down: "s-bad", disabled: "s-idle", Established: "s-ok", known: "s-ok", stale: "s-warn", unknown: "s-idle" };
const badge = (text) => h("span", { class: "badge " + (STATE_CLASS[text] || "s-warn") }, text);

function table(id, head, rows) {
  const t = $(id);
  t.replaceChildren(h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.length ? rows : [h("tr", {}, h("td", { colspan: head.length, class: "reason" }, "none"))]));
}

function render(st) {
  status = st;
  statusAt = performance.now();
  $("site-name").textContent = st.site;
  const up = st.real_servers.filter((s) => s.state === "up").length;
  const announced = st.vips.filter((v) => v.state === "announced").length;
  const est = st.sessions.filter((s) => s.state === "Established").length;
  $("summary").replaceChildren(
    h("span", { class: "badge " + loadClass(st.local_load) }, "load " + fmtLoad(st.local_load)),
    h("span", { class: "badge " + (announced === st.vips.length ? "s-ok" : "s-warn") }, announced + "/" + st.vips.length + " VIPs announced"),
    h("span", { class: "badge " + (est === st.sessions.length ? "s-ok" : "s-bad") }, est + "/" + st.sessions.length + " BGP up"),
    h("span", { class: "badge " + (up === st.real_servers.length ? "s-ok" : "s-warn") }, up + "/" + st.real_servers.length + " servers up"),
    h("span", { class: "badge " + (st.dataplane.ok ? "s-ok" : "s-bad") }, "data plane " + (st.dataplane.ok ? "ok" : "failing")));
  renderVips(st);
  renderServers(st);
  table("sessions", ["Neighbor", "AS", "State", "Up", "Sent/recv", "BFD", "Last error"], st.sessions.map((s) =>
    h("tr", {}, h("td", {}, s.neighbor), h("td", { class: "num" }, s.remote_asn), h("td", {}, badge(s.state)),
      h("td", {}, s.uptime_s === null ? "-" : clock("up", s.uptime_s)),
      h("td", { class: "num" }, s.prefixes_sent + "/" + s.prefixes_received),
      h("td", {}, s.bfd ? badge(s.bfd.state === "Up" ? "up" : "down") : "-"),
      h("td", { class: "reason" }, s.last_error || ""))));
  const dp = st.dataplane;
  $("dataplane").replaceChildren(h("dl", { class: "kv" },
    h("dt", {}, "State"), h("dd", {}, h("span", { class: "badge " + (dp.ok ? "s-ok" : "s-bad") }, dp.ok ? "in place" : "failing")),
    h("dt", {}, "Last reconcile"), h("dd", {}, clock("ago", dp.last_reconcile)),
    h("dt", {}, "Changes then"), h("dd", {}, dp.last_changes),
    h("dt", {}, "Last error"), h("dd", {}, dp.last_error || "none")));
  table("peers", ["Site", "State", "Load", "Report", "Spills to"], st.peers.map((p) =>
    h("tr", {}, h("td", {}, p.name), h("td", {}, badge(p.state)),
      h("td", { class: "num " + loadClass(p.load) }, p.state === "known" ? fmtLoad(p.load) : "-"),
      h("td", {}, p.report_age_s === null ? "never" : clock("age", p.report_age_s)),
      h("td", {}, (p.spilling_to || []).length ? p.spilling_to.join(", ") + " (" + pct(p.spill_share || 0) + ")" : "-"))));
  renderFleet(st);
  renderCharts(st);
}

function renderVips(st) {
  const op = me && me.role === "operator";
  table("vips", ["VIP", "Prefix", "State", "Why", "Servers up", "Since", op ? "" : null].filter((x) => x !== null), st.vips.map((v) => {
    const drained = v.state === "drained" || v.state === "draining";
    const act = op ? h("td", {}, drained
      ? h("button", { type: "button", "data-vip": v.name, class: "undrain", onclick: () => undrain(v.name) }, "Undrain")
      : h("button", { type: "button", "data-vip": v.name, class: "danger drain", onclick: () => drain(v.name) }, "Drain")) : null;
    return h("tr", { "data-vip": v.name }, h("td", {}, h("strong", {}, v.name)), h("td", {}, v.prefix),
      h("td", {}, badge(v.state)), h("td", { class: "reason" }, v.reason),
      h("td", { class: "num" }, v.servers_up + " / min " + v.min_up), h("td", {}, clock("ago", v.since)), act);
  }));
}

function renderServers(st) {
  const op = me && me.role === "operator";
  table("servers", ["VIP", "Server", "Service", "State", "Connections / capacity", "Weight", "Last check", op ? "" : null].filter((x) => x !== null),
    st.real_servers.map((s) => {
      const fill = h("span", {});
      fill.style.width = Math.min(100, s.capacity ? (100 * s.active_conns) / s.capacity : 0) + "%";
      const addr = s.address.includes(":") ? "[" + s.address + "]:" + s.port : s.address + ":" + s.port;
      const act = op ? h("td", {}, s.state === "disabled"
        ? h("button", { type: "button", onclick: () => serverChange(s.vip, addr, true) }, "Enable")
        : h("button", { type: "button", onclick: () => serverChange(s.vip, addr, false) }, "Disable")) : null;
      return h("tr", { "data-server": addr }, h("td", {}, s.vip), h("td", {}, addr), h("td", {}, s.service),
        h("td", {}, badge(s.state)),
        h("td", { class: "num" }, h("span", { class: "bar" }, fill), s.active_conns + " / " + s.capacity),
        h("td", { class: "num" }, s.weight), h("td", { class: "reason" }, s.disabled_by ? "disabled by " + s.disabled_by : (s.last_check || "")), act);
    }));
}

// ---- actions ----
async function drain(vip) {
  const ok = await confirmDialog("Drain " + vip + "?",
    "VIP " + vip + " is announced with GRACEFUL_SHUTDOWN, then withdrawn from every BGP neighbor: this site stops receiving its traffic.",
    "Drain and withdraw");
  if (!ok) return;
  const r = await api("POST", "/api/drain/" + encodeURIComponent(vip));
  toast(r.ok ? r.data.message : "drain refused: " + (r.data ? r.data.error : r.status), !r.ok);
}

async function undrain(vip) {
  const r = await api("POST", "/api/undrain/" + encodeURIComponent(vip));
  toast(r.ok ? r.data.message : "undrain refused: " + (r.data ? r.data.error : r.status), !r.ok);
}

async function serverChange(vip, server, enable) {
  const path = "/api/server/" + (enable ? "enable" : "disable");
  let r = await api("POST", path, { vip, server, force: false });
  if (!enable && r.status === 409) {
    const ok = await confirmDialog("Withdraw " + vip + "?", r.data.error + " Disable it anyway?", "Disable and withdraw");
    if (!ok) return;
    r = await api("POST", path, { vip, server, force: true });
  }
  toast(r.ok ? r.data.message : "refused: " + (r.data ? r.data.error : r.status), !r.ok);
}

// ---- fleet: this site in the middle, peers around it, spill arrows ----
function renderFleet(st) {
  const W = 560, H = 320, cx = W / 2, cy = H / 2, R = 120;
  const nodes = [{ name: st.site, load: st.local_load, state: "known", self: true }].concat(st.peers);
  const pos = {};
  nodes.forEach((n, i) => {
    if (i === 0 && nodes.length > 1) { pos[n.name] = [cx, cy]; return; }
    const k = nodes.length - 1, a = -Math.PI / 2 + (2 * Math.PI * (i - 1)) / Math.max(1, k);
    pos[n.name] = nodes.length === 1 ? [cx, cy] : [cx + R * 1.7 * Math.cos(a), cy + R * Math.sin(a)];
  });
  const svg = h("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "fleet" });
  svg.append(h("svg:defs", {}, h("svg:marker", { id: "head", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    h("svg:path", { d: "M0,0 L10,5 L0,10 z", fill: "#d29922" }))));
  const arrows = [];
  for (const s of st.spill) if (s.share > 0) arrows.push([st.site, s.peer, s.share]);
  for (const p of st.peers) for (const to of p.spilling_to || []) arrows.push([p.name, to, p.spill_share || 0]);
  const r0 = 34;
  for (const [from, to, share] of arrows) {
    if (!pos[from] || !pos[to]) continue;
    const [x1, y1] = pos[from], [x2, y2] = pos[to];
    const d = Math.hypot(x2 - x1, y2 - y1) || 1, ux = (x2 - x1) / d, uy = (y2 - y1) / d;
    // Bend to the left of the direction, so two opposite arrows do not overlap.
    const mx = (x1 + x2) / 2 - uy * 22, my = (y1 + y2) / 2 + ux * 22;
    svg.append(h("svg:path", { class: "arrow", d: `M${x1 + ux * r0},${y1 + uy * r0} Q${mx},${my} ${x2 - ux * (r0 + 4)},${y2 - uy * (r0 + 4)}`,
      "stroke-width": 1.5 + 6 * share, "marker-end": "url(#head)" }));
    svg.append(h("svg:text", { class: "arrow-label", x: mx, y: my - 4, "text-anchor": "middle" }, pct(share)));
  }
  const colour = { "s-ok": "#3fb950", "s-warn": "#d29922", "s-bad": "#f85149", "s-idle": "#6e7681" };
  for (const n of nodes) {
    const [x, y] = pos[n.name];
    const c = n.state === "known" ? colour[loadClass(n.load)] : colour["s-idle"];
    svg.append(h("svg:g", { "data-site": n.name },
      h("svg:circle", { cx: x, cy: y, r: r0, fill: "#0f1419", stroke: c, "stroke-width": n.self ? 4 : 2.5 }),
      h("svg:text", { x, y: y - 2, "text-anchor": "middle" }, n.name),
      h("svg:text", { class: "sub", x, y: y + 14, "text-anchor": "middle" },
        n.state === "known" ? "load " + fmtLoad(n.load) : n.state)));
  }
  $("fleet").replaceChildren(svg);
}

// ---- charts: tiny hand-written SVG line charts over the last hour ----
const PALETTE = ["#58a6ff", "#3fb950", "#d29922", "#bc8cff", "#f778ba", "#39c5cf"];
function chart(title, series, maxY, fmtY, threshold) {
  const W = 600, H = 110, P = 4;
  const now = status ? status.now : Date.now() / 1000, t0 = now - 3600;
  const x = (t) => P + ((t - t0) / 3600) * (W - 2 * P);
  const y = (v) => H - P - (Math.min(v, maxY) / maxY) * (H - 2 * P);
  const svg = h("svg:svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  for (const g of [0.25, 0.5, 0.75]) svg.append(h("svg:line", { class: "grid-line", x1: 0, x2: W, y1: y(maxY * g), y2: y(maxY * g) }));
  if (threshold !== undefined) svg.append(h("svg:line", { class: "threshold", x1: 0, x2: W, y1: y(threshold), y2: y(threshold) }));
  svg.append(h("svg:text", { x: P, y: 11 }, fmtY(maxY)));
  svg.append(h("svg:text", { x: P, y: H - P - 2 }, "-60 min"));
  const legend = h("span", { class: "legend" });
  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    let d = "", pen = false;
    for (const [t, v] of s.points) {
      if (v === null || v === undefined) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(t).toFixed(1) + "," + y(v).toFixed(1);
      pen = true;
    }
    if (d) svg.append(h("svg:path", { d, fill: "none", stroke: colour, "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
    // The newest point as a dot: visible from the first sample on.
    const lastPt = s.points.filter(([, v]) => v !== null && v !== undefined).pop();
    if (lastPt) svg.append(h("svg:circle", { cx: x(lastPt[0]), cy: y(lastPt[1]), r: 3, fill: colour }));
    const last = s.points.length ? s.points[s.points.length - 1][1] : null;
    const label = h("span", {}, "● " + s.name + " " + (last === null || last === undefined ? "-" : s.fmt(last)));
    label.style.color = colour;
    legend.append(label);
  });
  return h("div", { class: "chart" }, h("div", { class: "title" }, h("span", {}, title), legend), svg);
}

function renderCharts(st) {
  const pts = (f) => history.map((s) => [s.t, f(s)]);
  const peers = st.peers.map((p) => p.name);
  const loads = [{ name: st.site, fmt: fmtLoad, points: pts((s) => s.local) }]
    .concat(peers.map((p) => ({ name: p, fmt: fmtLoad, points: pts((s) => s.peers[p]) })));
  const maxLoad = Math.max(1.5, ...loads.flatMap((s) => s.points.map(([, v]) => v || 0)));
  const spills = peers.map((p) => ({ name: "to " + p, fmt: pct, points: pts((s) => s.spill[p] || 0) }));
  $("charts").replaceChildren(
    chart("Load (this site and peers; dashed: 1.1)", loads, Math.ceil(maxLoad * 2) / 2, (v) => v.toFixed(1), 1.1),
    chart("Spilled share of new connections", spills.length ? spills : [{ name: "no peers", fmt: pct, points: [] }], 1, pct));
}

// ---- boot: an existing session goes straight to the dashboard ----
(async () => {
  const r = await fetch("/api/me", { credentials: "same-origin" });
  if (r.ok) { me = await r.json(); start(); } else { showLogin(""); }
})();
