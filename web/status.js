// status.js - fills the status page from the public API: setup state,
// liveness and readiness. No framework, no build step.
"use strict";

function put(id, text, good) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.className = good ? "ok" : "bad";
}

function row(dl, label, value) {
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.textContent = value;
  dl.appendChild(dt);
  dl.appendChild(dd);
}

async function check(path, id) {
  try {
    const r = await fetch(path, { cache: "no-store" });
    put(id, r.ok ? "ok" : "HTTP " + r.status, r.ok);
  } catch (e) {
    put(id, "unreachable", false);
  }
}

async function setup() {
  try {
    const r = await fetch("/api/v1/setup/status", { cache: "no-store" });
    const s = await r.json();
    put("setup-state", s.setup_required ? "setup required (next step " + s.step + ")" : "complete",
        !s.setup_required);
    document.getElementById("setup-hint").hidden = !s.setup_required;
    const dl = document.getElementById("setup");
    row(dl, "Founder password", s.founder_password_set ? "set" : "not set");
    row(dl, "GPU", s.gpu_available ? (s.gpu_name || "available") : "none (CPU only)");
  } catch (e) {
    put("setup-state", "cannot reach the API", false);
  }
}

setup();
check("/healthz", "healthz");
check("/readyz", "readyz");
