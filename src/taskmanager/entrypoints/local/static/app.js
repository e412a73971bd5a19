// The taskmanager web page: plain JavaScript, no build step.
// One EventSource on /events keeps every row live; the list and a task's input come from
// the HTTP API. A change is shown only if its version is newer than the one on screen.
"use strict";

const EXAMPLES = {
  "demo.sleep": '{"seconds": 5, "steps": 5}',
  "demo.echo": '{"hello": "world"}',
  "demo.fail": '{"code": "DEMO_FAILURE", "message": "it went wrong on purpose"}',
};
const TERMINAL = new Set(["SUCCESSFUL", "FAILED"]);
const MAX_ROWS = 100;
// A cancelled task is stored FAILED with the error code CANCELLED (docs/design.md §2). To
// whoever cancelled it that is no failure: the page shows it as CANCELLED, in grey.
const CANCELLED = "CANCELLED";

const tasks = new Map(); // id -> task resource
let selected = null;
let inputEdited = false;

const $ = (id) => document.getElementById(id);

function merge(task) {
  const known = tasks.get(task.id);
  if (known && known.version >= task.version) {
    if (known.input == null && task.input != null) known.input = task.input;
    return known;
  }
  if (known && task.input == null) task.input = known.input;
  tasks.set(task.id, task);
  return task;
}

function shownStatus(task) {
  const cancelled = task.status === "FAILED" && task.error && task.error.code === CANCELLED;
  return cancelled ? CANCELLED : task.status;
}

function percentOf(task) {
  const status = shownStatus(task);
  if (status === "SUCCESSFUL") return 100;
  if (status === "FAILED") return 100; // a full red bar
  if (status === CANCELLED) return 0; // stopped: no bar at all
  return task.progress ? task.progress.percent : 0;
}

function percentText(task) {
  return task.status === "FAILED" ? "–" : Math.round(percentOf(task)) + "%";
}

function capitalised(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
}

function formatTime(value) {
  if (!value) return "—";
  const date = new Date(value);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function formatFull(value) {
  if (!value) return "—";
  return new Date(value).toLocaleString();
}

function setBar(bar, task) {
  bar.className = "bar " + shownStatus(task);
  bar.firstElementChild.style.width = percentOf(task).toFixed(1) + "%";
}

function rowFor(task) {
  let row = document.querySelector(`tr[data-id="${task.id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.id = task.id;
    row.innerHTML =
      '<td class="c-type"></td><td class="c-status"><span class="status"></span></td>' +
      '<td class="c-progress"><div class="progress-cell"><div class="bar"><span></span></div>' +
      '<span class="percent"></span></div></td><td class="c-time"></td><td class="c-id"></td>';
    row.addEventListener("click", () => select(task.id));
  }
  return row;
}

function renderRow(task) {
  const row = rowFor(task);
  row.querySelector(".c-type").textContent = task.type;
  row.querySelector(".c-type").title = task.type;
  const status = row.querySelector(".status");
  status.textContent = shownStatus(task);
  status.className = "status " + shownStatus(task);
  setBar(row.querySelector(".bar"), task);
  row.querySelector(".percent").textContent = percentText(task);
  row.querySelector(".c-time").textContent = formatTime(task.created_at);
  row.querySelector(".c-id").textContent = task.id;
  row.querySelector(".c-id").title = task.id;
  row.classList.toggle("selected", task.id === selected);
  return row;
}

function renderList() {
  const body = document.querySelector("#tasks tbody");
  const ordered = [...tasks.values()]
    .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0))
    .slice(0, MAX_ROWS);
  const rows = ordered.map(renderRow);
  rows.forEach((row, index) => {
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
  });
  while (body.children.length > rows.length) body.lastElementChild.remove();
  $("list-empty").hidden = rows.length > 0;
  const open = ordered.filter((t) => !TERMINAL.has(t.status)).length;
  $("counts").textContent = rows.length ? `${rows.length} shown · ${open} open` : "";
}

function renderDetail() {
  const task = selected && tasks.get(selected);
  $("detail-empty").hidden = Boolean(task);
  $("detail-body").hidden = !task;
  $("cancel").hidden = !task || TERMINAL.has(task.status);
  if (!task) return;
  const status = $("d-status");
  status.textContent = shownStatus(task);
  status.className = "status " + shownStatus(task);
  setBar($("d-bar"), task);
  $("d-percent").textContent = percentText(task);
  $("d-message").textContent = (task.progress && task.progress.message) || "";
  $("d-id").textContent = task.id;
  $("d-type").textContent = task.type;
  $("d-created").textContent = formatFull(task.created_at);
  $("d-started").textContent = formatFull(task.started_at);
  $("d-finished").textContent = formatFull(task.finished_at);
  $("d-deadline").textContent = formatFull(task.deadline_at);
  $("d-input").textContent = JSON.stringify(task.input, null, 2);
  $("d-result-block").hidden = task.status !== "SUCCESSFUL";
  $("d-result").textContent = JSON.stringify(task.result, null, 2);
  $("d-error-block").hidden = !task.error;
  const cancelled = shownStatus(task) === CANCELLED;
  $("d-error-title").textContent = cancelled ? "Cancelled" : "Error";
  $("d-error").className = cancelled ? "json" : "json error";
  if (cancelled) {
    $("d-error").textContent = capitalised(task.error.message); // who cancelled it
  } else {
    $("d-error").textContent = task.error ? `${task.error.code}: ${task.error.message}` : "";
  }
}

function render() {
  renderList();
  renderDetail();
}

// An error answer of the API: its status and the body's code, message and details.
class ApiError extends Error {
  constructor(status, error) {
    super(error.message);
    this.status = status;
    this.code = error.code;
    this.details = error.details;
  }
}

async function api(method, path, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || { code: "HTTP_" + response.status, message: "" };
    throw new ApiError(response.status, error);
  }
  return data;
}

async function select(id) {
  selected = id;
  render();
  try {
    merge(await api("GET", `/tasks/${encodeURIComponent(id)}`));
    render();
  } catch (error) {
    console.warn(error);
  }
}

async function loadList() {
  const page = await api("GET", "/tasks?limit=" + MAX_ROWS);
  page.items.forEach(merge);
  render();
}

function connect() {
  const live = $("live");
  const source = new EventSource("/events");
  const onChange = (message) => {
    merge(JSON.parse(message.data));
    render();
  };
  ["TaskCreated", "TaskRunning", "TaskSuccessful", "TaskFailed"].forEach((name) =>
    source.addEventListener(name, onChange)
  );
  source.onopen = () => {
    live.textContent = "live";
    live.className = "live on";
    loadList().catch((error) => console.warn(error)); // after (re)connecting: catch up
  };
  source.onerror = () => {
    live.textContent = "reconnecting…";
    live.className = "live off";
  };
}

// What an error's details add, one line each: every invalid field with the rule it broke
// (a list of {loc, msg}), or each named value (an object). known_types is shown apart.
function detailLines(details) {
  if (Array.isArray(details)) {
    return details.map((item) => {
      if (!item || typeof item !== "object") return String(item);
      const loc = (item.loc || []).filter((p) => !["body", "query", "path"].includes(p));
      const rule = item.msg || item.type || "not valid";
      return loc.length ? `${loc.join(".")}: ${rule}` : rule;
    });
  }
  if (details && typeof details === "object") {
    return Object.entries(details)
      .filter(([key, value]) => value != null && key !== "known_types")
      .map(([key, value]) => `${key}: ${Array.isArray(value) ? value.join(", ") : value}`);
  }
  return details == null ? [] : [String(details)];
}

function knownTypesItem(types) {
  const item = document.createElement("li");
  item.append("known types:");
  types.forEach((type) => {
    const choice = document.createElement("button");
    choice.type = "button";
    choice.className = "choice";
    choice.textContent = type;
    choice.title = "submit a task of this type";
    choice.addEventListener("click", () => {
      $("type").value = type;
      $("type").dispatchEvent(new Event("input"));
      showError(null);
    });
    item.append(" ", choice);
  });
  return item;
}

// A refused submit (or cancel) in the form: the status, code and message, then its details.
function showError(error) {
  const box = $("form-error");
  const list = $("form-error-details");
  list.replaceChildren();
  $("type").removeAttribute("aria-invalid");
  box.hidden = !error;
  if (!error) return;
  if (!(error instanceof ApiError)) {
    $("form-error-message").textContent = String(error.message || error);
    return;
  }
  $("form-error-message").textContent = `${error.status} ${error.code}: ${error.message}`;
  for (const line of detailLines(error.details)) {
    const item = document.createElement("li");
    item.textContent = line;
    list.append(item);
  }
  const known = error.details && error.details.known_types;
  if (Array.isArray(known) && known.length) list.append(knownTypesItem(known));
  if (error.details && error.details.field === "type") $("type").setAttribute("aria-invalid", "true");
}

async function submit(event) {
  event.preventDefault();
  showError(null);
  const type = $("type").value.trim();
  const raw = $("input").value.trim();
  let input = null;
  if (raw) {
    try {
      input = JSON.parse(raw);
    } catch (error) {
      showError(new Error("Input is not JSON: " + error.message));
      return;
    }
  }
  const body = { type, input };
  const timeout = $("timeout").value.trim();
  if (timeout) body.timeout_seconds = Number(timeout);
  const button = $("submit");
  button.disabled = true;
  try {
    const task = merge(await api("POST", "/tasks", body));
    selected = task.id;
    render();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

async function cancel() {
  if (!selected) return;
  const button = $("cancel");
  button.disabled = true;
  try {
    merge(await api("POST", `/tasks/${encodeURIComponent(selected)}/cancel`));
    render();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("submit-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", cancel);
  $("input").addEventListener("input", () => (inputEdited = true));
  $("type").addEventListener("input", () => {
    const example = EXAMPLES[$("type").value.trim()];
    if (example && !inputEdited) $("input").value = example;
  });
  connect();
  setInterval(renderList, 30000); // keeps the list tidy if the tab slept
});
