// The training form's recipe presets: GET /train/recipes lists them; choosing one fills in the fields it
// sets (still editable: an explicit field overrides the preset) and says which fields those are.

/** Form field → the preset's property, in the order they are listed. */
const PRESET_FIELDS = [
  ["architecture", "architecture"],
  ["epochs", "epochs"],
  ["batchSize", "batchSize"],
  ["learningRate", "learningRate"],
  ["schedule", "schedule"],
  ["momentum", "momentum"],
  ["weightDecay", "weightDecay"],
  ["shift", "shift"],
  ["flip", "flip"],
  ["labelSmoothing", "labelSmoothing"],
];

/** Built-in datasets train the book's way by default; uploaded ones (ids "u-…") with the robust recipe. */
export const defaultRecipeFor = (dataset) => (dataset?.startsWith("u-") ? "robust" : "d2l");

/** Built-in datasets default to d2l's 224 px; uploaded ones (8–64 px) to the network's smallest input. */
const defaultImageSizeFor = (dataset) => (dataset?.startsWith("u-") ? 67 : 224);

export function createRecipes({ $, api }) {
  let presets = new Map();
  let touched = false; // what the user typed before the presets arrived is kept
  $("train-form").addEventListener("input", () => { touched = true; }, { once: true });

  function apply(name) {
    const preset = presets.get(name);
    const select = $("f-recipe");
    select.value = name;
    if (!preset) {
      $("recipe-sets").textContent = "";
      return;
    }

    for (const [field, key] of PRESET_FIELDS) {
      $(`f-${field}`).value = String(preset[key]);
    }

    $("f-imageSize").value = String(defaultImageSizeFor($("f-dataset").value));
    $("recipe-sets").textContent = `${preset.name}: ${preset.description} Sets ${PRESET_FIELDS.map(([f, k]) => `${f} ${preset[k]}`).join(", ")}.`;
  }

  async function load() {
    const result = await api("train/recipes").catch(() => null);
    if (!result?.ok) return;
    presets = new Map(result.body.recipes.map((r) => [r.name, r]));
    $("f-recipe").replaceChildren(...result.body.recipes.map((r) => Object.assign(document.createElement("option"), { value: r.name, textContent: r.name, title: r.description })));
    $("f-architecture").replaceChildren(...result.body.architectures.map((a) => Object.assign(document.createElement("option"), { value: a.name, textContent: a.name, title: a.description })));
    if (!touched) apply(defaultRecipeFor($("f-dataset").value));
  }

  $("f-recipe").addEventListener("change", () => apply($("f-recipe").value));
  $("f-dataset").addEventListener("change", () => apply(defaultRecipeFor($("f-dataset").value)));
  return { load, apply };
}
