// Version diff on the dashboard: GET /models/{name}/compare?a=&b= side by side (accuracy and per-class changes b − a,
// then the test images b fixed and the ones it broke, as thumbnails). Thumbnails are fetched with the key when one is
// set (an <img src> cannot send it) and shown from blob URLs, which the page's policy allows.

export function createVersionCompareView({ $, api, el, pct, problemText, withKey }) {
  let urls = [];

  const signed = (x, digits = 1) => `${x > 0 ? "+" : x < 0 ? "−" : "±"}${Math.abs(x * 100).toFixed(digits)}`;

  function release() {
    for (const u of urls) URL.revokeObjectURL(u);
    urls = [];
  }

  function thumbnail(sample) {
    const img = el("img", { alt: `Test image ${sample.index}: ${sample.trueLabel}`, width: 56, height: 56, loading: "lazy" });
    fetch(sample.image.replace(/^\//, ""), { headers: withKey() }).then(async (r) => {
      if (!r.ok) return;
      const url = URL.createObjectURL(await r.blob());
      urls.push(url);
      img.src = url;
    }).catch(() => {});
    return img;
  }

  function gallery(kind, title, changed, a, b) {
    const items = changed.items.map((s) => el("figure", { className: `sample ${kind === "fixed" ? "right" : "wrong"}`, dataset: { index: String(s.index) } },
      thumbnail(s),
      el("figcaption", {},
        el("span", { className: "label", textContent: s.trueLabel }),
        el("br"),
        el("span", { textContent: `v${a}: ${s.predictedA}` }),
        el("br"),
        el("span", { className: "pred", textContent: `v${b}: ${s.predictedB}` }))));
    const more = changed.total > changed.items.length ? ` (the first ${changed.items.length})` : "";
    return el("div", { className: "changed", id: `vc-${kind}` },
      el("h3", { textContent: `${title}: ${changed.total}${more}` }),
      changed.total === 0 ? el("p", { className: "hint", textContent: "None." }) : el("div", { className: "gallery" }, ...items));
  }

  function perClass(body) {
    const cell = (x) => el("td", { className: x > 0 ? "up" : x < 0 ? "down" : "", textContent: `${signed(x)} pts` });
    return el("div", { className: "scroll", tabIndex: 0, role: "region", "aria-label": "Per-class changes" },
      el("table", { id: "vc-classes" },
        el("thead", {}, el("tr", {}, ...["Class", "Support", `Recall v${body.a.version}`, `Recall v${body.b.version}`, "Change", `Precision v${body.a.version}`, `Precision v${body.b.version}`, "Change"]
          .map((h) => el("th", { scope: "col", textContent: h })))),
        el("tbody", {}, ...body.perClass.map((c) => el("tr", {},
          el("th", { scope: "row", textContent: c.name }),
          el("td", { textContent: String(c.support) }),
          el("td", { textContent: pct(c.recallA) }), el("td", { textContent: pct(c.recallB) }), cell(c.recallDelta),
          el("td", { textContent: pct(c.precisionA) }), el("td", { textContent: pct(c.precisionB) }), cell(c.precisionDelta))))));
  }

  async function show(name, a, b) {
    const panel = $("version-compare");
    panel.hidden = false;
    release();
    $("vc-title").textContent = `${name}: v${a} → v${b}`;
    $("vc-status").textContent = "Comparing…";
    $("vc-body").replaceChildren();
    const result = await api(`models/${encodeURIComponent(name)}/compare?a=${a}&b=${b}&limit=24`).catch(() => null);
    if (!result?.ok) {
      $("vc-status").textContent = result ? problemText(result) : "Could not reach the service.";
      panel.scrollIntoView({ block: "start" });
      return;
    }

    const body = result.body;
    $("vc-status").textContent =
      `Accuracy ${pct(body.a.accuracy)} → ${pct(body.b.accuracy)} (${signed(body.accuracyDelta, 2)} points) on ${body.b.testImages} test images of ${body.b.dataset ?? "its dataset"}: ` +
      `${body.fixed.total} fixed, ${body.broken.total} broken, ${body.changedWrong} wrong in both with another label.`;
    $("vc-body").replaceChildren(
      perClass(body),
      gallery("fixed", `Fixed by v${b} (v${a} was wrong)`, body.fixed, a, b),
      gallery("broken", `Broken by v${b} (v${a} was right)`, body.broken, a, b));
    panel.scrollIntoView({ block: "start" });
  }

  // The form under a model's versions table: two versions and a button (only for models with two or more).
  function form(model) {
    if (model.versions.length < 2) return null;
    const versions = model.versions.map((v) => v.version).sort((x, y) => x - y);
    const pick = (id, label, chosen) => el("span", { className: "field inline" },
      el("label", { htmlFor: id, textContent: label }),
      el("select", { id }, ...versions.map((v) => el("option", { value: String(v), textContent: `v${v}`, selected: v === chosen }))));
    const idA = `vc-a-${model.name}`;
    const idB = `vc-b-${model.name}`;
    return el("form", { className: "version-compare-form", dataset: { model: model.name }, onsubmit: (ev) => {
      ev.preventDefault();
      show(model.name, Number($(idA).value), Number($(idB).value));
    } },
      pick(idA, "Compare", versions[versions.length - 2]),
      pick(idB, "with", versions[versions.length - 1]),
      el("button", { type: "submit", className: "secondary", textContent: "Compare versions" }));
  }

  $("vc-close").addEventListener("click", () => {
    $("version-compare").hidden = true;
    release();
  });

  return { form, show };
}
