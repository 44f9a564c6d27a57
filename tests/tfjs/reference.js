#!/usr/bin/env node
// TensorFlow.js reference computations for edgelearn's parity tests.
//
// Usage: node tests/tfjs/reference.js [JOB.json | -] [RESULT.json]
// The job ({"cases": [...]}) is read from the file argument, or from stdin when it is absent or
// "-"; the result ({"results": [...]}, one entry per case, same order) goes to the second
// argument or to stdout. Batching, the {"error": "..."} of a failing case and the float32 array
// codec are those of common.js.
//
// Where TF.js and Keras 3 define a computation differently, or TF.js cannot compute it or its
// gradient, the reference computes the Keras 3 definition from other TF.js ops, layers or
// hyper-parameters (the tests check Keras compatibility). A comment at each such place gives the
// formulas, and the case's result names the substitution in its "emulated" field.
'use strict';

const {tf, decode, encode, uniqueName, runReference} = require('./common');

const KERAS_EPSILON = 1e-7;

function camelCase(snake) {
    return snake.replace(/_(.)/g, (match, letter) => letter.toUpperCase());
}

// Keras 3 keras.activations.relu / layers.ReLU (keras/src/activations/activations.py,
// ReLU.static_call), written with TF.js ops so that TF.js autodiff gives the gradient.
function kerasRelu(x, negativeSlope, maxValue, threshold) {
    let negativePart = null;
    if (negativeSlope !== 0) {
        negativePart = tf.relu(threshold !== 0 ? tf.sub(threshold, x) : tf.neg(x));
    }
    let y = tf.relu(x);
    if (threshold !== 0) {
        // Keras's x * cast(x > threshold). TF.js has no gradient for `greater` and no
        // stop_gradient, so the mask comes from a constant copy of x (its gradient is zero anyway).
        const constant = tf.tensor(x.dataSync(), x.shape, x.dtype);
        y = tf.mul(x, tf.cast(tf.greater(constant, threshold), 'float32'));
    }
    if (maxValue != null) {
        y = tf.clipByValue(y, 0, maxValue);
    }
    if (negativeSlope !== 0) {
        y = tf.sub(y, tf.mul(negativeSlope, negativePart));
    }
    return y;
}

// [before, after] padding of one spatial dimension under TF's 'same' rule.
function samePadding(size, window, stride) {
    const total = Math.max((Math.ceil(size / stride) - 1) * stride + window - size, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

// Keras 3 layer configs that TF.js lacks, reads differently or cannot differentiate, as
//   {layer}: a TF.js layer config, optionally with
//     perm: the layer sees its input transposed by perm (and its output is transposed back),
//     fixed: per TF.js weight, null when the case supplies it, else the constant filling it;
//   {fn}: a function (x, weights) of TF.js ops, weights being the case's weights as variables.
// `note` says what was substituted.
function translateLayer(className, config, rank) {
    if (className === 'Activation' && config.activation === 'leaky_relu') {
        // TF.js has no 'leaky_relu' activation; Keras 3's default negative_slope is 0.2.
        const {activation, ...rest} = config;
        return {
            layer: {class_name: 'LeakyReLU', config: {...rest, alpha: 0.2}},
            note: `Activation(${activation}) as TF.js LeakyReLU(alpha=0.2)`,
        };
    }
    if (className === 'ReLU') {
        // TF.js's ReLU layer reads max_value only and silently ignores the other two arguments.
        const slope = config.negative_slope == null ? 0 : config.negative_slope;
        const threshold = config.threshold == null ? 0 : config.threshold;
        const maxValue = config.max_value == null ? null : config.max_value;
        if (slope === 0 && threshold === 0) {
            return {layer: {class_name: 'ReLU', config: {name: config.name, max_value: maxValue}}};
        }
        if (threshold === 0 && maxValue === null) {
            return {
                layer: {class_name: 'LeakyReLU', config: {name: config.name, alpha: slope}},
                note: 'ReLU(negative_slope) as TF.js LeakyReLU',
            };
        }
        // TF.js's ThresholdedReLU matches ReLU(threshold) but has no gradient (it uses `greater`).
        return {
            fn: (x) => kerasRelu(x, slope, maxValue, threshold),
            note: 'ReLU: Keras 3 relu formula in TF.js ops',
        };
    }
    if (className === 'Softmax') {
        const axis = config.axis == null ? -1 : config.axis;
        const axes = (Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a));
        if (axes.length === 1 && axes[0] === rank - 1) {
            return {layer: {class_name: 'Softmax', config: {...config, axis: -1}}};
        }
        // tf.softmax handles the last axis only; this is the formula TF.js's Softmax layer uses
        // for several axes (tfjs-layers/src/layers/advanced_activations.ts).
        return {
            fn: (x) => tf.exp(tf.sub(x, tf.logSumExp(x, axes, true))),
            note: 'Softmax over a non-last axis as exp(x - logSumExp(x, axis))',
        };
    }
    if (className === 'AveragePooling2D' && config.padding === 'same') {
        // tfjs-backend-cpu's AvgPoolGrad (src/kernels/AvgPoolGrad.ts) divides by the whole
        // window while the forward pass divides by the in-bounds count, so gradients next to
        // the padding are wrong. Pooling explicitly zero-padded input and dividing by the pooled
        // in-bounds mask gives the same values with the right gradient.
        if (config.data_format === 'channels_first') {
            throw new Error('AveragePooling2D emulation is channels_last only');
        }
        const poolSize = config.pool_size;
        const strides = config.strides || poolSize;
        return {
            fn: (x) => {
                const pads = [[0, 0], samePadding(x.shape[1], poolSize[0], strides[0]),
                    samePadding(x.shape[2], poolSize[1], strides[1]), [0, 0]];
                const pool = (t) => tf.avgPool(tf.pad(t, pads), poolSize, strides, 'valid');
                return tf.div(pool(x), pool(tf.ones(x.shape)));
            },
            note: "AveragePooling2D 'same' as zero-padded 'valid' pooling / pooled mask",
        };
    }
    if (className === 'BatchNormalization') {
        const axis = config.axis < 0 ? config.axis + rank : config.axis;
        const center = config.center !== false;
        const scale = config.scale !== false;
        const notes = [];
        let perm;
        if (axis !== rank - 1) {
            // TF.js's batchNorm gradient fails for parameters broadcast along a non-last axis.
            perm = [...Array(rank).keys()].filter((a) => a !== axis).concat([axis]);
            notes.push('BatchNormalization over a non-last axis on transposed input');
        }
        if (!center || !scale) {
            // TF.js's batchNorm gradient reads the absent scale, and its training path reads
            // gamma and beta unconditionally; gamma = 1 and beta = 0 are the same computation.
            notes.push('absent gamma/beta as fixed 1/0');
        }
        return {
            layer: {class_name: className,
                config: {...config, axis: -1, center: true, scale: true}},
            perm,
            fixed: [scale ? null : 1, center ? null : 0, null, null],
            note: notes.length ? notes.join('; ') : undefined,
        };
    }
    if (className === 'GlobalAveragePooling2D' && config.keepdims) {
        throw new Error('TF.js GlobalAveragePooling2D has no keepdims');
    }
    return {layer: {class_name: className, config}};
}

// Keras 3 serialises the input as an InputLayer with batch_shape; TF.js reads batch_input_shape.
function toTfjsTopology(topology) {
    const layers = topology.config.layers.map((layer) => {
        if (layer.class_name === 'InputLayer' && layer.config.batch_shape != null) {
            const {batch_shape: batchShape, ...rest} = layer.config;
            return {class_name: 'InputLayer', config: {...rest, batch_input_shape: batchShape}};
        }
        return layer;
    });
    return {class_name: topology.class_name, config: {...topology.config, layers}};
}

async function buildLayer(layerJson, inputShape) {
    const model = await tf.models.modelFromJSON({
        class_name: 'Sequential',
        config: {
            name: uniqueName('reference'),
            layers: [{
                class_name: layerJson.class_name,
                config: {...layerJson.config, batch_input_shape: inputShape},
            }],
        },
    });
    if (model.layers.length !== 1) {
        throw new Error(`expected one layer, TF.js built ${model.layers.length}`);
    }
    return model.layers[0];
}

function inversePermutation(perm) {
    const inverse = [];
    perm.forEach((p, i) => {
        inverse[p] = i;
    });
    return inverse;
}

async function runLayer(c) {
    const translated = translateLayer(c.class_name, c.config, c.input_shape.length);
    const kerasWeights = (c.weights || []).map(decode);
    let forward;
    let trainable;
    let weightsAfter;
    if (translated.fn) {
        const params = kerasWeights.map((w) => tf.variable(w, true, uniqueName('w')));
        forward = (x) => translated.fn(x, params);
        trainable = params;
        weightsAfter = () => params;
    } else {
        const {perm} = translated;
        const inputShape = perm ? perm.map((a) => c.input_shape[a]) : c.input_shape;
        const layer = await buildLayer(translated.layer, inputShape);
        const fixed = translated.fixed || layer.weights.map(() => null);
        const supplied = layer.weights.filter((w, i) => fixed[i] === null);
        if (supplied.length !== kerasWeights.length) {
            throw new Error(`${c.class_name} has ${supplied.length} weights, ` +
                `the case gives ${kerasWeights.length}`);
        }
        let next = 0;
        layer.setWeights(layer.weights.map((w, i) => (fixed[i] === null
            ? kerasWeights[next++] : tf.fill(w.shape, fixed[i]))));
        const call = (x) => layer.apply(x, {training: Boolean(c.training)});
        forward = perm
            ? (x) => tf.transpose(call(tf.transpose(x, perm)), inversePermutation(perm))
            : call;
        trainable = supplied.filter((w) => w.trainable).map((w) => w.val);
        weightsAfter = () => supplied.map((w) => w.read());
    }
    const x = tf.variable(decode(c.x), true, uniqueName('x'));
    const dy = decode(c.dy);
    let y = null;
    const {grads} = tf.variableGrads(() => {
        y = tf.keep(forward(x));
        return tf.sum(tf.mul(y, dy));
    }, [x, ...trainable]);
    const result = {
        y: encode(y),
        dx: encode(grads[x.name]),
        dweights: trainable.map((v) => encode(grads[v.name])),
        weights_after: weightsAfter().map(encode),
    };
    if (translated.note) {
        result.emulated = translated.note;
    }
    return result;
}

function activationFn(name) {
    if (name === 'leaky_relu') {
        // Keras 3 default negative_slope; TF.js has no such activation identifier.
        return {fn: (x) => tf.leakyRelu(x, 0.2), note: 'leaky_relu as tf.leakyRelu(x, 0.2)'};
    }
    if (name === 'hard_sigmoid') {
        // Keras 3 redefined it as relu6(x + 3) / 6; TF.js keeps Keras 2's clip(0.2x + 0.5, 0, 1).
        throw new Error('TF.js hardSigmoid is the Keras 2 definition, not Keras 3');
    }
    const layer = tf.layers.activation({activation: camelCase(name === 'silu' ? 'swish' : name)});
    return {fn: (x) => layer.apply(x)};
}

function runActivation(c) {
    const {fn, note} = activationFn(c.name);
    const x = decode(c.x);
    const dy = decode(c.dy);
    const y = fn(x);
    const dx = tf.grad((input) => tf.sum(tf.mul(fn(input), dy)))(x);
    const result = {y: encode(y), dx: encode(dx)};
    if (note) {
        result.emulated = note;
    }
    return result;
}

// Per-sample loss as Keras 3 defines it; the case then averages over samples, which is Keras's
// default 'sum_over_batch_size' reduction.
function perSampleLoss(name, fromLogits, yTrue, yPred) {
    const last = yPred.rank - 1;
    switch (name) {
    case 'mean_squared_error':
        return tf.metrics.meanSquaredError(yTrue, yPred);
    case 'mean_absolute_error':
        return tf.metrics.meanAbsoluteError(yTrue, yPred);
    case 'categorical_crossentropy':
        // tfjs-layers' categoricalCrossentropy clips softmax(logits) before the log; Keras 3 uses
        // softmax_cross_entropy_with_logits, which is tf.losses.softmaxCrossEntropy here.
        return fromLogits
            ? tf.losses.softmaxCrossEntropy(yTrue, yPred, undefined, 0, tf.Reduction.NONE)
            : tf.metrics.categoricalCrossentropy(yTrue, yPred);
    case 'sparse_categorical_crossentropy': {
        // Keras 3 (jax, numpy and torch backends) defines it as categorical crossentropy of the
        // one-hot labels. tfjs-layers does not export its version, which also clips logits.
        const oneHot = tf.oneHot(tf.cast(tf.reshape(yTrue, [-1]), 'int32'), yPred.shape[last]);
        const target = tf.cast(tf.reshape(oneHot, yPred.shape), 'float32');
        return fromLogits
            ? tf.losses.softmaxCrossEntropy(target, yPred, undefined, 0, tf.Reduction.NONE)
            : tf.metrics.categoricalCrossentropy(target, yPred);
    }
    case 'binary_crossentropy':
        // tfjs-layers' binaryCrossentropy has no from_logits; tf.losses.sigmoidCrossEntropy is
        // the same max(x, 0) - x z + log1p(exp(-|x|)) as TF's sigmoid_cross_entropy_with_logits.
        return fromLogits
            ? tf.mean(tf.losses.sigmoidCrossEntropy(yTrue, yPred, undefined, 0,
                tf.Reduction.NONE), -1)
            : tf.metrics.binaryCrossentropy(yTrue, yPred);
    default:
        throw new Error(`unknown loss ${name}`);
    }
}

function runLoss(c) {
    const yTrue = decode(c.y_true);
    const yPred = decode(c.y_pred);
    const lossOf = (p) => tf.mean(perSampleLoss(c.loss, Boolean(c.from_logits), yTrue, p));
    const {value, grad} = tf.valueAndGrad(lossOf)(yPred);
    return {value: value.dataSync()[0], grad: encode(grad), reduction: 'sum_over_batch_size'};
}

// Keras 3 optimizer (name, config) as a TF.js optimizer plus `beforeStep(t)`, which must run
// before update t (1-based). Keras 3 defaults fill absent hyper-parameters.
function makeOptimizer(name, config) {
    const cfg = config || {};
    const get = (key, fallback) => (cfg[key] == null ? fallback : cfg[key]);
    const noop = () => {};
    switch (name) {
    case 'sgd': {
        const lr = get('learning_rate', 0.01);
        const momentum = get('momentum', 0);
        if (momentum === 0) {
            return {optimizer: tf.train.sgd(lr), beforeStep: noop};
        }
        // TF.js: a = m a + g; w -= lr a (Nesterov: w -= lr (g + m a)). Keras 3: v = m v - lr g;
        // w += v (Nesterov: w += m v - lr g). With a constant lr they are the same, v = -lr a.
        return {
            optimizer: tf.train.momentum(lr, momentum, Boolean(get('nesterov', false))),
            beforeStep: noop,
        };
    }
    case 'adam': {
        if (get('amsgrad', false)) {
            throw new Error('TF.js Adam has no amsgrad');
        }
        const lr = get('learning_rate', 0.001);
        const beta1 = get('beta_1', 0.9);
        const beta2 = get('beta_2', 0.999);
        const epsilon = get('epsilon', KERAS_EPSILON);
        const optimizer = tf.train.adam(lr, beta1, beta2, epsilon);
        // Keras 3 semantics: w -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps), while
        // TF.js adds eps to sqrt(v / (1 - b2^t)). Both agree when TF.js's epsilon is
        // eps / sqrt(1 - b2^t), which applyGradients reads afresh at every step.
        return {
            optimizer,
            beforeStep: (t) => {
                optimizer.epsilon = epsilon / Math.sqrt(1 - Math.pow(beta2, t));
            },
            note: 'Adam epsilon rescaled per step to the Keras 3 placement',
        };
    }
    case 'rmsprop': {
        const centered = Boolean(get('centered', false));
        const epsilon = get('epsilon', KERAS_EPSILON);
        // Keras 3 semantics: centered RMSprop divides by sqrt(ms - mg^2 + eps); TF.js computes
        // sqrt(ms - (mg^2 + epsilon)), so it is handed -eps (tfjs-core rmsprop_optimizer.ts).
        return {
            optimizer: tf.train.rmsprop(get('learning_rate', 0.001), get('rho', 0.9),
                get('momentum', 0), centered ? -epsilon : epsilon, centered),
            beforeStep: noop,
            note: centered ? 'centered RMSprop epsilon sign flipped to Keras 3' : undefined,
        };
    }
    case 'adagrad': {
        // TF.js Adagrad always uses the backend epsilon (1e-7) inside the square root.
        if (get('epsilon', KERAS_EPSILON) !== KERAS_EPSILON) {
            throw new Error('TF.js Adagrad supports epsilon=1e-7 only');
        }
        return {
            optimizer: tf.train.adagrad(get('learning_rate', 0.001),
                get('initial_accumulator_value', 0.1)),
            beforeStep: noop,
        };
    }
    default:
        throw new Error(`unknown optimizer ${name}`);
    }
}

function runOptimizer(c) {
    const {optimizer, beforeStep, note} = makeOptimizer(c.optimizer, c.config);
    const variables = c.weights.map((w) => tf.variable(decode(w), true, uniqueName('w')));
    const history = c.grads.map((stepGrads, step) => {
        const named = {};
        variables.forEach((v, i) => {
            named[v.name] = decode(stepGrads[i]);
        });
        beforeStep(step + 1);
        optimizer.applyGradients(named);
        return variables.map(encode);
    });
    optimizer.dispose();
    const result = {weights: history};
    if (note) {
        result.emulated = note;
    }
    return result;
}

async function runModel(c) {
    const model = await tf.models.modelFromJSON(toTfjsTopology(c.model));
    model.setWeights(c.weights.map(decode));
    const {optimizer, beforeStep, note} = makeOptimizer(c.optimizer.name, c.optimizer.config);
    // TF.js's loss identifiers are the camelCase spellings of Keras's names.
    model.compile({optimizer, loss: camelCase(c.loss)});
    const x = decode(c.x);
    const y = decode(c.y);
    const predictBefore = encode(model.predict(x));
    const losses = [];
    for (let step = 1; step <= c.steps; step += 1) {
        beforeStep(step);
        losses.push(await model.trainOnBatch(x, y));
    }
    const result = {
        losses,
        weights: model.getWeights().map(encode),
        predict_before: predictBefore,
        predict_after: encode(model.predict(x)),
    };
    if (note) {
        result.emulated = note;
    }
    return result;
}

runReference({
    layer: runLayer,
    activation: runActivation,
    loss: runLoss,
    optimizer: runOptimizer,
    model: runModel,
});
