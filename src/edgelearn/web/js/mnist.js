// MNIST digits from the server's /api/data/mnist, decoded from its small binary format:
//   "ELMN" | uint32 n | uint32 total | uint16 rows | uint16 cols | n*rows*cols uint8 pixels |
//   n uint8 labels   (little-endian; see docs/playground.md)
import { errorMessage, tf } from './common.js';

const HEADER_BYTES = 16;
const MAX_PER_REQUEST = 10000;

export async function fetchMnistPage(split, offset, limit) {
  const response = await fetch(`/api/data/mnist?split=${split}&offset=${offset}&limit=${limit}`);
  if (!response.ok) throw new Error(await errorMessage(response));
  const buffer = await response.arrayBuffer();
  const view = new DataView(buffer);
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
  if (magic !== 'ELMN') throw new Error('not an MNIST blob from this server');
  const n = view.getUint32(4, true);
  const total = view.getUint32(8, true);
  const rows = view.getUint16(12, true);
  const cols = view.getUint16(14, true);
  const images = new Uint8Array(buffer, HEADER_BYTES, n * rows * cols);
  const labels = new Uint8Array(buffer, HEADER_BYTES + n * rows * cols, n);
  return { n, total, rows, cols, images, labels };
}

// Up to `count` digits of a split (all of them for count <= 0), in requests of 10,000.
export async function fetchMnist(split, count) {
  const first = await fetchMnistPage(split, 0, Math.min(count > 0 ? count : MAX_PER_REQUEST,
    MAX_PER_REQUEST));
  const wanted = count > 0 ? Math.min(count, first.total) : first.total;
  const pages = [first];
  let have = first.n;
  while (have < wanted) {
    const page = await fetchMnistPage(split, have, Math.min(MAX_PER_REQUEST, wanted - have));
    pages.push(page);
    have += page.n;
  }
  const pixels = first.rows * first.cols;
  const images = new Uint8Array(have * pixels);
  const labels = new Uint8Array(have);
  let at = 0;
  for (const page of pages) {
    images.set(page.images, at * pixels);
    labels.set(page.labels, at);
    at += page.n;
  }
  return { n: have, total: first.total, rows: first.rows, cols: first.cols, images, labels };
}

// Pixels scaled to [0, 1] as (n, 28, 28, 1), labels one-hot (n, 10).
export function toTensors(data) {
  return tf.tidy(() => {
    const xs = tf.tensor4d(Float32Array.from(data.images, (v) => v / 255),
      [data.n, data.rows, data.cols, 1]);
    const ys = tf.oneHot(tf.tensor1d(data.labels, 'int32'), 10).toFloat();
    return { xs, ys };
  });
}
