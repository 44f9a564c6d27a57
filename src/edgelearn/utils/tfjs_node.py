"""Run a saved model in TensorFlow.js itself, with node, to compare it with edgelearn.

This needs node and the npm package ``@tensorflow/tfjs`` (``npm ci`` in the edgelearn repository
installs it); the pure-JS cpu backend computes, so results are what a browser on the cpu backend
gets. Loading goes through ``tf.loadLayersModel`` with an IO handler that reads the folder, as
TF.js's own file and http handlers do.

Example:
    >>> import numpy as np, edgelearn as el
    >>> from edgelearn.utils import tfjs_node
    >>> model = el.Sequential([el.layers.Input((3,)), el.layers.Dense(2)])
    >>> model.save("/tmp/edgelearn-doctest-model")
    >>> x = np.ones((1, 3), dtype=np.float32)
    >>> bool(np.allclose(  # doctest: +SKIP
    ...     tfjs_node.predict("/tmp/edgelearn-doctest-model", x), model.predict(x), atol=1e-5
    ... ))
    True
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import tempfile

import numpy as np

from edgelearn.utils.files import find_node_package

# argv: model folder, input file (raw little-endian float32), shape as JSON, output file.
_PREDICT_JS = r"""
const fs = require('fs'), path = require('path');
const tf = require('@tensorflow/tfjs');
const [folder, inputFile, shapeJson, outputFile] = process.argv.slice(1);
const handler = {load: async () => {
  const content = JSON.parse(fs.readFileSync(path.join(folder, 'model.json')));
  const specs = [], buffers = [];
  for (const group of content.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(folder, p)));
  }
  const data = Buffer.concat(buffers);
  return {modelTopology: content.modelTopology, weightSpecs: specs,
          weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length)};
}};
(async () => {
  await tf.setBackend('cpu');
  const model = await tf.loadLayersModel(handler);
  const raw = fs.readFileSync(inputFile);
  const x = tf.tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4),
                      JSON.parse(shapeJson));
  const y = model.predict(x);
  fs.writeFileSync(outputFile, Buffer.from((await y.data()).buffer));
  process.stdout.write(JSON.stringify({shape: y.shape, backend: tf.getBackend()}));
})().catch(error => { console.error(error.stack || String(error)); process.exit(1); });
"""


def available() -> bool:
    """Whether node and @tensorflow/tfjs can be found."""
    return find_node_package("@tensorflow/tfjs") is not None


def predict(
    model_dir: str | os.PathLike[str], x: np.ndarray, node: str = "node", timeout: float = 300.0
) -> np.ndarray:
    """``model.predict(x)`` computed by TensorFlow.js on a saved layers-model folder."""
    package = find_node_package("@tensorflow/tfjs")
    if package is None:
        raise FileNotFoundError(
            "npm package @tensorflow/tfjs not found: run `npm ci` in the edgelearn repository"
        )
    project = package.parent.parent.parent  # .../node_modules/@tensorflow/tfjs -> project root
    array = np.ascontiguousarray(x, dtype="<f4")
    with tempfile.TemporaryDirectory() as work:
        inputs, outputs = pathlib.Path(work, "x.bin"), pathlib.Path(work, "y.bin")
        inputs.write_bytes(array.tobytes())
        try:
            result = subprocess.run(
                [
                    node,
                    "-e",
                    _PREDICT_JS,
                    str(pathlib.Path(model_dir).resolve()),
                    str(inputs),
                    json.dumps(list(array.shape)),
                    str(outputs),
                ],
                cwd=project,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
            )
        except FileNotFoundError:
            raise FileNotFoundError(f"node ({node}) is needed to run TensorFlow.js") from None
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"TensorFlow.js failed: {error.stderr[-800:]}") from None
        shape = json.loads(result.stdout)["shape"]
        return np.frombuffer(outputs.read_bytes(), dtype="<f4").reshape(shape).copy()
