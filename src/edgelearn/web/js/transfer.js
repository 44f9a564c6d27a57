// Transfer learning, Teachable-Machine style: the MobileNetV2 feature extractor served by
// Python turns webcam frames or images into 1280 features; a k-NN classifier or a small dense
// head trained here maps them to the user's labels; base + head save as one model.
import { LineChart } from './chart.js';
import {
  $, el, renderBars, saveToServer, setStatus, setupBackend, tf, timed,
} from './common.js';
import { KNNClassifier } from './knn.js';

const state = {
  base: null, size: 0, stream: null, image: null,
  labels: [],          // [{name, features: [tensor [1,1280]], row}]
  knn: new KNNClassifier(),
  head: null, headLabels: null, live: false,
  last: null,          // the last prediction's input and outputs (for tests and the console)
};
const baseStatus = $('#base-status');
const headStatus = $('#head-status');
const headChart = new LineChart($('#head-chart'), {
  title: 'head loss per epoch', xLabel: 'epochs',
  series: [{ name: 'loss', color: '#1f4e79', dots: true }],
});

// ------------------------------------------------------------------ the feature extractor
async function loadBase() {
  const name = $('#base-name').value;
  $('#load-base').disabled = true;
  try {
    setStatus(baseStatus, `Loading ${name} (the first request builds it in Python)…`);
    const base = await timed(`load ${name}`,
      () => tf.loadLayersModel(`/api/base/${name}/model.json`));
    state.base?.dispose();
    state.base = base;
    state.size = base.inputs[0].shape[1];
    // The first run compiles kernels (shaders on webgl): do it now, not on the first example.
    await timed(`warm up ${name}`, async () => {
      const out = base.predict(tf.zeros([1, state.size, state.size, 3]));
      await out.data();
      out.dispose();
    });
    // Features from another extractor are meaningless here: start the examples over.
    resetExamples();
    setStatus(baseStatus, `Loaded ${name}: ${base.countParams().toLocaleString()} parameters, `
      + `input ${state.size}×${state.size}×3, output ${base.outputs[0].shape[1]} features.`,
    'loaded');
  } catch (error) {
    setStatus(baseStatus, `Not loaded: ${error.message}`, 'error');
  } finally {
    $('#load-base').disabled = false;
    updateButtons();
  }
}

// An image source (video, canvas, img) -> [1, size, size, 3] in [0, 1], centre-cropped square.
function toInput(source) {
  return tf.tidy(() => {
    const pixels = tf.browser.fromPixels(source);
    const [h, w] = pixels.shape;
    const side = Math.min(h, w);
    const crop = pixels.slice([Math.floor((h - side) / 2), Math.floor((w - side) / 2), 0],
      [side, side, 3]);
    return tf.image.resizeBilinear(crop, [state.size, state.size]).div(255).expandDims(0);
  });
}

function embed(input) {
  return tf.tidy(() => state.base.predict(input));
}

// ------------------------------------------------------------------ inputs
async function startCamera() {
  try {
    state.stream = await timed('start the webcam', () => navigator.mediaDevices.getUserMedia({
      video: { width: 320, height: 240 }, audio: false,
    }));
    const video = $('#video');
    video.srcObject = state.stream;
    await video.play();
    video.hidden = false;
    $('#preview').hidden = true;
    state.image = null;
    $('#start-camera').disabled = true;
    $('#stop-camera').disabled = false;
    setStatus($('#examples-status'), 'Webcam on.', 'camera');
  } catch (error) {
    setStatus($('#examples-status'), `No webcam: ${error.message}. Use image files instead.`,
      'error');
  }
  updateButtons();
}

function stopCamera() {
  state.stream?.getTracks().forEach((track) => track.stop());
  state.stream = null;
  state.live = false;
  $('#live').checked = false;
  $('#start-camera').disabled = false;
  $('#stop-camera').disabled = true;
  updateButtons();
}

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`cannot read ${file.name} as an image`));
    image.src = URL.createObjectURL(file);
  });
}

// Show an image file in the preview and make it the current input.
async function chooseImage(file) {
  const image = await loadImage(file);
  const canvas = $('#preview');
  const g = canvas.getContext('2d');
  const scale = Math.max(canvas.width / image.width, canvas.height / image.height);
  g.drawImage(image, (canvas.width - image.width * scale) / 2,
    (canvas.height - image.height * scale) / 2, image.width * scale, image.height * scale);
  stopCamera();
  state.image = canvas;
  canvas.hidden = false;
  $('#video').hidden = true;
  updateButtons();
}

function currentSource() {
  if (state.stream) return $('#video');
  return state.image;
}

// ------------------------------------------------------------------ labels and examples
function addLabel(name = `Label ${state.labels.length + 1}`) {
  const label = { name, features: [] };
  const index = state.labels.length;
  const count = el('span', { class: 'count' }, '0');
  const thumbs = el('div', { class: 'thumbs' });
  const files = el('input', { type: 'file', accept: 'image/*', multiple: '', hidden: '' });
  files.addEventListener('change', async () => {
    for (const file of files.files) await addExample(index, await loadImage(file));
    files.value = '';
  });
  const nameInput = el('input', { value: name, 'aria-label': 'label name' });
  nameInput.addEventListener('input', () => { label.name = nameInput.value; });
  label.row = el('div', { class: 'label-row', 'data-label': String(index) },
    nameInput,
    el('button', { type: 'button', class: 'add-example', onclick: () => addExample(index) },
      'Add example'),
    el('button', { type: 'button', class: 'secondary', onclick: () => files.click() }, 'files…'),
    count, thumbs, files);
  label.count = count;
  label.thumbs = thumbs;
  state.labels.push(label);
  $('#labels').append(label.row);
  updateButtons();
}

async function addExample(index, source = currentSource()) {
  if (!state.base || !source) return;
  const label = state.labels[index];
  const input = toInput(source);
  const features = await timed(`example for ${label.name}`, async () => {
    const f = embed(input);
    await f.data();
    return f;
  });
  input.dispose();
  label.features.push(features);
  state.knn.add(features, index);
  label.count.textContent = String(label.features.length);
  const thumb = el('canvas', { width: '32', height: '32' });
  thumb.getContext('2d').drawImage(source, 0, 0, 32, 32);
  label.thumbs.prepend(thumb);
  while (label.thumbs.children.length > 12) label.thumbs.lastChild.remove();
  const total = state.labels.reduce((n, l) => n + l.features.length, 0);
  setStatus($('#examples-status'), `${total} examples: `
    + state.labels.map((l) => `${l.name} ${l.features.length}`).join(', '), 'examples');
  updateButtons();
}

function resetExamples() {
  state.knn.clear();
  for (const label of state.labels) {
    tf.dispose(label.features);
    label.features = [];
    label.count.textContent = '0';
    label.thumbs.replaceChildren();
  }
  state.head?.dispose();
  state.head = null;
}

const labelsWithExamples = () => state.labels.filter((l) => l.features.length).length;
const classifier = () => document.querySelector('input[name=classifier]:checked').value;

function updateButtons() {
  const ready = state.base && labelsWithExamples() >= 2;
  $('#train-head').disabled = !ready;
  $('#predict').disabled = !(ready && currentSource()
    && (classifier() === 'knn' || state.head));
  $('#save-server').disabled = !(state.base && state.head);
}

// ------------------------------------------------------------------ the dense head
async function trainHead() {
  const units = Math.max(1, parseInt($('#head-units').value, 10) || 100);
  const epochs = Math.max(1, parseInt($('#head-epochs').value, 10) || 20);
  const learningRate = parseFloat($('#head-lr').value) || 0.001;
  const numLabels = state.labels.length;
  $('#train-head').disabled = true;
  try {
    const xs = tf.concat(state.labels.flatMap((l) => l.features), 0);
    const ys = tf.oneHot(tf.tensor1d(state.labels.flatMap((l, i) => l.features.map(() => i)),
      'int32'), numLabels).toFloat();
    const head = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [xs.shape[1]], units, activation: 'relu' }),
        tf.layers.dense({ units: numLabels, activation: 'softmax' }),
      ],
    });
    head.compile({ optimizer: tf.train.adam(learningRate), loss: 'categoricalCrossentropy',
      metrics: ['accuracy'] });
    $('#head-chart').hidden = false;
    headChart.clear();
    setStatus(headStatus, 'Training the head…');
    const label = `train the head, ${epochs} epochs on ${xs.shape[0]} examples`;
    await timed(label, () => head.fit(xs, ys, {
      epochs,
      batchSize: 16,
      shuffle: true,
      callbacks: {
        onEpochEnd: async (epoch, logs) => {
          headChart.add('loss', epoch + 1, logs.loss);
          headStatus.textContent = `Epoch ${epoch + 1}/${epochs}: loss ${logs.loss.toFixed(4)}, `
            + `accuracy ${(100 * (logs.acc ?? logs.accuracy)).toFixed(1)}%`;
        },
      },
    }));
    tf.dispose([xs, ys]);
    state.head?.dispose();
    state.head = head;
    state.headLabels = state.labels.map((l) => l.name);
    document.querySelector('input[name=classifier][value=dense]').checked = true;
    setStatus(headStatus, `${headStatus.textContent}. The head predicts now.`, 'trained');
  } catch (error) {
    setStatus(headStatus, `Training failed: ${error.message}`, 'error');
  } finally {
    updateButtons();
  }
}

// ------------------------------------------------------------------ predicting
async function predict() {
  const source = currentSource();
  // The same conditions that enable the button (a base, two labels, a trained head for 'dense').
  if (!source || $('#predict').disabled) return;
  const input = toInput(source);
  const names = state.labels.map((l) => l.name);
  const result = await timed(`predict (${classifier()})`, async () => {
    const features = embed(input);
    try {
      if (classifier() === 'knn') {
        const k = Math.max(1, parseInt($('#knn-k').value, 10) || 3);
        return await state.knn.predict(features, k, names.length);
      }
      const out = state.head.predict(features);
      const confidences = Array.from(await out.data());
      out.dispose();
      return { label: confidences.indexOf(Math.max(...confidences)), confidences };
    } finally {
      features.dispose();
    }
  });
  state.last = { input: await input.array(), confidences: result.confidences,
    classifier: classifier() };
  input.dispose();
  const labels = classifier() === 'knn' ? names : state.headLabels;
  const best = result.confidences[result.label];
  setStatus($('#prediction'), `${labels[result.label]} (${(100 * best).toFixed(1)}%)`, 'predicted');
  renderBars($('#confidences'), result.confidences.map((c, i) => [labels[i], c]));
}

async function liveLoop() {
  while (state.live && state.stream) {
    await predict();
    await tf.nextFrame();
  }
}

// ------------------------------------------------------------------ saving
// One model from image to probabilities: the base's graph with the head's layers applied on
// top (the same layer objects, so the same trained weights).
function combinedModel(name) {
  let x = state.base.outputs[0];
  for (const layer of state.head.layers) x = layer.apply(x);
  const model = tf.model({ inputs: state.base.inputs, outputs: x, name });
  model.setUserDefinedMetadata({ labels: state.headLabels, base: $('#base-name').value });
  return model;
}

async function save() {
  const name = $('#model-name').value.trim();
  const status = $('#save-status');
  try {
    setStatus(status, 'Saving base + head…');
    const model = combinedModel(name.replace(/[^A-Za-z0-9_]/g, '_'));
    await timed(`save ${name} to the server`, () => saveToServer(model, name,
      $('#overwrite').checked));
    setStatus(status, `Saved as ${name}: image (${state.size}×${state.size}×3, RGB in [0, 1]) `
      + `in, ${state.headLabels.length} label probabilities out.`, 'saved');
  } catch (error) {
    setStatus(status, `Not saved: ${error.message}`, 'error');
  }
}

// ------------------------------------------------------------------ wiring
$('#load-base').addEventListener('click', loadBase);
$('#start-camera').addEventListener('click', startCamera);
$('#stop-camera').addEventListener('click', stopCamera);
$('#image-file').addEventListener('change', (event) => {
  if (event.target.files[0]) chooseImage(event.target.files[0]);
});
$('#add-label').addEventListener('click', () => addLabel());
$('#train-head').addEventListener('click', trainHead);
$('#predict').addEventListener('click', predict);
$('#save-server').addEventListener('click', save);
for (const radio of document.querySelectorAll('input[name=classifier]')) {
  radio.addEventListener('change', updateButtons);
}
$('#live').addEventListener('change', (e) => {
  state.live = e.target.checked;
  if (state.live) liveLoop();
});

addLabel('Label 1');
addLabel('Label 2');
await setupBackend($('#backend'));
headChart.draw();
document.body.dataset.ready = 'true';

window.playground = {
  get last() { return state.last; },
  get size() { return state.size; },
};
