// The promotion gate's refusal on the dashboard: when POST .../activate answers 409 with the gate's reasons, the panel
// under the versions table shows them, both accuracies and each class's recall change (active → this version), and
// offers "Activate anyway", which retries with force=true (recorded on the version; the admin scope when keys are on).

export function createGateView({ $, el, pct }) {
  const signed = (x, digits = 1) => `${x > 0 ? "+" : x < 0 ? "−" : "±"}${Math.abs(x * 100).toFixed(digits)}`;

  function hide() {
    const box = $("gate");
    box.hidden = true;
    box.replaceChildren();
  }

  function figures(problem) {
    const { candidate, active } = problem;
    if (!candidate || !active) return problem.note ?? "";
    const where = problem.comparedOn === "candidate-split" ? "the active version measured on this version's test split" : "the same test split";
    return `Test accuracy ${pct(candidate.accuracy)} against ${pct(active.accuracy)} for ${active.name} v${active.version} ` +
      `(${signed(problem.accuracyDelta ?? 0, 2)} points, ${where}, ${candidate.testImages} images); classes with recall at or above the floor: ${candidate.classesAboveFloor} against ${active.classesAboveFloor}.`;
  }

  function perClass(problem) {
    if (!problem.perClass?.length) return null;
    const cell = (x) => el("td", { className: x > 0 ? "up" : x < 0 ? "down" : "", textContent: `${signed(x)} pts` });
    return el("div", { className: "scroll", tabIndex: 0, role: "region", "aria-label": "Per-class recall changes" },
      el("table", { id: "gate-classes" },
        el("thead", {}, el("tr", {}, ...["Class", "Recall (active)", "Recall (this version)", "Change"].map((h) => el("th", { scope: "col", textContent: h })))),
        el("tbody", {}, ...problem.perClass.map((c) => el("tr", {},
          el("th", { scope: "row", textContent: c.name }),
          el("td", { textContent: pct(c.recallA) }), el("td", { textContent: pct(c.recallB) }), cell(c.recallDelta))))));
  }

  // force(button): the caller's activation again, with force=true.
  function show(name, version, problem, force) {
    const box = $("gate");
    box.replaceChildren(...[
      el("h3", { id: "gate-title", textContent: `${name} v${version} was not activated: the promotion gate refused it` }),
      el("ul", { id: "gate-reasons" }, ...problem.reasons.map((r) => el("li", { dataset: { code: r.code } }, el("strong", { textContent: r.code }), `: ${r.detail}`))),
      el("p", { id: "gate-figures", textContent: figures(problem) }),
      problem.note && problem.candidate && problem.active ? el("p", { className: "hint", textContent: problem.note }) : null,
      perClass(problem),
      el("p", { className: "gate-actions" },
        el("button", { type: "button", className: "danger", id: "gate-force", textContent: "Activate anyway", onclick: (ev) => force(ev.currentTarget) }),
        " ",
        el("button", { type: "button", className: "secondary", textContent: "Dismiss", onclick: hide })),
    ].filter(Boolean));
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }

  return { show, hide };
}
