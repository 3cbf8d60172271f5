// The live per-batch loss curve (from the hub's BatchProgress) and the time left for the epoch and the job.

/** jobId → [{ x: epoch - 1 + batch / batches, y: loss }] in arrival order. */
const series = new Map();
const MAX_POINTS = 5000;

export function recordBatch(e) {
  let points = series.get(e.jobId);
  if (!points) series.set(e.jobId, (points = []));
  const x = e.epoch - 1 + (e.batch / Math.max(1, e.batches));
  if (points.length > 0 && points[points.length - 1].x >= x) {
    // A resumed or repeated epoch starts again from here.
    while (points.length > 0 && points[points.length - 1].x >= x) points.pop();
  }

  points.push({ x, y: e.loss });
  if (points.length > MAX_POINTS) points.splice(0, points.length - MAX_POINTS);
}

/** The per-batch loss points recorded for a job (x in epochs), oldest first; empty when none arrived. */
export const batchPoints = (jobId) => series.get(jobId) ?? [];

/**
 * Seconds left in the current epoch and in the job, from the batches seen this epoch (p: the last BatchProgress
 * with startBatch/startAt/at) and the finished epochs' durations; null while there is too little to go on.
 */
export function timeLeft(job, p) {
  if (!job || job.status !== "Running" || !p || p.batch <= p.startBatch || p.at <= p.startAt) return null;
  const perBatch = (p.at - p.startAt) / 1000 / (p.batch - p.startBatch);
  const epochLeft = (p.batches - p.batch) * perBatch;
  const done = job.epochs.length > 0 ? job.epochs[job.epochs.length - 1].seconds : null;
  const epochSeconds = done ?? p.batches * perBatch;
  const laterEpochs = Math.max(0, job.request.epochs - p.epoch);
  return { epoch: epochLeft, job: epochLeft + (laterEpochs * epochSeconds) };
}

export function createBatchChart(Chart, canvas) {
  const chart = new Chart(canvas, {
    type: "line",
    data: { datasets: [{ label: "batch loss", data: [], borderColor: "#7a4fb3", backgroundColor: "#7a4fb3", pointRadius: 0, borderWidth: 1.5 }] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      scales: {
        x: { type: "linear", title: { display: true, text: "epoch" }, min: 0 },
        y: { title: { display: true, text: "loss" } },
      },
    },
  });
  let shownJob = null;
  let shownCount = -1;
  return {
    chart,
    /** Redraws for jobId when its series changed; returns the number of points. */
    render(jobId) {
      const points = jobId ? series.get(jobId) ?? [] : [];
      if (shownJob === jobId && shownCount === points.length) return points.length;
      shownJob = jobId;
      shownCount = points.length;
      chart.data.datasets[0].data = points.slice();
      chart.update();
      return points.length;
    },
  };
}
