// The Nin dashboard: one page of views (router.js) over the public API and the training hub, no framework.
import { HubConnectionBuilder, HubConnectionState, LogLevel } from "@microsoft/signalr";
import { createRecipes } from "./recipes.js";
import { createEvaluationView } from "./evaluation.js";
import { recordBatch, timeLeft, createBatchChart, batchPoints } from "./batches.js";
import { createRouter } from "./router.js";
import { createRecentRuns } from "./recent.js";
import { createCompareView } from "./compare.js";
import { createUploadView } from "./upload.js";
import { createVersionCompareView } from "./versions.js";
import { createTrafficView } from "./traffic.js";
import { createGateView } from "./gate.js";
import { createScatter, PARAMETERS, METRICS } from "./scatter.js";
import { createSweepsView } from "./sweeps.js";
import { Chart, LineController, ScatterController, LineElement, PointElement, LinearScale, LogarithmicScale, CategoryScale, Legend, Tooltip } from "chart.js";

Chart.register(LineController, ScatterController, LineElement, PointElement, LinearScale, LogarithmicScale, CategoryScale, Legend, Tooltip);
// Axis text and grid from the page's colours, so the charts read in the dark scheme too.
{
  const css = getComputedStyle(document.documentElement);
  Chart.defaults.color = css.getPropertyValue("--muted").trim() || Chart.defaults.color;
  Chart.defaults.borderColor = css.getPropertyValue("--line").trim() || Chart.defaults.borderColor;
}

const $ = (id) => document.getElementById(id);
const FIELDS = ["dataset", "recipe", "architecture", "epochs", "batchSize", "learningRate", "schedule", "momentum", "weightDecay", "shift", "flip", "labelSmoothing",
  "imageSize", "device", "modelName", "maxTrainImages", "maxTestImages"];
const NUMBERS = new Set(["epochs", "batchSize", "learningRate", "momentum", "weightDecay", "shift", "labelSmoothing", "imageSize", "maxTrainImages", "maxTestImages"]);
const BOOLEANS = new Set(["flip"]);
const FINISHED = new Set(["Succeeded", "Failed", "Cancelled", "Stopped"]); // Stopped: ended early by its sweep's rule

/** jobId → JobSnapshot, as the API and the hub send them. */
const jobs = new Map();
/** jobId → { epoch, batch, batches, loss, at, startBatch, startAt } from BatchProgress. */
const progress = new Map();
let selectedJobId = null;
let pinned = false; // the user chose a job to watch; otherwise follow the newest active one

// ---------- helpers ----------

const pct = (x) => (x == null ? "–" : `${(x * 100).toFixed(1)}%`);
const num = (x, digits = 3) => (x == null || !Number.isFinite(x) ? "–" : x.toFixed(digits));

function duration(ms) {
  if (ms == null || ms < 0) return "–";
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}h ${String(m).padStart(2, "0")}m ${String(r).padStart(2, "0")}s` : m > 0 ? `${m}m ${String(r).padStart(2, "0")}s` : `${r}s`;
}

function jobDuration(job) {
  if (!job.startedAt) return null;
  const end = job.finishedAt ? Date.parse(job.finishedAt) : Date.now();
  return end - Date.parse(job.startedAt);
}

// ---------- API key ----------
// A service with Security:ApiKeys answers 401 (no key) or 403 (wrong key) on training and management routes.
// The dashboard then asks for the key once, keeps it in localStorage and sends it as X-Api-Key and to the hub.

const KEY_STORE = "nin.apiKey";
let keyPrompt = null;
let keyDeclined = false;

function apiKey() {
  try {
    return localStorage.getItem(KEY_STORE) || "";
  } catch {
    return "";
  }
}

/** Asks for the key (one prompt at a time); true when a new key was stored. */
function askForKey(status) {
  if (keyDeclined) return Promise.resolve(false);
  if (!keyPrompt) {
    keyPrompt = new Promise((resolve) => {
      const text = status === 403
        ? "The stored API key was not accepted. Enter the service's API key:"
        : "This service needs an API key. Enter it (kept in this browser's localStorage):";
      const entered = (window.prompt(text, "") || "").trim();
      if (entered) {
        try {
          localStorage.setItem(KEY_STORE, entered);
        } catch {
          // storage disabled: the key works for this attempt only
        }
      } else {
        keyDeclined = true;
      }

      keyPrompt = null;
      resolve(Boolean(entered));
    });
  }

  return keyPrompt;
}

/** After a 401/403: true to retry, with a key entered now or by another request since this one was sent. */
function keyAfterRejection(sentKey, status) {
  if (apiKey() !== sentKey) return Promise.resolve(true);
  return askForKey(status);
}

// The request headers with the key, when one is set: for api() and for the fetches that want bytes, not JSON.
function withKey(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, "X-Api-Key": key } : headers;
}

async function api(path, init = {}, retried = false) {
  const key = apiKey();
  const headers = withKey({ Accept: "application/json", ...(init.headers || {}) });
  const response = await fetch(path, { ...init, headers });
  if ((response.status === 401 || response.status === 403) && !retried && (await keyAfterRejection(key, response.status))) {
    return api(path, init, true);
  }

  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  return { ok: response.ok, status: response.status, body };
}

function problemText(result) {
  const b = result.body;
  if (b && (b.title || b.detail)) return [b.title, b.detail].filter(Boolean).join(" ");
  if (b && b.error) return b.error;
  return `The server answered ${result.status}.`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

// ---------- connection ----------

const hub = new HubConnectionBuilder()
  .withUrl("hubs/training", { accessTokenFactory: () => apiKey() })
  .withAutomaticReconnect([0, 1000, 2000, 5000, 10000, 10000, 30000])
  .configureLogging(LogLevel.Warning)
  .build();

function setConnection(state) {
  const node = $("conn-state");
  node.dataset.state = state;
  node.textContent = state;
}

// Every snapshot and event carries its job's revision; they can arrive out of order (DELETE's 202 after the hub's
// Cancelled, events relayed through Redis by another replica). Anything older than what this page has is dropped.
const revisionOf = (x) => x?.revision ?? 0;
const isStale = (job, e) => job != null && revisionOf(e) < revisionOf(job);

hub.on("JobUpdated", (snapshot) => upsertJob(snapshot));
hub.on("BatchProgress", (e) => {
  const job = jobs.get(e.jobId);
  if (isStale(job, e)) return;
  const now = Date.now();
  const last = progress.get(e.jobId);
  const sameEpoch = last && last.epoch === e.epoch && e.batch >= last.batch;
  progress.set(e.jobId, {
    ...e,
    at: now,
    startBatch: sameEpoch ? last.startBatch : e.batch,
    startAt: sameEpoch ? last.startAt : now,
  });
  recordBatch(e);
  recentRuns.renderSoon();
  if (e.jobId === selectedJobId) renderLive();
});
hub.on("EpochCompleted", (e) => {
  const job = jobs.get(e.jobId);
  if (!job || isStale(job, e)) return;
  job.revision = Math.max(revisionOf(job), revisionOf(e)); // the epoch's own snapshot may still be on its way
  if (!job.epochs.some((m) => m.epoch === e.epoch)) {
    job.epochs = [...job.epochs, { epoch: e.epoch, trainLoss: e.trainLoss, trainAccuracy: e.trainAccuracy, testAccuracy: e.testAccuracy, examplesPerSecond: e.examplesPerSecond, seconds: e.seconds }]
      .sort((a, b) => a.epoch - b.epoch);
  }

  renderJobs();
  compareView.render();
  sweepsView.jobChanged(job);
  if (e.jobId === selectedJobId) renderLive();
});
hub.on("JobFinished", (e) => {
  const job = jobs.get(e.jobId);
  if (isStale(job, e)) return;
  if (job) {
    job.revision = revisionOf(e);
    job.status = e.status;
    job.error = e.error ?? job.error;
    job.modelName = e.modelName ?? job.modelName;
    job.modelVersion = e.modelVersion ?? job.modelVersion;
    job.warnings = e.warnings ?? job.warnings;
    job.stopReason = e.stopReason ?? job.stopReason; // Stopped: why the sweep's rule ended it
    job.finishedAt = job.finishedAt ?? new Date().toISOString();
  }

  renderJobs();
  renderLive();
  if (e.status === "Succeeded") refreshModelsSoon();
});

hub.onreconnecting(() => setConnection("reconnecting"));
hub.onreconnected(async () => {
  setConnection("connected");
  await resubscribe();
});
hub.onclose(() => {
  setConnection("disconnected");
  startHub(); // automatic reconnect gave up: keep trying, more slowly
});

/** Follow every job and take the snapshots: a page opened mid-run shows everything so far. */
async function resubscribe() {
  try {
    const snapshots = await hub.invoke("SubscribeAll");
    for (const s of snapshots) upsertJob(s, false);
    renderAll();
  } catch (err) {
    console.warn("SubscribeAll failed", err);
  }
}

let starting = false;
async function startHub() {
  if (starting) return;
  starting = true;
  let delay = 1000;
  while (hub.state === HubConnectionState.Disconnected) {
    setConnection("connecting");
    const sentKey = apiKey();
    try {
      await hub.start();
      setConnection("connected");
      await resubscribe();
      break;
    } catch (err) {
      console.warn("Hub connection failed; retrying", err);
      const status = /\b(401|403)\b/.exec(String((err && (err.statusCode || err.message)) || ""));
      if (status && (await keyAfterRejection(sentKey, Number(status[1])))) continue;
      setConnection("disconnected");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  starting = false;
}

// ---------- jobs ----------

function upsertJob(snapshot, render = true) {
  const known = jobs.get(snapshot.jobId);
  if (isStale(known, snapshot)) return; // an older revision than the one shown
  jobs.set(snapshot.jobId, snapshot);
  if (!pinned) {
    selectedJobId = pickDefaultJob();
  }

  // A job that finished while this page was (re)connecting sends no JobFinished here, only its snapshot:
  // its new model must still appear.
  if (snapshot.status === "Succeeded" && known?.status !== "Succeeded") refreshModelsSoon();
  if (render) renderAll();
  sweepsView.jobChanged(snapshot);
}

let modelsRefresh = null;
function refreshModelsSoon() {
  modelsRefresh ??= setTimeout(() => {
    modelsRefresh = null;
    loadModels();
  }, 0);
}

const newestFirst = (a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt);

function sortedJobs() {
  return [...jobs.values()].sort(newestFirst);
}

// The runs table as the user asked to see it: a text filter over status, dataset, recipe, architecture, model and job
// id, and a sort (newest first by default; best or final test accuracy, duration, learning rate).
const bestAccuracy = (job) => job.epochs.reduce((best, e) => Math.max(best, e.testAccuracy ?? -1), -1);
const finalAccuracy = (job) => (job.epochs.length > 0 ? job.epochs[job.epochs.length - 1].testAccuracy ?? -1 : -1);
const SORTS = {
  newest: newestFirst,
  best: (a, b) => bestAccuracy(b) - bestAccuracy(a),
  final: (a, b) => finalAccuracy(b) - finalAccuracy(a),
  duration: (a, b) => (jobDuration(b) ?? -1) - (jobDuration(a) ?? -1),
  learningRate: (a, b) => (b.request.learningRate ?? 0) - (a.request.learningRate ?? 0),
};

function visibleJobs() {
  const words = $("jobs-filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const text = (j) => [j.jobId, j.status, j.request.dataset, j.request.recipe ?? "d2l", j.request.architecture, j.modelName ?? j.request.modelName, j.worker, j.request.sweepId]
    .filter(Boolean).join(" ").toLowerCase();
  const sort = SORTS[$("jobs-sort").value] ?? SORTS.newest;
  return [...jobs.values()].filter((j) => words.every((w) => text(j).includes(w))).sort((a, b) => sort(a, b) || newestFirst(a, b));
}

// The whole runs table as CSV (GET /train?format=csv), fetched with the key when one is set and saved as a file.
async function downloadRuns(button) {
  button.disabled = true;
  try {
    const response = await fetch("train?format=csv", { headers: withKey({ Accept: "text/csv" }) });
    if (!response.ok) {
      $("jobs-error").textContent = `The runs table could not be downloaded (${response.status}).`;
      return;
    }

    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: "nin-runs.csv" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } finally {
    button.disabled = false;
  }
}

function pickDefaultJob() {
  const list = sortedJobs();
  const running = list.find((j) => j.status === "Running");
  return (running ?? list[0])?.jobId ?? null;
}

// The Run view (#/runs/{jobId}) shows that job; one this page has not heard of yet (a deep link opened before the
// hub's snapshots, or a job only another replica knows) is fetched.
async function showRun(jobId) {
  selectedJobId = jobId;
  pinned = true;
  renderAll();
  if (jobs.has(jobId)) return;
  const result = await api(`train/${encodeURIComponent(jobId)}`).catch(() => null);
  if (result?.ok) upsertJob(result.body);
  else if (selectedJobId === jobId && !jobs.has(jobId)) $("live-empty").textContent = `There is no run ${jobId}.`;
}

async function cancelJob(jobId, button, errorId = "jobs-error") {
  button.disabled = true;
  $(errorId).textContent = "";
  const result = await api(`train/${encodeURIComponent(jobId)}`, { method: "DELETE" });
  if (!result.ok) {
    $(errorId).textContent = problemText(result);
    button.disabled = false;
    return;
  }

  if (result.body?.jobId) upsertJob(result.body);
}

// ---------- overview: what is served and what is training, first thing on the page ----------

function renderOverviewModel(active, models) {
  const version = active && models.find((m) => m.name === active.name)?.versions.find((v) => v.version === active.version);
  $("ov-model").replaceChildren(active ? modelLink(active.name, `${active.name} v${active.version}`) : "none");
  $("ov-accuracy").textContent = version?.testAccuracy != null ? pct(version.testAccuracy) : "–";
  servedModel = active;
  renderOverviewTraffic(active);
}

let servedModel = null;

// The served model's traffic split, when it has one: under the served model, each version's share and the shadow.
async function renderOverviewTraffic(active) {
  const note = $("ov-traffic");
  const result = active ? await api(`models/${encodeURIComponent(active.name)}/traffic`).catch(() => null) : null;
  const body = result?.ok ? result.body : null;
  const parts = (body?.routes ?? []).map((r) => `v${r.version} ${pct(r.share)}`);
  if (body?.shadow) parts.push(`shadow v${body.shadow.version}${body.shadow.rate == null ? "" : ` (agrees ${pct(body.shadow.rate)})`}`);
  note.textContent = parts.length ? `split: ${parts.join(" · ")}` : "";
  note.hidden = parts.length === 0;
}

async function loadServing() {
  const result = await api("health/live").catch(() => null);
  if (!result?.ok) return;
  const { engine, precision, device } = result.body;
  $("ov-engine").textContent = [engine, precision, device].filter(Boolean).join(" · ");
}

function renderOverviewRuns(list) {
  const count = (status) => list.filter((j) => j.status === status).length;
  const running = count("Running");
  const queued = count("Queued");
  const parts = [`${running} running`, `${queued} queued`, `${list.length - running - queued} finished`];
  $("ov-runs").textContent = list.length === 0 ? "none yet" : parts.join(", ");
}

function renderJobs() {
  const tbody = $("jobs-table").querySelector("tbody");
  renderOverviewRuns([...jobs.values()]);
  recentRuns.render();
  const list = visibleJobs();
  $("jobs-empty").hidden = jobs.size > 0;
  $("jobs-none-match").hidden = jobs.size === 0 || list.length > 0;
  tbody.replaceChildren(...list.map((job) => {
    const active = !FINISHED.has(job.status);
    const model = job.modelName && job.modelVersion ? modelLink(job.modelName, `${job.modelName} v${job.modelVersion}`) : "–";
    const best = bestAccuracy(job);
    const row = el("tr", { dataset: { jobId: job.jobId, status: job.status } },
      el("td", {}, runLink(job.jobId)),
      el("td", {}, el("span", { className: "status", textContent: job.status, dataset: { status: job.status }, ...(job.worker ? { title: `run by worker ${job.worker}` } : {}) }),
        (job.warnings ?? []).length > 0 ? el("span", { className: "warning-mark", textContent: " did not learn", title: job.warnings.join("\n") }) : null),
      el("td", {}, `${job.request.dataset} (${job.request.recipe ?? "d2l"})`, ...(job.request.sweepId
        ? [" ", el("a", { className: "sweep-link", href: `#/sweeps/${encodeURIComponent(job.request.sweepId)}`, textContent: `sweep ${job.request.sweepId.slice(0, 8)} #${job.request.trial}` })]
        : [])),
      el("td", { textContent: `${job.epochs.length}/${job.request.epochs}` }),
      el("td", { className: "best", textContent: best >= 0 ? pct(best) : "–" }),
      el("td", { className: "duration", textContent: duration(jobDuration(job)) }),
      el("td", {}, model),
      el("td", {}, active
        ? el("button", { type: "button", className: "danger cancel", textContent: "Cancel", "aria-label": `Cancel job ${job.jobId}`, onclick: (ev) => cancelJob(job.jobId, ev.currentTarget) })
        : null),
      el("td", {}, el("input", { type: "checkbox", className: "compare", checked: compareView.isChosen(job.jobId), "aria-label": `Compare job ${job.jobId}`, onchange: (ev) => compareView.toggle(job.jobId, ev.currentTarget.checked) })));
    if (job.jobId === selectedJobId) row.setAttribute("aria-current", "true");
    return row;
  }));
  renderScatter(list);
}

// The runs the filter shows as points: the chosen metric against the chosen hyperparameter (scatter.js); a run with
// no epoch yet has no figure and is left out (said under the chart). Redrawn only when a point changed.
let scatterKey = "";
function renderScatter(list) {
  const metric = METRICS[$("scatter-metric").value] ?? METRICS.best;
  const param = $("scatter-param").value in PARAMETERS ? $("scatter-param").value : "learningRate";
  const points = list.map((job) => ({ id: job.jobId, x: job.request[param], y: metric.of(job) }))
    .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  $("runs-scatter").hidden = jobs.size === 0;
  const left = list.length - points.length;
  $("scatter-left").textContent = left > 0 ? `${left} run${left === 1 ? "" : "s"} without a figure yet not shown.` : "";
  const key = JSON.stringify([metric.label, param, points]);
  if (key === scatterKey) return;
  scatterKey = key;
  runScatter.show({ points, xLabel: PARAMETERS[param], yLabel: metric.label, percent: metric.percent });
}

// A link to a run's view showing its id's first 8 characters; the rest is there for screen readers, so the link's
// name is the whole id and still starts with what is seen.
function runLink(jobId) {
  return el("a", { className: "run-link", href: `#/runs/${encodeURIComponent(jobId)}`, title: `Show run ${jobId}` },
    jobId.slice(0, 8), el("span", { className: "sr-only", textContent: jobId.slice(8) }));
}

// ---------- live view and charts ----------

const chartOptions = (yTitle, percent) => ({
  animation: false,
  responsive: true,
  maintainAspectRatio: false,
  interaction: { mode: "index", intersect: false },
  scales: {
    x: { title: { display: true, text: "epoch" } },
    y: { title: { display: true, text: yTitle }, ...(percent ? { min: 0, max: 1, ticks: { callback: (v) => `${Math.round(v * 100)}%` } } : {}) },
  },
});

const lossChart = new Chart($("loss-chart"), {
  type: "line",
  data: { labels: [], datasets: [{ label: "train loss", data: [], borderColor: "#b3261e", backgroundColor: "#b3261e" }] },
  options: chartOptions("loss", false),
});
const accChart = new Chart($("acc-chart"), {
  type: "line",
  data: {
    labels: [],
    datasets: [
      { label: "train accuracy", data: [], borderColor: "#2456c7", backgroundColor: "#2456c7" },
      { label: "test accuracy", data: [], borderColor: "#1b7a3a", backgroundColor: "#1b7a3a" },
    ],
  },
  options: chartOptions("accuracy", true),
});
const batchChart = createBatchChart(Chart, $("batch-chart"));
const compareView = createCompareView({ $, Chart, jobs });
$("scatter-metric").replaceChildren(...Object.entries(METRICS).map(([value, m]) => el("option", { value, textContent: m.label })));
$("scatter-param").replaceChildren(...Object.entries(PARAMETERS).map(([value, label]) => el("option", { value, textContent: label })));
const runScatter = createScatter({ Chart, el, canvas: $("scatter-chart"), table: $("scatter-table"), openRun: (jobId) => router.go(`/runs/${encodeURIComponent(jobId)}`) });
let chartedJob = null;
let chartedEpochs = -1;

function renderCharts(job) {
  const epochs = job ? job.epochs : [];
  if (chartedJob === job?.jobId && chartedEpochs === epochs.length) return;
  chartedJob = job?.jobId ?? null;
  chartedEpochs = epochs.length;
  const labels = epochs.map((e) => e.epoch);
  lossChart.data.labels = labels;
  lossChart.data.datasets[0].data = epochs.map((e) => e.trainLoss);
  accChart.data.labels = labels;
  accChart.data.datasets[0].data = epochs.map((e) => e.trainAccuracy);
  accChart.data.datasets[1].data = epochs.map((e) => e.testAccuracy);
  lossChart.update();
  accChart.update();
  $("loss-figure").dataset.points = String(epochs.length);
  $("acc-figure").dataset.points = String(epochs.length);
  $("epochs-table").querySelector("tbody").replaceChildren(...epochs.map((e) => el("tr", {},
    el("td", { textContent: String(e.epoch) }),
    el("td", { textContent: num(e.trainLoss, 4) }),
    el("td", { textContent: pct(e.trainAccuracy) }),
    el("td", { textContent: pct(e.testAccuracy) }),
    el("td", { textContent: num(e.examplesPerSecond, 1) }),
    el("td", { textContent: num(e.seconds, 1) }))));
}

// What happened to the run, in order: queued, started, each epoch, the end (with its error or warnings).
let eventsShown = "";
function renderEvents(job) {
  const key = `${job.jobId} ${job.status} ${job.epochs.length} ${job.startedAt} ${job.finishedAt}`;
  if (key === eventsShown) return;
  eventsShown = key;
  const at = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");
  const item = (time, text) => el("li", {}, time ? el("time", { dateTime: time, textContent: at(time) }) : null, ` ${text}`);
  $("live-events").replaceChildren(...[
    item(job.createdAt, `Queued: ${job.request.dataset} (${job.request.recipe ?? "d2l"}), ${job.request.epochs} epochs`),
    job.startedAt ? item(job.startedAt, `Started${job.device ? ` on ${job.device}` : ""}${job.worker ? ` (worker ${job.worker})` : ""}`) : null,
    ...job.epochs.map((e) => item(null, `Epoch ${e.epoch}: train loss ${num(e.trainLoss, 4)}, test accuracy ${pct(e.testAccuracy)}, ${num(e.seconds, 1)} s`)),
    FINISHED.has(job.status) ? item(job.finishedAt, `${job.status}${job.modelName && job.modelVersion ? `: ${job.modelName} v${job.modelVersion}` : ""}${job.error ? `: ${job.error}` : ""}${job.stopReason ? `: ${job.stopReason}` : ""}`) : null,
    ...(job.warnings ?? []).map((w) => item(null, `Warning: ${w}`)),
  ].filter(Boolean));
}

function renderLive() {
  const job = selectedJobId ? jobs.get(selectedJobId) : null;
  $("live-empty").hidden = !!job;
  $("live-job").hidden = !job;
  $("live-title").textContent = selectedJobId ? selectedJobId.slice(0, 8) : "";
  renderCharts(job);
  if (!job) {
    $("live-empty").textContent = selectedJobId ? `Loading run ${selectedJobId}…` : "No training job yet.";
    return;
  }

  $("live-job").dataset.jobId = job.jobId;
  const sweepId = job.request.sweepId;
  $("live-sweep").hidden = !sweepId; // a sweep's trial links back to its sweep
  if (sweepId) {
    $("live-sweep").href = `#/sweeps/${encodeURIComponent(sweepId)}`;
    $("live-sweep").textContent = `Trial ${job.request.trial} of sweep ${sweepId.slice(0, 8)}`;
  }
  $("live-id").textContent = job.jobId;
  const cancel = $("live-cancel");
  cancel.hidden = FINISHED.has(job.status);
  if (cancel.dataset.jobId !== job.jobId) {
    cancel.dataset.jobId = job.jobId;
    cancel.disabled = false;
    $("live-cancel-error").textContent = "";
    cancel.setAttribute("aria-label", `Cancel job ${job.jobId}`);
  }
  renderEvents(job);
  const status = $("live-status");
  status.textContent = job.status;
  status.dataset.status = job.status;
  $("live-error").textContent = job.status === "Failed" && job.error ? job.error : "";
  const warnings = job.warnings ?? [];
  $("live-warnings").hidden = warnings.length === 0;
  $("live-warnings").replaceChildren(...warnings.map((w) => el("li", { textContent: `${w} The model was stored but not activated.` })));

  const p = progress.get(job.jobId);
  const total = job.request.epochs;
  const bar = $("live-progress");
  if (job.status === "Running" && p) {
    $("live-epoch").textContent = `${p.epoch} of ${total}`;
    bar.max = Math.max(1, p.batches);
    bar.value = p.batch;
    $("live-progress-label").textContent = `Epoch ${p.epoch}: batch ${p.batch} of ${p.batches}`;
    $("live-loss").textContent = num(p.loss, 4);
  } else if (job.status === "Running") {
    const e = job.progress;
    $("live-epoch").textContent = `${Math.max(1, e.epoch)} of ${total}`;
    bar.max = Math.max(1, e.batches);
    bar.value = e.batch;
    $("live-progress-label").textContent = e.batches ? `Epoch ${e.epoch}: batch ${e.batch} of ${e.batches}` : "Starting…";
  } else {
    $("live-epoch").textContent = `${job.epochs.length} of ${total}`;
    bar.max = 1;
    bar.value = job.status === "Succeeded" ? 1 : 0;
    $("live-progress-label").textContent = job.status === "Queued" ? "Waiting for the worker…" : `Finished: ${job.status}`;
  }

  // Examples per second: live within the epoch when batches arrive, else the last epoch's figure.
  let rate = null;
  if (job.status === "Running" && p && p.at > p.startAt && p.batch > p.startBatch) {
    rate = ((p.batch - p.startBatch) * job.request.batchSize) / ((p.at - p.startAt) / 1000);
  } else if (job.epochs.length > 0) {
    rate = job.epochs[job.epochs.length - 1].examplesPerSecond;
  }

  $("live-rate").textContent = rate == null ? "–" : rate.toFixed(0);
  // Batch losses come only live from the hub, so a run opened after it trained (or after a reload) has none: say so
  // rather than show empty axes.
  const batchCount = batchChart.render(job.jobId);
  $("batch-figure").dataset.points = String(batchCount);
  const batchEmpty = $("batch-empty");
  batchEmpty.hidden = batchCount > 0;
  if (batchCount === 0) {
    batchEmpty.textContent = FINISHED.has(job.status)
      ? "Batch losses are drawn live while a run trains and are not kept; this run's epoch curves are."
      : "Batch losses appear here as the run trains.";
  }
  const left = timeLeft(job, p);
  $("live-eta-epoch").textContent = left ? duration(left.epoch * 1000) : FINISHED.has(job.status) ? "done" : "–";
  $("live-eta-job").textContent = left ? duration(left.job * 1000) : FINISHED.has(job.status) ? "done" : "–";
  $("live-elapsed").textContent = duration(jobDuration(job));
}

function renderAll() {
  renderJobs();
  renderLive();
  compareView.render();
}

// Elapsed times move on their own.
setInterval(() => {
  const job = selectedJobId ? jobs.get(selectedJobId) : null;
  if (job && job.status === "Running") $("live-elapsed").textContent = duration(jobDuration(job));
  for (const row of $("jobs-table").querySelectorAll("tbody tr[data-status='Running']")) {
    const j = jobs.get(row.dataset.jobId);
    if (j) row.querySelector(".duration").textContent = duration(jobDuration(j));
  }
}, 1000);

// ---------- training form ----------

function clearErrors() {
  for (const f of FIELDS) {
    $(`err-${f}`).textContent = "";
    $(`f-${f}`).removeAttribute("aria-invalid");
  }

  $("train-error").textContent = "";
  $("train-result").textContent = "";
}

function readForm() {
  const body = {};
  for (const f of FIELDS) {
    const raw = $(`f-${f}`).value.trim();
    if (raw === "") continue;
    body[f] = NUMBERS.has(f) && Number.isFinite(Number(raw)) ? Number(raw) : BOOLEANS.has(f) ? raw === "true" : raw;
  }

  return body;
}

async function submitTraining(event) {
  event.preventDefault();
  clearErrors();
  const button = $("train-submit");
  button.disabled = true;
  try {
    const result = await api("train", { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(readForm()) });
    // 400: fields that are wrong; 409: fields no live worker can serve (device, memory), with the reason in the title.
    if ((result.status === 400 || result.status === 409) && result.body?.errors) {
      let first = null;
      const general = [];
      for (const [field, messages] of Object.entries(result.body.errors)) {
        const key = FIELDS.find((f) => f.toLowerCase() === field.toLowerCase());
        if (key) {
          $(`err-${key}`).textContent = messages.join(" ");
          $(`f-${key}`).setAttribute("aria-invalid", "true");
          // A message about a field under "Advanced" opens it: the message stands beside the field it concerns.
          const advanced = $(`f-${key}`).closest("details");
          if (advanced) advanced.open = true;
          first ??= $(`f-${key}`);
        } else {
          general.push(...messages);
        }
      }

      $("train-error").textContent = [result.body.title, ...general, result.status === 409 ? result.body.detail : null].filter(Boolean).join(" ");
      first?.focus();
      return;
    }

    if (!result.ok) {
      $("train-error").textContent = problemText(result);
      return;
    }

    $("train-result").textContent = `Queued job ${result.body.jobId}.`;
    selectedJobId = result.body.jobId;
    pinned = true;
    router.go(`/runs/${encodeURIComponent(result.body.jobId)}`); // its live view
    // The hub may already have sent the snapshot; make sure we have it and follow it even if not subscribed to all.
    const snap = await api(`train/${encodeURIComponent(result.body.jobId)}`);
    if (snap.ok) upsertJob(snap.body);
    if (hub.state === HubConnectionState.Connected) {
      hub.invoke("Subscribe", result.body.jobId).then((s) => upsertJob(s)).catch(() => {});
    }
  } catch (err) {
    $("train-error").textContent = `Could not reach the service: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

async function loadDatasets() {
  const result = await api("datasets").catch(() => null);
  if (!result?.ok) {
    $("datasets-error").textContent = result ? problemText(result) : "Could not reach the service.";
    return;
  }

  $("datasets-error").textContent = "";
  renderDatasets(result.body);
  const select = $("f-dataset");
  const current = select.value || "fashion-mnist";
  select.replaceChildren(...result.body.map((d) => el("option", { value: d.name, title: d.title ?? d.name, textContent: `${d.name}${d.available ? "" : " (download on first use)"}` })));
  select.value = result.body.some((d) => d.name === current) ? current : result.body[0]?.name ?? "";
}

// The Datasets view's table: built-in and uploaded datasets; an upload can be deleted (409 while a run uses it).
function renderDatasets(list) {
  $("datasets-table").querySelector("tbody").replaceChildren(...list.map((d) => {
    const uploaded = d.location?.startsWith("uploads/");
    return el("tr", { dataset: { dataset: d.name } },
      el("th", { scope: "row", textContent: d.name }),
      el("td", { textContent: d.title ?? d.name }),
      el("td", { textContent: String(d.classes?.length ?? "–"), title: (d.classes ?? []).join(", ") }),
      el("td", { textContent: d.train == null ? "–" : String(d.train) }),
      el("td", { textContent: d.test == null ? "–" : String(d.test) }),
      el("td", { textContent: `${d.width}×${d.height} ${d.channels === 1 ? "grey" : "RGB"}${d.available ? "" : " (download on first use)"}` }),
      el("td", {}, uploaded
        ? el("button", { type: "button", className: "danger delete", textContent: "Delete", "aria-label": `Delete dataset ${d.name}`, onclick: (ev) => deleteDataset(d.name, ev.currentTarget) })
        : null));
  }));
}

async function deleteDataset(id, button) {
  if (!window.confirm(`Delete the uploaded dataset ${id}? Its images are removed; trained models keep working.`)) return;
  button.disabled = true;
  $("datasets-error").textContent = "";
  const result = await api(`datasets/${encodeURIComponent(id)}`, { method: "DELETE" });
  if (!result.ok) {
    $("datasets-error").textContent = problemText(result);
    button.disabled = false;
    return;
  }

  if ($("upload-id")?.textContent === id) {
    $("upload-summary").hidden = true; // the summary of what was just deleted goes with it
    $("upload-next").hidden = true;
  }

  await loadDatasets();
}

// ---------- models ----------

const modelLink = (name, text) => el("a", { href: `#/models/${encodeURIComponent(name)}`, textContent: text });

// #/models/{name}: the model's versions marked and scrolled to, its heading the place focus moves to. A deep link
// opened before the models arrived is scrolled to once they have.
let modelPending = null;
function showModel(name) {
  for (const block of document.querySelectorAll(".model[aria-current]")) block.removeAttribute("aria-current");
  const block = name ? [...document.querySelectorAll(".model")].find((b) => b.dataset.model === name) : null;
  modelPending = name && !block ? name : null;
  if (!block) return null;
  block.setAttribute("aria-current", "true");
  block.scrollIntoView({ block: "start" });
  return block.querySelector("h3");
}

async function loadModels() {
  const result = await api("models").catch(() => null);
  if (!result?.ok) {
    $("models-error").textContent = result ? problemText(result) : "Could not reach the service.";
    return;
  }

  $("models-error").textContent = "";
  const { active, models } = result.body;
  $("models-active").textContent = active ? `${active.name} v${active.version}` : "none";
  renderOverviewModel(active, models);
  loadServing(); // engine and precision can change with the served version
  const list = $("models-list");
  if (models.length === 0) {
    list.replaceChildren(el("p", { textContent: "No models yet: start a training run." }));
    return;
  }

  list.replaceChildren(...models.map((m) => el("div", { className: "model", dataset: { model: m.name } },
    el("h3", { textContent: m.name, tabIndex: -1 }),
    el("div", { className: "scroll", tabIndex: 0, role: "region", "aria-label": `Versions of ${m.name}` }, el("table", { className: "versions", dataset: { model: m.name } },
      el("thead", {}, el("tr", {},
        el("th", { scope: "col", textContent: "Version" }),
        el("th", { scope: "col", textContent: "Test accuracy" }),
        el("th", { scope: "col", textContent: "int8" }),
        el("th", { scope: "col", textContent: "Dataset" }),
        el("th", { scope: "col", textContent: "Image size" }),
        el("th", { scope: "col", textContent: "Created" }),
        el("th", { scope: "col", textContent: "Served" }),
        el("th", { scope: "col" }, el("span", { className: "sr-only", textContent: "Actions" })))),
      el("tbody", {}, ...m.versions.map((v) => el("tr", { dataset: { version: String(v.version), active: String(v.active) } },
        el("td", { textContent: `v${v.version}` }),
        el("td", { textContent: pct(v.testAccuracy) }),
        int8Cell(v.int8),
        el("td", { textContent: v.dataset ?? "–" }),
        el("td", { textContent: `${v.imageSize}px` }),
        el("td", {}, el("time", { dateTime: v.createdAt, textContent: new Date(v.createdAt).toLocaleString() })),
        el("td", {}, v.active
          ? el("strong", { textContent: "active" })
          : el("button", { type: "button", className: "secondary", textContent: "Activate", "aria-label": `Activate ${m.name} version ${v.version}`, onclick: (ev) => activate(m.name, v.version, ev.currentTarget) })),
        el("td", { className: "actions" },
          el("button", { type: "button", className: "secondary evaluation", textContent: "Evaluation", "aria-label": `Evaluation of ${m.name} version ${v.version}`, onclick: () => evaluationView.show(m.name, v.version) }),
          v.active ? null : el("button", { type: "button", className: "danger delete", textContent: "Delete", "aria-label": `Delete ${m.name} version ${v.version}`, onclick: (ev) => deleteVersion(m.name, v.version, ev.currentTarget) }))))))),
    versionCompare.form(m),
    trafficView.panel(m))));
  const route = router.current;
  if (route?.view === "models" && route.param) {
    if (modelPending === route.param) showModel(route.param);
    else list.querySelector(`.model[data-model="${CSS.escape(route.param)}"]`)?.setAttribute("aria-current", "true");
  }
}

// The version's int8 model as measured when it was quantized: its accuracy against fp32 on the same test split, and
// whether it may serve (docs/int8.md); "–" when it is not quantized.
function int8Cell(int8) {
  if (!int8) return el("td", { className: "int8", textContent: "–", title: "not quantized" });
  if (int8.int8Accuracy == null) return el("td", { className: "int8 warning", textContent: "not measured", title: int8.warning ?? "" });
  const drop = int8.dropPoints ?? 0;
  const text = `${pct(int8.int8Accuracy)} (${drop > 0 ? "−" : "+"}${Math.abs(drop).toFixed(2)} pts)`;
  return el("td", {
    className: int8.servable ? "int8" : "int8 warning",
    textContent: int8.servable ? text : `${text} ⚠`,
    title: int8.warning ?? `int8 ${pct(int8.int8Accuracy)} vs fp32 ${pct(int8.fp32Accuracy)} on ${int8.testImages} test images`,
  });
}

async function deleteVersion(name, version, button) {
  if (!window.confirm(`Delete ${name} version ${version}? Its weights and evaluation are removed.`)) return;
  button.disabled = true;
  const result = await api(`models/${encodeURIComponent(name)}/versions/${version}`, { method: "DELETE" });
  if (!result.ok) {
    $("models-error").textContent = problemText(result);
    button.disabled = false;
    return;
  }

  if (evaluationView.shown?.name === name && evaluationView.shown?.version === version) evaluationView.hide();
  await loadModels();
}

const gateView = createGateView({ $, el, pct });

// force: past the promotion gate ("Activate anyway" after its 409, which shows the reasons and figures).
async function activate(name, version, button, force = false) {
  button.disabled = true;
  $("models-error").textContent = "";
  const result = await api(`models/${encodeURIComponent(name)}/versions/${version}/activate${force ? "?force=true" : ""}`, { method: "POST" });
  if (!result.ok) {
    if (result.status === 409 && Array.isArray(result.body?.reasons)) {
      gateView.show(name, version, result.body, (again) => activate(name, version, again, true));
    } else {
      $("models-error").textContent = problemText(result);
    }
    button.disabled = false;
    return;
  }

  gateView.hide();
  await loadModels();
}

// ---------- try it ----------

let chosenFile = null;

function chooseFile(file) {
  chosenFile = file ?? null;
  const preview = $("try-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  if (chosenFile) {
    preview.src = URL.createObjectURL(chosenFile);
    preview.alt = `The chosen image: ${chosenFile.name}`;
    preview.hidden = false;
  } else {
    preview.removeAttribute("src");
    preview.hidden = true;
  }
}

async function classify(event) {
  event.preventDefault();
  $("try-error").textContent = "";
  if (!chosenFile) {
    $("try-error").textContent = "Choose an image first.";
    return;
  }

  const button = $("try-submit");
  button.disabled = true;
  try {
    const form = new FormData();
    form.append("images", chosenFile, chosenFile.name);
    const topK = Number($("try-topk").value) || 5;
    const explain = $("try-explain").checked ? "&explain=cam" : "";
    const result = await api(`predict?topK=${encodeURIComponent(topK)}${explain}`, { method: "POST", body: form });
    if (!result.ok) {
      $("try-error").textContent = problemText(result);
      $("try-result").hidden = true;
      return;
    }

    const { model, device, elapsedMs, predictions } = result.body;
    $("try-model").textContent = `${model.name} v${model.version}`;
    $("try-device").textContent = device;
    $("try-ms").textContent = elapsedMs.toFixed(1);
    $("try-labels").replaceChildren(...predictions[0].top.map((t) => el("li", { dataset: { label: t.label } },
      el("span", { className: "label", textContent: t.label }),
      el("span", { className: "bar", role: "presentation" }, el("span", { style: `width: ${(t.probability * 100).toFixed(1)}%` })),
      el("span", { className: "p", textContent: pct(t.probability) }))));
    showExplanation(predictions[0].explanation);
    $("try-result").hidden = false;
  } catch (err) {
    $("try-error").textContent = `Could not reach the service: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

// The class activation map (explain=cam): the network's input with the evidence for the class drawn over it.
function showExplanation(e) {
  const figure = $("try-cam");
  figure.hidden = !e;
  if (!e) return;
  $("try-cam-img").src = `data:image/png;base64,${e.overlayPng}`;
  $("try-cam-img").alt = `Where the evidence for ${e.label} lies: warm colours mark the strongest evidence`;
  $("try-cam-caption").textContent = `Evidence for ${e.label} (${e.method === "cam" ? "CAM" : "Grad-CAM"} at ${e.layer}, ${e.width}×${e.height})`;
}

function wireDropZone() {
  const zone = $("drop-zone");
  const input = $("try-file");
  input.addEventListener("change", () => chooseFile(input.files?.[0]));
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }

  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("over"));
  }

  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer?.files?.[0];
    if (file) chooseFile(file);
  });
}

// ---------- start ----------

async function loadJobs() {
  const result = await api("train").catch(() => null);
  if (result?.ok) {
    for (const s of result.body) upsertJob(s, false);
    renderAll();
  }
}

$("train-form").addEventListener("submit", submitTraining);
$("try-form").addEventListener("submit", classify);
wireDropZone();
const recentRuns = createRecentRuns({ $, el, jobs, batchPoints, pct, newestFirst, runLink });
const sweepsView = createSweepsView({ $, el, api, problemText, pct, Chart, jobs, go: (path) => router.go(path), runLink, modelLink, withKey });
const router = createRouter({
  onRoute: (route) => {
    sweepsView.onRoute(route);
    if (route.view === "run") showRun(route.param);
    return route.view === "models" ? showModel(route.param) : null;
  },
});
renderAll();
const recipes = createRecipes({ $, api });
const evaluationView = createEvaluationView({ $, api, el, pct, problemText });
const versionCompare = createVersionCompareView({ $, api, el, pct, problemText, withKey });
const trafficView = createTrafficView({ api, el, pct, problemText, onChanged: () => loadModels(), onSplit: () => renderOverviewTraffic(servedModel) });
createUploadView({
  $, el, apiKey, askForKey, problemText,
  onUploaded: async (dataset) => {
    await loadDatasets();
    $("f-dataset").value = dataset.id;
    $("f-dataset").dispatchEvent(new Event("change")); // its recipe preset (robust for uploads)
    $("upload-next").hidden = false; // the summary stays in view; "Train on it" opens the form
  },
});
$("live-cancel").addEventListener("click", (ev) => cancelJob(ev.currentTarget.dataset.jobId, ev.currentTarget, "live-cancel-error"));
$("jobs-filter").addEventListener("input", () => renderJobs());
$("jobs-sort").addEventListener("change", () => renderJobs());
$("scatter-metric").addEventListener("change", () => renderJobs());
$("scatter-param").addEventListener("change", () => renderJobs());
$("jobs-csv").addEventListener("click", (ev) => downloadRuns(ev.currentTarget));
loadDatasets().then(() => recipes.load());
loadModels();
loadJobs();
startHub();
router.start();

window.ninDashboard = { hub, jobs, lossChart, accChart, batchChart: batchChart.chart, compareView, runScatter: runScatter.chart, sweepsView, evaluationView, router };
