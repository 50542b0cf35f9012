// The journal page: lists GET /api, adds entries with POST /api (text/plain).
// Entry data only ever reaches the page as textContent, never as HTML.
"use strict";

const API = "/api";

const list = document.getElementById("entries");
const empty = document.getElementById("empty");
const form = document.getElementById("entry-form");
const textarea = document.getElementById("entry-text");
const button = document.getElementById("add-entry");
const status = document.getElementById("status");

function showStatus(message, isError) {
  status.textContent = message;
  status.classList.toggle("error", Boolean(isError));
}

// The API's own message ({"error": "..."}) when it sent one.
async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") return body.error;
  } catch (_) {
    // not JSON: fall back to the status line
  }
  return `${response.status} ${response.statusText}`.trim();
}

function entryItem(entry) {
  const item = document.createElement("li");
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = String(entry.text);
  const created = document.createElement("time");
  created.dateTime = String(entry.created);
  const date = new Date(entry.created);
  created.textContent = Number.isNaN(date.getTime()) ? String(entry.created) : date.toLocaleString();
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "delete";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete entry ${entry.id}`);
  remove.addEventListener("click", () => deleteEntry(entry.id, item));
  item.append(text, created, remove);
  return item;
}

function show(entries) {
  list.replaceChildren(...entries.map(entryItem));
  empty.hidden = entries.length > 0;
}

// `added`: an entry just created, shown even if the replica the API reads from
// has not caught up with it yet.
async function refresh(added) {
  let response;
  try {
    response = await fetch(API, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (_) {
    showStatus("Cannot reach the journal API.", true);
    return;
  }
  if (!response.ok) {
    showStatus(`Cannot load the entries: ${await errorOf(response)}`, true);
    return;
  }
  const entries = await response.json();
  if (added && !entries.some((entry) => entry.id === added.id)) entries.unshift(added);
  show(entries);
}

async function addEntry(event) {
  event.preventDefault();
  const text = textarea.value;
  if (!text.trim()) {
    showStatus("Write something first.", true);
    return;
  }
  button.disabled = true;
  try {
    const response = await fetch(API, {
      method: "POST",
      headers: { "Content-Type": "text/plain; charset=utf-8" },
      body: text,
    });
    if (!response.ok) {
      showStatus(`Not saved: ${await errorOf(response)}`, true);
      return;
    }
    const added = await response.json();
    textarea.value = "";
    showStatus("Saved.", false);
    await refresh(added);
  } catch (_) {
    showStatus("Cannot reach the journal API.", true);
  } finally {
    button.disabled = false;
  }
}

async function deleteEntry(id, item) {
  try {
    const response = await fetch(`${API}/${encodeURIComponent(id)}`, { method: "DELETE" });
    if (!response.ok && response.status !== 404) {
      showStatus(`Not deleted: ${await errorOf(response)}`, true);
      return;
    }
  } catch (_) {
    showStatus("Cannot reach the journal API.", true);
    return;
  }
  // Removed here rather than by a refresh: the replica may still list it for a moment.
  item.remove();
  empty.hidden = list.children.length > 0;
  showStatus("Deleted.", false);
}

form.addEventListener("submit", addEntry);
refresh();
