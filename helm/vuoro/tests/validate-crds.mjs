// Validates the chart's Prometheus Operator objects (ServiceMonitor, PrometheusRule) against the
// JSON schemas that npm's @kubernetes-models/prometheus-operator generates from the operator's
// API types: Kubernetes' own schemas do not cover them.
//
//   node validate-crds.mjs MODELS_DIR OBJECTS.json
//
// MODELS_DIR is the installed package's directory; OBJECTS.json a JSON array of objects.
// Exits 1 naming every object that does not validate, or whose kind it has no schema for.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modelsDir, objectsFile] = process.argv.slice(2);
if (!modelsDir || !objectsFile) {
  console.error("usage: node validate-crds.mjs MODELS_DIR OBJECTS.json");
  process.exit(2);
}
const objects = JSON.parse(readFileSync(objectsFile, "utf8"));
let failed = 0;
for (const object of objects) {
  const what = `${object.kind}/${object.metadata?.name}`;
  const [group, version] = String(object.apiVersion).split("/");
  let Model;
  try {
    const module = await import(pathToFileURL(join(modelsDir, group, version, `${object.kind}.js`)).href);
    Model = module[object.kind];
  } catch {
    Model = undefined;
  }
  if (!Model) {
    console.error(`ERROR ${what}: no schema for ${object.apiVersion} ${object.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok ${what} (${object.apiVersion})`);
  } catch (error) {
    console.error(`ERROR ${what}: ${error.message}`);
    failed++;
  }
}
if (failed) {
  console.error(`${failed} of ${objects.length} objects did not validate`);
  process.exit(1);
}
