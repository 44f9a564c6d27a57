#!/usr/bin/env node
// TensorFlow.js side of edgelearn's pre-trained MobileNet tests (tests/applications).
//
// Usage: node tests/tfjs/embeddings.js JOB.json OUT.json
//
// The job is {"cases": [...]}; each case is one of
//   {"kind": "embeddings", "model_dir", "layer", "images": array}: loads the layers model in
//     model_dir with tf.loadLayersModel, cuts it at the output of layer `layer` (a
//     tf.model({inputs: m.inputs, outputs: m.getLayer(layer).output})) and returns
//     {"outputs": array}, that output for `images`;
//   {"kind": "resize", "images": array, "size": [height, width]}: returns {"outputs": array},
//     tf.image.resizeBilinear(images, size, alignCorners=false, halfPixelCenters=true).
// OUT.json is {"backend", "version", "results": [...]}, one result per case in the same order; a
// failing case yields {"error": "..."} and the batch goes on. Arrays travel as {"dtype":
// "float32", "shape", "b64"} (little-endian float32 bytes), as in reference.js, so that no value
// is rounded through decimal text. One process runs a whole batch: starting Node and TF.js costs
// more than a case.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const tf = require('@tensorflow/tfjs');

// The result goes to a file, but TF.js's informational logging must not reach stdout either.
console.log = console.error;
// The cpu backend warns once that tfjs-node would be faster; PROD silences only such notices.
tf.env().set('PROD', true);

if (os.endianness() !== 'LE') {
    throw new Error('the array codec assumes a little-endian host');
}

function decode(a) {
    if (a.dtype !== 'float32') {
        throw new Error(`unsupported dtype ${a.dtype}: the codec carries float32 only`);
    }
    const buf = Buffer.from(a.b64, 'base64');
    // Copy into a fresh, aligned ArrayBuffer: a Buffer may be a view at an odd offset of a pool.
    const values = new Float32Array(buf.byteLength / 4);
    new Uint8Array(values.buffer).set(buf);
    return tf.tensor(values, a.shape, 'float32');
}

function encode(t) {
    const values = t.dataSync();
    if (!(values instanceof Float32Array)) {
        throw new Error(`cannot encode a ${t.dtype} tensor`);
    }
    return {
        dtype: 'float32',
        shape: t.shape,
        b64: Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64'),
    };
}

// An IOHandler for a model folder on disk (tfjs without tfjs-node registers no file:// handler):
// model.json parsed, then the manifest's shards read from the folder in manifest order, as TF.js's
// http handler fetches them for a URL.
function folderHandler(modelDir) {
    return {
        load: async () => {
            const text = fs.readFileSync(path.join(modelDir, 'model.json'), 'utf8');
            const modelJSON = JSON.parse(text);
            return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
                const specs = [];
                const shards = [];
                for (const group of manifest) {
                    specs.push(...group.weights);
                    for (const shard of group.paths) {
                        if (path.isAbsolute(shard) || shard.includes('..') || shard.includes(':')) {
                            throw new Error(`refusing weight path ${shard} outside ${modelDir}`);
                        }
                        shards.push(fs.readFileSync(path.join(modelDir, shard)));
                    }
                }
                const data = Buffer.concat(shards);
                const end = data.byteOffset + data.byteLength;
                return [specs, data.buffer.slice(data.byteOffset, end)];
            });
        },
    };
}

async function runEmbeddings(c) {
    const model = await tf.loadLayersModel(folderHandler(c.model_dir));
    const cut = tf.model({inputs: model.inputs, outputs: model.getLayer(c.layer).output});
    return {outputs: tf.tidy(() => encode(cut.predict(decode(c.images))))};
}

function runResize(c) {
    const images = decode(c.images);
    return {outputs: tf.tidy(() => encode(tf.image.resizeBilinear(images, c.size, false, true)))};
}

const RUNNERS = {embeddings: runEmbeddings, resize: runResize};

async function main() {
    const [jobPath, resultPath] = process.argv.slice(2);
    if (!jobPath || !resultPath) {
        throw new Error('usage: embeddings.js JOB.json OUT.json');
    }
    const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
    await tf.setBackend('cpu');
    const results = [];
    for (const c of job.cases) {
        try {
            const run = RUNNERS[c.kind];
            if (!run) {
                throw new Error(`unknown case kind ${JSON.stringify(c.kind)}`);
            }
            results.push(await run(c));
        } catch (err) {
            results.push({error: `${err.name}: ${err.message}`});
        } finally {
            // Variables outlive tidy scopes; dropping them keeps one case from seeing another's.
            tf.disposeVariables();
        }
    }
    const out = {backend: tf.getBackend(), version: tf.version.tfjs, results};
    fs.writeFileSync(resultPath, JSON.stringify(out));
}

main().catch((err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
});
