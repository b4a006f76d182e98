// Digit Reader status page: polls the JSON API once a second and fills in the page.
// No inline script and no innerHTML: the CSP forbids the first, and text from the API is only
// ever set as textContent so nothing in a reading can become markup.
"use strict";

const POLL_MS = 1000;
const STREAM_RETRY_MS = 2000;

function byId(id) {
  return document.getElementById(id);
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  if (response.status === 401) {
    window.location.assign("/login");
    throw new Error("unauthorized");
  }
  if (!response.ok) {
    throw new Error(`${path}: HTTP ${response.status}`);
  }
  return response.json();
}

function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString();
}

function formatDuration(seconds) {
  const s = Math.round(seconds);
  if (s < 120) {
    return `${s} s`;
  }
  const minutes = Math.floor(s / 60);
  if (minutes < 120) {
    return `${minutes} min`;
  }
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function showReading(reading) {
  if (!reading) {
    return;
  }
  byId("value").textContent = reading.value;
  const lowest = reading.confidences.length ? Math.min(...reading.confidences) : 0;
  byId("reading-meta").textContent =
    `at ${formatTime(reading.time)}, lowest confidence ${(lowest * 100).toFixed(1)} %`;
  const list = byId("digits");
  list.replaceChildren(
    ...reading.digits.map((digit, i) => {
      const item = document.createElement("li");
      item.textContent = `${digit} · ${(reading.confidences[i] * 100).toFixed(0)} %`;
      return item;
    }),
  );
}

function showHistory(history) {
  byId("history").replaceChildren(
    ...history.map((reading) => {
      const item = document.createElement("li");
      item.textContent = `${reading.value} — ${formatTime(reading.time)}`;
      return item;
    }),
  );
}

function addRow(list, label, value) {
  const term = document.createElement("dt");
  term.textContent = label;
  const detail = document.createElement("dd");
  detail.textContent = value;
  list.append(term, detail);
}

function showStatus(status) {
  const list = byId("status");
  list.replaceChildren();
  const pill = byId("health");
  const fresh = status.status_age_s !== null && status.status_age_s < 10;
  const healthy = fresh && status.camera_ok !== false && !status.error;
  pill.textContent = !fresh ? "no status" : healthy ? "reading" : "problem";
  pill.className = `pill ${healthy ? "ok" : "bad"}`;
  if (status.fps !== undefined) {
    addRow(list, "Frames per second", status.fps.toFixed(2));
    addRow(list, "Frames", String(status.frames));
    addRow(list, "Camera", status.camera_ok ? "ok" : "not delivering");
    addRow(list, "Camera reconnects", String(status.reconnects));
    addRow(list, "Uptime", formatDuration(status.uptime_s));
    addRow(list, "Model", status.model_version || "unknown");
    for (const [stage, ms] of Object.entries(status.latency_ms || {})) {
      addRow(list, `Latency: ${stage}`, `${ms.toFixed(1)} ms`);
    }
    if (status.error) {
      addRow(list, "Error", status.error);
    }
  }
  addRow(list, "Readings accepted", String(status.readings.accepted));
  addRow(list, "Readings rejected", String(status.readings.rejected));
  if (status.mqtt) {
    addRow(list, "MQTT", status.mqtt.connected ? "connected" : "not connected");
    addRow(list, "MQTT queue", String(status.mqtt.queued));
  }
}

async function poll() {
  try {
    const [reading, history, status] = await Promise.all([
      getJson("/api/reading"),
      getJson("/api/history"),
      getJson("/api/status"),
    ]);
    showReading(reading);
    showHistory(history);
    showStatus(status);
  } catch (error) {
    const pill = byId("health");
    pill.textContent = "offline";
    pill.className = "pill bad";
  }
}

async function trigger() {
  const result = byId("trigger-result");
  try {
    const response = await fetch("/api/trigger", { method: "POST", credentials: "same-origin" });
    result.textContent = response.status === 202 ? "requested" : `failed (HTTP ${response.status})`;
  } catch (error) {
    result.textContent = "failed (no connection)";
  }
}

function watchStream() {
  const img = byId("preview");
  // A dropped stream (daemon restart, network blip) is reopened; the query only defeats caches.
  img.addEventListener("error", () => {
    window.setTimeout(() => {
      img.src = `/stream.mjpg?t=${Date.now()}`;
    }, STREAM_RETRY_MS);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  byId("trigger").addEventListener("click", trigger);
  watchStream();
  poll();
  window.setInterval(poll, POLL_MS);
});
