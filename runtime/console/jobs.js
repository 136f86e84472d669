// The jobs table (search, filters, server-side pages) and one job's page (spec, next instants, runs,
// actions).

import { api, badge, h, sparkline, span, timing, viewerZone, when } from "/console/api.js";

const PAGE = 25;
const OUTCOMES = ["succeeded", "failed", "timed_out", "skipped", "misfired", "in_doubt"];

function preview(spec, count, after) {
  return api("POST", "/v1/schedules/preview", {
    schedule: spec.schedule,
    timezone: spec.timezone || "UTC",
    dst: spec.dst || "cronie",
    count,
    after,
  });
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

/** The jobs table. */
export async function jobsView(main, session) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const q = h("input", { id: "q", type: "search", placeholder: "id or name", value: params.get("q") || "" });
  const namespace = h("input", { id: "namespace", placeholder: "any", value: params.get("namespace") || "" });
  const label = h("input", { id: "label", placeholder: "team=ops", value: params.get("label") || "" });
  const paused = h(
    "select",
    { id: "paused" },
    h("option", { value: "" }, "any"),
    h("option", { value: "false" }, "active"),
    h("option", { value: "true" }, "paused"),
  );
  const outcome = h(
    "select",
    { id: "outcome" },
    h("option", { value: "" }, "any"),
    OUTCOMES.map((o) => h("option", { value: o }, o)),
    h("option", { value: "none" }, "never ran"),
  );
  const body = h("tbody");
  const status = h("p", { class: "muted", role: "status" });
  const more = h("button", { id: "next-page", type: "button" }, "Next page");
  const back = h("button", { id: "prev-page", type: "button" }, "Previous page");
  const pages = [null];
  let debounce;

  async function load() {
    const query = new URLSearchParams({ limit: PAGE });
    for (const [k, el] of [["q", q], ["namespace", namespace], ["label", label], ["paused", paused], ["last_outcome", outcome]]) {
      if (el.value.trim()) query.set(k, el.value.trim());
    }
    const after = pages[pages.length - 1];
    if (after) query.set("after", after);
    status.textContent = "Loading…";
    let list;
    try {
      list = await api("GET", `/v1/jobs?${query}`);
    } catch (e) {
      status.textContent = e.field ? `${e.field}: ${e.message}` : e.message;
      return;
    }
    body.replaceChildren(...list.jobs.map((job) => row(job)));
    more.disabled = !list.next_after;
    more.dataset.after = list.next_after || "";
    back.disabled = pages.length <= 1;
    status.textContent = list.jobs.length
      ? `${list.jobs.length} jobs on this page`
      : list.next_after
        ? "No match among the jobs looked at; the next page goes on."
        : "No jobs match.";
  }

  function row(job) {
    const spec = job.spec || job;
    const reading = h("div", { class: "muted small" }, "…");
    const next = h("td", {}, spec.paused ? "paused" : "…");
    const last = h("td", {}, "…");
    const spark = h("td", {});
    const tr = h(
      "tr",
      { "data-job": job.id },
      h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, spec.name), h("div", { class: "muted small" }, job.id)),
      h("td", {}, h("code", {}, spec.schedule), reading),
      next,
      last,
      spark,
    );
    api("GET", `/v1/jobs/${encodeURIComponent(job.id)}/next?n=1`)
      .then((p) => {
        reading.textContent = p.description;
        const at = p.next[0]?.unix_ms;
        if (at === undefined) next.replaceChildren(spec.paused ? "paused" : "none");
        else
          next.replaceChildren(
            h("div", {}, when(at, spec.timezone || "UTC")),
            h("div", { class: "muted small" }, `${when(at, viewerZone)} (yours)`),
          );
      })
      .catch((e) => (reading.textContent = e.message));
    api("GET", `/v1/jobs/${encodeURIComponent(job.id)}/runs?limit=20`)
      .then(({ runs }) => {
        last.replaceChildren(runs.length ? badge(runs[0].outcome) : h("span", { class: "muted" }, "never ran"));
        const points = runs
          .slice()
          .reverse()
          .map((r) => ({ value: timing(r).took ?? 0, bad: r.outcome === "failed" || r.outcome === "timed_out" }));
        if (points.length) spark.replaceChildren(sparkline(points, `durations of the last ${points.length} runs`));
      })
      .catch(() => last.replaceChildren("–"));
    return tr;
  }

  const refilter = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      pages.length = 1;
      load();
    }, 250);
  };
  for (const el of [q, namespace, label]) el.addEventListener("input", refilter);
  paused.addEventListener("change", refilter);
  outcome.addEventListener("change", refilter);
  more.addEventListener("click", () => {
    pages.push(more.dataset.after);
    load();
  });
  back.addEventListener("click", () => {
    pages.pop();
    load();
  });
  paused.value = params.get("paused") || "";

  main.replaceChildren(
    h("h1", {}, "Jobs"),
    h(
      "form",
      { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
      field("Search", q),
      field("Namespace", namespace),
      field("Label", label),
      field("State", paused),
      field("Last outcome", outcome),
    ),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { id: "jobs" },
        h(
          "thead",
          {},
          h("tr", {}, ["Job", "Schedule", "Next fire (job's zone / yours)", "Last", "Recent durations"].map((t) => h("th", { scope: "col" }, t))),
        ),
        body,
      ),
    ),
    h("div", { class: "pager" }, back, more, status),
    session.role === "admin" ? h("p", {}, h("a", { class: "button primary", href: "#/new" }, "New job")) : null,
  );
  await load();
  return () => clearTimeout(debounce);
}

function runRow(run) {
  const { late, took } = timing(run);
  const bad = run.outcome === "failed" || run.outcome === "timed_out" || run.outcome === "in_doubt";
  return h(
    "tr",
    { class: bad ? "bad" : "" },
    h("td", {}, when(run.scheduled_ms)),
    h("td", {}, badge(run.outcome), run.manual ? h("span", { class: "muted small" }, " manual") : null),
    h("td", {}, run.node),
    h("td", {}, String(run.attempt)),
    h("td", {}, span(late)),
    h("td", {}, span(took)),
    h("td", {}, run.code ?? "–"),
    h(
      "td",
      {},
      run.output || run.reason
        ? h("details", {}, h("summary", {}, run.reason || "output"), h("pre", {}, run.output || ""))
        : "–",
    ),
  );
}

/** One job: spec, next instants, run history and actions. */
export async function jobView(main, session, id) {
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  const job = await api("GET", path);
  const spec = job.spec || job;
  const zone = spec.timezone || "UTC";
  const message = h("p", { id: "action-message", role: "status", class: "muted" });
  // The job's own next instants (start_at, end_at, paused and past schedules included), DST changes marked
  // where the zone's offset differs from the previous instant's; the reading comes from the preview.
  const upcoming = await api("GET", `${path}/next?n=10`);
  const offset = (local) => local.slice(-6);
  const next = {
    description: upcoming.description,
    next: upcoming.next.map((i, k, all) => ({
      ...i,
      dst_change: k > 0 && offset(i.local) !== offset(all[k - 1].local),
    })),
  };
  const runs = await api("GET", `${path}/runs?limit=50`);

  const act = (label, idName, run, kind) =>
    h(
      "button",
      {
        id: idName,
        type: "button",
        class: kind || "",
        onclick: async () => {
          try {
            message.textContent = await run();
          } catch (e) {
            message.textContent = e.message;
            message.className = "error";
          }
        },
      },
      label,
    );
  const reload = () => jobView(main, session, id);
  const actions = [];
  if (session.role === "admin") {
    actions.push(
      spec.paused
        ? act("Resume", "resume", async () => (await api("POST", `${path}/resume`), reload(), "Resumed."))
        : act("Pause", "pause", async () => (await api("POST", `${path}/pause`), reload(), "Paused.")),
      act("Trigger now", "trigger", async () => {
        const fired = await api("POST", `${path}/trigger`);
        return `Triggered: ${fired.fire_ids.join(", ")}`;
      }),
      h("a", { class: "button", id: "edit", href: `#/jobs/${encodeURIComponent(id)}/edit` }, "Edit"),
      act("Delete…", "delete", async () => {
        confirmDelete.showModal();
        return "";
      }, "danger"),
    );
  }
  const confirmDelete = h(
    "dialog",
    { id: "confirm-delete", "aria-labelledby": "confirm-title" },
    h("h2", { id: "confirm-title" }, `Delete ${id}?`),
    h("p", {}, "The job and its schedule are removed; its run history stays readable until it expires."),
    h(
      "form",
      { method: "dialog", class: "row" },
      h("button", { value: "cancel" }, "Cancel"),
      h(
        "button",
        {
          id: "confirm-delete-yes",
          class: "danger",
          value: "delete",
          onclick: async (e) => {
            e.preventDefault();
            await api("DELETE", path);
            confirmDelete.close();
            location.hash = "#/jobs";
          },
        },
        "Delete",
      ),
    ),
  );

  // Backfill: a range and how many instants it holds, before running it.
  const from = h("input", { id: "backfill-from", type: "datetime-local", step: 1 });
  const to = h("input", { id: "backfill-to", type: "datetime-local", step: 1 });
  const count = h("span", { id: "backfill-count", class: "muted" }, "Pick a range (your time zone).");
  const recount = async () => {
    if (!from.value || !to.value) return;
    const start = new Date(from.value).getTime();
    const end = new Date(to.value).getTime();
    if (!(end >= start)) {
      count.textContent = "The end is before the start.";
      return;
    }
    const p = await preview(spec, 100, new Date(start - 1).toISOString()).catch((e) => ({ error: e }));
    if (p.error) {
      count.textContent = p.error.message;
      return;
    }
    const n = p.next.filter((i) => i.unix_ms <= end).length;
    count.textContent = `${n}${n === 100 ? "+" : ""} instants will run (those without a run record).`;
  };
  from.addEventListener("change", recount);
  to.addEventListener("change", recount);
  const backfill =
    session.role === "admin"
      ? h(
          "section",
          { class: "card" },
          h("h2", {}, "Backfill"),
          h("div", { class: "row" }, field("From", from), field("To", to)),
          count,
          act("Run backfill", "backfill", async () => {
            const fired = await api("POST", `${path}/backfill`, {
              from: new Date(from.value).toISOString(),
              to: new Date(to.value).toISOString(),
            });
            return `Backfill started ${fired.fire_ids.length} runs.`;
          }),
        )
      : null;
  const cloneId = h("input", { id: "clone-id", placeholder: "new id (optional)" });
  const clone =
    session.role === "admin"
      ? h(
          "section",
          { class: "card" },
          h("h2", {}, "Clone"),
          h("div", { class: "row" }, field("Id of the copy", cloneId)),
          act("Clone", "clone", async () => {
            const copy = await api("POST", `${path}/clone`, cloneId.value.trim() ? { id: cloneId.value.trim() } : {});
            location.hash = `#/jobs/${encodeURIComponent(copy.id)}`;
            return "";
          }),
        )
      : null;

  main.replaceChildren(
    h("h1", {}, spec.name, " ", h("span", { class: "muted small" }, id), spec.paused ? h("span", { class: "badge warn" }, "paused") : null),
    h("p", {}, h("code", {}, spec.schedule), " — ", h("span", { id: "reading" }, next.description)),
    h("div", { class: "row actions" }, actions),
    message,
    confirmDelete,
    h(
      "div",
      { class: "grid" },
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Next 10 instants"),
        next.next.length ? null : h("p", { class: "muted" }, spec.paused ? "Paused: nothing fires until it is resumed." : "No more instants."),
        h(
          "ol",
          { id: "next" },
          next.next.map((i) =>
            h(
              "li",
              { class: i.dst_change ? "dst" : "" },
              when(i.unix_ms, zone),
              i.dst_change ? h("span", { class: "badge warn" }, "DST change") : null,
              h("div", { class: "muted small" }, `${when(i.unix_ms, viewerZone)} (yours)`),
            ),
          ),
        ),
      ),
      h("section", { class: "card" }, h("h2", {}, "Spec"), h("pre", { id: "spec" }, JSON.stringify(spec, null, 2))),
    ),
    backfill,
    clone,
    h("h2", {}, "Runs"),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { id: "runs" },
        h(
          "thead",
          {},
          h("tr", {}, ["Instant", "Outcome", "Node", "Attempt", "Lateness", "Duration", "Exit code", "Output"].map((t) => h("th", { scope: "col" }, t))),
        ),
        h("tbody", {}, runs.runs.length ? runs.runs.map(runRow) : h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No runs yet."))),
      ),
    ),
  );
  return null;
}
