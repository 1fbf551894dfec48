// Video Gateway operator console: a thin client of the admin JSON API.
"use strict";

const STORAGE_KEY = "gateway.adminToken";
const $ = (selector, root = document) => root.querySelector(selector);
const state = { tab: "tokens", jobsAfter: null, previews: [] };

// ---- API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = "GET", body, token, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${token || sessionStorage.getItem(STORAGE_KEY)}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const payload = await response.json();
      message = payload.error?.message || message;
    } catch { /* not JSON: keep the status line */ }
    throw new ApiError(response.status, message);
  }
  return raw ? response : response.json();
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// ---- DOM helpers ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (value !== false && value !== null && value !== undefined) {
      node.setAttribute(name, value === true ? "" : value);
    }
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function cell(value, className) {
  return el("td", className ? { class: className } : {}, value === null ? "–" : String(value));
}

function showNotice(message) {
  const notice = $("#notice");
  notice.textContent = message || "";
  notice.hidden = !message;
}

// Runs an action; API failures show in the notice bar, a rejected admin token signs out.
async function guarded(action) {
  try {
    showNotice("");
    return await action();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut(error.message);
    } else {
      showNotice(error.message);
    }
    return undefined;
  }
}

// ---- sign-in --------------------------------------------------------------------------------

function showSignedIn(signedIn) {
  $("#signin-view").hidden = signedIn;
  $("#tabs").hidden = !signedIn;
  for (const view of document.querySelectorAll(".view")) {
    view.hidden = !signedIn || view.id !== `${state.tab}-view`;
  }
}

function signOut(reason) {
  sessionStorage.removeItem(STORAGE_KEY);
  showNotice("");
  showSignedIn(false);
  const error = $("#signin-error");
  error.textContent = reason || "";
  error.hidden = !reason;
  $("#admin-token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("#admin-token");
  const error = $("#signin-error");
  try {
    await api("/admin/tokens", { token: input.value.trim() });
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
    return;
  }
  sessionStorage.setItem(STORAGE_KEY, input.value.trim());
  input.value = "";
  error.hidden = true;
  showSignedIn(true);
  openTab(state.tab);
}

function openTab(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll(".tab")) {
    button.classList.toggle("active", button.dataset.tab === tab);
  }
  showSignedIn(true);
  const loaders = { tokens: loadTokens, jobs: () => loadJobs(false), usage: loadUsage };
  guarded(loaders[tab]);
}

// ---- tokens ---------------------------------------------------------------------------------

function tokenState(token) {
  if (token.revoked) return "revoked";
  if (token.disabled) return "disabled";
  if (token.expires_at !== null && token.expires_at * 1000 < Date.now()) return "expired";
  return "active";
}

function topupForm(token) {
  const amount = el("input", { name: "amount_usd", type: "number", min: "0.000001",
    step: "0.000001", required: true, placeholder: "USD", "aria-label": "Amount USD" });
  const note = el("input", { name: "note", maxlength: "500", placeholder: "note",
    "aria-label": "Note" });
  const submit = async (event) => {
    event.preventDefault();
    await guarded(async () => {
      await api(`/admin/tokens/${token.id}/topup`, { method: "POST",
        body: { amount_usd: amount.value, note: note.value || null } });
      await loadTokens();
    });
  };
  return el("form", { class: "topup", on: { submit } }, amount, note,
    el("button", { type: "submit" }, "Top up"));
}

function revokeButton(token) {
  const revoke = () => guarded(async () => {
    if (!window.confirm(`Revoke token ${token.name} (${token.id})? This cannot be undone.`)) {
      return;
    }
    await api(`/admin/tokens/${token.id}`, { method: "DELETE" });
    await loadTokens();
  });
  return el("button", { type: "button", class: "danger", on: { click: revoke } }, "Revoke");
}

function fillOptions(datalist, values) {
  datalist.replaceChildren(...[...new Set(values)].sort().map((v) => el("option", { value: v })));
}

async function loadTokens() {
  const { data } = await api("/admin/tokens");
  const rows = data.map((token) => {
    const status = tokenState(token);
    const live = status !== "revoked";
    return el("tr", { dataset: { tokenId: token.id } },
      cell(token.id, "mono"), cell(token.name), cell(token.group), cell(token.billing_mode),
      cell(token.key_hint, "mono"), cell(token.balance_usd, "num balance"),
      cell(token.held_usd, "num held"), cell(token.active_jobs, "num"),
      el("td", { class: "mono detail webhook", title: token.webhook_url || "" },
        token.webhook_url || "–"),
      el("td", { class: `state ${status}` }, status),
      el("td", {}, live ? topupForm(token) : null),
      el("td", {}, live ? revokeButton(token) : null));
  });
  $("#tokens-table tbody").replaceChildren(...rows);
  fillOptions($("#groups"), data.map((token) => token.group));
  fillOptions($("#token-ids"), data.map((token) => token.id));
}

async function createToken(event) {
  event.preventDefault();
  const form = event.target;
  const fields = Object.fromEntries(new FormData(form));
  await guarded(async () => {
    const created = await api("/admin/tokens", { method: "POST", body: {
      name: fields.name, group: fields.group, billing_mode: fields.billing_mode,
      balance_usd: fields.balance_usd || "0",
    } });
    $("#new-token-name").textContent = `${created.name} (${created.id})`;
    $("#new-token-value").textContent = created.token;
    $("#new-token").hidden = false;
    form.reset();
    await loadTokens();
  });
}

function dismissNewToken() {
  $("#new-token-value").textContent = "";
  $("#new-token").hidden = true;
}

// ---- jobs -----------------------------------------------------------------------------------

function clearPreviews() {
  for (const url of state.previews) URL.revokeObjectURL(url);
  state.previews = [];
}

async function preview(job, button) {
  button.disabled = true;
  await guarded(async () => {
    const response = await api(`/admin/videos/${job.id}/content?variant=video`, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    state.previews.push(url);
    const video = el("video", { controls: true, preload: "metadata", class: "preview",
      dataset: { videoId: job.id } });
    video.src = url;
    const row = button.closest("tr");
    row.after(el("tr", { class: "preview-row" }, el("td", { colspan: "13" }, video)));
  });
}

function jobRow(job) {
  const detail = job.error ? `${job.error.code}: ${job.error.message}` : job.prompt || "";
  const action = job.status === "completed" && !job.deleted
    ? el("button", { type: "button", on: { click: (e) => preview(job, e.target) } }, "Preview")
    : null;
  return el("tr", { dataset: { videoId: job.id, status: job.status } },
    cell(job.id, "mono"), el("td", { class: `status ${job.status}` }, job.status),
    cell(job.model), cell(job.size), cell(job.seconds, "num"), cell(job.token_id, "mono"),
    cell(job.group), cell(job.upstream), cell(job.price_usd, "num"),
    cell(job.deleted ? `${job.settlement || "–"} (deleted)` : job.settlement),
    cell(`${job.age_s}s`, "num"), el("td", { class: "detail", title: detail },
      el("div", { class: "clamp" }, detail)),
    el("td", {}, action));
}

async function loadJobs(more) {
  const fields = Object.fromEntries(new FormData($("#jobs-filter")));
  if (!more) {
    clearPreviews();
    state.jobsAfter = null;
  }
  const page = await api(`/admin/videos${query({ ...fields, after: state.jobsAfter,
    limit: 50 })}`);
  const body = $("#jobs-table tbody");
  const rows = page.data.map(jobRow);
  if (more) body.append(...rows); else body.replaceChildren(...rows);
  state.jobsAfter = page.last_id;
  $("#jobs-more").hidden = !page.has_more;
}

// ---- usage ----------------------------------------------------------------------------------

function usageRange() {
  const fields = Object.fromEntries(new FormData($("#usage-form")));
  let to = fields.to;
  if (to) {
    const next = new Date(`${to}T00:00:00Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    to = next.toISOString().slice(0, 10);
  }
  return { group_by: fields.group_by, from: fields.from, to };
}

function usageRow(row, tag = "td") {
  const make = (value, className) => el(tag, className ? { class: className } : {},
    value === null ? "" : String(value));
  return el("tr", { dataset: { key: row.key } }, make(row.key, "mono"), make(row.name),
    make(row.jobs, "num"), make(row.completed, "num"), make(row.failed, "num"),
    make(row.seconds, "num"), make(row.charged_usd, "num charged"),
    make(row.refunded_usd, "num refunded"), make(row.held_usd, "num held"),
    make(row.cost_usd, "num cost"), make(row.margin_usd, "num margin"));
}

async function loadUsage() {
  const range = usageRange();
  const [usage, byDay, byModel, reconcile] = await Promise.all([
    api(`/admin/usage${query(range)}`),
    api(`/admin/usage${query({ ...range, group_by: "day" })}`),
    api(`/admin/usage${query({ ...range, group_by: "model" })}`),
    api("/admin/reconcile"),
  ]);
  $("#usage-key").textContent = usage.group_by;
  $("#usage-table tbody").replaceChildren(...usage.data.map((row) => usageRow(row)));
  $("#usage-table tfoot").replaceChildren(usageRow({ ...usage.total, name: null }, "th"));
  const bars = (report) => report.data.map((row) => ({ label: row.key,
    value: Number(row.charged_usd) }));
  barChart($("#chart-day"), bars(byDay));
  barChart($("#chart-model"), bars(byModel));
  const stale = reconcile.stale_holds.length;
  $("#reconcile").textContent = reconcile.ok
    ? "Ledger reconciles: top-ups = balances + holds + charges."
    : `Ledger does NOT reconcile (${stale} stale hold${stale === 1 ? "" : "s"}); ` +
      "see GET /admin/reconcile.";
  $("#reconcile").classList.toggle("error", !reconcile.ok);
}

async function downloadCsv() {
  await guarded(async () => {
    const response = await api(`/admin/usage${query({ ...usageRange(), format: "csv" })}`,
      { raw: true });
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `usage-${usageRange().group_by}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
}

// ---- bar chart (inline SVG) -----------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Draws one bar per {label, value} with a zero-based y axis; replaces any earlier drawing.
function barChart(figure, bars) {
  figure.querySelector("svg, .empty")?.remove();
  if (!bars.length) {
    figure.append(el("p", { class: "empty" }, "No jobs in this range."));
    return;
  }
  const slot = 56, left = 64, top = 16, height = 160, bottom = 24;
  const width = left + slot * bars.length + 16;
  const max = Math.max(...bars.map((bar) => bar.value)) || 1;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${top + height + bottom}`,
    width, height: top + height + bottom, role: "img", class: "chart" });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + height - fraction * height;
    chart.append(svg("line", { x1: left - 4, x2: width - 8, y1: y, y2: y, class: "grid" }));
    chart.append(svg("text", { x: left - 8, y: y + 4, "text-anchor": "end", class: "axis" },
      (max * fraction).toFixed(2)));
  }
  bars.forEach((bar, index) => {
    const barHeight = (bar.value / max) * height;
    const x = left + index * slot + 8;
    const rect = svg("rect", { x, y: top + height - barHeight, width: slot - 16,
      height: Math.max(barHeight, 0), class: "bar", "data-label": bar.label,
      "data-value": bar.value });
    rect.append(svg("title", {}, `${bar.label}: $${bar.value.toFixed(6)}`));
    chart.append(rect);
    const labelX = x + (slot - 16) / 2;
    const label = bar.label.length > 10 ? `${bar.label.slice(0, 9)}…` : bar.label;
    chart.append(svg("text", { x: labelX, y: top + height + 14, "text-anchor": "middle",
      class: "axis" }, label));
    chart.append(svg("text", { x: labelX, y: top + height - barHeight - 4,
      "text-anchor": "middle", class: "value" }, bar.value.toFixed(2)));
  });
  figure.append(chart);
}

// ---- start ----------------------------------------------------------------------------------

function start() {
  $("#signin-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut(""));
  for (const button of document.querySelectorAll(".tab")) {
    button.addEventListener("click", () => openTab(button.dataset.tab));
  }
  $("#create-form").addEventListener("submit", createToken);
  $("#dismiss-token").addEventListener("click", dismissNewToken);
  $("#copy-token").addEventListener("click", () => guarded(
    () => navigator.clipboard.writeText($("#new-token-value").textContent)));
  $("#jobs-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(() => loadJobs(false));
  });
  $("#jobs-more").addEventListener("click", () => guarded(() => loadJobs(true)));
  $("#usage-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(loadUsage);
  });
  $("#usage-csv").addEventListener("click", downloadCsv);
  if (sessionStorage.getItem(STORAGE_KEY)) openTab(state.tab); else signOut("");
}

start();
