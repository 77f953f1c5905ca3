// The web page of `quorate run`: reads /status and /history every two seconds and redraws.
// Every value goes into the page as text (textContent), never as markup: commit summaries
// and findings come from whoever pushed.
"use strict";

const EVERY_MS = 2000;

// An element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function when(ms) {
  if (!ms) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function short(commit) {
  return commit ? String(commit).slice(0, 12) : "–";
}

function replace(id, ...children) {
  const node = document.getElementById(id);
  node.replaceChildren(...children.flat());
  return node;
}

function showQuorum(q) {
  const badge = document.getElementById("quorum");
  if (!q) {
    badge.textContent = "quorum: no pass yet";
    badge.dataset.quorate = "unknown";
    return;
  }
  badge.textContent = `quorum: ${q.present} of ${q.expected} votes, ${q.quorate ? "quorate" : "NOT quorate"}`;
  badge.dataset.quorate = String(Boolean(q.quorate));
}

// Instance names to the role the last plan gives them (promoted copies), if any.
function showNodes(nodes) {
  const cards = (nodes || []).map((n) => {
    const role = n.roles || {};
    const since = n.since ? when(n.since * 1000) : "–";
    const rows = (n.instances || []).map(([name, health]) =>
      el("tr", { "data-instance": name, "data-health": health },
        el("td", { class: "mono" }, name),
        el("td", {}, role[name] || "–"),
        el("td", { class: `health-${n.state === "lost" ? "unknown" : health}` },
          n.state === "lost" ? `${health} (last seen)` : health)));
    const table = rows.length
      ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Instance"), el("th", {}, "Role"), el("th", {}, "Health"))), el("tbody", {}, rows))
      : el("p", { class: "muted" }, "no instances");
    return el("article", { class: "card node", "data-node": n.name, "data-state": n.state },
      el("h3", {}, el("span", { class: "mono" }, n.name), el("span", { class: "state" }, n.state)),
      el("p", { class: "muted" }, `since ${since}`),
      table);
  });
  replace("nodes", cards.length ? cards : el("p", { class: "muted" }, "no nodes observed yet"));
}

function showBlocked(blocked) {
  const items = (blocked || []).map((b) =>
    el("li", { "data-instance": b.instance }, el("span", { class: "mono" }, b.instance), ": ", b.reason));
  replace("blocked", items.length ? items : el("li", { class: "muted" }, "none"));
}

function showCommit(status) {
  replace("commit", status.commit ? status.commit : "none yet");
  const problem = document.getElementById("source-problem");
  problem.hidden = !status.sourceProblem;
  problem.textContent = status.sourceProblem ? `The followed branch cannot be read: ${status.sourceProblem}` : "";
}

// What `quorate suspend` left alone, as the last pass saw it: one line, as text.
function showSuspended(status) {
  const s = status.suspended || {};
  const what = [];
  if (s.cluster) what.push(`the whole cluster${s.cluster.reason ? ` (${s.cluster.reason})` : ""}`);
  for (const [b, x] of Object.entries(s.bundles || {})) what.push(`${b}${x.reason ? ` (${x.reason})` : ""}`);
  const p = document.getElementById("suspended");
  p.hidden = what.length === 0;
  p.textContent = what.length ? `Suspended, not managed: ${what.join(", ")}` : "";
}

function showRejected(status) {
  const list = (status.rejected || []).map((r) =>
    el("details", { class: "card", "data-commit": r.commit },
      el("summary", {}, el("span", { class: "mono" }, short(r.commit)), ` at ${when(r.atUnixMs)}: ${r.problems.length + (r.omitted || 0)} finding(s)`),
      el("ul", {}, r.problems.map((p) => el("li", { class: "mono" }, p))),
      r.omitted ? el("p", { class: "muted" }, `and ${r.omitted} more`) : null));
  replace("rejected", list.length ? list : el("p", { class: "muted" }, "none"));
}

function showPasses(history) {
  const passes = (history && history.passes) || [];
  const items = passes.map((p, i) => {
    const actions = ((p.plan && p.plan.actions) || []).map((a) =>
      el("li", {}, el("strong", {}, a.type), " ", a.instance || a.node || "", a.node && a.instance ? ` on ${a.node}` : "", a.reason ? ` (${a.reason})` : ""));
    const steps = (p.results || []).map((s) =>
      el("tr", {}, el("td", { class: "mono" }, s.step), el("td", {}, s.what),
        el("td", { class: `result-${s.result}` }, s.result), el("td", {}, s.detail || ""), el("td", {}, `${s.millis} ms`)));
    return el("details", Object.assign({ class: "card pass", "data-pass": p.id }, i === 0 ? { open: "" } : {}),
      el("summary", {}, `#${p.id} ${when(p.finishedUnixMs)} `, el("strong", {}, p.outcome), ` (${p.trigger})`, p.detail ? `: ${p.detail}` : ""),
      actions.length ? el("div", {}, el("p", { class: "muted" }, "Plan:"), el("ul", {}, actions)) : el("p", { class: "muted" }, "Plan: no changes"),
      steps.length ? el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Step"), el("th", {}, "What"), el("th", {}, "Result"), el("th", {}, "Detail"), el("th", {}, "Took"))), el("tbody", {}, steps))) : null);
  });
  replace("passes", items.length ? items : el("p", { class: "muted" }, "no passes recorded yet"));
}

function fenceText(f) {
  switch (f.type) {
    case "attempt":
      return `attempt ${f.action} via ${f.device} (level ${f.level}, try ${f.try}): ${f.error ? "failed: " + f.error : "confirmed " + f.powerState}`;
    case "outcome":
      return f.succeeded ? `fence ${f.action} succeeded at level ${f.level}` : `fence ${f.action} FAILED: ${f.error}`;
    case "manual":
      return `confirmed off by hand by ${f.by}${f.note ? ": " + f.note : ""}`;
    default:
      return String(f.type);
  }
}

function showFences(history) {
  const rows = ((history && history.fences) || []).map((f) =>
    el("tr", { "data-node": f.node, "data-type": f.type },
      el("td", { class: "mono" }, f.at), el("td", { class: "mono" }, f.node),
      el("td", { class: f.type === "outcome" && !f.succeeded ? "bad" : "" }, fenceText(f))));
  const body = document.querySelector("#fences tbody");
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 3, class: "muted" }, "none recorded"))]));
}

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

async function refresh() {
  const updated = document.getElementById("updated");
  try {
    const status = await getJson("/status");
    let history = null;
    try { history = await getJson("/history?limit=10"); } catch (_) { history = null; }
    showQuorum(status.quorum);
    showCommit(status);
    showSuspended(status);
    showNodes(status.nodes);
    showBlocked(status.blocked);
    showRejected(status);
    showPasses(history);
    showFences(history);
    updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    updated.classList.remove("bad");
    document.body.dataset.loaded = "true";
  } catch (e) {
    updated.textContent = `cannot reach quorate (${e.message}); retrying`;
    updated.classList.add("bad");
  }
}

refresh();
setInterval(refresh, EVERY_MS);
