// A client of Nin's Open Inference Protocol over gRPC that is not .NET: Node's @grpc/grpc-js loading the very
// .proto file the service is built from (Nin.Api/Serving/Grpc/grpc_predict_v2.proto). Run by the test suite
// (GrpcNodeClientTests) against a live service; usable by hand:
//
//   node tools/grpc-client/oip.mjs HOST:PORT MODEL IMAGE.png [API_KEY]
//
// Each check prints one JSON line; the first that fails prints why and exits 1. With API_KEY, every call sends it as
// x-api-key metadata, and a wrong key must be refused with PERMISSION_DENIED.
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const protoPath = path.join(here, '../../Nin.Api/Serving/Grpc/grpc_predict_v2.proto');
const [address, model, imagePath, key] = process.argv.slice(2);
if (!address || !model || !imagePath) {
    console.error('usage: node oip.mjs HOST:PORT MODEL IMAGE.png [API_KEY]');
    process.exit(2);
}

const definition = protoLoader.loadSync(protoPath, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const inference = grpc.loadPackageDefinition(definition).inference;
const client = new inference.GRPCInferenceService(address, grpc.credentials.createInsecure());
const image = readFileSync(imagePath);

const metadataWith = (k) => {
    const m = new grpc.Metadata();
    if (k) m.set('x-api-key', k);
    return m;
};

function call(method, request, { apiKey = key, seconds = 30 } = {}) {
    return new Promise((resolve, reject) => {
        client[method](request, metadataWith(apiKey), { deadline: Date.now() + seconds * 1000 }, (error, response) =>
            error ? reject(error) : resolve(response));
    });
}

async function refused(method, request, code, options) {
    try {
        await call(method, request, options);
    } catch (error) {
        if (error.code === code) return error.details;
        throw new Error(`${method}: expected status ${code}, got ${error.code} (${error.details})`);
    }
    throw new Error(`${method}: expected status ${code}, got OK`);
}

const checks = [];
function check(name, ok, detail) {
    const line = { check: name, ok: Boolean(ok), ...detail };
    console.log(JSON.stringify(line));
    if (!ok) {
        console.error(`oip: check '${name}' FAILED: ${JSON.stringify(detail)}`);
        process.exit(1);
    }
    checks.push(name);
}

const near = (a, b, eps = 1e-4) => Math.abs(a - b) <= eps;
const sum = (values) => values.reduce((a, b) => a + b, 0);
// A BYTES tensor's raw contents: each element as a 4-byte little-endian length and its bytes.
function rawBytes(elements) {
    return Buffer.concat(elements.flatMap((e) => {
        const length = Buffer.alloc(4);
        length.writeUInt32LE(e.length);
        return [length, e];
    }));
}

try {
    const live = await call('ServerLive', {});
    check('server live', live.live === true, { live: live.live });

    const ready = await call('ServerReady', {});
    check('server ready', ready.ready === true, { ready: ready.ready });

    const server = await call('ServerMetadata', {});
    check('server metadata', server.name === 'nin' && server.extensions.includes('classification'), { name: server.name, extensions: server.extensions });

    const meta = await call('ModelMetadata', { name: model, version: '' });
    const input = meta.inputs.find((t) => t.name === 'input');
    const images = meta.inputs.find((t) => t.name === 'images');
    check('model metadata', input?.datatype === 'FP32' && images?.datatype === 'BYTES' && meta.outputs.some((o) => o.name === 'probabilities'),
        { inputs: meta.inputs.map((t) => `${t.name}:${t.datatype}[${t.shape.join(',')}]`), versions: meta.versions });
    const [, channels, side] = input.shape.map(Number);

    const modelReady = await call('ModelReady', { name: model, version: '' });
    check('model ready', modelReady.ready === true, {});

    // FP32 as typed contents.
    const zeros = new Array(channels * side * side).fill(0);
    const fp32 = await call('ModelInfer', {
        model_name: model,
        id: 'fp32-typed',
        inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', String(channels), String(side), String(side)], contents: { fp32_contents: zeros } }],
    });
    const probabilities = fp32.outputs.find((o) => o.name === 'probabilities');
    check('FP32 typed inference', fp32.id === 'fp32-typed' && near(sum(probabilities.contents.fp32_contents), 1, 1e-3),
        { shape: probabilities.shape, sum: sum(probabilities.contents.fp32_contents), version: fp32.model_version });

    // BYTES (an encoded image) as raw contents: outputs come back raw too.
    const raw = await call('ModelInfer', {
        model_name: model,
        inputs: [{ name: 'images', datatype: 'BYTES', shape: ['2'] }],
        raw_input_contents: [rawBytes([image, image])],
    });
    const rawIndex = raw.outputs.findIndex((o) => o.name === 'probabilities');
    const rawFloats = raw.raw_output_contents[rawIndex];
    const values = Array.from({ length: rawFloats.length / 4 }, (_, i) => rawFloats.readFloatLE(i * 4));
    const classes = values.length / 2;
    check('BYTES raw inference', raw.outputs[rawIndex].shape.join(',') === `2,${classes}` && near(sum(values.slice(0, classes)), 1, 1e-3)
        && values.slice(0, classes).every((v, i) => near(v, values[classes + i], 1e-6)),
        { shape: raw.outputs[rawIndex].shape, outputs: raw.outputs.map((o) => `${o.name}:${o.datatype}`) });

    // The classification extension: the top 3 as "probability:index:label".
    const top = await call('ModelInfer', {
        model_name: model,
        inputs: [{ name: 'images', datatype: 'BYTES', shape: ['1'], contents: { bytes_contents: [image] } }],
        outputs: [{ name: 'probabilities', parameters: { classification: { int64_param: '3' } } }],
    });
    const strings = top.outputs[0].contents.bytes_contents.map((b) => b.toString('utf8'));
    const parsed = strings.map((s) => s.split(':'));
    check('classification extension', top.outputs[0].datatype === 'BYTES' && strings.length === 3
        && parsed.every((p) => p.length >= 3 && !Number.isNaN(Number(p[0])))
        && Number(parsed[0][0]) >= Number(parsed[1][0]) && Number(parsed[1][0]) >= Number(parsed[2][0]),
        { top: strings });

    // Errors are gRPC status codes from the same error map.
    const badName = await refused('ModelInfer', {
        model_name: model,
        inputs: [{ name: 'nope', datatype: 'FP32', shape: ['1', String(channels), String(side), String(side)], contents: { fp32_contents: zeros } }],
    }, grpc.status.INVALID_ARGUMENT);
    check('unknown input name refused', badName.includes('nope'), { details: badName });

    const unknown = await refused('ModelInfer', { model_name: 'no-such-model', inputs: [] }, grpc.status.NOT_FOUND);
    check('unknown model refused', unknown.includes('no-such-model'), { details: unknown });

    const notImage = await refused('ModelInfer', {
        model_name: model,
        inputs: [{ name: 'images', datatype: 'BYTES', shape: ['1'], contents: { bytes_contents: [Buffer.from('hello')] } }],
    }, grpc.status.INVALID_ARGUMENT);
    check('not an image refused', notImage.length > 0, { details: notImage });

    // A deadline passed in the request's own parameters (microseconds): the work is dropped.
    const late = await refused('ModelInfer', {
        model_name: model,
        parameters: { timeout: { int64_param: '1' } },
        inputs: [{ name: 'images', datatype: 'BYTES', shape: ['1'], contents: { bytes_contents: [image] } }],
    }, grpc.status.DEADLINE_EXCEEDED);
    check('timeout parameter honoured', late.toLowerCase().includes('deadline'), { details: late });

    if (key) {
        const wrong = await refused('ModelInfer', {
            model_name: model,
            inputs: [{ name: 'images', datatype: 'BYTES', shape: ['1'], contents: { bytes_contents: [image] } }],
        }, grpc.status.PERMISSION_DENIED, { apiKey: `${key}-wrong` });
        check('wrong key refused', wrong.length > 0, { details: wrong });
        const missing = await refused('ModelInfer', {
            model_name: model,
            inputs: [{ name: 'images', datatype: 'BYTES', shape: ['1'], contents: { bytes_contents: [image] } }],
        }, grpc.status.UNAUTHENTICATED, { apiKey: '' });
        check('missing key refused', missing.length > 0, { details: missing });
    }

    console.log(JSON.stringify({ done: checks.length }));
    client.close();
} catch (error) {
    console.error(`oip: FAILED: ${error.message ?? error}`);
    process.exit(1);
}
