// The console's whole script layer: actions, sign-in, and live updates.
// Pages are rendered on the server; this only posts actions (with the CSRF
// token) and swaps in fresh server-rendered fragments when events arrive.
"use strict";

function cookie(name) {
  const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return hit ? decodeURIComponent(hit.slice(name.length + 1)) : "";
}

function flash(text, bad) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = text;
  box.className = bad ? "bad shown" : "shown";
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { box.className = ""; }, bad ? 8000 : 3000);
}

async function call(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": cookie("tickrail_csrf") },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { detail: text }; }
  if (!response.ok) {
    let detail = data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => (d.loc || []).join(".") + ": " + d.msg).join("; ");
    throw new Error(detail || response.statusText);
  }
  return data;
}

function parseAnswer(raw) {
  // An answer is JSON when it parses as JSON, otherwise the text itself.
  try { return JSON.parse(raw); } catch (e) { return raw; }
}

// ---- sign in / out, tenant switch ------------------------------------------------

function bindSession() {
  const form = document.getElementById("signin-form");
  if (form) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const data = Object.fromEntries(new FormData(form).entries());
      try {
        await call("POST", "/api/session", data);
        location.href = "/";
      } catch (e) {
        document.getElementById("signin-error").textContent = e.message;
      }
    });
  }
  const out = document.getElementById("sign-out");
  if (out) out.addEventListener("click", async () => {
    await call("DELETE", "/api/session").catch(() => {});
    location.href = "/signin";
  });
  const tenant = document.getElementById("tenant-form");
  if (tenant) tenant.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await call("POST", "/api/session", { tenant: new FormData(tenant).get("tenant") });
    location.href = "/";
  });
}

// ---- lifetimes list: live statuses ---------------------------------------------------

function fmtDuration(s) {
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  return (s / 60).toFixed(1) + " min";
}

function bindList() {
  const table = document.getElementById("lifetimes");
  if (!table) return;
  const query = table.dataset.query;
  const first = !new URLSearchParams(location.search).get("page_token");
  setInterval(async () => {
    let page;
    try { page = await call("GET", "/api/lifetimes" + (query ? "?" + query : "")); } catch (e) { return; }
    const shown = new Set([...table.querySelectorAll("tr[data-lifetime]")].map((r) => r.dataset.lifetime));
    for (const l of page.lifetimes) {
      const row = table.querySelector(`tr[data-lifetime="${CSS.escape(l.lifetime_id)}"]`);
      if (!row) { if (first && !shown.has(l.lifetime_id)) { location.reload(); return; } continue; }
      const status = row.querySelector('[data-field="status"]');
      if (status.textContent !== l.status) {
        status.textContent = l.status;
        status.className = "status s-" + l.status;
      }
      row.querySelector('[data-field="duration"]').textContent = fmtDuration(l.duration_s);
      row.querySelector('[data-field="tokens"]').textContent = (l.tokens || 0).toLocaleString("en");
      row.querySelector('[data-field="cost"]').textContent = (l.cost_usd || 0).toFixed(4);
    }
  }, 2000);
}

// ---- one lifetime: follow its events, act on it ------------------------------------

function bindLifetime() {
  const live = document.getElementById("live");
  if (!live) return;
  const id = live.dataset.lifetime;
  const answered = new Set(); // questions answered from this page (the record may lag)
  let pending = null;
  const swap = (html) => {
    // A live redraw must not wipe what a person is typing into an answer box.
    const typed = {};
    let focused = null;
    for (const form of live.querySelectorAll("form.answer")) {
      const input = form.querySelector("input[name=answer]");
      typed[form.dataset.exec] = input.value;
      if (document.activeElement === input) focused = form.dataset.exec;
    }
    live.innerHTML = html;
    for (const form of live.querySelectorAll("form.answer")) {
      const input = form.querySelector("input[name=answer]");
      if (answered.has(form.dataset.exec)) {
        form.classList.add("answered");
        input.disabled = true;
        form.querySelector("button").disabled = true;
      } else if (typed[form.dataset.exec]) {
        input.value = typed[form.dataset.exec];
      }
      if (focused === form.dataset.exec) input.focus();
    }
  };
  const refresh = () => {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      const response = await fetch(`/lifetimes/${encodeURIComponent(id)}/live`, { credentials: "same-origin" });
      if (response.ok) swap(await response.text());
    }, 150);
  };
  if (live.dataset.terminal !== "yes") {
    const source = new EventSource(`/api/lifetimes/${encodeURIComponent(id)}/events?after_seq=${live.dataset.seq}`);
    source.onmessage = refresh;
    for (const kind of ["routed", "guardrail", "paused", "resumed"]) source.addEventListener(kind, refresh);
    for (const kind of ["completed", "failed", "aborted", "end"]) {
      source.addEventListener(kind, () => { source.close(); refresh(); });
    }
  }
  document.addEventListener("click", async (ev) => {
    const button = ev.target.closest("button.act");
    if (!button) return;
    button.disabled = true;
    try {
      await call("POST", `/api/lifetimes/${encodeURIComponent(button.dataset.lifetime)}/${button.dataset.action}`, {});
      flash(button.dataset.action + " sent");
      refresh();
    } catch (e) { flash(e.message, true); button.disabled = false; }
  });
  document.addEventListener("submit", async (ev) => {
    const form = ev.target.closest("form.answer");
    if (!form) return;
    ev.preventDefault();
    const raw = form.querySelector("input[name=answer]").value;
    form.querySelector("button").disabled = true;
    try {
      await call("POST", `/api/lifetimes/${encodeURIComponent(form.dataset.lifetime)}/answer`,
        { input: parseAnswer(raw), exec_id: form.dataset.exec });
      flash("answer sent");
      answered.add(form.dataset.exec);
      form.classList.add("answered");
      refresh();
    } catch (e) { flash(e.message, true); form.querySelector("button").disabled = false; }
  });
  const replay = document.getElementById("replay");
  if (replay) replay.addEventListener("click", async () => {
    const out = document.getElementById("replay-result");
    out.textContent = "replaying…";
    try {
      const r = await call("POST", `/api/lifetimes/${encodeURIComponent(replay.dataset.lifetime)}/replay`, {});
      if (r.ok) {
        out.innerHTML = "";
        const p = document.createElement("p");
        p.className = "ok";
        p.textContent = `OK: ${r.checked} recorded decisions re-derived identically`;
        out.appendChild(p);
      } else {
        const d = r.divergence;
        out.innerHTML = "";
        const p = document.createElement("p");
        p.className = "bad";
        p.textContent = `DIVERGED at event seq ${d.seq} (${d.event_id}) after ${r.checked} equal events`;
        const pre = document.createElement("pre");
        pre.textContent = `recorded: ${d.expected}\nderived:  ${d.got}`;
        out.append(p, pre);
      }
    } catch (e) { out.textContent = e.message; }
  });
}

// ---- one execution: fork from it ---------------------------------------------------

function bindFork() {
  const form = document.getElementById("fork-form");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const error = document.getElementById("fork-error");
    error.textContent = "";
    const body = { from_exec_id: form.dataset.exec };
    const replace = document.getElementById("fork-replace");
    if (replace && replace.checked) {
      try { body.result = JSON.parse(document.getElementById("fork-result").value); } catch (e) {
        error.textContent = "the result is not valid JSON: " + e.message;
        return;
      }
    }
    form.querySelector("button").disabled = true;
    try {
      const r = await call("POST", `/api/lifetimes/${encodeURIComponent(form.dataset.lifetime)}/fork`, body);
      location.href = `/lifetimes/${encodeURIComponent(r.lifetime_id)}`;
    } catch (e) { error.textContent = e.message; form.querySelector("button").disabled = false; }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  bindSession();
  bindList();
  bindLifetime();
  bindFork();
});
