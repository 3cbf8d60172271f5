// A model version's evaluation: the confusion matrix as a heat map (rows = true class, columns = predicted),
// per-class precision, recall and support, and a gallery of test images, misclassified first (d2l's predict_ch3).

const POLL_MS = 2000;
const POLL_LIMIT_MS = 15 * 60 * 1000;
// Class activation maps in the gallery: fetched only for samples scrolled into view, CAM_BATCH images per /predict
// request and CAM_PARALLEL requests at a time, kept per version, class choice and sample (at most CAM_KEPT).
const CAM_BATCH = 4;
const CAM_PARALLEL = 2;
const CAM_KEPT = 400;

/** The PNG bytes of a data: URL (the gallery's samples are inline PNGs), as a Blob to upload. */
function dataUrlBlob(url) {
  const [head, data] = url.split(",", 2);
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: head.slice(5).split(";")[0] || "image/png" });
}

export function createEvaluationView({ $, api, el, pct, problemText }) {
  let shown = null; // { name, version }
  let polling = 0;
  let samples = new Map(); // index -> the gallery's sample (its image, true and predicted labels)
  const cams = new Map(); // `${name}/${version}/${mode}/${index}` -> its explanation, oldest first
  const pending = new Set(); // keys queued or in flight
  let queue = []; // { key, name, version, mode, sample }
  let running = 0;
  let camFailed = false; // a request was refused: no more until the toggle, the class or the gallery changes
  let observer = null;

  const base = (name, version) => `models/${encodeURIComponent(name)}/versions/${version}`;

  function heatMap(evaluation) {
    const { classes, confusion } = evaluation;
    const head = el("tr", {}, el("th", { scope: "col", textContent: "true \\ predicted" }),
      ...classes.map((c) => el("th", { scope: "col", textContent: c, title: `predicted ${c}` })));
    const rows = confusion.map((row, t) => {
      const support = row.reduce((a, b) => a + b, 0) || 1;
      return el("tr", {}, el("th", { scope: "row", textContent: classes[t] }),
        ...row.map((n, p) => {
          const share = n / support;
          const colour = t === p ? `rgba(27, 122, 58, ${(0.1 + (0.9 * share)).toFixed(3)})` : `rgba(179, 38, 30, ${Math.min(1, 3 * share).toFixed(3)})`;
          return el("td", {
            className: t === p ? "diag" : "",
            textContent: String(n),
            title: `${n} ${classes[t]} predicted as ${classes[p]} (${pct(share)} of the class)`,
            style: `background: ${colour}; color: ${share > 0.5 ? "#fff" : "inherit"}`,
            dataset: { t: String(t), p: String(p) },
          });
        }));
    });
    return el("table", { id: "confusion", className: "heat" }, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  function perClass(evaluation) {
    return el("table", { id: "per-class" },
      el("thead", {}, el("tr", {}, ...["Class", "Precision", "Recall", "Support"].map((h) => el("th", { scope: "col", textContent: h })))),
      el("tbody", {}, ...evaluation.perClass.map((c) => el("tr", {},
        el("th", { scope: "row", textContent: c.name }),
        el("td", { textContent: pct(c.precision) }),
        el("td", { textContent: pct(c.recall) }),
        el("td", { textContent: String(c.support) })))));
  }

  let galleryRequest = 0;

  async function loadGallery(name, version) {
    const onlyWrong = $("eval-only-wrong").checked;
    const request = ++galleryRequest;
    const result = await api(`${base(name, version)}/samples?limit=48&onlyWrong=${onlyWrong}`);
    if (request !== galleryRequest) return; // a later load (the filter changed, another version) answers instead
    const gallery = $("eval-gallery");
    if (!result.ok) {
      gallery.replaceChildren(el("p", { className: "error", textContent: problemText(result) }));
      return;
    }

    gallery.replaceChildren(...result.body.items.map((s) => el("figure", { className: s.correct ? "sample right" : "sample wrong", dataset: { index: String(s.index), predicted: s.predictedLabel } },
      el("img", { className: "sample-image", src: s.image, alt: `Test image ${s.index}: ${s.trueLabel}`, width: 56, height: 56 }),
      el("figcaption", {},
        el("span", { className: "true", textContent: s.trueLabel }),
        el("span", { className: "pred", textContent: `${s.correct ? "" : "→ "}${s.predictedLabel} ${pct(s.probability)}` })))));
    samples = new Map(result.body.items.map((s) => [s.index, s]));
    $("eval-gallery-note").textContent = `${result.body.misclassified} of ${result.body.testImages} test images are misclassified; mistakes first, the most confident first.`;
    refreshCams();
  }

  // ---- "Show where it looked": each visible sample's class activation map from this very version (POST /predict with
  // model and version, which bypasses the model's traffic split and serves a non-active version too; explain=cam).

  const camMode = () => ($("eval-cam-class").value === "true" ? "true" : "predicted");
  const camKey = (name, version, mode, index) => `${name}/${version}/${mode}/${index}`;

  /** Redraws the overlays from the cache and watches the samples still without one (after any change). */
  function refreshCams() {
    observer?.disconnect();
    observer = null;
    queue = [];
    camFailed = false;
    $("eval-cam-note").textContent = "";
    const on = $("eval-cam").checked && shown;
    $("eval-cam-class").disabled = !$("eval-cam").checked;
    for (const figure of $("eval-gallery").querySelectorAll("figure.sample")) {
      figure.querySelector("img.cam")?.remove();
      figure.querySelector("img.sample-image").hidden = false;
      if (!on) continue;
      const key = camKey(shown.name, shown.version, camMode(), Number(figure.dataset.index));
      if (cams.has(key)) {
        drawCam(figure, cams.get(key));
      } else if (!pending.has(key)) {
        observer ??= new IntersectionObserver(onVisible, { rootMargin: "100px" });
        observer.observe(figure);
      }
    }
  }

  function onVisible(entries) {
    if (!shown) return;
    const mode = camMode();
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer?.unobserve(entry.target);
      const index = Number(entry.target.dataset.index);
      const key = camKey(shown.name, shown.version, mode, index);
      const sample = samples.get(index);
      if (!sample || cams.has(key) || pending.has(key)) continue;
      pending.add(key);
      queue.push({ key, name: shown.name, version: shown.version, mode, sample });
    }

    pump();
  }

  /** Sends the queue, CAM_BATCH images a request (one class to explain per request), CAM_PARALLEL requests at a time. */
  function pump() {
    while (running < CAM_PARALLEL && queue.length > 0 && !camFailed) {
      const first = queue[0];
      const same = (q) => q.name === first.name && q.version === first.version && q.mode === first.mode
        && (first.mode !== "true" || q.sample.trueLabel === first.sample.trueLabel);
      const batch = queue.filter(same).slice(0, CAM_BATCH);
      queue = queue.filter((q) => !batch.includes(q));
      running++;
      fetchCams(batch).finally(() => {
        running--;
        pump();
      });
    }
  }

  async function fetchCams(batch) {
    const { name, version, mode, sample } = batch[0];
    const form = new FormData();
    for (const q of batch) form.append("images", dataUrlBlob(q.sample.image), `${q.sample.index}.png`);
    const explainClass = mode === "true" ? `&explainClass=${encodeURIComponent(sample.trueLabel)}` : "";
    let result;
    try {
      result = await api(`predict?model=${encodeURIComponent(name)}&version=${version}&invert=false&topK=1&explain=cam${explainClass}`, { method: "POST", body: form });
    } catch (err) {
      result = { ok: false, status: 0, body: { title: `Could not reach the service: ${err.message}` } };
    }

    for (const q of batch) pending.delete(q.key);
    const served = result.ok ? result.body.model : null;
    const ok = result.ok && served.name === name && served.version === version
      && result.body.predictions.length === batch.length && result.body.predictions.every((p) => p.explanation);
    const current = () => shown?.name === name && shown?.version === version && $("eval-cam").checked && camMode() === mode;
    if (!ok) {
      if (!camFailed && current()) {
        camFailed = true;
        queue = [];
        $("eval-cam-note").textContent = result.ok
          ? `The service answered with ${served.name} v${served.version}, not ${name} v${version}: no maps shown.`
          : `No maps: ${problemText(result)}`;
      }

      return;
    }

    batch.forEach((q, i) => {
      const e = result.body.predictions[i].explanation;
      cams.set(q.key, e);
      while (cams.size > CAM_KEPT) cams.delete(cams.keys().next().value);
      const figure = current() ? $("eval-gallery").querySelector(`figure.sample[data-index="${q.sample.index}"]`) : null;
      if (figure) drawCam(figure, e);
    });
  }

  /** The overlay in place of the plain image (it is that image with the map over it), at the same size. */
  function drawCam(figure, e) {
    if (figure.querySelector("img.cam")) return;
    const image = figure.querySelector("img.sample-image");
    image.hidden = true;
    const kind = e.method === "cam" ? "CAM" : "Grad-CAM";
    image.after(el("img", {
      className: "cam",
      src: `data:image/png;base64,${e.overlayPng}`,
      alt: `Test image ${figure.dataset.index}: where the evidence for ${e.label} lies (${kind}; warm colours mark the strongest)`,
      title: `Evidence for ${e.label} (${kind} at ${e.layer}, ${e.width}×${e.height})`,
      width: 56,
      height: 56,
      dataset: { label: e.label },
    }));
  }

  function render(evaluation) {
    $("eval-status").textContent = `Accuracy ${pct(evaluation.accuracy)} on ${evaluation.testImages} test images of ${evaluation.dataset ?? "its dataset"}.`;
    $("eval-matrix").replaceChildren(heatMap(evaluation));
    $("eval-classes").replaceChildren(perClass(evaluation));
    $("eval-body").hidden = false;
    $("eval-run").hidden = true;
  }

  // The int8 model's figures beside fp32's, as measured when the version was quantized (docs/int8.md).
  async function loadInt8(name, version) {
    $("eval-int8").textContent = "";
    const result = await api(base(name, version));
    const int8 = result.ok ? result.body.int8 : null;
    if (shown?.name !== name || shown?.version !== version || !int8) return;
    $("eval-int8").textContent = int8.int8Accuracy == null
      ? int8.warning
      : `int8 ${pct(int8.int8Accuracy)} vs fp32 ${pct(int8.fp32Accuracy)} on ${int8.testImages} test images: ${int8.servable ? "int8 may serve" : int8.warning}`;
  }

  async function load(name, version) {
    loadInt8(name, version);
    const result = await api(`${base(name, version)}/evaluation`);
    if (shown?.name !== name || shown?.version !== version) return false;
    if (result.ok) {
      render(result.body);
      await loadGallery(name, version);
      return true;
    }

    $("eval-body").hidden = true;
    if (result.status === 404) {
      $("eval-status").textContent = "Not evaluated yet.";
      $("eval-run").hidden = false;
    } else {
      $("eval-status").textContent = problemText(result);
    }

    return false;
  }

  async function evaluate() {
    if (!shown) return;
    const { name, version } = shown;
    $("eval-run").disabled = true;
    const result = await api(`${base(name, version)}/evaluate`, { method: "POST" });
    if (!result.ok) {
      $("eval-status").textContent = problemText(result);
      $("eval-run").disabled = false;
      return;
    }

    $("eval-status").textContent = "Evaluating on the test split…";
    const token = ++polling;
    const until = Date.now() + POLL_LIMIT_MS;
    while (token === polling && Date.now() < until) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      if (token !== polling) return;
      const res = await api(`${base(name, version)}/evaluation`);
      if (res.ok) {
        await load(name, version);
        break;
      }
    }

    $("eval-run").disabled = false;
  }

  async function show(name, version) {
    polling++;
    shown = null;
    refreshCams(); // the previous version's overlays and watchers go
    shown = { name, version };
    $("evaluation").hidden = false;
    $("evaluation").dataset.model = `${name}/${version}`;
    $("eval-title").textContent = `${name} v${version}`;
    $("eval-status").textContent = "Loading…";
    $("eval-body").hidden = true;
    $("eval-run").hidden = true;
    $("evaluation").scrollIntoView({ block: "start" });
    await load(name, version);
  }

  $("eval-run").addEventListener("click", evaluate);
  $("eval-only-wrong").addEventListener("change", () => shown && loadGallery(shown.name, shown.version));
  $("eval-cam").addEventListener("change", refreshCams);
  $("eval-cam-class").addEventListener("change", refreshCams);
  $("eval-close").addEventListener("click", () => {
    polling++;
    shown = null;
    refreshCams();
    $("evaluation").hidden = true;
  });

  return { show, hide: () => { shown = null; refreshCams(); $("evaluation").hidden = true; }, get shown() { return shown; } };
}
