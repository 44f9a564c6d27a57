// k-nearest neighbours on feature vectors, by cosine similarity: what TF.js's knn-classifier
// does, in a few lines. Confidence of a label = its share of the k nearest examples' votes.
import { tf } from './common.js';

export class KNNClassifier {
  constructor() {
    this.rows = [];     // L2-normalised examples, each a [1, d] tensor (kept)
    this.labels = [];   // label index of each example
    this.matrix = null; // rows stacked, rebuilt lazily after additions
  }

  get size() { return this.rows.length; }

  add(features, label) {
    this.rows.push(tf.keep(tf.tidy(() => normalise(features))));
    this.labels.push(label);
    this.matrix?.dispose();
    this.matrix = null;
  }

  // features: [1, d]; returns {label, confidences: array over numLabels}.
  async predict(features, k, numLabels) {
    if (!this.rows.length) throw new Error('add examples first');
    if (!this.matrix) this.matrix = tf.keep(tf.concat(this.rows, 0));
    const kk = Math.min(k, this.rows.length);
    const top = tf.tidy(() => {
      const similarity = tf.matMul(this.matrix, normalise(features), false, true).reshape([-1]);
      return tf.topk(similarity, kk).indices;
    });
    const nearest = await top.data();
    top.dispose();
    const votes = new Array(numLabels).fill(0);
    for (const index of nearest) votes[this.labels[index]] += 1;
    const confidences = votes.map((v) => v / kk);
    return { label: confidences.indexOf(Math.max(...confidences)), confidences };
  }

  clear() {
    tf.dispose(this.rows);
    this.matrix?.dispose();
    this.rows = [];
    this.labels = [];
    this.matrix = null;
  }
}

function normalise(x) {
  return tf.div(x, tf.norm(x, 'euclidean', -1, true).add(1e-12));
}
