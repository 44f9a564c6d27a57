"""The real pre-trained MobileNetV2 that npm ``nsfwjs@4.4.0`` ships, as a TF.js layers model.

nsfwjs wraps each model's ``model.json`` and weight shard in JavaScript modules
(``dist/models/mobilenet_v2/model.min.js`` and ``group1-shard1of1.min.js``): requiring them in
node gives the JSON object and a base64 string of the weights. :func:`extract_model` does that
once and caches an ordinary layers-model folder under ``~/.cache/edgelearn/models``, which
:func:`edgelearn.load_model` reads.

The network is a Keras 2.2.4 MobileNetV2 (alpha 1.0, 224x224x3, uint8-quantized weights) whose
ImageNet-initialised backbone was fine-tuned by the nsfwjs authors to 5 classes: drawing, hentai,
neutral, porn, sexy. It is not an ImageNet classifier.

Example:
    >>> import edgelearn as el
    >>> from edgelearn.applications import nsfwjs
    >>> model = el.load_model(nsfwjs.extract_model())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import tempfile

from edgelearn.home import cache_dir
from edgelearn.utils.files import find_node_package, node_package_version

PACKAGE, VERSION = "nsfwjs", "4.4.0"
CLASSES = ("Drawing", "Hentai", "Neutral", "Porn", "Sexy")
MODELS = ("mobilenet_v2", "mobilenet_v2_mid", "inception_v3")

# Run by node: require the JS-wrapped artifacts and write a plain model folder.
_EXTRACT_JS = r"""
const fs = require('fs'), path = require('path');
const [source, target] = process.argv.slice(1);
const topology = require(path.join(source, 'model.min.js'));
// Each manifest path (e.g. "group1-shard1of1") is wrapped as "<path>.min.js"; the weights go to
// files named exactly as the manifest says, so the folder is an ordinary layers model.
for (const group of topology.weightsManifest) {
  for (const shard of group.paths) {
    if (!/^[\w.-]+$/.test(shard)) throw new Error(`unexpected weight path ${shard}`);
    const wrapped = path.join(source, shard.replace(/\.bin$/, '') + '.min.js');
    fs.writeFileSync(path.join(target, shard), Buffer.from(require(wrapped), 'base64'));
  }
}
fs.writeFileSync(path.join(target, 'model.json'), JSON.stringify({
  format: topology.format || 'layers-model', generatedBy: topology.generatedBy || null,
  convertedBy: topology.convertedBy || null, modelTopology: topology.modelTopology,
  weightsManifest: topology.weightsManifest}));
"""


def extract_model(name: str = "mobilenet_v2", node: str = "node") -> pathlib.Path:
    """Extract one of nsfwjs' models into the cache (once) and return the folder.

    Needs node and ``node_modules/nsfwjs`` (``npm ci`` in the edgelearn repository installs it).
    """
    if name not in MODELS:
        raise ValueError(f"nsfwjs ships the models {', '.join(MODELS)}. Received: name={name!r}")
    target = cache_dir("models", f"{PACKAGE}-{VERSION}", name)
    if (target / "model.json").is_file():
        return target
    package = find_node_package(PACKAGE)
    if package is None:
        raise FileNotFoundError(
            f"npm package {PACKAGE}@{VERSION} not found: run `npm ci` in the edgelearn repository "
            f"(or `npm install {PACKAGE}@{VERSION}`)"
        )
    version = node_package_version(package)
    if version != VERSION:
        raise RuntimeError(f"{package} is {PACKAGE}@{version}; edgelearn expects {VERSION}")
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        subprocess.run(
            [node, "-e", _EXTRACT_JS, str(package / "dist" / "models" / name), str(staging)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        json.loads((staging / "model.json").read_text())  # fail here, not at load time
        target.rmdir()  # cache_dir created it empty
        staging.rename(target)
    except FileNotFoundError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise FileNotFoundError(f"node is needed to unpack {PACKAGE}'s models: {error}") from None
    except subprocess.CalledProcessError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(
            f"unpacking {PACKAGE}/{name} failed: {error.stderr.decode()[-500:]}"
        ) from None
    return target
