// The console: sign-in, navigation and the hash router (#/, #/jobs, #/jobs/ID, #/new, #/jobs/ID/edit,
// #/runs, #/cluster). Each view is a function that fills `main` and may return a cleanup function.

import { ApiError, api, h, token } from "/console/api.js";
import { jobView, jobsView } from "/console/jobs.js";
import { formView } from "/console/form.js";
import { clusterView, overviewView, runsView } from "/console/live.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
/** Who is signed in: `role` is "admin" or "read-only" once known. */
export const session = { role: null, node: null };
let cleanup = null;

function loginView(message) {
  nav.hidden = true;
  const input = h("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    "aria-describedby": "login-error",
  });
  const error = h("p", { id: "login-error", class: "error", role: "alert" }, message || "");
  main.replaceChildren(
    h(
      "form",
      {
        id: "login",
        class: "card narrow",
        onsubmit: async (event) => {
          event.preventDefault();
          token.set(input.value.trim());
          try {
            await whoami();
            location.hash = "#/";
            route();
          } catch (e) {
            token.clear();
            error.textContent =
              e instanceof ApiError && e.status === 401 ? "This server does not know that token." : e.message;
          }
        },
      },
      h("h1", {}, "Sign in"),
      h("p", {}, "Enter an API token. It is kept in this tab only, until you sign out or close it."),
      h("label", { for: "token" }, "API token"),
      input,
      error,
      h("button", { id: "sign-in", type: "submit", class: "primary" }, "Sign in"),
    ),
  );
  input.focus();
}

async function whoami() {
  const me = await api("GET", "/v1/me");
  session.role = me.role;
  session.node = me.node;
  document.body.dataset.role = me.role;
  document.getElementById("nav-new").hidden = me.role !== "admin";
  document.getElementById("who").textContent = `${me.role} · node ${me.node}`;
  return me;
}

function markNav(path) {
  for (const link of nav.querySelectorAll("a")) {
    const current = link.getAttribute("href") === `#${path}` || (path.startsWith("/jobs") && link.id === "nav-jobs");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  if (!session.role) {
    try {
      await whoami();
    } catch (e) {
      loginView(e instanceof ApiError && e.status === 401 ? "" : e.message);
      return;
    }
  }
  nav.hidden = false;
  const path = location.hash.replace(/^#/, "") || "/";
  markNav(path);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    if (parts.length === 0) cleanup = await overviewView(main, session);
    else if (parts[0] === "jobs" && parts.length === 1) cleanup = await jobsView(main, session);
    else if (parts[0] === "jobs" && parts[2] === "edit") cleanup = await formView(main, session, parts[1]);
    else if (parts[0] === "jobs") cleanup = await jobView(main, session, parts[1]);
    else if (parts[0] === "new") cleanup = await formView(main, session, null);
    else if (parts[0] === "runs") cleanup = await runsView(main, session);
    else if (parts[0] === "cluster") cleanup = await clusterView(main, session);
    else main.replaceChildren(h("p", { class: "error" }, `No page ${path}.`));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      token.clear();
      session.role = null;
      loginView("The token was refused; sign in again.");
      return;
    }
    main.replaceChildren(h("p", { class: "error", role: "alert" }, e.message));
  }
  main.focus({ preventScroll: true });
}

function theme(next) {
  const root = document.documentElement;
  if (next) {
    root.dataset.theme = next;
    localStorage.setItem("campanile.theme", next);
  } else {
    const saved = localStorage.getItem("campanile.theme");
    if (saved) root.dataset.theme = saved;
  }
}

document.getElementById("theme").addEventListener("click", () => {
  const dark =
    document.documentElement.dataset.theme === "dark" ||
    (!document.documentElement.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
  theme(dark ? "light" : "dark");
});
document.getElementById("logout").addEventListener("click", () => {
  token.clear();
  session.role = null;
  document.getElementById("who").textContent = "";
  loginView("Signed out.");
});
window.addEventListener("hashchange", route);
theme();
route();
