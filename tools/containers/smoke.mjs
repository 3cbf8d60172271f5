// Talks to a running Nin from outside, as a user would: plain HTTP and the JavaScript SignalR client
// (@microsoft/signalr from the dashboard's own npm project). Used by tools/containers/test.sh.
//
//   node smoke.mjs BASE_URL API_KEY STEP [ARGS...]
//
// Steps (each exits non-zero with a reason when its check fails):
//   ready [200|503] [SECONDS]  wait until GET /health/ready answers that status (503: prints the failing checks)
//   predict DATASET_DIR         /predict on the first 20 Fashion-MNIST test images (PNG made here): >= 15 right
//   train                       queue a tiny job on the built-in fashion-mnist, follow it over SignalR through
//                               the published port to the end; prints the job id
//   kept JOB_ID MODEL_NAME      the job is still Succeeded with its epochs, and its model is listed
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
    console.error('usage: node smoke.mjs BASE_URL API_KEY STEP [ARGS...]');
    process.exit(2);
}
const headers = key ? { 'X-Api-Key': key } : {};
// fetch's sockets do not keep Node's event loop alive: while a published port accepts connections that the
// container does not answer yet, Node would otherwise end with "unsettled top-level await" (exit 13).
setInterval(() => {}, 1000);
const fail = (why) => { console.error(`smoke ${step}: FAILED: ${why}`); process.exit(1); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function ready(expected = '200', seconds = '180') {
    const until = Date.now() + Number(seconds) * 1000;
    let last = 'no answer';
    while (Date.now() < until) {
        try {
            const r = await fetch(`${base}/health/ready`, { headers, signal: AbortSignal.timeout(10_000) });
            const body = await r.text();
            last = `${r.status} ${body}`;
            if (String(r.status) === expected) {
                console.log(`ready: ${r.status} ${body}`);
                return body;
            }
        } catch (e) {
            last = String(e.cause?.code ?? e.message);
        }
        await sleep(1000);
    }
    fail(`GET /health/ready did not answer ${expected} within ${seconds}s (last: ${last})`);
}

// ---------------------------------------------------------------- PNG from IDX

async function predict(datasetDir) {
    const find = (stem) => [`${stem}`, `${stem}.gz`].map((f) => path.join(datasetDir, f)).find((f) => { try { readFileSync(f, { flag: 'r' }); return true; } catch { return false; } });
    const images = readIdx(find('t10k-images-idx3-ubyte') ?? fail(`no t10k-images in ${datasetDir}`));
    const labels = readIdx(find('t10k-labels-idx1-ubyte') ?? fail(`no t10k-labels in ${datasetDir}`));
    const [, h, w] = images.shape;
    const form = new FormData();
    const n = 20;
    for (let i = 0; i < n; i++) {
        const png = greyPng(w, h, images.data.subarray(i * w * h, (i + 1) * w * h));
        form.append('images', new Blob([png], { type: 'image/png' }), `test-${i}.png`);
    }
    const r = await fetch(`${base}/predict`, { method: 'POST', body: form, headers });
    const body = await r.json().catch(() => ({}));
    if (r.status !== 200) fail(`POST /predict answered ${r.status}: ${JSON.stringify(body)}`);
    let right = 0;
    body.predictions.forEach((p, i) => { if (p.index === labels.data[i]) right++; });
    console.log(`predict: model ${JSON.stringify(body.model)}, device ${body.device}, ${right}/${n} right, first: ${body.predictions[0].label} (${body.predictions[0].probability.toFixed(3)})`);
    if (right < 15) fail(`only ${right}/${n} of the first test images classified right by the shipped model`);
}

async function train() {
    const request = { dataset: 'fashion-mnist', epochs: 2, batchSize: 32, imageSize: 67, maxTrainImages: 256, maxTestImages: 64, modelName: 'container-smoke', seed: 3 };
    const connection = new signalR.HubConnectionBuilder()
        .withUrl(`${base}/hubs/training`, { accessTokenFactory: () => key, transport: signalR.HttpTransportType.WebSockets, skipNegotiation: true })
        .configureLogging(signalR.LogLevel.Warning)
        .build();
    const epochs = [];
    let finished;
    const done = new Promise((resolve) => { finished = resolve; });
    let jobId;
    connection.on('EpochCompleted', (e) => { if (e.jobId === jobId) { epochs.push(e); console.log(`epoch ${e.epoch}/${e.epochs}: loss ${e.trainLoss.toFixed(4)}, test accuracy ${e.testAccuracy.toFixed(3)}`); } });
    connection.on('JobFinished', (e) => { if (e.jobId === jobId) finished(e); });
    connection.on('JobUpdated', (s) => { if (s.jobId === jobId && ['Succeeded', 'Failed', 'Cancelled'].includes(s.status)) finished({ status: s.status, error: s.error }); });
    connection.on('BatchProgress', () => {});
    await connection.start();
    const r = await fetch(`${base}/train`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(request) });
    const accepted = await r.json().catch(() => ({}));
    if (r.status !== 202) fail(`POST /train answered ${r.status}: ${JSON.stringify(accepted)}`);
    jobId = accepted.jobId;
    const snapshot = await connection.invoke('Subscribe', jobId);
    console.log(`job ${jobId}: ${snapshot.status}, subscribed over ${connection.connection.transport?.constructor?.name ?? 'SignalR'}`);
    const end = await Promise.race([done, sleep(600_000).then(() => fail('the job did not finish within 10 minutes'))]);
    await connection.stop();
    if (end.status !== 'Succeeded') fail(`job ended ${end.status}: ${end.error ?? ''}`);
    if (epochs.length !== request.epochs) fail(`received ${epochs.length} EpochCompleted events over SignalR, expected ${request.epochs}`);
    process.stdout.write(`JOB ${jobId}\n`);
}

async function kept(jobId, modelName) {
    const job = await (await fetch(`${base}/train/${jobId}`, { headers })).json();
    if (job.status !== 'Succeeded' || job.epochs?.length !== 2) fail(`job ${jobId} after the restart: ${JSON.stringify(job)}`);
    const models = await (await fetch(`${base}/models`, { headers })).json();
    const text = JSON.stringify(models);
    if (!text.includes(`"${modelName}"`)) fail(`model ${modelName} not listed after the restart: ${text}`);
    console.log(`kept: job ${jobId} ${job.status} with ${job.epochs.length} epochs; model ${modelName} listed`);
}

switch (step) {
    case 'ready': await ready(...args); break;
    case 'predict': await predict(...args); break;
    case 'train': await train(); break;
    case 'kept': await kept(...args); break;
    default: fail(`unknown step ${step}`);
}
process.exit(0);
