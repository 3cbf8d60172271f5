// A metric against one hyperparameter, one point per run (the Runs view) or per trial (a sweep's view): which
// learning rate did best? The x axis is logarithmic when the values are positive and span more than 10×. Clicking a
// point opens that run (#/runs/{jobId}). The canvas's accessible name says how many points there are; the points are
// also listed in a table under it ("Points as a table"), like the other charts' table alternatives.

/** The hyperparameters a point can be placed by: the field of the job's request (TrainSettings) and its label. */
export const PARAMETERS = {
  learningRate: "learning rate",
  batchSize: "batch size",
  weightDecay: "weight decay",
  epochs: "epochs",
  momentum: "momentum",
  shift: "shift",
  labelSmoothing: "label smoothing",
  imageSize: "image size",
};

const last = (job) => job.epochs[job.epochs.length - 1];

/** Run metrics from a job snapshot's epochs: value or null when the run has no epoch yet. */
export const METRICS = {
  best: { label: "best test accuracy", percent: true, of: (job) => (job.epochs.length ? Math.max(...job.epochs.map((e) => e.testAccuracy ?? -Infinity)) : null) },
  final: { label: "final test accuracy", percent: true, of: (job) => last(job)?.testAccuracy ?? null },
  loss: { label: "final train loss", percent: false, of: (job) => last(job)?.trainLoss ?? null },
};

/** A number as a person reads it: 3 significant figures, no trailing zeros (0.001, 1e-5, 128). */
export const short = (v) => (v == null || !Number.isFinite(v) ? "–" : Math.abs(v) > 0 && Math.abs(v) < 1e-3 ? v.toExponential(1).replace(/\.0e/, "e") : String(Number(v.toPrecision(3))));

/** True when x should be drawn on a log axis: every value positive and the largest more than 10× the smallest. */
export function wantsLog(xs) {
  if (xs.length < 2 || xs.some((x) => !(x > 0))) return false;
  return Math.max(...xs) / Math.min(...xs) > 10;
}

/**
 * figure: the <figure> holding the canvas; table: the <table> listing the points; openRun(jobId) on a click.
 * show({ points: [{ id, x, y, label?, best? }], xLabel, yLabel, percent }) draws them.
 */
export function createScatter({ Chart, el, canvas, table, openRun, color = "#2456c7" }) {
  let percent = false;
  let shown = { xLabel: "", yLabel: "" };
  const yText = (v) => (percent ? `${(v * 100).toFixed(1)}%` : short(v));
  const chart = new Chart(canvas, {
    type: "scatter",
    data: { datasets: [{ label: "runs", data: [], backgroundColor: color, borderColor: color, pointRadius: 5, pointHoverRadius: 7 }] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            label: (ctx) => `${ctx.raw.label ?? ctx.raw.id.slice(0, 8)}: ${shown.xLabel} ${short(ctx.raw.x)}, ${shown.yLabel} ${yText(ctx.raw.y)}`,
          },
        },
      },
      scales: {
        x: { type: "linear", title: { display: true, text: "" } },
        y: { title: { display: true, text: "" } },
      },
      onClick: (event, elements) => {
        const hit = elements[0];
        if (hit) openRun(chart.data.datasets[hit.datasetIndex].data[hit.index].id);
      },
      onHover: (event, elements) => {
        event.native.target.style.cursor = elements.length ? "pointer" : "";
      },
    },
  });

  function show({ points, xLabel, yLabel, percent: isPercent }) {
    percent = isPercent;
    shown = { xLabel, yLabel };
    const xs = points.map((p) => p.x);
    const log = wantsLog(xs);
    const title = { display: true, text: `${xLabel}${log ? " (log)" : ""}` };
    // Room around the outermost points, so none sits on the frame; a log axis labels 1, 2 and 5 of each decade only.
    // (only the powers of ten when the values span more than three decades).
    const lo = Math.min(...xs), hi = Math.max(...xs), pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
    const marks = hi / lo > 1000 ? [1] : [1, 2, 5];
    chart.options.scales.x = log
      ? { type: "logarithmic", title, min: lo / 1.6, max: hi * 1.6, ticks: { callback: (v) => (marks.some((k) => Math.abs(v / 10 ** Math.floor(Math.log10(v) + 1e-9) - k) < 1e-6) ? short(v) : null) } }
      : { type: "linear", title, ...(xs.length ? { suggestedMin: lo >= 0 ? Math.max(0, lo - pad) : lo - pad, suggestedMax: hi + pad } : {}) };
    chart.options.scales.y = { grace: "8%", title: { display: true, text: yLabel }, ...(percent ? { ticks: { callback: (v) => `${Math.round(v * 100)}%` } } : {}) };
    const data = points.map((p) => ({ ...p }));
    chart.data.datasets[0].data = data;
    chart.data.datasets[0].pointStyle = data.map((p) => (p.best ? "star" : "circle"));
    chart.data.datasets[0].pointRadius = data.map((p) => (p.best ? 9 : 5));
    chart.update();
    canvas.setAttribute("aria-label", `${yLabel} against ${xLabel}: ${points.length} point${points.length === 1 ? "" : "s"}, listed in the table below`);
    canvas.closest("figure").dataset.points = String(points.length);
    table.querySelector("thead").replaceChildren(el("tr", {},
      el("th", { scope: "col", textContent: "Run" }), el("th", { scope: "col", textContent: xLabel }), el("th", { scope: "col", textContent: yLabel })));
    table.querySelector("tbody").replaceChildren(...[...points].sort((a, b) => a.x - b.x).map((p) => el("tr", { dataset: { jobId: p.id } },
      el("th", { scope: "row" }, el("a", { href: `#/runs/${encodeURIComponent(p.id)}`, textContent: p.label ?? p.id.slice(0, 8) }), p.best ? " (best)" : null),
      el("td", { textContent: short(p.x) }),
      el("td", { textContent: yText(p.y) }))));
    return log;
  }

  return { chart, show };
}
