// TensorFlow.js side of benchmarks/train_tfjs.py: times training steps of the codelab CNN in node.
//
// Usage: node benchmarks/tfjs_train.js DATA.bin BATCH STEPS BACKEND BUILD
//   DATA.bin: float32 images (n, 28, 28, 1) followed by n float32 labels (little-endian)
//   BACKEND: cpu | wasm;  BUILD: default (tf.node.js, what require('@tensorflow/tfjs') gives)
//   | es2017 (dist/tf.es2017.js: native classes, faster in node)
// Prints one JSON line: {"images_per_second", "seconds", "loss", "backend"} or {"error"}.
'use strict';
const fs = require('fs');
const path = require('path');

const [dataFile, batchText, stepsText, backend, build] = process.argv.slice(2);
const tf = build === 'es2017' ? require('@tensorflow/tfjs/dist/tf.es2017.js')
                              : require('@tensorflow/tfjs');
tf.env().set('PROD', true);  // no "use tfjs-node" banner on stdout

function codelabCnn() {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({inputShape: [28, 28, 1], kernelSize: 5, filters: 8,
                              activation: 'relu', kernelInitializer: 'glorotUniform'}));
  model.add(tf.layers.maxPooling2d({poolSize: 2, strides: 2}));
  model.add(tf.layers.conv2d({kernelSize: 5, filters: 16, activation: 'relu',
                              kernelInitializer: 'glorotUniform'}));
  model.add(tf.layers.maxPooling2d({poolSize: 2, strides: 2}));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({units: 10, activation: 'softmax'}));
  model.compile({optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy',
                 metrics: ['accuracy']});
  return model;
}

async function main() {
  if (backend === 'wasm') {
    require(build === 'es2017' ? '@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.es2017.js'
                               : '@tensorflow/tfjs-backend-wasm');
    const wasm = require('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + '/');
  }
  await tf.setBackend(backend);
  await tf.ready();
  const raw = fs.readFileSync(dataFile);
  const values = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  const n = values.length / (28 * 28 + 1);
  const batch = Number(batchText);
  const steps = Number(stepsText);
  const images = tf.tensor4d(values.subarray(0, n * 784), [n, 28, 28, 1]);
  const labels = tf.oneHot(tf.tensor1d(values.subarray(n * 784), 'int32'), 10);
  const model = codelabCnn();
  const batchAt = i => {
    const start = (i * batch) % Math.max(1, n - batch);
    return [images.slice([start, 0, 0, 0], [batch, 28, 28, 1]), labels.slice([start, 0], [batch, 10])];
  };
  let [x, y] = batchAt(0);
  await model.trainOnBatch(x, y);  // warm-up: kernels compiled, weights allocated
  let loss = NaN;
  const begin = process.hrtime.bigint();
  for (let i = 1; i <= steps; i++) {
    [x, y] = batchAt(i);
    [loss] = await model.trainOnBatch(x, y);
    tf.dispose([x, y]);
  }
  const seconds = Number(process.hrtime.bigint() - begin) / 1e9;
  process.stdout.write(JSON.stringify({
    images_per_second: batch * steps / seconds, seconds, loss, backend: tf.getBackend()}) + '\n');
}

main().catch(error => {
  process.stdout.write(JSON.stringify({error: String(error.message || error).split('\n')[0]}) + '\n');
});
