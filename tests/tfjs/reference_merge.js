#!/usr/bin/env node
// TensorFlow.js reference computations for layers that take several inputs (the merge layers).
//
// tests/tfjs/reference.js runs one-input layers; this script follows its conventions exactly:
// usage `node tests/tfjs/reference_merge.js [JOB.json | -] [RESULT.json]`, a job
// {"cases": [...]} on stdin or in a file, {"backend", "version", "results": [...]} out, one
// result per case in order, {"error": "..."} for a case that fails, and arrays as
// {"dtype": "float32", "shape": [...], "b64": "..."} (little-endian float32 bytes); common.js
// implements them for both.
//
// A "merge" case is
//   {"kind": "merge", "class_name": "Add", "config": {...Keras config...},
//    "input_shapes": [[null, 3], [null, 1]], "xs": [array, ...], "dy": array}
// and its result {"y": array, "dxs": [array, ...]}: the output of the layer applied to xs in a
// functional TF.js model read from Keras JSON, and the gradients of sum(y * dy) w.r.t. each
// input.
//
// Where TF.js departs from Keras 3 or cannot differentiate a case, the script computes the
// Keras 3 definition with other TF.js ops, as reference.js does, and names the substitution in
// the result's "emulated" field:
// - Subtract is missing from TF.js: tf.sub of the rank-aligned inputs;
// - Concatenate: tfjs-layers' backend concatenate (src/backend/tfjs_backend.ts) turns every
//   negative axis into the last axis, so an axis below -1 is sent as the positive one it means;
// - Maximum and Minimum of inputs of different shapes: tfjs-core's Maximum and Minimum
//   gradients (src/gradients/Maximum_grad.ts, Minimum_grad.ts) do not sum over broadcast axes
//   and fail, so the inputs are broadcast to the output shape with tf.broadcastTo (whose
//   gradient does sum) before the TF.js layer takes their maximum.
'use strict';

const {tf, decode, encode, uniqueName, runReference} = require('./common');

// TF.js's Merge.call (tfjs-layers/src/layers/merge.ts) gives lower-rank inputs axes of size 1
// right after the batch axis before it merges them, as Keras does.
function alignRanks(xs) {
    const rank = Math.max(...xs.map((x) => x.rank));
    return xs.map((x) => {
        let aligned = x;
        while (aligned.rank < rank) {
            aligned = tf.expandDims(aligned, 1);
        }
        return aligned;
    });
}

// A functional model: one InputLayer per input, all feeding the merge layer, in Keras JSON.
async function buildMergeModel(className, config, inputShapes) {
    const inputs = inputShapes.map((shape, i) => {
        const name = uniqueName(`input${i}`);
        return {
            class_name: 'InputLayer',
            name,
            config: {batch_input_shape: shape, dtype: 'float32', sparse: false, name},
            inbound_nodes: [],
        };
    });
    const mergeName = config.name || uniqueName('merge');
    const model = await tf.models.modelFromJSON({
        class_name: 'Functional',
        config: {
            name: uniqueName('reference'),
            layers: [
                ...inputs,
                {
                    class_name: className,
                    name: mergeName,
                    config: {...config, name: mergeName},
                    inbound_nodes: [inputs.map((layer) => [layer.name, 0, 0, {}])],
                },
            ],
            input_layers: inputs.map((layer) => [layer.name, 0, 0]),
            output_layers: [[mergeName, 0, 0]],
        },
    });
    return (xs) => model.apply(xs, {training: false});
}

// The broadcast shape of the inputs (batch axis included), after rank alignment.
function broadcastShape(shapes) {
    const rank = Math.max(...shapes.map((shape) => shape.length));
    const aligned = shapes.map((shape) => [shape[0],
        ...Array(rank - shape.length).fill(1), ...shape.slice(1)]);
    return aligned[0].map((_, axis) => Math.max(...aligned.map((shape) => shape[axis])));
}

async function runMerge(c) {
    let forward;
    let note;
    const xs = c.xs.map(decode);
    const shapes = xs.map((x) => x.shape);
    const sameShapes = shapes.every((shape) => shape.join() === shapes[0].join());
    if (c.class_name === 'Subtract') {
        if (c.input_shapes.length !== 2) {
            throw new Error('Subtract takes exactly 2 inputs');
        }
        forward = (inputs) => {
            const [a, b] = alignRanks(inputs);
            return tf.sub(a, b);
        };
        note = 'Subtract (absent from TF.js) as tf.sub of the rank-aligned inputs';
    } else if (c.class_name === 'Concatenate' && c.config.axis < -1) {
        const rank = c.input_shapes[0].length;
        const config = {...c.config, axis: c.config.axis + rank};
        forward = await buildMergeModel(c.class_name, config, c.input_shapes);
        note = `Concatenate axis ${c.config.axis} sent as ${config.axis}`;
    } else if ((c.class_name === 'Maximum' || c.class_name === 'Minimum') && !sameShapes) {
        const outShape = broadcastShape(shapes);
        const model = await buildMergeModel(c.class_name, c.config,
            c.input_shapes.map(() => [null, ...outShape.slice(1)]));
        forward = (inputs) => model(alignRanks(inputs).map((x) => tf.broadcastTo(x, outShape)));
        note = `${c.class_name} of inputs broadcast with tf.broadcastTo first`;
    } else {
        forward = await buildMergeModel(c.class_name, c.config, c.input_shapes);
    }
    const dy = decode(c.dy);
    const y = forward(xs);
    const dxs = tf.grads((...inputs) => tf.sum(tf.mul(forward(inputs), dy)))(xs);
    const result = {y: encode(y), dxs: dxs.map(encode)};
    if (note) {
        result.emulated = note;
    }
    return result;
}

runReference({merge: runMerge});
