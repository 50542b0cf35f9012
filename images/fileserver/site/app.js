// The journal page: lists GET /api, adds entries with POST /api (text/plain).
// Entry data only ever reaches the page as textContent, never as HTML.
// Reading is open to anyone; adding and deleting send the stack's write credential,
// which the user pastes in and this tab keeps in sessionStorage (never in a URL).
"use strict";

const API = "/api";
const CREDENTIAL_KEY = "journal-write-credential";

const list = document.getElementById("entries");
const empty = document.getElementById("empty");
const form = document.getElementById("entry-form");
const textarea = document.getElementById("entry-text");
const button = document.getElementById("add-entry");
const status = document.getElementById("status");
const credential = document.getElementById("credential");
const forgetCredential = document.getElementById("forget-credential");

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

// The headers of a write, or null (with a message) when there is no credential to send.
function writeHeaders(headers, action) {
  const value = credential.value.trim();
  if (!value) {
    showStatus(`${action}: paste the write credential first.`, true);
    credential.focus();
    return null;
  }
  return { ...headers, Authorization: `Bearer ${value}` };
}

// What a refused write shows: a 401 says the credential is the problem.
async function refusal(action, response) {
  const reason = await errorOf(response);
  if (response.status === 401) {
    credential.focus();
    return `${action}: the write credential was refused (${reason}). Paste the current one.`;
  }
  return `${action}: ${reason}`;
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
  const headers = writeHeaders({ "Content-Type": "text/plain; charset=utf-8" }, "Not saved");
  if (!headers) return;
  button.disabled = true;
  try {
    const response = await fetch(API, { method: "POST", headers, body: text });
    if (!response.ok) {
      showStatus(await refusal("Not saved", response), true);
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
  const headers = writeHeaders({}, "Not deleted");
  if (!headers) return;
  try {
    const response = await fetch(`${API}/${encodeURIComponent(id)}`, { method: "DELETE", headers });
    if (!response.ok && response.status !== 404) {
      showStatus(await refusal("Not deleted", response), true);
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

credential.value = sessionStorage.getItem(CREDENTIAL_KEY) || "";
credential.addEventListener("input", () => {
  if (credential.value.trim()) sessionStorage.setItem(CREDENTIAL_KEY, credential.value.trim());
  else sessionStorage.removeItem(CREDENTIAL_KEY);
});
forgetCredential.addEventListener("click", () => {
  credential.value = "";
  sessionStorage.removeItem(CREDENTIAL_KEY);
  showStatus("The write credential is forgotten.", false);
});
form.addEventListener("submit", addEntry);
refresh();
