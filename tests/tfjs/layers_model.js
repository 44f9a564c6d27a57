#!/usr/bin/env node
// TensorFlow.js side of edgelearn's layers-model interoperability tests.
//
// Usage: node tests/tfjs/layers_model.js (predict | build) JOB.json OUT.json
//
//   predict: job {"cases": [{"model_dir", "inputs": [array, ...], "weights"?: bool}]}; each
//     result is {"outputs": [array, ...]} plus, when "weights" is true, {"weights": [{"name",
//     "value": array}, ...]}: the values TF.js decoded from the shards, for bit-exactness checks,
//     under their manifest names and in TF.js's order (trainable weights first).
//   build: job {"cases": [{"kind": "mlp" | "cnn" | "functional", "model_dir", "seed", "x":
//     [array, ...], "y": [array, ...], "epochs", "predict_inputs": [array, ...], "merge":
//     ["Add", "Concatenate", ...]?, "quantized"?: {"dtype": "uint8" | "uint16", "model_dir"}}]};
//     each case builds and trains a model, saves it into model_dir through TF.js's own save path
//     and reloads it from there, and returns {"outputs", "weights"} of the reloaded model (plus
//     "quantized": {"outputs", "weights", "entries"} for the quantized copy).
//
// As in every script here (common.js), one process runs a whole batch, a failing case yields
// {"error": "..."} while the batch goes on, and arrays travel as little-endian float32 bytes.
'use strict';

const fs = require('fs');
const path = require('path');
const {tf, decode, encode, runJob, runMain} = require('./common');

const MODEL_FILE = 'model.json';
const SHARD_FILE = 'group1-shard1of1.bin';

function toArrayBuffer(buffer) {
    return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
}

// An IOHandler for a model folder on disk. tfjs (without tfjs-node) registers no file://
// handler; this one does what its http handler does for a URL: parse model.json, then let
// tf.io.getModelArtifactsForJSON gather the manifest's weightSpecs and fetch the shards, which
// are the group's paths resolved against the folder, concatenated in manifest order.
function folderHandler(modelDir) {
    return {
        load: async () => {
            const modelJSON = JSON.parse(fs.readFileSync(path.join(modelDir, MODEL_FILE), 'utf8'));
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
                return [specs, toArrayBuffer(Buffer.concat(shards))];
            });
        },
    };
}

// The artifacts TF.js hands a save handler, written the way its own handlers write them
// (tf.io.browserFiles, tf.io.http): model.json with one weight group, and a single shard.
function writeFolder(modelDir, artifacts, weightSpecs, weightData) {
    fs.mkdirSync(modelDir, {recursive: true});
    const modelJSON = {
        format: 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{paths: [SHARD_FILE], weights: weightSpecs}],
    };
    fs.writeFileSync(path.join(modelDir, MODEL_FILE), JSON.stringify(modelJSON));
    fs.writeFileSync(path.join(modelDir, SHARD_FILE), Buffer.from(weightData));
}

async function saveToFolder(model, modelDir) {
    let saved = null;
    await model.save(tf.io.withSaveHandler(async (artifacts) => {
        const data = tf.io.CompositeArrayBuffer.join(artifacts.weightData);
        writeFolder(modelDir, artifacts, artifacts.weightSpecs, data);
        saved = {artifacts, data};
        return {modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts)};
    }));
    return saved;
}

// numpy.round: halves go to the even neighbour (Math.round sends them up).
function roundHalfEven(v) {
    const r = Math.round(v);
    return (r - v === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

// Affine quantization as the tensorflowjs converter does it (tensorflowjs/quantization.py,
// quantize_weights and _get_affine_quantization_range): min and max of the tensor in float64,
// scale = (max - min) / qmax; when 0 lies in [min, max] min is nudged so that 0 is a code;
// a constant tensor becomes all-zero codes with scale 1 and min = the constant. TF.js's save
// path has no quantization option (only the converter quantizes), hence this re-implementation.
function quantizeAffine(values, dtype) {
    const qmax = dtype === 'uint8' ? 255 : 65535;
    const codes = new (dtype === 'uint8' ? Uint8Array : Uint16Array)(values.length);
    let low = Infinity;
    let high = -Infinity;
    for (const v of values) {
        low = Math.min(low, v);
        high = Math.max(high, v);
    }
    if (low === high) {
        return {codes, min: low, scale: 1.0};
    }
    const scale = (high - low) / qmax;
    let min = low;
    let max = high;
    if (low <= 0 && high >= 0) {
        min = -roundHalfEven(-low / scale) * scale;
        max = qmax * scale + min;
    }
    values.forEach((v, i) => {
        codes[i] = roundHalfEven((Math.min(Math.max(v, min), max) - min) / scale);
    });
    return {codes, min, scale};
}

function writeQuantized(modelDir, saved, dtype) {
    const {artifacts, data} = saved;
    const specs = [];
    const chunks = [];
    let offset = 0;
    for (const spec of artifacts.weightSpecs) {
        const size = spec.shape.reduce((a, b) => a * b, 1);
        if (spec.dtype !== 'float32') {
            throw new Error(`cannot quantize ${spec.name} of dtype ${spec.dtype}`);
        }
        const values = new Float32Array(data.slice(offset, offset + 4 * size));
        offset += 4 * size;
        const {codes, min, scale} = quantizeAffine(values, dtype);
        specs.push({...spec, quantization: {dtype, min, scale}});
        chunks.push(Buffer.from(codes.buffer));
    }
    writeFolder(modelDir, artifacts, specs, Buffer.concat(chunks));
    return specs;
}

function seeded(seed) {
    return {kernelInitializer: tf.initializers.glorotUniform({seed})};
}

// Dense relu + Dropout + Dense softmax, compiled with adam.
function buildMlp(c) {
    const model = tf.sequential({name: 'tfjs_mlp'});
    model.add(tf.layers.dense({inputShape: c.x[0].shape.slice(1), units: 16,
        activation: 'relu', ...seeded(c.seed)}));
    model.add(tf.layers.dropout({rate: 0.25, seed: c.seed}));
    model.add(tf.layers.dense({units: c.y[0].shape[1], activation: 'softmax',
        ...seeded(c.seed + 1)}));
    model.compile({optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy'});
    return model;
}

// Conv2D + MaxPooling2D + BatchNormalization + Flatten + Dense: fit moves BatchNormalization's
// moving statistics away from 0 and 1, which the reloaded model must carry.
function buildCnn(c) {
    const model = tf.sequential({name: 'tfjs_cnn'});
    model.add(tf.layers.conv2d({inputShape: c.x[0].shape.slice(1), filters: 4, kernelSize: 3,
        padding: 'same', activation: 'relu', ...seeded(c.seed)}));
    model.add(tf.layers.maxPooling2d({poolSize: 2}));
    model.add(tf.layers.batchNormalization({momentum: 0.5}));
    model.add(tf.layers.flatten());
    model.add(tf.layers.dense({units: c.y[0].shape[1], activation: 'softmax',
        ...seeded(c.seed + 1)}));
    model.compile({optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy'});
    return model;
}

// Two inputs, two outputs, a Dense layer shared by both branches, and the merge layers the job
// names (those edgelearn has).
function buildFunctional(c) {
    const merge = new Set(c.merge || []);
    const inputA = tf.input({shape: c.x[0].shape.slice(1), name: 'input_a'});
    const inputB = tf.input({shape: c.x[1].shape.slice(1), name: 'input_b'});
    const a = tf.layers.dense({units: 6, activation: 'relu', name: 'branch_a',
        ...seeded(c.seed)}).apply(inputA);
    const b = tf.layers.dense({units: 6, activation: 'relu', name: 'branch_b',
        ...seeded(c.seed + 1)}).apply(inputB);
    const shared = tf.layers.dense({units: 6, activation: 'tanh', name: 'shared',
        ...seeded(c.seed + 2)});
    const sharedA = shared.apply(a);
    const sharedB = shared.apply(b);
    const joined = merge.has('Add') ? tf.layers.add({name: 'add'}).apply([sharedA, sharedB])
        : sharedA;
    const wide = merge.has('Concatenate')
        ? tf.layers.concatenate({name: 'concat'}).apply([joined, sharedB]) : joined;
    const classes = tf.layers.dense({units: c.y[0].shape[1], activation: 'softmax',
        name: 'classes', ...seeded(c.seed + 3)}).apply(wide);
    // Fed from the second branch, so that both inputs count even without merge layers.
    const value = tf.layers.dense({units: c.y[1].shape[1], name: 'value',
        ...seeded(c.seed + 4)}).apply(sharedB);
    const model = tf.model({inputs: [inputA, inputB], outputs: [classes, value],
        name: 'tfjs_functional'});
    model.compile({optimizer: tf.train.adam(0.01),
        loss: ['categoricalCrossentropy', 'meanSquaredError']});
    return model;
}

const BUILDERS = {mlp: buildMlp, cnn: buildCnn, functional: buildFunctional};

function asList(output) {
    return Array.isArray(output) ? output : [output];
}

function predictions(model, inputs) {
    const xs = inputs.map(decode);
    return asList(model.predict(xs.length === 1 ? xs[0] : xs)).map(encode);
}

function namedWeights(model) {
    // originalName is the manifest's name; `name` may carry a suffix TF.js adds for uniqueness.
    return model.weights.map((w) => ({name: w.originalName, value: encode(w.read())}));
}

async function runPredict(c) {
    const model = await tf.loadLayersModel(folderHandler(c.model_dir));
    const result = {outputs: predictions(model, c.inputs)};
    if (c.weights) {
        result.weights = namedWeights(model);
    }
    return result;
}

async function runBuild(c) {
    const builder = BUILDERS[c.kind];
    if (!builder) {
        throw new Error(`unknown model kind ${JSON.stringify(c.kind)}`);
    }
    const model = builder(c);
    const xs = c.x.map(decode);
    const ys = c.y.map(decode);
    // shuffle: false, with the seeded initializers and dropout, keeps the run repeatable.
    await model.fit(xs.length === 1 ? xs[0] : xs, ys.length === 1 ? ys[0] : ys,
        {epochs: c.epochs, batchSize: 8, shuffle: false, verbose: 0});
    const saved = await saveToFolder(model, c.model_dir);
    // The results come from the saved folder as TF.js reads it back: what a user of the file gets.
    const reloaded = await tf.loadLayersModel(folderHandler(c.model_dir));
    const result = {
        outputs: predictions(reloaded, c.predict_inputs),
        weights: namedWeights(reloaded),
    };
    if (c.quantized) {
        const entries = writeQuantized(c.quantized.model_dir, saved, c.quantized.dtype);
        const quantized = await tf.loadLayersModel(folderHandler(c.quantized.model_dir));
        result.quantized = {
            outputs: predictions(quantized, c.predict_inputs),
            weights: namedWeights(quantized),
            entries,
        };
    }
    return result;
}

const COMMANDS = {predict: runPredict, build: runBuild};

runMain(async () => {
    const [command, jobPath, resultPath] = process.argv.slice(2);
    const run = COMMANDS[command];
    if (!run || !jobPath || !resultPath) {
        throw new Error('usage: layers_model.js (predict | build) JOB.json OUT.json');
    }
    await runJob(jobPath, resultPath, run);
});
