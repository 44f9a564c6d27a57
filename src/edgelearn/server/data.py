"""What the playground serves besides user models: MNIST digits as compact binary, and the
MobileNetV2 feature extractor that the transfer-learning page builds on.

MNIST over the wire (``GET /api/data/mnist``), little-endian:

====== ======= ===========================================================
offset  type    meaning
====== ======= ===========================================================
0       4 bytes magic ``b"ELMN"``
4       uint32  ``n``: digits in this response
8       uint32  digits in the whole split (to page through it)
12      uint16  rows (28)
14      uint16  columns (28)
16      uint8   ``n * 28 * 28`` pixels, 0-255, row-major, white digit on black
16+784n uint8   ``n`` labels, 0-9
====== ======= ===========================================================

Example:
    >>> import numpy as np
    >>> blob = encode_mnist(np.zeros((2, 28, 28), np.uint8), np.array([3, 7], np.uint8), total=10)
    >>> len(blob), decode_mnist(blob)[1].tolist()
    (1586, [3, 7])
"""

from __future__ import annotations

import copy
import json
import logging
import pathlib
import shutil
import struct
import tempfile
import threading
from typing import Any

import numpy as np

import edgelearn as el
from edgelearn.io import tfjs
from edgelearn.models import model_from_config

logger = logging.getLogger("edgelearn.server")

MNIST_MAGIC = b"ELMN"
MNIST_HEADER = struct.Struct("<4sIIHH")
#: Most digits one request returns; the page asks for more in turn.
MNIST_MAX_LIMIT = 10_000


def encode_mnist(images: np.ndarray, labels: np.ndarray, total: int) -> bytes:
    """Header + pixels + labels, the body of ``GET /api/data/mnist``."""
    n, rows, cols = images.shape
    header = MNIST_HEADER.pack(MNIST_MAGIC, n, total, rows, cols)
    return (
        header
        + np.ascontiguousarray(images, np.uint8).tobytes()
        + labels.astype(np.uint8).tobytes()
    )


def decode_mnist(blob: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """The inverse of :func:`encode_mnist`: ``(images, labels, total)`` (what the page does)."""
    magic, n, total, rows, cols = MNIST_HEADER.unpack_from(blob)
    if magic != MNIST_MAGIC or len(blob) != MNIST_HEADER.size + n * rows * cols + n:
        raise ValueError("not an edgelearn MNIST blob")
    pixels = np.frombuffer(blob, np.uint8, n * rows * cols, MNIST_HEADER.size)
    labels = np.frombuffer(blob, np.uint8, n, MNIST_HEADER.size + n * rows * cols)
    return pixels.reshape(n, rows, cols), labels, total


class MnistSource:
    """``load_data`` once, on first use, then slices of it."""

    def __init__(self, source: str = "auto"):
        self.source = source
        self._data: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self._lock = threading.Lock()

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._data is None:
                (x_train, y_train), (x_test, y_test) = el.datasets.mnist.load_data(
                    source=self.source
                )
                self._data = {"train": (x_train, y_train), "test": (x_test, y_test)}
        return self._data[name]

    def blob(self, split: str, offset: int, limit: int) -> bytes:
        images, labels = self.split(split)
        stop = min(offset + limit, len(images))
        return encode_mnist(images[offset:stop], labels[offset:stop], total=len(images))


# --------------------------------------------------------------------------- feature extractors
#: Input sizes the MobileNetV2 backbone is offered at. The nsfwjs weights were trained at 224;
#: every one of these is even at each stride-2 stage, so the backbone's fixed ZeroPadding2D
#: amounts stay right and the same weights apply unchanged.
BASE_SIZES = (96, 128, 160, 224)
BASE_PREFIX = "mobilenet_v2_"
BASE_NAMES = tuple(f"{BASE_PREFIX}{size}" for size in BASE_SIZES)
_BACKBONE_END = "out_relu"  # the last backbone layer of Keras' MobileNetV2: 1280 channels


def base_size(name: str) -> int:
    """``"mobilenet_v2_224"`` -> 224; ValueError for anything else.

    Example:
        >>> base_size("mobilenet_v2_96")
        96
    """
    if name not in BASE_NAMES:
        raise ValueError(f"unknown base model {name!r}; available: {', '.join(BASE_NAMES)}")
    return int(name[len(BASE_PREFIX) :])


def _backbone_from_nsfwjs(size: int) -> el.Model:
    """MobileNetV2 without its top, global average pooling, ``size`` x ``size`` x 3 input, with
    the real weights of the nsfwjs MobileNetV2 (uint8-quantized in the package, float32 here).

    The nsfwjs model is Keras' MobileNetV2 up to ``out_relu``, then its own 5-class head: keep
    the layers up to ``out_relu``, put GlobalAveragePooling2D on top (as Keras'
    ``include_top=False, pooling="avg"`` does), change the input size, and copy the weights
    layer by layer.
    """
    from edgelearn.applications import nsfwjs

    folder = nsfwjs.extract_model("mobilenet_v2")
    full = tfjs.load(folder)
    content = json.loads((folder / tfjs.MODEL_FILE).read_bytes())
    topology = copy.deepcopy(tfjs.topology_model_config(content, str(folder)))
    config = topology["config"]
    names = [layer["name"] for layer in config["layers"]]
    config["layers"] = config["layers"][: names.index(_BACKBONE_END) + 1]
    config["layers"][0]["config"]["batch_input_shape"] = [None, size, size, 3]
    config["layers"].append(
        {
            "name": "global_average_pooling2d",
            "class_name": "GlobalAveragePooling2D",
            "config": {"name": "global_average_pooling2d", "data_format": "channels_last"},
            "inbound_nodes": [[[_BACKBONE_END, 0, 0, {}]]],
        }
    )
    config["output_layers"] = [["global_average_pooling2d", 0, 0]]
    config["name"] = f"{BASE_PREFIX}{size}"
    backbone = model_from_config(topology)
    weights = {layer.name: layer for layer in full.layers}
    for layer in backbone.layers:
        if layer.weights:
            layer.set_weights(weights[layer.name].get_weights())
    return backbone


def build_base(size: int) -> el.Model:
    """The feature extractor: ``applications.MobileNetV2`` when edgelearn has it, else the
    same network assembled from the nsfwjs model (see :func:`_backbone_from_nsfwjs`).

    Input: RGB scaled to [0, 1] (what nsfwjs feeds its model); output: 1280 features.
    """
    from edgelearn import applications

    factory = getattr(applications, "MobileNetV2", None)
    if factory is not None:
        try:
            return factory(
                include_top=False, pooling="avg", weights="nsfwjs", input_shape=(size, size, 3)
            )
        except (TypeError, ValueError, NotImplementedError) as error:
            logger.info("applications.MobileNetV2 cannot build the base (%s); using nsfwjs", error)
    return _backbone_from_nsfwjs(size)


class BaseModels:
    """Feature extractors saved by edgelearn as TF.js layers models into ``cache`` on first use."""

    def __init__(self, cache: pathlib.Path):
        self.cache = cache
        self._lock = threading.Lock()

    def folder(self, name: str) -> pathlib.Path:
        """The saved model's folder, building and saving it the first time."""
        size = base_size(name)
        target = self.cache / name
        if (target / tfjs.MODEL_FILE).is_file():
            return target
        with self._lock:
            if not (target / tfjs.MODEL_FILE).is_file():
                self.cache.mkdir(parents=True, exist_ok=True)
                logger.info("building the %s feature extractor into %s", name, target)
                staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.cache))
                try:
                    build_base(size).save(staging / "model")
                    (staging / "model").rename(target)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
        return target

    def describe(self, name: str) -> dict[str, Any]:
        size = base_size(name)
        return {
            "name": name,
            "input_shape": [None, size, size, 3],
            "output_shape": [None, 1280],
            "cached": (self.cache / name / tfjs.MODEL_FILE).is_file(),
            "url": f"/api/base/{name}/model.json",
        }
