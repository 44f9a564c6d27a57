// Models: list the server's models and run one on the same input twice, with TensorFlow.js in
// this browser and with edgelearn in Python (POST /api/predict), side by side.
import {
  $, el, errorMessage, formatBytes, getJSON, logTiming, setStatus, setupBackend, shapeText, tf,
  timed,
} from './common.js';
import { fetchMnistPage } from './mnist.js';

const TOLERANCE = 1e-4;
const state = { models: [], selected: null, loaded: null, image: null, last: null };
const runStatus = $('#run-status');

async function refresh() {
  try {
    const { models } = await timed('list models', () => getJSON('/api/models'));
    state.models = models;
    $('#models tbody').replaceChildren(...models.map((m) => {
      const radio = el('input', { type: 'radio', name: 'model', value: m.name });
      radio.addEventListener('change', () => select(m.name));
      const row = el('tr', { 'data-name': m.name },
        el('td', {}, radio), el('td', {}, el('strong', {}, m.name)),
        el('td', {}, m.params.toLocaleString()),
        el('td', {}, m.inputs.map((t) => shapeText(t.shape)).join(' ')),
        el('td', {}, m.outputs.map((t) => shapeText(t.shape)).join(' ')),
        el('td', {}, formatBytes(m.size)),
        el('td', {}, new Date(m.created).toLocaleString()));
      row.addEventListener('click', () => { radio.checked = true; select(m.name); });
      return row;
    }));
    setStatus($('#list-status'), models.length ? `${models.length} model(s).`
      : 'No models yet: save one from the other pages, or from Python with model.save().',
    'listed');
    if (!models.some((m) => m.name === state.selected?.name)) state.selected = null;
  } catch (error) {
    setStatus($('#list-status'), `Cannot list the models: ${error.message}`, 'error');
  }
}

function select(name) {
  state.selected = state.models.find((m) => m.name === name);
  for (const row of document.querySelectorAll('#models tbody tr')) {
    row.classList.toggle('selected', row.dataset.name === name);
  }
  const { inputs } = state.selected;
  const perSample = inputs[0].shape.slice(1).reduce((a, d) => a * (d ?? 1), 1);
  // Offer the inputs that fit: digits need 784 values, images 3 (or 1) channels.
  $('#input-kind option[value=mnist]').disabled = perSample !== 784;
  const channels = inputs[0].shape[inputs[0].shape.length - 1];
  $('#input-kind option[value=image]').disabled = !(inputs[0].shape.length === 4
    && (channels === 3 || channels === 1));
  if ($('#input-kind option:checked').disabled) {
    $('#input-kind').value = [...$('#input-kind').options].find((o) => !o.disabled).value;
  }
  $('#run').disabled = inputs.length !== 1;
  setStatus(runStatus, inputs.length === 1 ? `${name}: input ${shapeText(inputs[0].shape)}.`
    : `${name} has ${inputs.length} inputs: this page runs single-input models.`, 'selected');
}

// A seeded generator, so the same seed gives the same "random" input in any browser.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The input as a tensor of the model's shape (unknown non-batch sizes become 32).
async function makeInput(shape, n) {
  const dims = shape.slice(1).map((d) => d ?? 32);
  const perSample = dims.reduce((a, b) => a * b, 1);
  const kind = $('#input-kind').value;
  const seed = Math.max(0, parseInt($('#seed').value, 10) || 0);
  if (kind === 'mnist') {
    const page = await timed('fetch test digits', () => fetchMnistPage('test', seed, n));
    return tf.tensor(Float32Array.from(page.images, (v) => v / 255), [page.n, ...dims]);
  }
  if (kind === 'image') {
    if (!state.image) throw new Error('choose an image file first');
    return tf.tidy(() => {
      let pixels = tf.browser.fromPixels(state.image).toFloat().div(255);
      pixels = tf.image.resizeBilinear(pixels, [dims[0], dims[1]]);
      if (dims[2] === 1) pixels = pixels.mean(-1, true);
      return tf.stack(new Array(n).fill(pixels));
    });
  }
  const random = mulberry32(seed);
  return tf.tensor(Float32Array.from({ length: n * perSample }, random), [n, ...dims]);
}

async function loadModel(info) {
  const key = `${info.name}@${info.created}`;
  if (state.loaded?.key === key) return state.loaded.model;
  state.loaded?.model.dispose();
  const model = await timed(`load ${info.name} into TF.js`,
    () => tf.loadLayersModel(`/models/${encodeURIComponent(info.name)}/model.json`));
  state.loaded = { key, model };
  return model;
}

const asList = (x) => (Array.isArray(x) ? x : [x]);

function maxAbsDiff(a, b) {
  if (Array.isArray(a)) return a.reduce((m, v, i) => Math.max(m, maxAbsDiff(v, b[i])), 0);
  return Math.abs(a - b);
}

// A few rows as text: short rows in full (with the index of the largest value, the predicted
// class for a classifier), long ones cut.
function preview(outputs) {
  return outputs.map((o) => o.map((row) => {
    if (!Array.isArray(row) || row.length > 20 || typeof row[0] !== 'number') {
      return JSON.stringify(row).slice(0, 300);
    }
    const top = row.indexOf(Math.max(...row));
    return `${String(top).padStart(2)} ← [${row.map((v) => v.toFixed(5)).join(', ')}]`;
  }).join('\n')).join('\n\n');
}

async function run() {
  const info = state.selected;
  if (!info) return;
  $('#run').disabled = true;
  try {
    setStatus(runStatus, `Running ${info.name}…`);
    const n = Math.max(1, parseInt($('#batch').value, 10) || 1);
    const model = await loadModel(info);
    const input = await makeInput(info.inputs[0].shape, n);
    const inputs = await input.array();

    let start = performance.now();
    const predicted = model.predict(input);
    const browser = await Promise.all(asList(predicted).map((t) => t.array()));
    const browserMs = performance.now() - start;
    tf.dispose([input, predicted]);
    $('#browser-time').textContent = `predict: ${browserMs.toFixed(1)} ms`;
    $('#browser-output').textContent = preview(browser);

    start = performance.now();
    const response = await fetch(`/api/predict/${encodeURIComponent(info.name)}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ inputs }),
    });
    if (!response.ok) throw new Error(`the server refused: ${await errorMessage(response)}`);
    const answer = await response.json();
    const roundTrip = performance.now() - start;
    const server = Array.isArray(answer.outputs) ? [answer.outputs] : Object.values(answer.outputs);
    $('#server-time').textContent = `round trip: ${roundTrip.toFixed(1)} ms, of which `
      + `model.predict ${(1000 * answer.seconds).toFixed(1)} ms`;
    $('#server-output').textContent = preview(server);
    logTiming(`predict ${info.name} in the browser`, browserMs);
    logTiming(`predict ${info.name} in Python (round trip)`, roundTrip);

    const diff = maxAbsDiff(browser, server);
    const ok = diff <= TOLERANCE;
    $('#diff').textContent = `max |browser - Python| = ${diff.toExponential(2)} `
      + `${ok ? '≤' : '>'} ${TOLERANCE} over ${n} input(s)`;
    $('#diff').dataset.ok = String(ok);
    state.last = { name: info.name, inputs, browser, server, diff };
    const shape = Array.isArray(answer.shape) ? answer.shape : Object.values(answer.shape)[0];
    setStatus(runStatus, `Ran ${info.name} on ${n} input(s), output shape ${shapeText(shape)}.`,
      'done');
  } catch (error) {
    console.error(error);
    setStatus(runStatus, `Failed: ${error.message}`, 'error');
  } finally {
    $('#run').disabled = false;
  }
}

$('#refresh').addEventListener('click', refresh);
$('#run').addEventListener('click', run);
$('#image-file').addEventListener('change', (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const image = new Image();
  image.onload = () => { state.image = image; $('#input-kind').value = 'image'; };
  image.src = URL.createObjectURL(file);
});

await setupBackend($('#backend'), () => { state.loaded?.model.dispose(); state.loaded = null; });
await refresh();
const wanted = new URLSearchParams(location.search).get('model');
if (wanted && state.models.some((m) => m.name === wanted)) {
  document.querySelector(`#models tr[data-name="${CSS.escape(wanted)}"] input`).checked = true;
  select(wanted);
}
document.body.dataset.ready = 'true';

window.playground = { get last() { return state.last; } };
