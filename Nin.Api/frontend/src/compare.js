// Compare runs: the per-epoch curves of two or more jobs overlaid (train loss, test accuracy), like TensorBoard's runs.
// createCurves draws them on two canvases; the Runs view's compare (ticked runs) and a sweep's trials both use it.

const PALETTE = ["#2456c7", "#b3261e", "#1b7a3a", "#7a4fb3", "#c77a00", "#00838f", "#6d4c41", "#ad1457"];

/** Two line charts (train loss, test accuracy per epoch); show([{ label, epochs }]) draws one line per entry. */
export function createCurves(Chart, lossCanvas, accCanvas) {
  const options = (yTitle, percent) => ({
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    parsing: false,
    scales: {
      x: { type: "linear", title: { display: true, text: "epoch" }, ticks: { stepSize: 1 } },
      y: { title: { display: true, text: yTitle }, ...(percent ? { min: 0, max: 1, ticks: { callback: (v) => `${Math.round(v * 100)}%` } } : {}) },
    },
  });
  const lossChart = new Chart(lossCanvas, { type: "line", data: { datasets: [] }, options: options("train loss", false) });
  const accChart = new Chart(accCanvas, { type: "line", data: { datasets: [] }, options: options("test accuracy", true) });

  function show(lines) {
    const datasets = (pick) => lines.map((line, i) => ({
      label: line.label,
      data: line.epochs.map((e) => ({ x: e.epoch, y: pick(e) })),
      borderColor: PALETTE[i % PALETTE.length],
      backgroundColor: PALETTE[i % PALETTE.length],
    }));
    lossChart.data.datasets = datasets((e) => e.trainLoss);
    accChart.data.datasets = datasets((e) => e.testAccuracy);
    lossChart.update();
    accChart.update();
  }

  return { show, lossChart, accChart };
}

export function createCompareView({ $, Chart, jobs }) {
  /** Job ids ticked for comparison, in the order they were ticked. */
  const chosen = [];
  const curves = createCurves(Chart, $("compare-loss-chart"), $("compare-acc-chart"));

  function label(job) {
    const model = job.modelName && job.modelVersion ? ` → ${job.modelName} v${job.modelVersion}` : "";
    return `${job.jobId.slice(0, 8)} (${job.request.dataset}, ${job.request.recipe ?? "d2l"})${model}`;
  }

  function render() {
    const list = chosen.map((id) => jobs.get(id)).filter(Boolean);
    $("compare").hidden = list.length < 2;
    $("compare-hint").textContent = list.length === 1 ? "Tick one more job to compare." : "";
    $("compare-hint").hidden = list.length !== 1;
    curves.show(list.map((job) => ({ label: label(job), epochs: job.epochs })));
    $("compare").dataset.jobs = String(list.length);
  }

  function toggle(jobId, on) {
    const at = chosen.indexOf(jobId);
    if (on && at < 0) chosen.push(jobId);
    if (!on && at >= 0) chosen.splice(at, 1);
    render();
  }

  return { toggle, render, isChosen: (jobId) => chosen.includes(jobId), lossChart: curves.lossChart, accChart: curves.accChart };
}
