// Live pages: the run feed (server-sent events from GET /v1/runs/stream), the cluster (GET /v1/cluster,
// /readyz) and the overview charts (GET /v1/stats, per-minute counts of the last hour), drawn as plain SVG.

import { api, badge, follow, h, span, svg, timing, when } from "/console/api.js";

const OUTCOMES = ["succeeded", "failed", "timed_out", "skipped", "misfired", "in_doubt"];
const FEED_ROWS = 200;

function feedRow(run) {
  const { late, took } = timing(run);
  const bad = run.outcome === "failed" || run.outcome === "timed_out" || run.outcome === "in_doubt";
  return h(
    "tr",
    { class: bad ? "bad" : "", "data-job": run.job, "data-outcome": run.outcome },
    h("td", {}, when(run.scheduled_ms)),
    h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(run.job)}` }, run.job)),
    h("td", {}, badge(run.outcome), run.manual ? h("span", { class: "muted small" }, " manual") : null),
    h("td", {}, run.node),
    h("td", {}, String(run.attempt)),
    h("td", {}, span(late)),
    h("td", {}, span(took)),
    h("td", {}, run.code ?? "–"),
    h("td", { class: "small" }, run.reason || ""),
  );
}

/** The run feed: the latest records, then every record as it is stored, pushed by the server. */
export async function runsView(main) {
  const outcome = h(
    "select",
    { id: "feed-outcome" },
    h("option", { value: "" }, "any"),
    OUTCOMES.map((o) => h("option", { value: o }, o)),
  );
  const state = h("span", { id: "feed-state", class: "muted", role: "status" }, "connecting…");
  const body = h("tbody", { id: "feed-rows" });
  let controller = new AbortController();

  async function start() {
    controller.abort();
    controller = new AbortController();
    const filter = outcome.value ? `&outcome=${outcome.value}` : "";
    const recent = await api("GET", `/v1/runs?limit=50${filter}`);
    body.replaceChildren(...recent.runs.map(feedRow));
    follow(
      `/v1/runs/stream?${filter.slice(1)}`,
      (name, data) => {
        if (name === "lagged") {
          state.textContent = `live (skipped ${data} records while behind)`;
          return;
        }
        if (name === "unreachable") {
          const peer = JSON.parse(data);
          state.textContent = `live, without node ${peer.node} (${peer.error})`;
          return;
        }
        if (name !== "run") return;
        body.prepend(feedRow(JSON.parse(data)));
        while (body.children.length > FEED_ROWS) body.lastChild.remove();
      },
      (text) => (state.textContent = text),
      controller.signal,
    );
  }
  outcome.addEventListener("change", start);
  main.replaceChildren(
    h("h1", {}, "Runs"),
    h(
      "div",
      { class: "row filters" },
      h("label", { class: "field" }, h("span", {}, "Outcome"), outcome),
      h("p", {}, "Feed: ", state),
    ),
    h("p", { class: "muted small" }, "Records stored by every node of the cluster, newest first, as they are stored (the node serving this console reads the others' streams)."),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { id: "feed" },
        h(
          "thead",
          {},
          h("tr", {}, ["Instant", "Job", "Outcome", "Node", "Attempt", "Lateness", "Duration", "Code", "Reason"].map((t) => h("th", { scope: "col" }, t))),
        ),
        body,
      ),
    ),
  );
  await start();
  return () => controller.abort();
}

function bars(values, { label, max, className, width = 560, height = 120 }) {
  const top = Math.max(1, max ?? Math.max(...values));
  const w = width / values.length;
  return svg(
    "svg",
    { class: `chart ${className || ""}`, viewBox: `0 0 ${width} ${height + 14}`, role: "img", "aria-label": label },
    svg("title", {}, document.createTextNode(label)),
    ...values.map((v, i) =>
      v > 0 ? svg("rect", { x: i * w + 1, y: height - (v / top) * height, width: Math.max(1, w - 2), height: (v / top) * height }) : null,
    ),
    svg("line", { x1: 0, y1: height, x2: width, y2: height, class: "axis" }),
    svg("text", { x: 0, y: height + 12, class: "tick" }, document.createTextNode("−60 min")),
    svg("text", { x: width, y: height + 12, class: "tick", "text-anchor": "end" }, document.createTextNode("now")),
    svg("text", { x: 2, y: 10, class: "tick" }, document.createTextNode(String(top))),
  );
}

function lines(series, { label, width = 560, height = 120 }) {
  const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  const top = Math.max(1, ...all);
  const w = width / Math.max(1, series[0].values.length - 1);
  return svg(
    "svg",
    { class: "chart", viewBox: `0 0 ${width} ${height + 14}`, role: "img", "aria-label": label },
    svg("title", {}, document.createTextNode(label)),
    ...series.map((s) => {
      const points = s.values
        .map((v, i) => (v === null || v === undefined ? null : `${i * w},${height - (v / top) * height}`))
        .filter(Boolean);
      return points.length ? svg("polyline", { points: points.join(" "), class: s.className, fill: "none" }) : null;
    }),
    // A minute with samples between empty ones has no line to draw: a dot shows it.
    ...series.flatMap((s) =>
      s.values.map((v, i) =>
        v === null || v === undefined ? null : svg("circle", { cx: i * w, cy: height - (v / top) * height, r: 2.5, class: s.className }),
      ),
    ),
    svg("line", { x1: 0, y1: height, x2: width, y2: height, class: "axis" }),
    svg("text", { x: 2, y: 10, class: "tick" }, document.createTextNode(span(top))),
    svg("text", { x: width, y: height + 12, class: "tick", "text-anchor": "end" }, document.createTextNode("now")),
  );
}

/** The overview: fires, failures, lateness, misfires and in-doubt counts over the last hour. */
export async function overviewView(main) {
  const content = h("div", { class: "grid" });
  async function draw() {
    const { minutes, nodes, unreachable } = await api("GET", "/v1/stats");
    const sum = (k) => minutes.reduce((a, m) => a + m[k], 0);
    const missing = (unreachable || []).map((u) => `${u.node || "members"} (${u.error})`).join(", ");
    const tile = (label, value, cls) => h("div", { class: `tile ${cls || ""}` }, h("div", { class: "value" }, String(value)), h("div", { class: "muted small" }, label));
    content.replaceChildren(
      h(
        "p",
        { class: "muted small", id: "stats-nodes" },
        `Counted on ${(nodes || []).join(", ") || "this node"}` + (missing ? `; not reached: ${missing}` : ""),
      ),
      h(
        "div",
        { class: "tiles", id: "totals" },
        tile("fires, last hour", sum("fires")),
        tile("failures", sum("failures"), sum("failures") ? "bad" : ""),
        tile("misfires", sum("misfires"), sum("misfires") ? "warn" : ""),
        tile("in doubt", sum("in_doubt"), sum("in_doubt") ? "bad" : ""),
        tile("skipped", sum("skipped")),
      ),
      h("section", { class: "card" }, h("h2", {}, "Fires per minute"), bars(minutes.map((m) => m.fires), { label: "fires per minute" })),
      h("section", { class: "card" }, h("h2", {}, "Failures per minute"), bars(minutes.map((m) => m.failures), { label: "failures per minute", className: "bad" })),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Lateness (p50, ", h("span", { class: "p99" }, "p99"), ")"),
        lines(
          [
            { values: minutes.map((m) => m.lateness_p50_ms), className: "p50" },
            { values: minutes.map((m) => m.lateness_p99_ms), className: "p99" },
          ],
          { label: "lateness p50 and p99 per minute" },
        ),
      ),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Misfires and in doubt per minute"),
        bars(minutes.map((m) => m.misfires + m.in_doubt), { label: "misfires and in-doubt fires per minute", className: "warn" }),
      ),
    );
  }
  main.replaceChildren(h("h1", {}, "Overview"), h("p", { class: "muted small" }, "Runs stored by the node serving this console, per minute."), content);
  await draw();
  const timer = setInterval(() => draw().catch(() => {}), 10000);
  return () => clearInterval(timer);
}

/** The cluster: members, leader, sessions, epochs, jobs owned, the assignment's balance, health. */
export async function clusterView(main) {
  const cluster = await api("GET", "/v1/cluster");
  const ready = await fetch("/readyz", { cache: "no-store" })
    .then(async (r) => ({ ok: r.ok, body: await r.json().catch(() => ({})) }))
    .catch((e) => ({ ok: false, body: { error: { message: e.message } } }));
  const members = cluster.members;
  const owned = members.map((m) => m.jobs_owned);
  const max = Math.max(0, ...owned);
  const min = members.length ? Math.min(...owned) : 0;
  const mean = members.length ? owned.reduce((a, b) => a + b, 0) / members.length : 0;
  const width = 560;
  const rowH = 22;
  const balance = svg(
    "svg",
    { class: "chart balance", viewBox: `0 0 ${width} ${Math.max(1, members.length) * rowH}`, role: "img", "aria-label": "jobs owned per node" },
    ...members.flatMap((m, i) => [
      svg("text", { x: 0, y: i * rowH + 15, class: "tick" }, document.createTextNode(m.id)),
      svg("rect", { x: 160, y: i * rowH + 4, width: Math.max(1, ((width - 220) * m.jobs_owned) / Math.max(1, max)), height: rowH - 8 }),
      svg("text", { x: width, y: i * rowH + 15, class: "tick", "text-anchor": "end" }, document.createTextNode(String(m.jobs_owned))),
    ]),
  );
  main.replaceChildren(
    h("h1", {}, "Cluster"),
    h(
      "div",
      { class: "tiles" },
      h("div", { class: "tile" }, h("div", { class: "value" }, String(members.length)), h("div", { class: "muted small" }, "nodes")),
      h("div", { class: "tile" }, h("div", { class: "value", id: "leader" }, cluster.leader?.node || "none"), h("div", { class: "muted small" }, `leader, epoch ${cluster.leader?.epoch ?? "–"}`)),
      h("div", { class: "tile" }, h("div", { class: "value" }, cluster.backend), h("div", { class: "muted small" }, "coordinator")),
      h(
        "div",
        { class: `tile ${ready.ok ? "" : "bad"}`, id: "health" },
        h("div", { class: "value" }, ready.ok ? "ready" : "not ready"),
        h("div", { class: "muted small" }, ready.ok ? `node ${ready.body.node} holds a valid session` : ready.body?.error?.message || ""),
      ),
    ),
    h(
      "p",
      {},
      cluster.assignment
        ? `Assignment version ${cluster.assignment.version} (epoch ${cluster.assignment.epoch}): ${cluster.assignment.jobs} jobs placed; per node min ${min}, mean ${mean.toFixed(1)}, max ${max}.`
        : "No assignment published yet.",
    ),
    h("section", { class: "card" }, h("h2", {}, "Balance"), balance),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { id: "members" },
        h("thead", {}, h("tr", {}, ["Node", "Leader", "Session", "Jobs owned", "Capacity", "Labels", "Address"].map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          {},
          members.map((m) =>
            h(
              "tr",
              { "data-node": m.id },
              h("td", {}, m.id),
              h("td", {}, m.leader ? h("span", { class: "badge good" }, `leader · epoch ${cluster.leader?.epoch ?? "?"}`) : ""),
              h("td", {}, h("code", {}, m.session)),
              h("td", {}, String(m.jobs_owned)),
              h("td", {}, m.capacity ?? "–"),
              h("td", {}, (m.labels || []).join(", ")),
              h("td", {}, m.address || "–"),
            ),
          ),
        ),
      ),
    ),
  );
  const timer = setInterval(() => {
    if (location.hash === "#/cluster") clusterView(main).catch(() => {});
  }, 15000);
  return () => clearInterval(timer);
}
