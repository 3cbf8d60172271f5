// A model version's evaluation: the confusion matrix as a heat map (rows = true class, columns = predicted),
// per-class precision, recall and support, and a gallery of test images, misclassified first (d2l's predict_ch3).

const POLL_MS = 2000;
const POLL_LIMIT_MS = 15 * 60 * 1000;

export function createEvaluationView({ $, api, el, pct, problemText }) {
  let shown = null; // { name, version }
  let polling = 0;

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

  async function loadGallery(name, version) {
    const onlyWrong = $("eval-only-wrong").checked;
    const result = await api(`${base(name, version)}/samples?limit=48&onlyWrong=${onlyWrong}`);
    const gallery = $("eval-gallery");
    if (!result.ok) {
      gallery.replaceChildren(el("p", { className: "error", textContent: problemText(result) }));
      return;
    }

    gallery.replaceChildren(...result.body.items.map((s) => el("figure", { className: s.correct ? "sample right" : "sample wrong", dataset: { index: String(s.index) } },
      el("img", { src: s.image, alt: `Test image ${s.index}: ${s.trueLabel}`, width: 56, height: 56 }),
      el("figcaption", {},
        el("span", { className: "true", textContent: s.trueLabel }),
        el("span", { className: "pred", textContent: `${s.correct ? "" : "→ "}${s.predictedLabel} ${pct(s.probability)}` })))));
    $("eval-gallery-note").textContent = `${result.body.misclassified} of ${result.body.testImages} test images are misclassified; mistakes first, the most confident first.`;
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
  $("eval-close").addEventListener("click", () => {
    polling++;
    shown = null;
    $("evaluation").hidden = true;
  });

  return { show, hide: () => { shown = null; $("evaluation").hidden = true; }, get shown() { return shown; } };
}
