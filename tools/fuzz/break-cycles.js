// Portman cannot read recursive schemas (TrainingRecipe.continuedFrom.recipe is a TrainingRecipe). For the fuzz pass
// only, each $ref that closes a cycle is replaced by an open schema; the contract test (Nin.Api.Tests/Contract)
// validates the recursive schemas in full. Usage: node break-cycles.js in.json out.json
const fs = require("fs");
const [input, output] = process.argv.slice(2);
const doc = JSON.parse(fs.readFileSync(input, "utf8"));
const schemas = (doc.components && doc.components.schemas) || {};
const prefix = "#/components/schemas/";
let broken = 0;

function visit(node, stack) {
  if (Array.isArray(node)) {
    node.forEach((item, i) => { node[i] = visit(item, stack); });
    return node;
  }
  if (!node || typeof node !== "object") {
    return node;
  }
  if (typeof node.$ref === "string" && node.$ref.startsWith(prefix)) {
    const name = node.$ref.slice(prefix.length);
    if (stack.includes(name)) {
      broken++;
      return { type: "object", nullable: true, description: `(recursive: a ${name})` };
    }
    visit(schemas[name], [...stack, name]);
    return node;
  }
  for (const key of Object.keys(node)) {
    node[key] = visit(node[key], stack);
  }
  return node;
}

for (const name of Object.keys(schemas)) {
  visit(schemas[name], [name]);
}
fs.writeFileSync(output, JSON.stringify(doc, null, 2));
console.log(`break-cycles: ${broken} recursive reference(s) opened`);
