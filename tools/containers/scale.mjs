// The scale-out scenario's client (tools/containers/scale-test.sh): plain HTTP and the JavaScript SignalR
// client (@microsoft/signalr from the dashboard's npm project), against the load balancer or one replica.
//
//   node scale.mjs BASE_URL API_KEY STEP [ARGS...]
//
// Steps (each exits non-zero with a reason when its check fails; figures go to stdout):
//   start REQUEST_JSON              POST /train; prints "JOB <id>"
//   watch JOB_ID SECONDS            follow the job over SignalR (joined before its first epoch) to its JobFinished:
//                                   every epoch's EpochCompleted exactly once, in order, and Succeeded; prints
//                                   "MODEL <name> <version>". With REQUEST_JSON instead of JOB_ID, starts the job
//                                   itself after connecting, then follows it.
//   wait JOB_ID CONDITION SECONDS   poll GET /train/{id} until CONDITION: running (a batch done), epoch:K (K epochs done and a
//                                   batch of the next one: mid-epoch, after epoch K's checkpoint, which is saved
//                                   before the next epoch starts), resumed (resumedAfterEpoch set), status:S;
//                                   prints the snapshot as JSON
//   cancel JOB_ID                   DELETE /train/{id}: 202 (cancellation requested) or 200
//   activate NAME VERSION DATASET_DIR SECONDS REPLICA_URL...
//                                   POST /models/{name}/versions/{version}/activate?force=true (through BASE_URL; forced:
//                                   the smoke version learned nothing, which the promotion gate would refuse), then POST
//                                   /predict to every replica at once until each answers with that version; prints
//                                   how long after the activation's answer each one did
//   resumed JOB_ID SAVED_JSON       the job Succeeded after resuming from the checkpoint of the K epochs the saved
//                                   snapshot has: resumedAfterEpoch K, those K epochs' figures unchanged (not rerun),
//                                   the rest following, every epoch once
//   route PATH STATUS               GET PATH answers STATUS (e.g. a worker serves no /models)
//   spread N REPLICA_URL...         GET /models N times through BASE_URL; every replica's own /metrics
//                                   (http_server_request_duration_seconds_count of route /models) shows a share
//   kserve NAME DATASET_DIR         KServe v2: /v2/health/ready, the model's metadata, and /v2/models/NAME/infer with
//                                   4 Fashion-MNIST test images as a BYTES input: 4 labels and 4x10 probabilities
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readIdx, greyPng } from './png.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../Nin.Api/frontend/package.json'));
const signalR = require('@microsoft/signalr');

const [base, key, step, ...args] = process.argv.slice(2);
if (!base || !step) {
    console.error('usage: node scale.mjs BASE_URL API_KEY STEP [ARGS...]');
    process.exit(2);
}
const headers = key ? { 'X-Api-Key': key } : {};
setInterval(() => {}, 1000); // keep Node's event loop alive while fetch waits (see smoke.mjs)
const fail = (why) => { console.error(`scale ${step}: FAILED: ${why}`); process.exit(1); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms) => (ms / 1000).toFixed(1);

async function getJob(jobId) {
    const r = await fetch(`${base}/train/${jobId}`, { headers, signal: AbortSignal.timeout(10_000) });
    if (r.status !== 200) fail(`GET /train/${jobId} answered ${r.status}: ${await r.text()}`);
    return r.json();
}

async function start(requestJson) {
    const r = await fetch(`${base}/train`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: requestJson });
    const body = await r.json().catch(() => ({}));
    if (r.status !== 202) fail(`POST /train answered ${r.status}: ${JSON.stringify(body)}`);
    return body.jobId;
}

async function watch(jobOrRequest, limit = '600') {
    const connection = new signalR.HubConnectionBuilder()
        .withUrl(`${base}/hubs/training`, { accessTokenFactory: () => key, transport: signalR.HttpTransportType.WebSockets, skipNegotiation: true })
        .configureLogging(signalR.LogLevel.Warning)
        .build();
    const epochs = [];
    let jobId = jobOrRequest.trim().startsWith('{') ? null : jobOrRequest;
    let finished;
    const done = new Promise((resolve) => { finished = resolve; });
    const t0 = Date.now();
    connection.on('EpochCompleted', (e) => {
        if (e.jobId !== jobId) return;
        epochs.push(e.epoch);
        console.log(`[${seconds(Date.now() - t0)}s] EpochCompleted ${e.epoch}/${e.epochs}: loss ${e.trainLoss.toFixed(4)}, test accuracy ${e.testAccuracy.toFixed(3)}, ${e.seconds.toFixed(1)} s`);
    });
    connection.on('JobFinished', (e) => { if (e.jobId === jobId) finished(e); });
    connection.on('JobUpdated', () => {});
    connection.on('BatchProgress', () => {});
    await connection.start();
    if (!jobId) jobId = await start(jobOrRequest);
    const snapshot = await connection.invoke('Subscribe', jobId);
    console.log(`job ${jobId}: ${snapshot.status}, subscribed over SignalR (WebSockets) through ${base}`);
    if (snapshot.epochs.length !== 0) fail(`subscribed too late: ${snapshot.epochs.length} epochs already done`);
    const end = await Promise.race([done, sleep(Number(limit) * 1000).then(() => fail(`no JobFinished within ${limit}s (epochs received: ${epochs.join(',')})`))]);
    await connection.stop();
    const wanted = snapshot.request.epochs;
    console.log(`[${seconds(Date.now() - t0)}s] JobFinished: ${end.status}, model ${end.modelName} v${end.modelVersion}`);
    if (end.status !== 'Succeeded') fail(`job ended ${end.status}: ${end.error ?? ''}`);
    const expected = Array.from({ length: wanted }, (_, i) => i + 1).join(',');
    if (epochs.join(',') !== expected) fail(`EpochCompleted events for epochs ${epochs.join(',')}, expected each of ${expected} once, in order`);
    console.log(`JOB ${jobId}`);
    console.log(`MODEL ${end.modelName} ${end.modelVersion}`);
}

const conditions = {
    running: (j) => j.status === 'Running' && j.progress.batch >= 1,
    resumed: (j) => j.resumedAfterEpoch != null,
};

async function wait(jobId, condition, limit = '300') {
    let test = conditions[condition];
    if (condition.startsWith('epoch:')) {
        const k = Number(condition.slice(6));
        test = (j) => {
            if (j.epochs.length > k) fail(`job ${jobId} finished epoch ${j.epochs.length} before epoch ${k + 1} was seen under way (make its epochs longer)`);
            return j.status === 'Running' && j.epochs.length === k && j.progress.epoch === k + 1 && j.progress.batch >= 1;
        };
    } else if (condition.startsWith('status:')) {
        test = (j) => j.status === condition.slice(7);
    }
    if (!test) fail(`unknown condition ${condition}`);
    const t0 = Date.now();
    let job;
    while (Date.now() - t0 < Number(limit) * 1000) {
        job = await getJob(jobId);
        if (test(job)) {
            console.error(`wait ${condition}: after ${seconds(Date.now() - t0)}s (status ${job.status}, epoch ${job.progress.epoch} batch ${job.progress.batch}/${job.progress.batches})`);
            console.log(JSON.stringify(job));
            return;
        }
        if (['Succeeded', 'Failed', 'Cancelled'].includes(job.status) && !condition.startsWith('status:')) break;
        await sleep(200);
    }
    fail(`job ${jobId} not ${condition} within ${limit}s: ${JSON.stringify(job)}`);
}

async function cancel(jobId) {
    const r = await fetch(`${base}/train/${jobId}`, { method: 'DELETE', headers });
    const body = await r.json().catch(() => ({}));
    if (r.status !== 202 && r.status !== 200) fail(`DELETE /train/${jobId} answered ${r.status}: ${JSON.stringify(body)}`);
    console.log(`cancel: ${r.status}, status ${body.status}`);
}

async function activate(name, version, datasetDir, limit, ...replicas) {
    const pngs = testPngs(datasetDir, 4);
    const r = await fetch(`${base}/models/${name}/versions/${version}/activate?force=true`, { method: 'POST', headers });
    const t0 = Date.now();
    const body = await r.json().catch(() => ({}));
    if (r.status !== 200) fail(`activate ${name} v${version} answered ${r.status}: ${JSON.stringify(body)}`);
    console.log(`activated ${name} v${version} through ${base}`);
    await Promise.all(replicas.map((url) => serves(url, pngs, name, version, t0, limit)));
}

// ---------------------------------------------------------------- test images (png.mjs)

function testPngs(datasetDir, n) {
    const file = ['t10k-images-idx3-ubyte', 't10k-images-idx3-ubyte.gz'].map((f) => path.join(datasetDir, f))
        .find((f) => { try { readFileSync(f, { flag: 'r' }); return true; } catch { return false; } }) ?? fail(`no t10k-images in ${datasetDir}`);
    const images = readIdx(file);
    const [, h, w] = images.shape;
    return Array.from({ length: n }, (_, i) => greyPng(w, h, images.data.subarray(i * w * h, (i + 1) * w * h)));
}

async function serves(url, pngs, name, version, t0, limit) {
    let last = 'no answer';
    while (Date.now() - t0 < Number(limit) * 1000) {
        const form = new FormData();
        pngs.forEach((png, i) => form.append('images', new Blob([png], { type: 'image/png' }), `t${i}.png`));
        try {
            const r = await fetch(`${url}/predict`, { method: 'POST', body: form, headers, signal: AbortSignal.timeout(30_000) });
            const body = await r.json().catch(() => ({}));
            last = `${r.status} ${JSON.stringify(body.model ?? body)}`;
            if (r.status === 200 && body.model?.name === name && body.model?.version === Number(version)) {
                console.log(`serves: ${url} answers /predict with ${name} v${version} ${seconds(Date.now() - t0)}s after the activation (${body.predictions.length} predictions, engine ${body.engine}, first ${body.predictions[0].label})`);
                return;
            }
        } catch (e) {
            last = String(e.cause?.code ?? e.message);
        }
        await sleep(250);
    }
    fail(`${url} did not serve ${name} v${version} within ${limit}s of the activation (last: ${last})`);
}

async function resumed(jobId, savedFile) {
    const saved = JSON.parse(readFileSync(savedFile, 'utf8'));
    const k = saved.epochs.length;
    const job = await getJob(jobId);
    const n = job.request.epochs;
    if (job.status !== 'Succeeded') fail(`job ${jobId} ended ${job.status}: ${job.error ?? ''}`);
    if (job.resumedAfterEpoch !== k) fail(`resumedAfterEpoch ${job.resumedAfterEpoch}, expected ${k} (epochs done when the worker was killed)`);
    const numbers = job.epochs.map((e) => e.epoch).join(',');
    if (numbers !== Array.from({ length: n }, (_, i) => i + 1).join(',')) fail(`epochs ${numbers}, expected 1..${n} once each`);
    for (let i = 0; i < k; i++) {
        if (JSON.stringify(job.epochs[i]) !== JSON.stringify(saved.epochs[i])) {
            fail(`epoch ${i + 1} changed after the resume (rerun?): before ${JSON.stringify(saved.epochs[i])}, after ${JSON.stringify(job.epochs[i])}`);
        }
    }
    console.log(`resumed: job ${jobId} Succeeded, resumedAfterEpoch ${k}; epochs 1..${k} kept as they were (same figures and seconds), ${k + 1}..${n} run by the new worker; model ${job.modelName} v${job.modelVersion}`);
}

async function route(routePath, expected) {
    const r = await fetch(`${base}${routePath}`, { headers, signal: AbortSignal.timeout(10_000) });
    if (String(r.status) !== expected) fail(`GET ${routePath} answered ${r.status}, expected ${expected}`);
    console.log(`route: ${base}${routePath} ${r.status}`);
}

async function kserve(name, datasetDir) {
    const t0 = Date.now();
    let ready;
    while (Date.now() - t0 < 120_000) {
        ready = await fetch(`${base}/v2/health/ready`, { signal: AbortSignal.timeout(5000) }).then((r) => r.status).catch(() => 'no answer');
        if (ready === 200) break;
        await sleep(500);
    }
    if (ready !== 200) fail(`/v2/health/ready: ${ready} after 120 s`);
    const meta = await fetch(`${base}/v2/models/${name}`, { headers }).then((r) => r.json());
    if (meta.name !== name) fail(`/v2/models/${name}: ${JSON.stringify(meta)}`);
    const pngs = testPngs(datasetDir, 4);
    const request = { inputs: [{ name: 'images', datatype: 'BYTES', shape: [4], data: pngs.map((p) => p.toString('base64')) }] };
    const r = await fetch(`${base}/v2/models/${name}/infer`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(request) });
    const body = await r.json().catch(() => ({}));
    if (r.status !== 200) fail(`infer answered ${r.status}: ${JSON.stringify(body)}`);
    const out = Object.fromEntries(body.outputs.map((o) => [o.name, o]));
    if (out.label?.data?.length !== 4 || JSON.stringify(out.probabilities?.shape) !== '[4,10]') fail(`infer outputs: ${JSON.stringify(body.outputs.map((o) => [o.name, o.shape]))}`);
    console.log(`kserve: ready after ${seconds(Date.now() - t0)}s; ${name} v${body.model_version ?? meta.versions.join(',')} (${meta.platform}, input ${JSON.stringify(meta.inputs[0].shape)}): labels ${out.label.data.join(', ')}`);
}

async function modelsRequests(url) {
    const text = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text());
    let n = 0;
    for (const line of text.split('\n')) {
        if (line.startsWith('http_server_request_duration_seconds_count{') && line.includes('http_route="/models') && line.includes('http_request_method="GET"')) {
            n += Number(line.slice(line.lastIndexOf(' ') + 1));
        }
    }
    return n;
}

async function spread(n, ...replicas) {
    const before = await Promise.all(replicas.map(modelsRequests));
    for (let i = 0; i < Number(n); i++) {
        const r = await fetch(`${base}/models`, { headers });
        if (r.status !== 200) fail(`GET /models through ${base} answered ${r.status}`);
        await r.arrayBuffer();
    }
    await sleep(500);
    const after = await Promise.all(replicas.map(modelsRequests));
    const shares = replicas.map((url, i) => `${url} ${after[i] - before[i]}`);
    console.log(`spread: ${n} GET /models through ${base}: ${shares.join(', ')}`);
    if (after.some((a, i) => a - before[i] === 0)) fail('a replica got none of them (REST is not round-robin)');
}

switch (step) {
    case 'start': console.log(`JOB ${await start(...args)}`); break;
    case 'watch': await watch(...args); break;
    case 'wait': await wait(...args); break;
    case 'cancel': await cancel(...args); break;
    case 'activate': await activate(...args); break;
    case 'resumed': await resumed(...args); break;
    case 'route': await route(...args); break;
    case 'kserve': await kserve(...args); break;
    case 'spread': await spread(...args); break;
    default: fail(`unknown step ${step}`);
}
process.exit(0);
