// Uploading a dataset (a zip of class folders) with upload progress, then its summary and skipped files;
// the new dataset is chosen in the training form (with its recipe preset) so it can be trained on at once.
// XMLHttpRequest, not fetch: only it reports upload progress.

export function createUploadView({ $, el, apiKey, askForKey, problemText, onUploaded }) {
  function send(form) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "datasets");
      xhr.setRequestHeader("Accept", "application/json");
      const key = apiKey();
      if (key) xhr.setRequestHeader("X-Api-Key", key);
      xhr.upload.onprogress = (e) => {
        if (!e.lengthComputable) return;
        $("upload-progress").max = e.total;
        $("upload-progress").value = e.loaded;
        $("upload-state").textContent = e.loaded < e.total ? `Uploading… ${Math.round((100 * e.loaded) / e.total)}%` : "Decoding the images…";
      };
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          // not JSON
        }

        resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, body, key });
      };
      xhr.onerror = () => resolve({ ok: false, status: 0, body: { title: "Could not reach the service." }, key });
      xhr.send(form);
    });
  }

  function summary(d) {
    $("upload-summary").replaceChildren(
      el("p", {}, "Dataset ", el("strong", { id: "upload-id", textContent: d.id }), ` (${d.name}): ${d.train} training and ${d.test} test images, ${d.channels === 1 ? "grey" : "RGB"}, ${d.size}×${d.size} px, ${d.foreground ?? "none"}.`),
      el("table", { id: "upload-classes" },
        el("thead", {}, el("tr", {}, ...["Class", "Images", "Train", "Test"].map((h) => el("th", { scope: "col", textContent: h })))),
        el("tbody", {}, ...d.classes.map((c) => el("tr", {},
          el("th", { scope: "row", textContent: c.name }),
          el("td", { textContent: String(c.images) }),
          el("td", { textContent: String(c.train) }),
          el("td", { textContent: String(c.test) }))))),
      d.skipped.length === 0
        ? el("p", { id: "upload-skipped-none", textContent: "No files were skipped." })
        : el("details", { open: true },
          el("summary", { textContent: `${d.skipped.length} file(s) skipped` }),
          el("ul", { id: "upload-skipped" }, ...d.skipped.map((s) => el("li", {}, el("code", { textContent: s.entry }), `: ${s.reason}`)))));
    $("upload-summary").hidden = false;
  }

  async function upload(event) {
    event.preventDefault();
    $("upload-error").textContent = "";
    const file = $("upload-file").files?.[0];
    if (!file) {
      $("upload-error").textContent = "Choose a .zip file first.";
      return;
    }

    const form = new FormData();
    form.append("file", file, file.name);
    form.append("name", $("upload-name").value.trim() || file.name.replace(/\.zip$/i, ""));
    if ($("upload-size").value.trim()) form.append("size", $("upload-size").value.trim());
    form.append("channels", $("upload-channels").value);
    const button = $("upload-submit");
    button.disabled = true;
    $("upload-next").hidden = true;
    $("upload-progress").value = 0;
    $("upload-progress").hidden = false;
    try {
      let result = await send(form);
      if ((result.status === 401 || result.status === 403) && (await askForKey(result.status))) result = await send(form);
      if (!result.ok) {
        $("upload-error").textContent = problemText(result);
        $("upload-state").textContent = "";
        return;
      }

      $("upload-state").textContent = "Uploaded.";
      summary(result.body);
      await onUploaded(result.body);
    } finally {
      button.disabled = false;
    }
  }

  $("upload-form").addEventListener("submit", upload);
}
