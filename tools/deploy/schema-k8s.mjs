// Schema check of the Kubernetes manifests: every document of a built-in kind is validated against the
// Kubernetes API's OpenAPI schema (kubernetes-models, which compiles those schemas with ajv): field names,
// types, required fields. KServe's ServingRuntime is a custom resource, not in those schemas: its
// containers and volumes (core Container and Volume objects) are validated as such; the rest of it, the
// InferenceService and the kustomizations are left to validate-k8s.py.
//
//   node tools/deploy/schema-k8s.mjs FILE.yaml...        (validate-k8s.sh runs it on deploy/k8s)
import { readFileSync } from 'node:fs';
import YAML from 'yaml';

const problems = [];
let checked = 0;

async function model(apiVersion, kind) {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : [null, apiVersion];
    try {
        return (await import(`kubernetes-models/${group ? `${group}/` : ''}${version}/${kind}`))[kind];
    } catch (e) {
        if (e.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED' || e.code === 'ERR_MODULE_NOT_FOUND') return null;
        throw e;
    }
}

function validate(where, Model, value) {
    try {
        new Model(value).validate();
        checked++;
    } catch (e) {
        problems.push(`${where}: ${e.message}`);
    }
}

for (const file of process.argv.slice(2)) {
    for (const doc of YAML.parseAllDocuments(readFileSync(file, 'utf8'))) {
        if (doc.errors.length) { problems.push(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`); continue; }
        const o = doc.toJS();
        if (!o) continue;
        const where = `${file} ${o.kind}/${o.metadata?.name ?? ''}`;
        if (o.apiVersion === 'serving.kserve.io/v1alpha1' && o.kind === 'ServingRuntime') {
            const { Container } = await import('kubernetes-models/v1/Container');
            const { Volume } = await import('kubernetes-models/v1/Volume');
            (o.spec?.containers ?? []).forEach((c, i) => validate(`${where} spec.containers[${i}]`, Container, c));
            (o.spec?.volumes ?? []).forEach((v, i) => validate(`${where} spec.volumes[${i}]`, Volume, v));
            console.log(`schema: ${where}: containers and volumes as core/v1 Container and Volume`);
            continue;
        }
        const Model = o.apiVersion && o.kind ? await model(o.apiVersion, o.kind) : null;
        if (!Model) {
            console.log(`schema: ${where}: no built-in schema (${o.apiVersion}), checked by validate-k8s.py only`);
            continue;
        }
        validate(where, Model, o);
        console.log(`schema: ${where}: ${o.apiVersion} ${o.kind}`);
    }
}
if (problems.length) {
    console.error(`schema-k8s: ${problems.length} problem(s):`);
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
}
console.log(`schema-k8s: ${checked} objects valid against the Kubernetes OpenAPI schemas`);
