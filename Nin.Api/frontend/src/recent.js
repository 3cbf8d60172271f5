// The overview's running and recent runs, each with a sparkline drawn as inline SVG (no chart library): test accuracy
// per epoch on a 0–100% scale and the training loss (per batch while the run trains, else per epoch) scaled to its
// own maximum, over the epochs so far, so a running run's lines move as its batches and epochs arrive.

const SHOWN = 5;
const W = 120;
const H = 32;
const SVG = "http://www.w3.org/2000/svg";

function line(points, className) {
  const node = document.createElementNS(SVG, "polyline");
  node.setAttribute("class", className);
  node.setAttribute("points", points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "));
  return node;
}

/** At most n points, evenly picked, the last one kept. */
function thin(points, n) {
  if (points.length <= n) return points;
  const step = (points.length - 1) / (n - 1);
  return Array.from({ length: n }, (_, i) => points[Math.round(i * step)]);
}

export function createRecentRuns({ $, el, jobs, batchPoints, pct, newestFirst, runLink }) {
  function sparkline(job) {
    // Over the epochs so far (at least one): a long run's first batches fill the width, not a sliver of it.
    const batches = job.status === "Running" ? thin(batchPoints(job.jobId), 60) : [];
    const epochs = Math.max(1, job.epochs.length, batches.length > 0 ? batches[batches.length - 1].x : 0);
    const x = (e) => (W * e) / epochs;
    const acc = job.epochs.filter((e) => e.testAccuracy != null).map((e) => [x(e.epoch), H - 1 - ((H - 2) * e.testAccuracy)]);
    const losses = batches.length > 1 ? batches.map((p) => [p.x, p.y]) : job.epochs.map((e) => [e.epoch, e.trainLoss]);
    const maxLoss = Math.max(1e-9, ...losses.map(([, y]) => y).filter(Number.isFinite));
    const loss = losses.filter(([, y]) => Number.isFinite(y)).map(([e, y]) => [x(e), H - 1 - ((H - 2) * y) / maxLoss]);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("width", String(W));
    svg.setAttribute("height", String(H));
    svg.setAttribute("role", "img");
    svg.setAttribute("class", "spark");
    svg.dataset.points = String(acc.length + loss.length);
    const last = job.epochs[job.epochs.length - 1];
    svg.setAttribute("aria-label", last
      ? `Test accuracy by epoch ${job.epochs.map((e) => pct(e.testAccuracy)).join(", ")}; training loss ${last.trainLoss?.toFixed(3) ?? "–"} after epoch ${last.epoch}`
      : batches.length > 1 ? `Training loss per batch, last ${batches[batches.length - 1].y.toFixed(3)}` : "No epoch finished yet");
    if (loss.length > 1) svg.append(line(loss, "loss"));
    if (acc.length > 1) svg.append(line(acc, "acc"));
    else if (acc.length === 1) svg.append(line([[0, acc[0][1]], acc[0]], "acc"));
    return svg;
  }

  function pick() {
    const list = [...jobs.values()].sort(newestFirst);
    const active = list.filter((j) => j.status === "Running" || j.status === "Queued");
    const rest = list.filter((j) => !active.includes(j));
    return [...active, ...rest].slice(0, SHOWN);
  }

  function render() {
    const list = pick();
    $("recent-empty").hidden = list.length > 0;
    $("recent-runs").replaceChildren(...list.map((job) => {
      const best = job.epochs.reduce((b, e) => Math.max(b, e.testAccuracy ?? -1), -1);
      return el("li", { dataset: { jobId: job.jobId, status: job.status } },
        runLink(job.jobId),
        el("span", { className: "status", textContent: job.status, dataset: { status: job.status } }),
        sparkline(job),
        el("span", { className: "what", textContent: `${job.request.dataset} · epoch ${job.epochs.length}/${job.request.epochs}${best >= 0 ? ` · best ${pct(best)}` : ""}` }));
    }));
  }

  // Batches arrive many times a second: the sparklines follow them at most once a second.
  let pending = null;
  function renderSoon() {
    pending ??= setTimeout(() => {
      pending = null;
      render();
    }, 1000);
  }

  return { render, renderSoon };
}
