// The console's access to the API (the token, JSON calls, the run stream) and small DOM and format helpers.

const KEY = "campanile.token";

/** The token, kept in session storage: gone when the tab closes. */
export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An API error: its status, code, message and the field it names. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.field = body?.error?.field;
  }
}

function headers(json) {
  const out = { Accept: "application/json" };
  const t = token.get();
  if (t) out.Authorization = `Bearer ${t}`;
  if (json) out["Content-Type"] = "application/json";
  return out;
}

/** Calls the API: the answer's JSON, or throws an ApiError. */
export async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

/**
 * Follows a server-sent event stream until `signal` aborts, reconnecting when the server closes it. Read with
 * fetch rather than EventSource, which cannot send the Authorization header (a token in the URL would end up
 * in logs). `onEvent(name, data)` gets each event; `onState(text)` hears "live" or why it is reconnecting.
 */
export async function follow(path, onEvent, onState, signal) {
  while (!signal.aborted) {
    try {
      const response = await fetch(path, { headers: headers(false), signal, cache: "no-store" });
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      onState("live");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (data.length) onEvent(name, data.join("\n"));
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      onState(`reconnecting: ${e.message}`);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

/** Builds an element: `h("a", {href: "#/", class: "x", onclick: f}, "text", child)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Builds an SVG element. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const child of children.flat()) if (child) el.append(child);
  return el;
}

/** The viewer's own time zone. */
export const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

/** Unix ms as a short date and time in `zone` (default: the viewer's). */
export function when(ms, zone) {
  if (ms === undefined || ms === null) return "–";
  try {
    return new Intl.DateTimeFormat("en-GB", {
      timeZone: zone || viewerZone,
      year: "numeric",
      month: "short",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      timeZoneName: "short",
    }).format(new Date(ms));
  } catch {
    return new Date(ms).toISOString();
  }
}

/** A duration in ms, short: 850 ms, 12.3 s, 4 min. */
export function span(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${Math.round(ms / 60000)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

/** A run's lateness (start − instant) and duration, when it started. */
export function timing(run) {
  return {
    late: run.started_ms !== undefined && !run.manual ? Math.max(0, run.started_ms - run.scheduled_ms) : undefined,
    took: run.started_ms !== undefined && run.ended_ms !== undefined ? run.ended_ms - run.started_ms : undefined,
  };
}

/** An outcome badge. */
export function badge(outcome) {
  const bad = outcome === "failed" || outcome === "timed_out" || outcome === "in_doubt";
  const warn = outcome === "misfired" || outcome === "skipped";
  return h("span", { class: `badge ${bad ? "bad" : warn ? "warn" : outcome ? "good" : ""}` }, outcome || "none");
}

/** A small sparkline of values (oldest first); points of failed runs are marked. */
export function sparkline(points, label) {
  const width = 96;
  const height = 22;
  const values = points.map((p) => p.value ?? 0);
  const max = Math.max(1, ...values);
  const step = points.length > 1 ? width / (points.length - 1) : width;
  const xy = values.map((v, i) => [i * step, height - 2 - (v / max) * (height - 4)]);
  return svg(
    "svg",
    { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label },
    svg("title", {}, document.createTextNode(label)),
    xy.length > 1 ? svg("polyline", { points: xy.map((p) => p.join(",")).join(" "), fill: "none" }) : null,
    ...xy.map(([x, y], i) => (points[i].bad ? svg("circle", { cx: x, cy: y, r: 2.5, class: "bad" }) : null)),
  );
}
