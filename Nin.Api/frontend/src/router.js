// Hash routing: one view of the dashboard at a time, reachable from the navigation and by URL, so a deep link
// (#/runs/3f9c…) survives a reload and back/forward move between views. Every part of <main> names the views it
// belongs to (data-views); the others are hidden, not removed, so live updates keep filling them while unseen.
//
//   #/               overview (served model, Try it, running and recent runs)
//   #/try            Try it
//   #/train          the training form
//   #/runs           the runs table and compare
//   #/runs/{jobId}   one run: live curves, per-batch loss, time left, events, cancel
//   #/sweeps         hyperparameter sweeps: list, start one
//   #/sweeps/{id}    one sweep: trials, metric against a parameter, the trials' curves, cancel, CSV
//   #/models         models: versions, evaluation, compare, activate, delete
//   #/models/{name}  the same, that model's versions scrolled to
//   #/datasets       datasets: list, upload, delete

const VIEWS = {
  overview: { heading: "overview-h", title: "Overview" },
  try: { heading: "try-h", title: "Try it" },
  train: { heading: "train-h", title: "Train" },
  runs: { heading: "jobs-h", title: "Runs" },
  run: { heading: "live-h", title: "Run", nav: "runs" },
  sweeps: { heading: "sweeps-h", title: "Sweeps" },
  sweep: { heading: "sweep-h", title: "Sweep", nav: "sweeps" },
  models: { heading: "models-h", title: "Models" },
  datasets: { heading: "datasets-h", title: "Datasets" },
};

// The single page's old section anchors, so bookmarks made before the views still land on the right one.
const LEGACY = { overview: "/", try: "/try", train: "/train", live: "/runs", jobs: "/runs", models: "/models", upload: "/datasets" };

/** "#/runs/abc" → { view: "run", param: "abc", path: "/runs/abc" }; null for a hash that is not a route (#main). */
export function parseRoute(hash) {
  const raw = (hash || "").replace(/^#/, "");
  if (raw === "") return { view: "overview", param: null, path: "/" };
  if (!raw.startsWith("/")) return null;
  const parts = raw.split("/").filter(Boolean).map((p) => decodeURIComponent(p));
  const [first, second] = parts;
  if (!first) return { view: "overview", param: null, path: "/" };
  if (first === "runs" && second) return { view: "run", param: second, path: `/runs/${second}` };
  if (first === "sweeps" && second) return { view: "sweep", param: second, path: `/sweeps/${second}` };
  if (first === "models" && second) return { view: "models", param: second, path: `/models/${second}` };
  if (first in VIEWS && first !== "overview" && first !== "run" && first !== "sweep") return { view: first, param: null, path: `/${first}` };
  return { view: "overview", param: null, path: "/" };
}

/** onRoute(route) runs on every route and may return the element focus should move to instead of the heading. */
export function createRouter({ onRoute }) {
  let current = null;

  function apply(route, moveFocus) {
    current = route;
    const view = VIEWS[route.view];
    for (const part of document.querySelectorAll("main [data-views]")) {
      part.hidden = !part.dataset.views.split(" ").includes(route.view);
    }

    for (const link of document.querySelectorAll("nav a[data-view]")) {
      if (link.dataset.view === (view.nav ?? route.view)) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }

    const param = route.view === "run" || route.view === "sweep" ? route.param.slice(0, 8) : route.param; // an id's first 8, as shown
    document.title = `${view.title}${param ? ` ${param}` : ""} · Nin`;
    document.body.dataset.route = route.path;
    const target = onRoute(route); // a place within the view (a model's versions), or null for its top
    if (target) {
      target.focus({ preventScroll: true });
    } else if (moveFocus) {
      // A screen reader hears where it landed; keyboard users continue from the view's top.
      window.scrollTo(0, 0);
      document.getElementById(view.heading)?.focus({ preventScroll: true });
    }
  }

  function fromLocation(moveFocus) {
    const hash = location.hash.replace(/^#/, "");
    if (hash in LEGACY) {
      history.replaceState(null, "", `#${LEGACY[hash]}`);
    }

    const route = parseRoute(location.hash);
    if (route) apply(route, moveFocus);
    else if (!current) apply(parseRoute(""), false); // an in-page anchor on first load: the overview
  }

  window.addEventListener("hashchange", () => fromLocation(true));

  // The skip link moves focus to <main> without changing the route in the address bar.
  document.querySelector("a.skip")?.addEventListener("click", (ev) => {
    ev.preventDefault();
    const main = document.getElementById("main");
    main.tabIndex = -1;
    main.focus();
  });

  return {
    start: () => fromLocation(false),
    /** Navigates to a path such as "/runs/abc" (a history entry, like a click on a link). */
    go: (path) => {
      location.hash = `#${path}`;
    },
    get current() {
      return current;
    },
  };
}
