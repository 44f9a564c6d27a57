// Train from scratch: MNIST from the server, a dense model or the codelab CNN trained here with
// TensorFlow.js, live curves, test accuracy and confusion matrix, a drawing pad, and saving to
// the server (tf.io.http) or IndexedDB.
import { LineChart } from './chart.js';
import {
  $, el, renderBars, saveToServer, setStatus, setupBackend, tf, timed,
} from './common.js';
import { DigitPad } from './draw.js';
import { fetchMnist, toTensors } from './mnist.js';

const state = { model: null, test: null, backend: null };
const status = $('#train-status');
const saveStatus = $('#save-status');

const lossChart = new LineChart($('#loss-chart'), {
  title: 'loss',
  series: [{ name: 'batch', color: '#9bb7d4' }, { name: 'epoch', color: '#1f4e79', dots: true }],
});
const accChart = new LineChart($('#acc-chart'), {
  title: 'accuracy',
  yMax: 1,
  series: [{ name: 'batch', color: '#f0b98d' }, { name: 'epoch', color: '#b35900', dots: true },
    { name: 'test', color: '#2e7d32', dots: true }],
});

// The two models the page offers; the CNN is the TensorFlow.js codelab's, as
// edgelearn.demos.mnist.codelab_cnn builds it in Python.
function buildModel(kind) {
  if (kind === 'cnn') {
    return tf.sequential({
      name: 'codelab_cnn',
      layers: [
        tf.layers.conv2d({ inputShape: [28, 28, 1], kernelSize: 5, filters: 8, activation: 'relu',
          kernelInitializer: 'varianceScaling' }),
        tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
        tf.layers.conv2d({ kernelSize: 5, filters: 16, activation: 'relu',
          kernelInitializer: 'varianceScaling' }),
        tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: 'varianceScaling' }),
      ],
    });
  }
  return tf.sequential({
    name: 'mnist_dense',
    layers: [
      tf.layers.flatten({ inputShape: [28, 28, 1] }),
      tf.layers.dense({ units: 128, activation: 'relu' }),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
}

const intValue = (id) => Math.max(0, parseInt($(id).value, 10) || 0);

async function train() {
  const kind = $('#model-kind').value;
  const epochs = Math.max(1, intValue('#epochs'));
  const batchSize = Math.max(1, intValue('#batch-size'));
  if (state.backend === 'wasm' && kind === 'cnn') {
    setStatus(status, 'The wasm backend cannot train convolutions in TensorFlow.js 4.22: '
      + 'switch to webgl or cpu.', 'error');
    return;
  }
  $('#train').disabled = true;
  try {
    setStatus(status, 'Fetching digits from the server…');
    const trainSet = await timed('fetch training digits',
      () => fetchMnist('train', intValue('#train-count')));
    state.test = await timed('fetch test digits',
      () => fetchMnist('test', intValue('#test-count')));
    const { xs, ys } = toTensors(trainSet);

    state.model?.dispose();
    const model = buildModel(kind);
    state.model = model;
    model.compile({ optimizer: tf.train.adam(), loss: 'categoricalCrossentropy',
      metrics: ['accuracy'] });
    lossChart.clear();
    accChart.clear();
    $('#epochs-table tbody').replaceChildren();
    const batches = Math.ceil(trainSet.n / batchSize);
    let step = 0;
    let epochStart = 0;
    await timed(`train ${epochs} epoch(s) on ${trainSet.n} digits`, () => model.fit(xs, ys, {
      batchSize,
      epochs,
      shuffle: true,
      callbacks: {
        onEpochBegin: async () => { epochStart = performance.now(); },
        onBatchEnd: async (batch, logs) => {
          step += 1;
          lossChart.add('batch', step, logs.loss);
          accChart.add('batch', step, logs.acc ?? logs.accuracy);
          const epoch = Math.floor((step - 1) / batches) + 1;
          status.textContent = `Epoch ${epoch}/${epochs}, batch ${batch + 1}/${batches}: `
            + `loss ${logs.loss.toFixed(4)}`;
        },
        onEpochEnd: async (epoch, logs) => {
          const seconds = (performance.now() - epochStart) / 1000;
          const acc = logs.acc ?? logs.accuracy;
          lossChart.add('epoch', step, logs.loss);
          accChart.add('epoch', step, acc);
          $('#epochs-table tbody').append(el('tr', {},
            el('td', {}, String(epoch + 1)), el('td', {}, logs.loss.toFixed(4)),
            el('td', {}, `${(100 * acc).toFixed(2)}%`), el('td', {}, `${seconds.toFixed(2)} s`),
            el('td', {}, (trainSet.n / seconds).toFixed(0))));
        },
      },
    }));
    tf.dispose([xs, ys]);
    const accuracy = await timed(`test on ${state.test.n} digits`, () => evaluate(model, step));
    setStatus(status, `Trained: test accuracy ${(100 * accuracy).toFixed(2)}% on ${state.test.n} `
      + 'held-out digits.', 'done');
    $('#save-server').disabled = $('#save-idb').disabled = false;
  } catch (error) {
    console.error(error);
    setStatus(status, `Training failed: ${error.message}`, 'error');
  } finally {
    $('#train').disabled = false;
  }
}

// Predict n digits given as 784*n floats in [0, 1]; returns nested arrays (n, 10).
async function predictPixels(model, pixels, n) {
  const input = tf.tensor4d(pixels, [n, 28, 28, 1]);
  const output = model.predict(input, { batchSize: 256 });
  const values = await output.array();
  tf.dispose([input, output]);
  return values;
}

async function evaluate(model, step) {
  const test = state.test;
  const { xs, ys } = toTensors(test);
  const predicted = tf.tidy(() => model.predict(xs, { batchSize: 256 }).argMax(-1));
  const guesses = await predicted.data();
  tf.dispose([xs, ys, predicted]);
  const matrix = Array.from({ length: 10 }, () => new Array(10).fill(0));
  let correct = 0;
  test.labels.forEach((label, i) => {
    matrix[label][guesses[i]] += 1;
    if (label === guesses[i]) correct += 1;
  });
  const accuracy = correct / test.n;
  $('#test-accuracy').textContent = `${(100 * accuracy).toFixed(2)}% of ${test.n} held-out `
    + 'digits classified correctly';
  accChart.add('test', step, accuracy);
  renderConfusion(matrix);
  return accuracy;
}

function renderConfusion(matrix) {
  const head = el('tr', {}, el('th', {}, 'true \\ predicted'),
    ...matrix.map((_, c) => el('th', {}, String(c))), el('th', {}, 'accuracy'));
  const rows = matrix.map((row, t) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return el('tr', {}, el('th', {}, String(t)), ...row.map((count, p) => {
      const share = count / total;
      // Green for the diagonal, red (amplified: mistakes are rarer) elsewhere.
      const color = t === p ? `rgba(46,125,50,${share})`
        : `rgba(198,40,40,${Math.min(1, 4 * share)})`;
      return el('td', { style: `background:${color}`, title: `${count} of ${total}` },
        String(count));
    }), el('td', {}, `${((100 * row[t]) / total).toFixed(1)}%`));
  });
  $('#confusion').replaceChildren(el('table', { class: 'matrix' }, el('thead', {}, head),
    el('tbody', {}, ...rows)));
}

async function showProbabilities(pixels) {
  if (!state.model || !pixels) return;
  const [row] = await timed('predict the drawing', () => predictPixels(state.model, pixels, 1));
  renderBars($('#probabilities'), row.map((p, digit) => [digit, p]));
}

const pad = new DigitPad($('#pad'), showProbabilities);

// Put a held-out digit on the pad (scaled up) and classify it.
async function randomDigit() {
  if (!state.test) state.test = await timed('fetch test digits', () => fetchMnist('test', 500));
  const test = state.test;
  const i = Math.floor(Math.random() * test.n);
  const small = document.createElement('canvas');
  small.width = small.height = 28;
  const image = small.getContext('2d').createImageData(28, 28);
  for (let p = 0; p < 784; p++) {
    const v = test.images[i * 784 + p];
    image.data.set([v, v, v, 255], 4 * p);
  }
  small.getContext('2d').putImageData(image, 0, 0);
  pad.clear();
  pad.g.imageSmoothingEnabled = false;
  pad.g.drawImage(small, 0, 0, pad.canvas.width, pad.canvas.height);
  await showProbabilities(Float32Array.from(test.images.subarray(i * 784, (i + 1) * 784),
    (v) => v / 255));
}

async function save(where) {
  const name = $('#model-name').value.trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    setStatus(saveStatus, 'Use 1-64 letters, digits, "_", "." or "-", starting with a letter or '
      + 'digit.', 'error');
    return;
  }
  try {
    setStatus(saveStatus, 'Saving…');
    if (where === 'server') {
      await timed(`save ${name} to the server`,
        () => saveToServer(state.model, name, $('#overwrite').checked));
      setStatus(saveStatus, `Saved to the server as ${name}: el.load_model("<models>/${name}") `
        + 'reads it in Python; the Models page runs it.', 'saved');
    } else {
      const info = await timed(`save ${name} to IndexedDB`,
        () => state.model.save(`indexeddb://edgelearn-${name}`));
      setStatus(saveStatus, `Saved to IndexedDB as edgelearn-${name} `
        + `(${info.modelArtifactsInfo.weightDataBytes} bytes of weights).`, 'saved');
    }
  } catch (error) {
    setStatus(saveStatus, `Not saved: ${error.message}`, 'error');
  }
}

async function loadFromIndexedDB() {
  const name = $('#model-name').value.trim();
  try {
    const model = await timed(`load ${name} from IndexedDB`,
      () => tf.loadLayersModel(`indexeddb://edgelearn-${name}`));
    state.model?.dispose();
    state.model = model;
    $('#save-server').disabled = $('#save-idb').disabled = false;
    setStatus(saveStatus, `Loaded edgelearn-${name} from IndexedDB: draw a digit.`, 'loaded');
  } catch (error) {
    setStatus(saveStatus, `Not loaded: ${error.message}`, 'error');
  }
}

$('#settings').addEventListener('submit', (event) => { event.preventDefault(); train(); });
$('#clear-pad').addEventListener('click', () => {
  pad.clear();
  renderBars($('#probabilities'), []);
});
$('#random-digit').addEventListener('click', randomDigit);
$('#save-server').addEventListener('click', () => save('server'));
$('#save-idb').addEventListener('click', () => save('idb'));
$('#load-idb').addEventListener('click', loadFromIndexedDB);

await setupBackend($('#backend'), (backend) => {
  state.backend = backend;
  $('#wasm-note').hidden = backend !== 'wasm';
});
lossChart.draw();
accChart.draw();
document.body.dataset.ready = 'true';

// For tests and the console: the trained model and a way to run it on raw pixels.
window.playground = {
  get model() { return state.model; },
  predictPixels: (pixels, n) => predictPixels(state.model, Float32Array.from(pixels), n),
};
