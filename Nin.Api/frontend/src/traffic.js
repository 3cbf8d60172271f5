// Canary and shadow traffic on the dashboard (GET/PUT/DELETE /models/{name}/traffic): under each model with two or more
// versions, a "Traffic" section shows the split (each version's share, requests and mean latency on this replica) and
// the shadow's live agreement, refreshed every few seconds while open; a form sends a share of requests to another
// version and/or shadows one; Promote activates the canary (through the promotion rules) and ends the split; Roll back
// ends it.

export function createTrafficView({ api, el, pct, problemText, onChanged, onSplit }) {
  const timers = new Map();

  function describe(body, status) {
    if (body.routes.length === 0 && !body.shadow) {
      status.textContent = "No split: the active (or newest) version takes every request.";
      return null;
    }

    status.textContent = `Split since ${new Date(body.updated).toLocaleString()}; clients that send ${body.keyHeader} keep their version.`;
    const rows = body.routes.map((r) => el("tr", { dataset: { version: String(r.version) } },
      el("th", { scope: "row", textContent: `v${r.version}${r.active ? " (active)" : ""}` }),
      el("td", { className: "share", textContent: pct(r.share) }),
      el("td", { className: "requests", textContent: String(r.requests) }),
      el("td", { textContent: r.meanLatencyMs == null ? "–" : `${r.meanLatencyMs.toFixed(1)} ms` })));
    if (body.shadow) {
      const s = body.shadow;
      rows.push(el("tr", { className: "shadow", dataset: { version: String(s.version) } },
        el("th", { scope: "row", textContent: `v${s.version} (shadow)` }),
        el("td", { textContent: "copies" }),
        el("td", { className: "requests", textContent: String(s.images) }),
        el("td", { className: "agreement", textContent: s.rate == null ? "no copies yet" : `agrees ${pct(s.rate)}${s.skipped ? `, ${s.skipped} skipped` : ""}` })));
    }

    const table = el("table", { className: "traffic-table" },
      el("thead", {}, el("tr", {}, ...["Version", "Share", "Requests", "Mean latency / agreement"].map((h) => el("th", { scope: "col", textContent: h })))),
      el("tbody", {}, ...rows));
    const worst = (body.shadow?.perClass ?? []).filter((c) => c.images > 0).sort((a, b) => a.rate - b.rate).slice(0, 3);
    const note = worst.length
      ? el("p", { className: "hint", textContent: `Least agreement: ${worst.map((c) => `${c.label} ${pct(c.rate)} of ${c.images}`).join(", ")}.` })
      : null;
    return el("div", { className: "scroll", tabIndex: 0, role: "region", "aria-label": "Traffic split" }, table, note);
  }

  function panel(model) {
    if (model.versions.length < 2) return null;
    const name = model.name;
    const versions = model.versions.map((v) => v.version).sort((x, y) => x - y);
    const active = model.versions.find((v) => v.active)?.version ?? versions[versions.length - 1];
    const id = (part) => `tr-${part}-${name}`;
    const status = el("p", { className: "hint", id: id("status"), "aria-live": "polite" });
    const body = el("div", { className: "traffic-body" });
    const error = el("p", { className: "error", role: "alert" });
    let current = null;

    async function refresh() {
      const result = await api(`models/${encodeURIComponent(name)}/traffic`).catch(() => null);
      if (!result?.ok) {
        error.textContent = result ? problemText(result) : "Could not reach the service.";
        return;
      }

      current = result.body;
      error.textContent = "";
      body.replaceChildren(...[describe(current, status)].filter(Boolean));
      const canary = current.routes.find((r) => r.version !== active);
      promote.hidden = !canary;
      promote.textContent = canary ? `Promote v${canary.version}` : "Promote";
      rollBack.hidden = current.routes.length === 0 && !current.shadow;
    }

    async function send(init, path = "") {
      error.textContent = "";
      const result = await api(`models/${encodeURIComponent(name)}/traffic${path}`, init).catch(() => null);
      if (!result?.ok) {
        error.textContent = result ? problemText(result) : "Could not reach the service.";
        return false;
      }

      await refresh();
      onSplit?.();
      return true;
    }

    const select = (part, label, chosen, none) => el("span", { className: "field inline" },
      el("label", { htmlFor: id(part), textContent: label }),
      el("select", { id: id(part) }, ...(none ? [el("option", { value: "", textContent: "none" })] : []),
        ...versions.map((v) => el("option", { value: String(v), textContent: `v${v}`, selected: v === chosen }))));
    const percent = el("span", { className: "field inline" },
      el("label", { htmlFor: id("percent"), textContent: "Share %" }),
      el("input", { id: id("percent"), type: "number", min: 0, max: 100, step: 1, value: 10, inputMode: "numeric" }));
    const form = el("form", { className: "traffic-form", onsubmit: async (ev) => {
      ev.preventDefault();
      const canary = Number(document.getElementById(id("canary")).value);
      const share = Math.min(100, Math.max(0, Number(document.getElementById(id("percent")).value) || 0));
      const shadowValue = document.getElementById(id("shadow")).value;
      const routes = canary === active || share === 0 ? [{ version: active, weight: 100 }]
        : share === 100 ? [{ version: canary, weight: 100 }]
          : [{ version: active, weight: 100 - share }, { version: canary, weight: share }];
      const payload = { routes };
      if (shadowValue) payload.shadow = Number(shadowValue);
      await send({ method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
    } },
      select("canary", "Canary", versions.find((v) => v !== active) ?? active),
      percent,
      select("shadow", "Shadow", null, true),
      el("button", { type: "submit", className: "secondary", textContent: "Apply split" }));

    const promote = el("button", { type: "button", className: "secondary", hidden: true, onclick: async () => {
      const canary = current?.routes.find((r) => r.version !== active);
      if (!canary) return;
      const result = await api(`models/${encodeURIComponent(name)}/versions/${canary.version}/activate`, { method: "POST" }).catch(() => null);
      if (!result?.ok) {
        error.textContent = result ? problemText(result) : "Could not reach the service.";
        return;
      }

      if (await send({ method: "DELETE" })) onChanged?.();
    } });
    const rollBack = el("button", { type: "button", className: "secondary", hidden: true, textContent: "Roll back (end the split)",
      onclick: () => send({ method: "DELETE" }) });

    const details = el("details", { className: "traffic", dataset: { model: name } },
      el("summary", { textContent: "Traffic: canary and shadow" }),
      status, body, form, el("p", { className: "buttons" }, promote, rollBack), error);
    details.addEventListener("toggle", () => {
      clearInterval(timers.get(name));
      if (!details.open) return;
      refresh();
      timers.set(name, setInterval(() => {
        if (!details.isConnected) clearInterval(timers.get(name));
        else if (document.visibilityState === "visible") refresh();
      }, 3000));
    });
    return details;
  }

  return { panel };
}
