// Create and edit a job: a field for every member of the job JSON, checked as you type by the API itself
// (POST /v1/jobs:validate, whose errors name the field: the message is shown at that field), with a live
// preview of the next instants of the schedule and zone being typed (POST /v1/schedules/preview).

import { api, h, viewerZone, when } from "/console/api.js";

function input(name, attrs = {}) {
  return h("input", { id: `f-${name.replace(/\./g, "-")}`, name, "data-field": name, ...attrs });
}

function select(name, options, value) {
  const el = h(
    "select",
    { id: `f-${name.replace(/\./g, "-")}`, name, "data-field": name },
    options.map((o) => h("option", { value: o }, o || "(default)")),
  );
  el.value = value ?? "";
  return el;
}

function row(label, control, hint) {
  const error = h("p", { class: "error", id: `${control.id}-error`, role: "alert" });
  control.setAttribute("aria-describedby", `${control.id}-error`);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hint ? h("p", { class: "muted small" }, hint) : null, error);
}

const lines = (text) => text.split("\n").map((s) => s.trim()).filter(Boolean);

/** The form for a new job (`id` null) or for editing job `id`. */
export async function formView(main, session, id) {
  if (session.role !== "admin") {
    main.replaceChildren(h("p", { class: "error" }, "A read-only token cannot create or edit jobs."));
    return null;
  }
  const job = id ? await api("GET", `/v1/jobs/${encodeURIComponent(id)}`) : null;
  const s = job || {};
  const t = s.target || { type: "command", argv: [] };
  const f = {
    id: input("id", { value: id || "", disabled: Boolean(id), placeholder: "generated if empty" }),
    name: input("name", { value: s.name || "", required: true }),
    namespace: input("namespace", { value: s.namespace || "", placeholder: "default" }),
    labels: input("labels", { value: Object.entries(s.labels || {}).map(([k, v]) => `${k}=${v}`).join(", "), placeholder: "team=ops, notify=pager" }),
    schedule: input("schedule", { value: s.schedule || "", placeholder: "30 1 * * *", required: true, autocomplete: "off" }),
    timezone: input("timezone", { value: s.timezone || "UTC" }),
    dst: select("dst", ["", "cronie", "skip_gap"], s.dst),
    dstRepeat: select("dst_repeat", ["", "first", "last", "both"], s.dst_repeat),
    type: select("target.type", ["command", "http"], t.type),
    argv: h("textarea", { id: "f-target-argv", name: "target.argv", "data-field": "target.argv", rows: 3, placeholder: "/usr/bin/report\n--daily" }, (t.argv || []).join("\n")),
    cwd: input("target.cwd", { value: t.cwd || "" }),
    url: input("target.url", { value: t.url || "", placeholder: "https://example.internal/hook" }),
    method: input("target.method", { value: t.method || "", placeholder: "POST" }),
    timeout: input("target.timeout", { value: t.timeout || "", placeholder: "30s" }),
    extra: h("textarea", { id: "f-target-extra", "data-field": "target.env", rows: 3, placeholder: '{"env": {"LEVEL": "info"}}' }, JSON.stringify(Object.fromEntries(Object.entries(t).filter(([k]) => !["type", "argv", "cwd", "url", "method", "timeout"].includes(k)))).replace(/^\{\}$/, "")),
    overlap: select("overlap", ["", "skip", "allow", "buffer_one", "cancel_previous"], s.overlap),
    misfire: select("misfire.policy", ["", "fire_once", "skip", "catch_up"], s.misfire?.policy),
    misfireMax: input("misfire.max_count", { type: "number", min: 1, value: s.misfire?.max_count ?? "" }),
    misfireWindow: input("misfire.window", { value: s.misfire?.window || "", placeholder: "1h" }),
    retries: input("retry.max_retries", { type: "number", min: 0, value: s.retry?.max_retries ?? "" }),
    backoff: input("retry.backoff.initial", { value: s.retry?.backoff?.initial || "", placeholder: "1s" }),
    delivery: select("delivery", ["", "at_most_once", "at_least_once"], s.delivery),
    jitter: input("jitter", { value: s.jitter || "", placeholder: "10s" }),
    startAt: input("start_at", { value: s.start_at || "", placeholder: "2026-01-01T00:00:00Z" }),
    endAt: input("end_at", { value: s.end_at || "", placeholder: "RFC 3339" }),
    weight: input("weight", { type: "number", min: 1, value: s.weight ?? "" }),
    nodeLabels: input("node_labels", { value: (s.node_labels || []).join(", "), placeholder: "region=eu" }),
    paused: input("paused", { type: "checkbox", checked: Boolean(s.paused) }),
  };
  const general = h("p", { id: "form-error", class: "error", role: "alert" });
  const reading = h("p", { id: "preview-reading" });
  // Not a job field: where the preview starts (to look at a DST change ahead).
  const from = h("input", { id: "preview-from", placeholder: "now", autocomplete: "off" });
  const list = h("ol", { id: "preview" });
  const save = h("button", { id: "save", type: "submit", class: "primary" }, id ? "Save" : "Create");

  function body() {
    const out = { name: f.name.value, schedule: f.schedule.value };
    const opt = (key, value) => {
      if (value !== "" && value !== undefined) out[key] = value;
    };
    opt("namespace", f.namespace.value.trim());
    if (f.labels.value.trim()) {
      out.labels = Object.fromEntries(
        f.labels.value.split(",").map((p) => p.trim()).filter(Boolean).map((p) => {
          const i = p.indexOf("=");
          return i < 0 ? [p, ""] : [p.slice(0, i).trim(), p.slice(i + 1).trim()];
        }),
      );
    }
    opt("timezone", f.timezone.value.trim());
    opt("dst", f.dst.value);
    opt("dst_repeat", f.dstRepeat.value);
    const target = { type: f.type.value };
    if (target.type === "command") {
      target.argv = lines(f.argv.value);
      if (f.cwd.value.trim()) target.cwd = f.cwd.value.trim();
    } else {
      target.url = f.url.value.trim();
      if (f.method.value.trim()) target.method = f.method.value.trim();
    }
    if (f.timeout.value.trim()) target.timeout = f.timeout.value.trim();
    if (f.extra.value.trim()) Object.assign(target, JSON.parse(f.extra.value));
    out.target = target;
    opt("overlap", f.overlap.value);
    if (f.misfire.value) {
      out.misfire = { policy: f.misfire.value };
      if (f.misfireMax.value) out.misfire.max_count = Number(f.misfireMax.value);
      if (f.misfireWindow.value.trim()) out.misfire.window = f.misfireWindow.value.trim();
    }
    if (f.retries.value !== "") {
      out.retry = { max_retries: Number(f.retries.value) };
      if (f.backoff.value.trim()) out.retry.backoff = { initial: f.backoff.value.trim() };
    }
    opt("delivery", f.delivery.value);
    opt("jitter", f.jitter.value.trim());
    opt("start_at", f.startAt.value.trim());
    opt("end_at", f.endAt.value.trim());
    if (f.weight.value) out.weight = Number(f.weight.value);
    if (f.nodeLabels.value.trim()) out.node_labels = f.nodeLabels.value.split(",").map((x) => x.trim()).filter(Boolean);
    if (f.paused.checked) out.paused = true;
    if (!id && f.id.value.trim()) out.id = f.id.value.trim();
    return out;
  }

  /** Shows an API error at the control whose field is the longest prefix of the error's field. */
  function showError(error) {
    for (const el of main.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const el of main.querySelectorAll(".field .error")) el.textContent = "";
    general.textContent = "";
    if (!error) return;
    const controls = [...main.querySelectorAll("[data-field]")];
    const name = (error.field || "").replace(/\[\d+\]/g, "");
    const match = controls
      .filter((c) => name === c.dataset.field || name.startsWith(`${c.dataset.field}.`))
      .sort((a, b) => b.dataset.field.length - a.dataset.field.length)[0];
    if (match) {
      match.setAttribute("aria-invalid", "true");
      document.getElementById(`${match.id}-error`).textContent = error.message;
    } else {
      general.textContent = error.message;
    }
  }

  let timer;
  // Answers can arrive out of order: only the latest check and the latest preview are shown.
  let generation = 0;
  let previewGeneration = 0;
  async function check() {
    const mine = ++generation;
    let payload;
    try {
      payload = body();
    } catch (e) {
      showError({ field: "target.env", message: `target: not JSON: ${e.message}` });
      return false;
    }
    try {
      await api("POST", "/v1/jobs:validate", payload);
      if (mine === generation) showError(null);
      return true;
    } catch (e) {
      if (mine === generation) showError(e);
      return false;
    } finally {
      refreshPreview();
    }
  }
  async function refreshPreview() {
    const mine = ++previewGeneration;
    try {
      const p = await api("POST", "/v1/schedules/preview", {
        schedule: f.schedule.value,
        timezone: f.timezone.value.trim() || "UTC",
        dst: f.dst.value || "cronie",
        dst_repeat: f.dstRepeat.value || "first",
        count: 10,
        after: from.value.trim() || undefined,
      });
      if (mine !== previewGeneration) return;
      reading.textContent = p.description;
      list.replaceChildren(
        ...p.next.map((i) =>
          h(
            "li",
            { class: i.dst_change ? "dst" : "" },
            h("time", { datetime: i.local }, i.local),
            i.dst_change ? h("span", { class: "badge warn" }, "DST change") : null,
            h("div", { class: "muted small" }, `${when(i.unix_ms, viewerZone)} (yours)`),
          ),
        ),
      );
    } catch (e) {
      if (mine !== previewGeneration) return;
      reading.textContent = "";
      list.replaceChildren(h("li", { class: "muted" }, e.field ? `${e.field}: no preview` : e.message));
    }
  }
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  };

  const form = h(
    "form",
    {
      id: "job-form",
      class: "card",
      novalidate: true,
      oninput: soon,
      onchange: soon,
      onsubmit: async (event) => {
        event.preventDefault();
        clearTimeout(timer);
        let payload;
        try {
          payload = body();
        } catch (e) {
          showError({ field: "target.env", message: `target: not JSON: ${e.message}` });
          return;
        }
        try {
          const saved = id
            ? await api("PUT", `/v1/jobs/${encodeURIComponent(id)}`, { ...payload, revision: job.revision })
            : await api("POST", "/v1/jobs", payload);
          location.hash = `#/jobs/${encodeURIComponent(saved.id)}`;
        } catch (e) {
          showError(e);
        }
      },
    },
    h(
      "fieldset",
      {},
      h("legend", {}, "Job"),
      row("Id", f.id),
      row("Name", f.name),
      row("Namespace", f.namespace),
      row("Labels", f.labels, "key=value, comma-separated"),
      row("Paused", f.paused),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "When"),
      row("Schedule", f.schedule, "cron (5, 6 or 7 fields), @daily, @every 30s, @at RFC 3339"),
      row("Time zone", f.timezone),
      row("DST policy", f.dst, "a fixed time in a spring gap: cronie runs it at the jump, skip_gap skips it"),
      row("Autumn repeat", f.dstRepeat, "a fixed time in a repeated hour: first pass, last pass, or both"),
      row("Start at", f.startAt),
      row("End at", f.endAt),
      row("Jitter", f.jitter),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "What runs"),
      row("Target type", f.type),
      row("Command (one argument per line)", f.argv),
      row("Working directory", f.cwd),
      row("URL (http)", f.url),
      row("Method (http)", f.method),
      row("Timeout", f.timeout),
      row("Other target fields (JSON: env, headers, body, expected_status, run_as…)", f.extra),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Policies"),
      row("Overlap", f.overlap),
      row("Misfire policy", f.misfire),
      row("Misfire max count (catch_up)", f.misfireMax),
      row("Misfire window (catch_up)", f.misfireWindow),
      row("Retries", f.retries),
      row("Retry backoff (initial)", f.backoff),
      row("Delivery", f.delivery),
      row("Weight", f.weight),
      row("Node labels", f.nodeLabels, "labels a node must carry, comma-separated"),
    ),
    general,
    h("div", { class: "row" }, save, h("a", { class: "button", href: id ? `#/jobs/${encodeURIComponent(id)}` : "#/jobs" }, "Cancel")),
  );
  main.replaceChildren(
    h("h1", {}, id ? `Edit ${id}` : "New job"),
    h(
      "div",
      { class: "grid form" },
      form,
      h(
        "aside",
        { class: "card", "aria-live": "polite" },
        h("h2", {}, "Next instants"),
        h("label", { class: "field" }, h("span", {}, "From (RFC 3339)"), from),
        reading,
        list,
      ),
    ),
  );
  let previewTimer;
  from.addEventListener("input", () => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(refreshPreview, 300);
  });
  if (f.schedule.value) refreshPreview();
  f.name.focus();
  return () => {
    clearTimeout(timer);
    clearTimeout(previewTimer);
  };
}
