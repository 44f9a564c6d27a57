// Shared by every page: the TensorFlow.js global, the backend switch, step timings, API errors.
// tf.min.js (a classic script, loaded first by each page) defines the global `tf`; the wasm
// backend script adds tf.wasm. Both come from this server's /vendor/, never from a CDN.

export const tf = globalThis.tf;
if (!tf) {
  document.body.insertAdjacentHTML('afterbegin',
    '<p class="error">TensorFlow.js did not load from /vendor/tf.min.js: run `make setup`.</p>');
  throw new Error('tf is not defined');
}

const BACKEND_KEY = 'edgelearn.backend';
let wasmPathsSet = false;

export const $ = (selector, root = document) => root.querySelector(selector);

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// Switch TF.js to `name` ('webgl', 'cpu' or 'wasm'); returns the backend actually active.
export async function useBackend(name) {
  // The .wasm files sit beside tf.min.js. TF.js accepts the path only before the backend's
  // first initialisation, so set it once.
  if (name === 'wasm' && !wasmPathsSet) {
    tf.wasm.setWasmPaths('/vendor/');
    wasmPathsSet = true;
  }
  let ok = false;
  try {
    ok = await tf.setBackend(name);
  } catch (error) {
    console.warn(`backend ${name} failed`, error);
  }
  if (!ok) await tf.setBackend('cpu');
  await tf.ready();
  const active = tf.getBackend();
  localStorage.setItem(BACKEND_KEY, active);
  for (const badge of document.querySelectorAll('.backend-active')) badge.textContent = active;
  return active;
}

// Wire the page's backend <select>: the choice comes from ?backend=, then the last one used.
export async function setupBackend(select, onChange = () => {}) {
  const wanted = new URLSearchParams(location.search).get('backend')
    || localStorage.getItem(BACKEND_KEY) || 'webgl';
  select.value = wanted;
  const active = await timed(`backend ${wanted}`, () => useBackend(wanted));
  select.value = active;
  select.addEventListener('change', async () => {
    const now = await timed(`backend ${select.value}`, () => useBackend(select.value));
    select.value = now;
    onChange(now);
  });
  onChange(active);
  return active;
}

// Run `fn`, log how long it took in the page's timings list, and return its result.
export async function timed(label, fn) {
  const start = performance.now();
  try {
    return await fn();
  } finally {
    logTiming(label, performance.now() - start);
  }
}

export function logTiming(label, ms) {
  const list = $('#timings');
  if (!list) return;
  const text = ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`;
  list.prepend(el('li', {}, el('span', {}, label), el('span', { class: 'ms' }, text)));
  while (list.children.length > 40) list.lastChild.remove();
}

// Page-level status line; `state` lands in data-state so tests can wait for it.
export function setStatus(node, text, state = 'busy') {
  node.textContent = text;
  node.dataset.state = state;
  node.classList.toggle('error', state === 'error');
}

// The server answers errors as {"detail": ...}: turn one into a readable message.
export async function errorMessage(response) {
  try {
    const body = await response.json();
    const detail = body.detail;
    if (typeof detail === 'string') return `${response.status}: ${detail}`;
    if (detail && detail.message) return `${response.status}: ${detail.message}`;
    return `${response.status}: ${JSON.stringify(detail)}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

export async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(await errorMessage(response));
  return response.json();
}

// Save a LayersModel to the server exactly as tf.io.http sends it (multipart model.json +
// model.weights.bin), keeping the server's error message when it refuses (409, 413, 422).
export async function saveToServer(model, name, overwrite = false) {
  let failure = null;
  const url = `/api/models/${encodeURIComponent(name)}${overwrite ? '?overwrite=true' : ''}`;
  const handler = tf.io.http(url, {
    fetchFunc: async (input, init) => {
      const response = await fetch(input, init);
      if (!response.ok) failure = await errorMessage(response.clone());
      return response;
    },
  });
  try {
    return await model.save(handler);
  } catch (error) {
    throw new Error(failure || error.message);
  }
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 2 ** 20) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 2 ** 20).toFixed(2)} MiB`;
}

export const shapeText = (shape) => `[${shape.map((d) => (d === null ? 'null' : d)).join(', ')}]`;

// Horizontal probability bars: rows of [label, value in 0..1].
export function renderBars(container, rows) {
  container.replaceChildren(...rows.map(([label, value], i) => {
    const best = value === Math.max(...rows.map((r) => r[1]));
    return el('div', { class: `bar${best ? ' best' : ''}`, 'data-index': String(i) },
      el('span', { class: 'bar-label' }, String(label)),
      el('span', { class: 'bar-track' },
        el('span', { class: 'bar-fill', style: `width:${(100 * value).toFixed(1)}%` })),
      el('span', { class: 'bar-value' }, `${(100 * value).toFixed(1)}%`));
  }));
}
