// The dashboard's page weight, printed by every frontend build and held to a budget (gzip level 9, as a server or
// proxy would send it): the build fails when a file grows past its budget, so growth is a decision, not an accident.
import { existsSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const budgets = [
  ["../wwwroot/lib/app.js", 100 * 1024], // @microsoft/signalr + Chart.js + the dashboard itself
  ["../wwwroot/lib/app.css", 6 * 1024],
  ["../wwwroot/index.html", 6 * 1024],
];

let over = false;
let total = 0;
for (const [file, budget] of budgets) {
  const url = new URL(file, import.meta.url);
  if (!existsSync(url)) { // the image's node stage has the bundle but not index.html
    console.log(`page weight: ${file.replace("../wwwroot/", "")} not in this build context`);
    continue;
  }
  const raw = readFileSync(url);
  const gz = gzipSync(raw, { level: 9 }).length;
  total += gz;
  const ok = gz <= budget;
  over ||= !ok;
  console.log(`page weight: ${file.replace("../wwwroot/", "")} ${(raw.length / 1024).toFixed(1)} KiB, gzipped ${(gz / 1024).toFixed(1)} KiB of ${(budget / 1024).toFixed(0)} KiB budget${ok ? "" : "  OVER BUDGET"}`);
}
console.log(`page weight: total gzipped ${(total / 1024).toFixed(1)} KiB`);
if (over) {
  console.error("page weight: over budget (Nin.Api/frontend/budget.mjs); trim the bundle or raise the budget on purpose");
  process.exit(1);
}
