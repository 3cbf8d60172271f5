// The Sweeps views: #/sweeps lists the hyperparameter sweeps (POST/GET /sweeps) with a form to start one; #/sweeps/{id}
// shows one sweep: its trials (each an ordinary training run) with their parameters, status (Stopped with the
// early-stopping rule's reason), epochs and metric, the best one marked; the metric against a chosen parameter
// (scatter.js); the trials' curves overlaid (compare.js); cancel and the trials' CSV. While either view is shown the
// sweeps are fetched every 2.5 s, and sooner when the hub reports a change to one of a sweep's runs.

import { createScatter, PARAMETERS, short } from "./scatter.js";
import { createCurves } from "./compare.js";

const POLL_MS = 2500;
const DONE = new Set(["Succeeded", "Failed", "Cancelled"]);
const TRIAL_DONE = new Set(["Succeeded", "Failed", "Cancelled", "Stopped"]);
const METRIC_LABELS = { testAccuracy: "test accuracy", trainAccuracy: "train accuracy", trainLoss: "train loss" };
const value = (v) => (typeof v === "number" ? short(v) : v == null ? "–" : String(v));
const cap = (text) => text.charAt(0).toUpperCase() + text.slice(1);
/** The form's optional parameter lists: field id suffix → the request's parameter name. */
const SPACE_FIELDS = ["learningRate", "batchSize", "weightDecay", "momentum", "labelSmoothing", "shift"];

/**
 * "0.01, 0.1" → { values: [0.01, 0.1] }; "1e-5 .. 1e-2 log" → { min, max, log: true }; "" → null; anything else
 * → { error }. The server checks the numbers themselves (ranges, counts) and says what is wrong.
 */
export function parseSpace(text) {
  const raw = text.trim();
  if (raw === "") return null;
  const range = /^(\S+)\s*\.\.\s*(\S+?)(\s+log)?$/i.exec(raw);
  if (range) {
    const [min, max] = [Number(range[1]), Number(range[2])];
    if (!Number.isFinite(min) || !Number.isFinite(max)) return { error: `"${raw}" is not a range like 1e-5 .. 1e-2 log.` };
    return range[3] ? { min, max, log: true } : { min, max };
  }

  const values = raw.split(/[\s,;]+/).filter(Boolean).map(Number);
  if (values.some((v) => !Number.isFinite(v))) return { error: `"${raw}" is not a list of numbers like 0.01, 0.1.` };
  return { values };
}

export function createSweepsView({ $, el, api, problemText, pct, Chart, jobs, go, runLink, modelLink, withKey }) {
  const sweeps = new Map(); // sweepId → snapshot
  let route = null; // { view: "sweeps" | "sweep", param }
  let timer = null;
  let loading = null;
  let soon = null;

  const metricText = (sweep, v) => (v == null ? "–" : sweep.metric === "trainLoss" ? short(v) : pct(v));
  const doneCount = (s) => s.trials.filter((t) => TRIAL_DONE.has(t.status)).length;

  $("sw-space").replaceChildren(...SPACE_FIELDS.map((name) => el("div", { className: "field" },
    el("label", { htmlFor: `sw-${name}`, textContent: cap(PARAMETERS[name]) }), " ",
    el("input", { id: `sw-${name}`, type: "text", autocomplete: "off", value: name === "learningRate" ? "0.01, 0.1" : "", "aria-describedby": "sw-space-hint" }))));
  const scatter = createScatter({ Chart, el, canvas: $("sweep-scatter-chart"), table: $("sweep-scatter-table"), openRun: (jobId) => go(`/runs/${encodeURIComponent(jobId)}`), color: "#1b7a3a" });
  const curves = createCurves(Chart, $("sweep-loss-chart"), $("sweep-acc-chart"));

  // ---------- fetching ----------

  async function load() {
    if (loading) return loading;
    loading = (async () => {
      const result = await api("sweeps").catch(() => null);
      if (!result?.ok) {
        $("sweeps-error").textContent = result ? problemText(result) : "Could not reach the service.";
        return;
      }

      $("sweeps-error").textContent = "";
      sweeps.clear();
      for (const s of result.body) sweeps.set(s.sweepId, s);
      // A sweep opened by its link that the list does not hold (another replica's, or the list is paged) is asked for.
      if (route?.view === "sweep" && route.param && !sweeps.has(route.param)) {
        const one = await api(`sweeps/${encodeURIComponent(route.param)}`).catch(() => null);
        if (one?.ok) sweeps.set(one.body.sweepId, one.body);
        else if (one) $("sweep-empty").textContent = one.status === 404 ? `There is no sweep ${route.param}.` : problemText(one);
      }

      render();
    })().finally(() => {
      loading = null;
    });
    return loading;
  }

  function poll() {
    clearTimeout(timer);
    timer = null;
    if (!route) return;
    load().finally(() => {
      if (route && !timer) timer = setTimeout(poll, POLL_MS);
    });
  }

  /** The router shows a view: the sweeps views start polling, the others stop it. */
  function onRoute(r) {
    const shown = r.view === "sweeps" || r.view === "sweep";
    route = shown ? { view: r.view, param: r.param } : null;
    if (!shown) {
      clearTimeout(timer);
      timer = null;
      return;
    }

    if (r.view === "sweep") {
      const s = sweeps.get(r.param);
      $("sweep-title").textContent = r.param.slice(0, 8);
      $("sweep-empty").textContent = `Loading sweep ${r.param}…`;
      if (s) render();
      else {
        $("sweep-body").hidden = true;
        $("sweep-empty").hidden = false;
      }
    }

    fillFormChoices();
    poll();
  }

  /** A run of a sweep changed (hub JobUpdated/EpochCompleted): refresh soon, or just redraw the curves. */
  function jobChanged(job) {
    if (!route) return;
    if (route.view === "sweep") renderCurves(sweeps.get(route.param));
    if (job?.request?.sweepId && !soon) {
      soon = setTimeout(() => {
        soon = null;
        load();
      }, 300);
    }
  }

  // ---------- the list and the form ----------

  function render() {
    fillFormChoices();
    renderList();
    if (route?.view === "sweep") renderSweep(sweeps.get(route.param));
  }

  function renderList() {
    const list = [...sweeps.values()].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
    $("sweeps-none").hidden = list.length > 0;
    $("sweeps-table").querySelector("tbody").replaceChildren(...list.map((s) => el("tr", { dataset: { sweepId: s.sweepId, status: s.status } },
      el("td", {}, el("a", { href: `#/sweeps/${encodeURIComponent(s.sweepId)}`, textContent: s.sweepId.slice(0, 8) }, el("span", { className: "sr-only", textContent: s.sweepId.slice(8) }))),
      el("td", {}, el("span", { className: "status", textContent: s.status, dataset: { status: s.status } })),
      el("td", { textContent: `${s.method}, ${METRIC_LABELS[s.metric] ?? s.metric}, ${s.earlyStopping?.rule ?? "none"}` }),
      el("td", { className: "trials", textContent: `${doneCount(s)}/${s.trials.length || s.maxTrials}` }),
      el("td", { className: "best", textContent: s.best ? `${metricText(s, s.best.metric)} (trial ${s.best.trial})` : "–" }),
      el("td", {}, el("time", { dateTime: s.createdAt, textContent: new Date(s.createdAt).toLocaleString() })))));
  }

  /** The form's dataset and recipe choices are the training form's (filled from GET /datasets and /train/recipes). */
  function fillFormChoices() {
    for (const [from, to] of [["f-dataset", "sw-dataset"], ["f-recipe", "sw-recipe"]]) {
      const source = $(from);
      const target = $(to);
      if (!source || source.options.length + (to === "sw-recipe" ? 1 : 0) === target.options.length) continue;
      const kept = target.value;
      const recipe = to === "sw-recipe";
      target.replaceChildren(...(recipe ? [el("option", { value: "", textContent: "the dataset's preset" })] : []),
        ...[...source.options].map((o) => el("option", { value: o.value, textContent: o.textContent })));
      target.value = [...target.options].some((o) => o.value === kept) ? kept : recipe ? "" : source.value;
    }
  }

  function readForm() {
    const errors = [];
    const space = {};
    for (const name of SPACE_FIELDS) {
      const parsed = parseSpace($(`sw-${name}`).value);
      if (parsed?.error) {
        errors.push(`${PARAMETERS[name]}: ${parsed.error}`);
        $(`sw-${name}`).setAttribute("aria-invalid", "true");
      } else {
        $(`sw-${name}`).removeAttribute("aria-invalid");
        if (parsed) space[name] = parsed;
      }
    }

    const number = (id) => ($(id).value.trim() === "" ? undefined : Number($(id).value));
    const base = {
      dataset: $("sw-dataset").value || undefined,
      recipe: $("sw-recipe").value || undefined,
      epochs: number("sw-epochs"),
      imageSize: number("sw-imageSize"),
      maxTrainImages: number("sw-maxTrainImages"),
      maxTestImages: number("sw-maxTestImages"),
      batchSize: number("sw-batchSize-base"),
      seed: number("sw-seed"),
      modelName: $("sw-modelName").value.trim() || undefined,
    };
    const rule = $("sw-rule").value;
    const body = {
      base,
      method: $("sw-method").value,
      space,
      maxTrials: number("sw-maxTrials"),
      metric: $("sw-metric").value,
      earlyStopping: { rule, ...(number("sw-grace") != null ? { graceEpochs: number("sw-grace") } : {}) },
      activate: $("sw-activate").checked,
    };
    return { body, errors };
  }

  /** The form's field for a field name of the server's 400 ("space.batchSize", "base.batchSize", "earlyStopping.rule"). */
  function formField(name) {
    const [head, tail] = name.split(".");
    const id = head === "space" ? `sw-${tail}` : head === "base" ? (tail === "batchSize" ? "sw-batchSize-base" : `sw-${tail}`)
      : head === "earlyStopping" ? (tail === "graceEpochs" ? "sw-grace" : "sw-rule") : `sw-${head}`;
    return $(id);
  }

  async function submit(event) {
    event.preventDefault();
    $("sweep-form-error").textContent = "";
    for (const field of $("sweep-form").querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
    const { body, errors } = readForm();
    if (errors.length) {
      $("sweep-form-error").textContent = errors.join(" ");
      return;
    }

    const button = $("sweep-submit");
    button.disabled = true;
    try {
      const result = await api("sweeps", { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body) });
      if (!result.ok) {
        // 400 names the fields ("space.learningRate", "base.epochs", "maxTrials"): those are marked invalid.
        const errors = result.body?.errors ?? {};
        for (const field of Object.keys(errors)) formField(field)?.setAttribute("aria-invalid", "true");
        const details = Object.entries(errors).map(([field, messages]) => `${field}: ${messages.join(" ")}`);
        $("sweep-form-error").textContent = [problemText(result), ...details].join(" ");
        return;
      }

      sweeps.set(result.body.sweepId, result.body);
      go(`/sweeps/${encodeURIComponent(result.body.sweepId)}`);
    } catch (err) {
      $("sweep-form-error").textContent = `Could not reach the service: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  }

  // ---------- one sweep ----------

  function renderSweep(s) {
    $("sweep-empty").hidden = !!s;
    $("sweep-body").hidden = !s;
    if (!s) return;
    const body = $("sweep-body");
    body.dataset.sweepId = s.sweepId;
    body.dataset.status = s.status;
    $("sweep-status").textContent = s.status;
    $("sweep-status").dataset.status = s.status;
    $("sweep-method").textContent = s.method;
    $("sweep-metric").textContent = `${METRIC_LABELS[s.metric] ?? s.metric} (${s.maximise ? "higher" : "lower"} is better)`;
    const es = s.earlyStopping ?? { rule: "none" };
    $("sweep-rule").textContent = es.rule === "none" ? "none" : `${es.rule}${es.graceEpochs != null ? `, grace ${es.graceEpochs} epoch${es.graceEpochs === 1 ? "" : "s"}` : ""}`;
    $("sweep-trials").textContent = `${doneCount(s)} of ${s.trials.length || s.maxTrials}`;
    $("sweep-epochs").textContent = s.epochsFull ? `${s.epochsRun} of ${s.epochsFull}${s.epochsRun < s.epochsFull ? ` (${pct(1 - s.epochsRun / s.epochsFull)} saved)` : ""}` : "–";
    $("sweep-best").replaceChildren(s.best
      ? el("span", {}, `trial ${s.best.trial}: ${metricText(s, s.best.metric)}`, s.best.modelName && s.best.modelVersion ? " → " : "",
        s.best.modelName && s.best.modelVersion ? modelLink(s.best.modelName, `${s.best.modelName} v${s.best.modelVersion}`) : "")
      : "–");
    const promotion = s.promotion;
    $("sweep-promotion").hidden = !promotion;
    $("sweep-promotion").textContent = promotion ? `${promotion.activated ? "The best model was activated." : "The best model was not activated."} ${(promotion.reasons ?? []).join(" ")}`.trim() : "";
    $("sweep-cancel").hidden = DONE.has(s.status);
    $("sweep-cancel").dataset.sweepId = s.sweepId;

    // The trials table: one column per swept parameter.
    const names = [...new Set(s.trials.flatMap((t) => Object.keys(t.parameters ?? {})))];
    const numeric = names.filter((n) => s.trials.some((t) => typeof t.parameters?.[n] === "number"));
    const bestTrial = s.best?.trial;
    $("sweep-trials-table").querySelector("thead").replaceChildren(el("tr", {},
      el("th", { scope: "col", textContent: "Trial" }),
      el("th", { scope: "col", textContent: "Run" }),
      ...names.map((n) => el("th", { scope: "col", textContent: cap(PARAMETERS[n] ?? n) })),
      el("th", { scope: "col", textContent: "Status" }),
      el("th", { scope: "col", textContent: "Epochs" }),
      el("th", { scope: "col", textContent: `${cap(METRIC_LABELS[s.metric] ?? s.metric)} (last)` }),
      el("th", { scope: "col", textContent: "Best" }),
      el("th", { scope: "col", textContent: "Model" })));
    $("sweep-trials-table").querySelector("tbody").replaceChildren(...s.trials.map((t) => {
      const best = t.trial === bestTrial;
      const row = el("tr", { className: best ? "best" : "", dataset: { trial: String(t.trial), status: t.status ?? "Pending", ...(t.jobId ? { jobId: t.jobId } : {}) } },
        el("th", { scope: "row" }, String(t.trial), best ? el("strong", { className: "best-mark", textContent: " ★ best" }) : null),
        el("td", {}, t.jobId ? runLink(t.jobId) : "–"),
        ...names.map((n) => el("td", { textContent: value(t.parameters?.[n]) })),
        el("td", {}, el("span", { className: "status", textContent: t.status ?? "Pending", dataset: { status: t.status ?? "Pending" } }),
          t.stopReason ? el("span", { className: "stop-reason hint", textContent: ` ${t.stopReason}` }) : null),
        el("td", { textContent: `${t.epochsCompleted ?? 0}/${t.epochs ?? "–"}` }),
        el("td", { className: "metric", textContent: metricText(s, t.metric) }),
        el("td", { className: "best-metric", textContent: metricText(s, t.bestMetric) }),
        el("td", {}, t.modelName && t.modelVersion ? modelLink(t.modelName, `${t.modelName} v${t.modelVersion}`) : "–"));
      if (best) row.setAttribute("aria-label", `Trial ${t.trial}, the best`);
      return row;
    }));

    renderScatter(s, numeric);
    renderCurves(s);
  }

  let scatterKey = "";
  function renderScatter(s, names) {
    const select = $("sweep-param");
    if (select.dataset.names !== names.join(",")) {
      const kept = select.value;
      select.dataset.names = names.join(",");
      select.replaceChildren(...names.map((n) => el("option", { value: n, textContent: PARAMETERS[n] ?? n })));
      if (names.includes(kept)) select.value = kept;
    }

    const param = select.value;
    $("sweep-scatter").hidden = names.length === 0;
    const points = s.trials.filter((t) => t.jobId && t.metric != null && Number.isFinite(t.parameters?.[param]))
      .map((t) => ({ id: t.jobId, x: t.parameters[param], y: t.metric, label: `trial ${t.trial}`, best: t.trial === s.best?.trial }));
    const key = JSON.stringify([s.sweepId, param, points]);
    if (key === scatterKey) return;
    scatterKey = key;
    scatter.show({ points, xLabel: PARAMETERS[param] ?? param, yLabel: `${METRIC_LABELS[s.metric] ?? s.metric} (last epoch)`, percent: s.metric !== "trainLoss" });
  }

  let curvesKey = "";
  function renderCurves(s) {
    if (!s) return;
    const lines = s.trials.filter((t) => t.jobId && jobs.has(t.jobId))
      .map((t) => ({ label: `trial ${t.trial}${t.status === "Stopped" ? " (stopped)" : ""}`, epochs: jobs.get(t.jobId).epochs }));
    const key = JSON.stringify([s.sweepId, lines.map((l) => [l.label, l.epochs.length])]);
    if (key === curvesKey) return;
    curvesKey = key;
    $("sweep-curves").dataset.lines = String(lines.length);
    curves.show(lines);
  }

  async function cancel(button) {
    const id = button.dataset.sweepId;
    if (!window.confirm(`Cancel sweep ${id}? Its unfinished trials are cancelled.`)) return;
    button.disabled = true;
    $("sweep-error").textContent = "";
    const result = await api(`sweeps/${encodeURIComponent(id)}`, { method: "DELETE" }).catch(() => null);
    button.disabled = false;
    if (!result?.ok) {
      $("sweep-error").textContent = result ? problemText(result) : "Could not reach the service.";
      return;
    }

    await load();
  }

  // The trials' runs as CSV (GET /sweeps/{id}?format=csv), fetched with the key when one is set and saved as a file.
  async function downloadCsv(button) {
    const id = route?.param;
    if (!id) return;
    button.disabled = true;
    try {
      const response = await fetch(`sweeps/${encodeURIComponent(id)}?format=csv`, { headers: withKey({ Accept: "text/csv" }) });
      if (!response.ok) {
        $("sweep-error").textContent = `The trials could not be downloaded (${response.status}).`;
        return;
      }

      const url = URL.createObjectURL(await response.blob());
      const link = el("a", { href: url, download: `nin-sweep-${id}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } finally {
      button.disabled = false;
    }
  }

  $("sweep-form").addEventListener("submit", submit);
  $("sweep-cancel").addEventListener("click", (ev) => cancel(ev.currentTarget));
  $("sweep-csv").addEventListener("click", (ev) => downloadCsv(ev.currentTarget));
  $("sweep-param").addEventListener("change", () => render());

  return { onRoute, jobChanged, load, sweeps, scatter: scatter.chart, curves };
}
