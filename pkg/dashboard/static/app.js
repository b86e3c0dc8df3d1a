// nodemesh dashboard: polls the controller's read-only API every second and
// renders it. No framework, no CDN: the cluster may be offline. Every value
// from the API goes into the page as text (textContent), never as markup.
"use strict";

const API = {
  readiness: "/api/status/readiness",
  topology: "/api/topology/current",
  nodes: "/api/status/nodes",
  errors: "/api/status/errors",
  edges: "/api/dashboard/edges",
  events: "/api/dashboard/events",
};
const REFRESH_MS = 1000;
const EVENTS_EVERY = 5; // refreshes between two Event reads
const SVG = "http://www.w3.org/2000/svg";

// el makes an element with attributes and children (strings become text).
function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function fill(tbody, rows, empty, cols) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: cols, class: "muted" }, empty))]));
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok && path !== API.readiness) throw new Error(path + ": " + (body.error || r.status));
  return body;
}

const pct = (x) => (100 * x).toFixed(1) + "%";
const ms = (s) => (s >= 1 ? s.toFixed(2) + "s" : (1000 * s).toFixed(1) + "ms");
const key = (ns, name) => ns + "/" + name;

function renderController(r) {
  const c = document.getElementById("controller");
  const leader = r.leader && r.leader.enabled ? "leader " + (r.leader.leader || "unknown") : "leader election off";
  c.textContent = (r.ready ? "ready" : "NOT READY") + " · table version " + r.tableVersion + " · " + leader;
  c.className = r.ready ? "ok" : "bad";
}

function renderServices(topo) {
  const rows = (topo.services || []).map((s) => {
    let ready = 0, total = 0;
    const nodes = new Set();
    for (const p of s.ports || []) for (const e of p.endpoints || []) {
      total++;
      if (e.ready) { ready++; if (e.node) nodes.add(e.node); }
    }
    const ports = (s.ports || []).map((p) => p.port + "/" + p.protocol + (p.proxyPort ? " →" + p.proxyPort : "")).join(", ");
    return el("tr", { "data-service": key(s.namespace, s.name) },
      el("td", {}, key(s.namespace, s.name)), el("td", {}, s.meshName), el("td", {}, s.trafficType),
      el("td", {}, (s.shadowClusterIPs || []).join(", ") || "pending"), el("td", {}, ports),
      el("td", {}, ready + "/" + total + " ready" + (nodes.size ? " on " + [...nodes].sort().join(", ") : "")),
      el("td", {}, s.split || ""));
  });
  fill(document.querySelector("#services tbody"), rows, "no mesh service", 7);
}

// observedShares sums the requests per second each backend of a root
// service answered, from the edges.
function observedShares(edges, ns, service) {
  const by = {};
  let total = 0;
  for (const e of edges) {
    if (e.namespace !== ns || e.service !== service || !e.backend || e.backend === "none") continue;
    by[e.backend] = (by[e.backend] || 0) + e.rps;
    total += e.rps;
  }
  return { by, total };
}

function renderSplits(topo, edges) {
  const blocks = (topo.splits || []).map((sp) => {
    const backends = sp.active && sp.leaves && sp.leaves.length ? sp.leaves : sp.backends || [];
    const sum = backends.reduce((a, b) => a + b.weight, 0);
    const obs = observedShares(edges, sp.namespace, sp.service);
    const rows = backends.map((b) => {
      const intended = sum ? b.weight / sum : 0;
      const observed = obs.total ? (obs.by[b.service] || 0) / obs.total : null;
      return el("tr", { "data-backend": b.service },
        el("td", {}, b.service), el("td", { class: "weight" }, "weight " + b.weight),
        el("td", {}, el("span", { class: "bar", style: "width:" + (120 * intended) + "px" }), " intended " + pct(intended)),
        el("td", { class: "observed" }, observed === null ? "observed n/a" :
          [el("span", { class: "bar observed", style: "width:" + (120 * observed) + "px" }), " observed " + pct(observed)]
            .reduce((f, n) => (f.append(n), f), document.createDocumentFragment())));
    });
    const state = sp.active ? "" : " (inactive: see errors)";
    return el("div", { class: "split", "data-split": key(sp.namespace, sp.name) },
      el("h3", {}, key(sp.namespace, sp.name) + " → " + sp.service + state),
      el("table", {}, el("tbody", {}, ...rows)));
  });
  const box = document.getElementById("splits");
  box.replaceChildren(...(blocks.length ? blocks : [el("p", { class: "muted" }, "no TrafficSplit")]));
}

function renderEdges(ans) {
  const edges = (ans.edges || []).filter((e) => e.hasTraffic);
  const note = document.getElementById("edges-note");
  note.textContent = (ans.proxies || []).length + " proxies read" +
    (ans.edgeSeries ? "" : " · per-service metrics only: sources and backends unknown") +
    ((ans.errors || []).length ? " · " + ans.errors.join("; ") : "");
  const rows = edges.map((e) => el("tr", {},
    el("td", {}, e.sourceNamespace === "unknown" ? "unknown" : key(e.sourceNamespace, e.sourceWorkload)),
    el("td", {}, key(e.namespace, e.service)), el("td", {}, e.backend || "-"),
    el("td", {}, e.rps.toFixed(1)), el("td", { class: e.success < 0.99 ? "bad" : "" }, pct(e.success)),
    el("td", {}, ms(e.p50)), el("td", {}, ms(e.p99))));
  fill(document.querySelector("#edges tbody"), rows, "no requests in the last interval", 7);
  renderGraph(edges);
}

// renderGraph draws sources, services and backends in three columns with
// one line per edge, its width growing with the rate.
function renderGraph(edges) {
  const cols = [new Map(), new Map(), new Map()];
  const links = new Map();
  const link = (a, b, rps, fails) => {
    const k = a + "→" + b;
    const l = links.get(k) || { a, b, rps: 0, fails: 0 };
    l.rps += rps; l.fails += fails;
    links.set(k, l);
  };
  for (const e of edges) {
    const src = "0:" + (e.sourceNamespace === "unknown" ? "unknown" : key(e.sourceNamespace, e.sourceWorkload));
    const dst = "1:" + key(e.namespace, e.service);
    cols[0].set(src, true); cols[1].set(dst, true);
    link(src, dst, e.rps, e.rps * (1 - e.success));
    if (e.backend && e.backend !== e.service) {
      const be = "2:" + key(e.namespace, e.backend);
      cols[2].set(be, true);
      link(dst, be, e.rps, e.rps * (1 - e.success));
    }
  }
  const svg = document.getElementById("graph");
  const W = svg.clientWidth || 900, boxW = 220, boxH = 26, gap = 14;
  const xs = [10, W / 2 - boxW / 2, W - boxW - 10];
  const pos = new Map();
  let height = 40;
  cols.forEach((col, i) => {
    [...col.keys()].sort().forEach((id, j) => {
      pos.set(id, { x: xs[i], y: 10 + j * (boxH + gap) });
      height = Math.max(height, 20 + (j + 1) * (boxH + gap));
    });
  });
  svg.setAttribute("height", height);
  const parts = [];
  for (const l of links.values()) {
    const a = pos.get(l.a), b = pos.get(l.b);
    const x1 = a.x + boxW, y1 = a.y + boxH / 2, x2 = b.x, y2 = b.y + boxH / 2;
    const width = Math.min(8, 1 + Math.log10(1 + l.rps) * 2);
    parts.push(el("svg:path", { class: "edge" + (l.fails > 0 ? " failing" : ""), "stroke-width": width,
      d: `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}` }));
    // Labelled near the target, where lines from one node have parted.
    parts.push(el("svg:text", { x: x2 - 6, y: y2 - 5, "text-anchor": "end" }, l.rps.toFixed(1) + " rps"));
  }
  for (const [id, p] of pos) {
    parts.push(el("svg:g", { class: "node" + (id.startsWith("1:") ? " service" : "") },
      el("svg:rect", { x: p.x, y: p.y, width: boxW, height: boxH, rx: 4 }),
      el("svg:text", { x: p.x + 8, y: p.y + 17 }, id.slice(2))));
  }
  if (!pos.size) parts.push(el("svg:text", { x: 10, y: 25, class: "muted" }, "no traffic"));
  svg.replaceChildren(...parts);
}

// renderProxies joins what this replica heard from the proxies with the
// proxy pods (and the table version each serves, from its metrics): with
// several replicas, a proxy may poll another one.
function renderProxies(nodes, pods) {
  const byNode = new Map();
  for (const n of nodes.nodes || []) byNode.set(n.node, { status: n });
  for (const p of pods || []) {
    const row = byNode.get(p.node) || {};
    row.pod = p;
    byNode.set(p.node, row);
  }
  const yes = (b) => el("td", { class: b ? "ok" : "bad" }, b ? "yes" : "no");
  const rows = [...byNode.keys()].sort().map((node) => {
    const { status: n, pod: p } = byNode.get(node);
    const cells = n ? [
      el("td", { class: n.upToDate ? "" : "bad" }, String(n.appliedVersion)), yes(n.ready), yes(n.connected),
      el("td", { class: n.upToDate ? "ok" : "bad" }, n.upToDate ? "yes" : "behind " + nodes.tableVersion),
      el("td", {}, new Date(n.lastSeen).toLocaleTimeString()),
    ] : [el("td", { colspan: 5, class: "muted" }, "serving table " + (p.tableVersion || "?") + "; polls another controller replica")];
    return el("tr", { "data-node": node }, el("td", {}, node), el("td", {}, p ? p.pod : "-"), ...cells);
  });
  fill(document.querySelector("#proxies tbody"), rows, "no proxy has connected", 7);
}

function renderErrors(errs) {
  const items = (errs.errors || []).map((e) => el("li", {}, e.kind + " " + key(e.namespace, e.name) + ": " + e.message));
  if (errs.smi && errs.smi.missing && errs.smi.missing.length) items.unshift(el("li", {}, "SMI not served: " + errs.smi.missing.join("; ")));
  const ul = document.getElementById("errors");
  ul.replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "none")]));
}

function renderEvents(events) {
  const rows = events.map((e) => el("tr", {},
    el("td", {}, new Date(e.time).toLocaleTimeString()), el("td", { class: e.type === "Warning" ? "bad" : "" }, e.type),
    el("td", {}, e.reason), el("td", {}, e.object), el("td", {}, e.message + (e.count > 1 ? " (×" + e.count + ")" : ""))));
  fill(document.querySelector("#events tbody"), rows, "no events", 5);
}

let tick = 0;
async function refresh() {
  try {
    const [ready, topo, nodes, errs, edges] = await Promise.all(
      [API.readiness, API.topology, API.nodes, API.errors, API.edges].map(getJSON));
    renderController(ready);
    renderServices(topo);
    renderEdges(edges);
    renderSplits(topo, (edges.edges || []).filter((e) => e.hasTraffic));
    renderProxies(nodes, edges.proxies);
    renderErrors(errs);
    if (tick++ % EVENTS_EVERY === 0) {
      getJSON(API.events).then(renderEvents).catch((e) =>
        fill(document.querySelector("#events tbody"), [], "events unavailable: " + e.message, 5));
    }
    document.getElementById("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.refreshed = String(tick);
  } catch (e) {
    const c = document.getElementById("controller");
    c.textContent = "controller unreachable: " + e.message;
    c.className = "bad";
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
