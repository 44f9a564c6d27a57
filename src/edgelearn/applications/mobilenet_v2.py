"""MobileNetV2, as ``keras.applications.MobileNetV2`` builds it, with pre-trained weights.

The graph, layer names and hyper-parameters are Keras 3's (``keras/src/applications/
mobilenet_v2.py``): ``Conv1`` (3x3, stride 2, 'same'), ``bn_Conv1``, ``Conv1_relu``, then 17
inverted residual blocks (``expanded_conv_*``, ``block_1_*`` ... ``block_16_*``), ``Conv_1``,
``Conv_1_bn``, ``out_relu``, and for ``include_top`` a global average pooling and the
``predictions`` Dense layer. Keras 2.2.4, which wrote the nsfwjs model, had a ``Conv1_pad``
ZeroPadding2D before a 'valid' ``Conv1``; it holds no weights and pads exactly as 'same' does, so
weights map by layer name between the two.

Weights (the ``weights`` argument):

- ``"imagenet"``: the official Keras applications file for that alpha, input size and top,
  downloaded once into ``~/.cache/edgelearn/models/keras-applications``; trained to classify the
  1,000 ImageNet classes. Feed it :func:`preprocess_input` (pixels scaled to [-1, 1]).
- ``"nsfwjs"``: the real MobileNetV2 that npm ``nsfwjs@4.4.0`` ships (alpha 1.0, backbone only:
  ``include_top=False``). Its authors started from ImageNet weights and fine-tuned the whole
  network to 5 classes (drawing, hentai, neutral, porn, sexy): a usable generic feature
  extractor, not an ImageNet classifier. nsfwjs feeds it pixels scaled to [0, 1]:
  ``preprocess_input(x, weights="nsfwjs")``.
- a path: any TF.js layers-model folder (or its ``model.json``), Keras ``.h5`` (model or
  weights-only), Keras 3 ``.weights.h5`` or ``.keras`` file; each layer of the new model that has
  weights takes those of the layer of the same name there, whose shapes must be identical
  (:func:`edgelearn.io.keras.load_weights` with ``by_name=True``).
- ``None``: random initialization.
- ``"auto"`` (default): ``"imagenet"`` when the file is cached or can be downloaded, else
  ``"nsfwjs"`` for ``include_top=False``. Which weights are used, and what they were trained
  for, is logged (logger ``edgelearn.applications``) and kept in ``model.pretrained_weights``.

Example:
    >>> import numpy as np
    >>> from edgelearn.applications import MobileNetV2
    >>> model = MobileNetV2((96, 96, 3), alpha=0.35, include_top=False, weights=None,
    ...                     pooling="avg")
    >>> model.predict(np.zeros((1, 96, 96, 3), np.float32), verbose=0).shape
    (1, 1280)
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
from typing import Any

import numpy as np

from edgelearn import layers
from edgelearn.home import cache_dir
from edgelearn.io import keras as keras_io
from edgelearn.io import load_model
from edgelearn.layers import InputLayer
from edgelearn.layers.graph import KerasTensor
from edgelearn.models import Model
from edgelearn.utils.files import (
    ChecksumError,
    DownloadError,
    atomic_write_bytes,
    download,
    sha256_file,
)

logger = logging.getLogger("edgelearn.applications")

BASE_WEIGHT_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_SIZES = (96, 128, 160, 192, 224)
MIN_SIZE = 32
WEIGHT_CHOICES = ("auto", "imagenet", "nsfwjs")

# keras/src/applications/imagenet_utils.py downloads this file with
# file_hash="c2c37ea517e94d9795004a39431a14cb", an MD5. Its SHA-256 below is that of the 35,363
# bytes whose MD5 is exactly Keras' value (rebuilt from a copy of the labels and checked).
CLASS_INDEX_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
)
CLASS_INDEX_SHA256 = "a1e7a966a1f601d39e4b43e119b3e7dd4a2ad3ea08cf69847cbaf021013767bc"
CLASS_INDEX_FILE = "imagenet_class_index.json"

# What each kind of weights was trained for, for the log line and the docs.
_TRAINED_FOR = {
    "imagenet": "ImageNet weights from keras.applications: trained to classify the 1,000 "
    "ImageNet classes; feed preprocess_input(x) (pixels in [-1, 1])",
    "nsfwjs": "the nsfwjs 4.4.0 MobileNetV2: ImageNet-initialised, then fine-tuned to 5 classes "
    "(drawing, hentai, neutral, porn, sexy); a generic feature extractor, not an ImageNet "
    "classifier; feed preprocess_input(x, weights='nsfwjs') (pixels in [0, 1])",
}
_class_index: dict[pathlib.Path, dict[str, list[str]]] = {}


# --------------------------------------------------------------------------- Keras' helpers
def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (at least ``min_value``), never more
    than 10% below ``v``: Keras' rule for MobileNetV2's channel counts.

    Example:
        >>> _make_divisible(32 * 0.35, 8), _make_divisible(1280 * 1.3, 8)
        (16, 1664)
    """
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def correct_pad(
    inputs: KerasTensor, kernel_size: int | tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The ZeroPadding2D before a stride-2 'valid' convolution that makes it pad like 'same'
    (``keras.applications.imagenet_utils.correct_pad``): one more row and column after than
    before on even sizes, as TensorFlow's 'same'; an unknown size is taken as even.

    Example:
        >>> import edgelearn as el
        >>> correct_pad(el.layers.Input((224, 224, 3)), 3)
        ((0, 1), (0, 1))
        >>> correct_pad(el.layers.Input((7, 7, 3)), 3)
        ((1, 1), (1, 1))
    """
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    height, width = inputs.shape[1:3]
    adjust = (1, 1) if height is None else (1 - height % 2, 1 - width % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return (correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1])


def preprocess_input(x: Any, *, weights: str = "imagenet") -> np.ndarray:
    """Scale images with pixels in [0, 255] for the given pre-trained weights; returns float32.

    ``"imagenet"`` (Keras' ``mobilenet_v2.preprocess_input``, mode "tf"): ``x / 127.5 - 1``, in
    [-1, 1]. ``"nsfwjs"``: ``x / 255``, in [0, 1], as nsfwjs feeds its model. The input is not
    modified.

    Example:
        >>> preprocess_input(np.array([0.0, 127.5, 255.0]))
        array([-1.,  0.,  1.], dtype=float32)
        >>> preprocess_input(np.array([0, 255], np.uint8), weights="nsfwjs")
        array([0., 1.], dtype=float32)
    """
    if weights not in ("imagenet", "nsfwjs"):
        raise ValueError(
            "preprocess_input expects weights 'imagenet' or 'nsfwjs'. "
            f"Received: weights={weights!r}"
        )
    array = np.asarray(x, dtype=np.float32)
    if weights == "nsfwjs":
        return array / np.float32(255)
    return array / np.float32(127.5) - np.float32(1)


def _load_class_index() -> dict[str, list[str]]:
    """ImageNet's ``{"0": ["n01440764", "tench"], ...}``, from the cache or downloaded into it."""
    path = cache_dir("models") / CLASS_INDEX_FILE
    if path in _class_index:
        return _class_index[path]
    if not (path.is_file() and sha256_file(path) == CLASS_INDEX_SHA256):
        try:
            download(CLASS_INDEX_URL, CLASS_INDEX_SHA256, path)
        except (OSError, ChecksumError) as error:
            raise DownloadError(
                f"decode_predictions needs ImageNet's class labels, the file {CLASS_INDEX_FILE} "
                f"({CLASS_INDEX_URL}, sha256 {CLASS_INDEX_SHA256}). It is not in the cache and "
                f"could not be downloaded ({error}); to work offline, copy it to {path}"
            ) from None
    with open(path, encoding="utf-8") as handle:
        _class_index[path] = json.load(handle)
    return _class_index[path]


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes of each row of ``preds`` (shape (samples, 1000)), as
    ``(wordnet_id, name, score)`` tuples, best first, like Keras' ``decode_predictions``.

    The labels come from Keras' ``imagenet_class_index.json``, downloaded (sha256-checked) into
    ``~/.cache/edgelearn/models`` on first use; offline, a :class:`DownloadError` says where to
    put the file.

    Example:
        >>> preds = np.zeros((1, 1000), np.float32); preds[0, 1] = 0.9
        >>> decode_predictions(preds, top=1)  # doctest: +SKIP
        [[('n01443537', 'goldfish', 0.9)]]
    """
    array = np.asarray(preds)
    if array.ndim != 2 or array.shape[1] != 1000:
        raise ValueError(
            "decode_predictions expects a batch of ImageNet predictions, a 2-D array of shape "
            f"(samples, 1000). Received: preds.shape={array.shape}"
        )
    if not isinstance(top, (int, np.integer)) or not 1 <= top <= 1000:
        raise ValueError(f"decode_predictions expects 1 <= top <= 1000. Received: top={top!r}")
    index = _load_class_index()
    results = []
    for row in array:
        # A stable sort on the negated scores keeps ties in class order.
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(*index[str(i)], float(row[i])) for i in best])
    return results


# --------------------------------------------------------------------------- argument checks
def _check_alpha(function: str, alpha: Any) -> float:
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float))
        or not (math.isfinite(alpha) and alpha > 0)
    ):
        raise ValueError(f"{function} expects alpha > 0. Received: alpha={alpha!r}")
    return float(alpha)


def _check_weights_argument(function: str, weights: Any, choices: tuple[str, ...]) -> Any:
    """``weights`` unchanged when it is None, one of ``choices`` or an existing path."""
    if weights is None or weights in choices:
        return weights
    if isinstance(weights, (str, os.PathLike)) and pathlib.Path(weights).exists():
        return weights
    names = ", ".join(repr(c) for c in choices)
    raise ValueError(
        f"{function} expects weights to be None (random initialization), {names} or the path "
        "of a TF.js layers-model folder, model.json, Keras .h5 or .keras file (none exists "
        f"there). Received: weights={weights!r}"
    )


def _check_head(function: str, include_top: bool, pooling: Any, classes: Any) -> None:
    if pooling not in (None, "avg", "max"):
        raise ValueError(
            f"{function} expects pooling None, 'avg' or 'max'. Received: pooling={pooling!r}"
        )
    if include_top and pooling is not None:
        raise ValueError(
            f"{function} applies pooling only to the backbone (include_top=False); with "
            f"include_top=True the top already pools. Received: pooling={pooling!r}"
        )
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes <= 0:
        raise ValueError(
            f"{function} expects a positive number of classes. Received: classes={classes!r}"
        )


def _check_pretrained_top(
    function: str, weights: Any, classes: int, classifier_activation: Any
) -> None:
    """Pre-trained ImageNet tops have 1,000 classes and give logits or softmax probabilities."""
    if weights not in ("imagenet", "auto"):
        return
    # "auto" takes the ImageNet top, so a new top (other classes) needs weights=None.
    if classes != 1000:
        raise ValueError(
            f"{function} with weights={weights!r} and include_top=True loads the ImageNet top, "
            "which predicts 1,000 classes (use weights=None to train a new top, or "
            f"include_top=False). Received: classes={classes}"
        )
    if classifier_activation not in (None, "softmax", "linear"):
        raise ValueError(
            f"{function} with weights={weights!r} and include_top=True allows "
            "classifier_activation None or 'softmax' only. "
            f"Received: classifier_activation={classifier_activation!r}"
        )


def _obtain_input_shape(
    function: str,
    input_shape: Any,
    input_tensor: KerasTensor | None,
    include_top: bool,
    pretrained: bool,
    imagenet_top: bool,
    sizes: tuple[int, ...],
) -> tuple[int | None, int | None, int]:
    """The (height, width, channels) to build, checked as Keras' ``obtain_input_shape`` does.

    ``pretrained``: the weights need 3 channels. ``imagenet_top``: the ImageNet top needs a
    square input of one of ``sizes`` (224 when ``input_shape`` is None).
    """
    if input_tensor is not None:
        if not isinstance(input_tensor, KerasTensor) or len(input_tensor.shape) != 4:
            raise ValueError(
                f"{function} expects input_tensor to be a 4-D symbolic tensor from "
                f"el.layers.Input or a layer call. Received: input_tensor={input_tensor!r}"
            )
        shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != shape:
            raise ValueError(
                f"{function} expects input_shape to match input_tensor's shape {shape}. "
                f"Received: input_shape={input_shape!r}"
            )
        input_shape = shape
    if input_shape is not None:
        valid = (
            isinstance(input_shape, (tuple, list))
            and len(input_shape) == 3
            and all(
                d is None
                or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0)
                for d in input_shape
            )
            and input_shape[2] is not None
        )
        if not valid:
            raise ValueError(
                f"{function} expects input_shape as (height, width, channels): positive ints, "
                f"height and width may be None. Received: input_shape={input_shape!r}"
            )
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
        if pretrained and input_shape[2] != 3:
            raise ValueError(
                f"{function} with pre-trained weights expects 3 input channels (RGB). "
                f"Received: input_shape={input_shape}"
            )
        if any(d is not None and d < MIN_SIZE for d in input_shape[:2]):
            raise ValueError(
                f"{function} expects inputs of at least {MIN_SIZE}x{MIN_SIZE}. "
                f"Received: input_shape={input_shape}"
            )
    if imagenet_top:
        rows = input_shape[0] if input_shape is not None else 224
        expected = (rows, rows, 3)
        if input_shape is not None and (input_shape != expected or rows not in sizes):
            raise ValueError(
                f"{function}'s pre-trained ImageNet top expects input_shape (size, size, 3) with "
                f"size in {sizes} (weights=None builds any size). "
                f"Received: input_shape={input_shape}"
            )
        return expected
    if input_shape is None:
        return (224, 224, 3) if include_top else (None, None, 3)
    if include_top and None in input_shape[:2]:
        raise ValueError(
            f"{function} with include_top=True expects a known height and width. "
            f"Received: input_shape={input_shape}"
        )
    return input_shape


def _source_inputs(tensor: KerasTensor) -> list[KerasTensor]:
    """The Input tensors that ``tensor`` is computed from (Keras' ``get_source_inputs``)."""
    found: list[KerasTensor] = []
    stack, seen = [tensor], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current.node.layer, InputLayer):
            found.append(current)
        else:
            stack.extend(current.node.input_tensors)
    return found


def _image_input(
    input_shape: tuple[int | None, ...], input_tensor: KerasTensor | None
) -> tuple[KerasTensor, Any]:
    """The tensor the network starts from, and the model's inputs."""
    if input_tensor is None:
        tensor = layers.Input(input_shape)
        return tensor, tensor
    sources = _source_inputs(input_tensor)
    return input_tensor, sources[0] if len(sources) == 1 else sources


# --------------------------------------------------------------------------- weights by name
def _fetch(url: str, dest: pathlib.Path, timeout: float = 10.0) -> pathlib.Path:
    """``dest`` if cached, else ``url`` downloaded there. Keras publishes no hash for its
    applications weights, so only the HDF5 signature is checked (an error page is refused). The
    files are tens of megabytes at most: read whole, then written atomically."""
    if dest.is_file():
        return dest
    import urllib.request  # only for downloads: it imports http, ssl and email

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
        if data.startswith(keras_io.HDF5_MAGIC):
            atomic_write_bytes(dest, data)
            return dest
    except OSError as error:  # urllib's URLError and timeouts are OSErrors too
        raise DownloadError(f"cannot download {url}: {error}") from None
    raise DownloadError(f"{url} did not send an HDF5 file")


def _load_weights_by_name(model: Model, path: str | os.PathLike[str]) -> None:
    """Give each layer of ``model`` that has weights those of the layer of the same name in the
    Keras file, or TF.js layers-model folder or model.json, at ``path``; every one must be there
    with identical shapes, or nothing is assigned."""
    location = pathlib.Path(path)
    if location.is_file() and location.suffix != ".json":
        keras_io.load_weights(model, location, by_name=True)
        return
    source = load_model(location)
    keras_io.set_weights_by_name(
        model, {layer.name: layer.get_weights() for layer in source.layers}, str(location)
    )


def _load_nsfwjs(model: Model) -> None:
    from edgelearn.applications import nsfwjs

    _load_weights_by_name(model, nsfwjs.extract_model("mobilenet_v2"))


def _log_weights(function: str, weights: Any, detail: str = "") -> None:
    if weights is None:
        logger.info("%s: random initialization (weights=None)", function)
    elif weights in _TRAINED_FOR:
        logger.info("%s weights: %s%s", function, _TRAINED_FOR[weights], detail)
    else:
        logger.info("%s weights: copied by layer name from %s", function, weights)


# --------------------------------------------------------------------------- the network
def _inverted_res_block(
    inputs: KerasTensor, expansion: int, stride: int, alpha: float, filters: int, block_id: int
) -> KerasTensor:
    in_channels = inputs.shape[-1]
    pointwise_filters = _make_divisible(int(filters * alpha), 8)
    x = inputs
    prefix = f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(
            expansion * in_channels, 1, padding="same", use_bias=False, name=f"{prefix}expand"
        )(x)
        x = layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name=f"{prefix}expand_BN")(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(correct_pad(x, 3), name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(
        3,
        strides=stride,
        use_bias=False,
        padding="same" if stride == 1 else "valid",
        name=f"{prefix}depthwise",
    )(x)
    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name=f"{prefix}depthwise_BN")(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(
        pointwise_filters, 1, padding="same", use_bias=False, name=f"{prefix}project"
    )(x)
    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name=f"{prefix}project_BN")(x)
    if in_channels == pointwise_filters and stride == 1:
        return layers.Add(name=f"{prefix}add")([inputs, x])
    return x


# (filters, stride, expansion) of blocks 0..16, as in the paper's Table 2.
_BLOCKS = (
    (16, 1, 1),
    (24, 2, 6),
    (24, 1, 6),
    (32, 2, 6),
    (32, 1, 6),
    (32, 1, 6),
    (64, 2, 6),
    (64, 1, 6),
    (64, 1, 6),
    (64, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (160, 2, 6),
    (160, 1, 6),
    (160, 1, 6),
    (320, 1, 6),
)


def _imagenet_file(alpha: float, rows: int, include_top: bool) -> pathlib.Path:
    name = (
        f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}"
        f"{'' if include_top else '_no_top'}.h5"
    )
    return _fetch(BASE_WEIGHT_PATH + name, cache_dir("models", "keras-applications") / name)


def MobileNetV2(
    input_shape: tuple[int | None, int | None, int] | None = None,
    alpha: float = 1.0,
    include_top: bool = True,
    weights: str | os.PathLike[str] | None = "auto",
    input_tensor: KerasTensor | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str | None = None,
) -> Model:
    """Build MobileNetV2 (Sandler et al. 2018) exactly as ``keras.applications.MobileNetV2``.

    Args:
        input_shape: (height, width, 3); height and width at least 32 (None with
            ``include_top=False`` for any size). Default (224, 224, 3), or (None, None, 3)
            without the top. The ImageNet top exists for square 96, 128, 160, 192 and 224.
        alpha: width multiplier; ImageNet weights exist for 0.35, 0.5, 0.75, 1.0, 1.3 and 1.4,
            nsfwjs weights for 1.0; any alpha > 0 with ``weights=None`` or a path.
        include_top: end with global average pooling and the ``predictions`` Dense layer.
        weights: "auto", "imagenet", "nsfwjs", a model path or None: see the module docs.
        input_tensor: a symbolic tensor to build on instead of a new Input.
        pooling: None (4-D feature maps), "avg" or "max" (2-D features), without the top only.
        classes: size of the top; 1000 with ImageNet weights.
        classifier_activation: the top's activation; None or "softmax" with ImageNet weights.
        name: the model's name; default ``mobilenetv2_{alpha:.2f}_{rows}`` as in Keras.

    Example:
        >>> model = MobileNetV2(weights=None)
        >>> len(model.layers), model.count_params(), model.output_shape
        (156, 3538984, (None, 1000))
    """
    function = "MobileNetV2"
    weights = _check_weights_argument(function, weights, WEIGHT_CHOICES)
    alpha = _check_alpha(function, alpha)
    _check_head(function, include_top, pooling, classes)
    if include_top:
        _check_pretrained_top(function, weights, classes, classifier_activation)
    if weights == "nsfwjs" and (include_top or alpha != 1.0):
        raise ValueError(
            "MobileNetV2 weights='nsfwjs' is the backbone of nsfwjs' alpha 1.0 model (its head "
            "is a 5-class NSFW classifier): use include_top=False and alpha=1.0. Received: "
            f"include_top={include_top}, alpha={alpha}"
        )
    if weights == "imagenet" and alpha not in IMAGENET_ALPHAS:
        raise ValueError(
            f"MobileNetV2 ImageNet weights exist for alpha in {IMAGENET_ALPHAS}. "
            f"Received: alpha={alpha}"
        )
    imagenet_top = include_top and weights in ("imagenet", "auto")
    shape = _obtain_input_shape(
        function,
        input_shape,
        input_tensor,
        include_top,
        pretrained=weights in WEIGHT_CHOICES,
        imagenet_top=imagenet_top,
        sizes=IMAGENET_SIZES,
    )
    rows = shape[0]
    # ImageNet backbones are size-independent: other sizes take the 224 file, as in Keras.
    weight_rows = rows if rows in IMAGENET_SIZES and rows == shape[1] else 224

    chosen, weights_path, reasons = weights, None, []
    if weights in ("imagenet", "auto") and (weights == "imagenet" or alpha in IMAGENET_ALPHAS):
        try:
            weights_path = _imagenet_file(alpha, weight_rows, include_top)
            chosen = "imagenet"
        except DownloadError as error:
            if weights == "imagenet" or include_top:
                raise DownloadError(
                    f"MobileNetV2 weights={weights!r}: the ImageNet weights are not cached and "
                    f"could not be downloaded ({error}). Use weights=None for random "
                    "initialization" + ("" if include_top else ", or 'nsfwjs'")
                ) from None
            reasons.append(str(error))
    elif weights == "auto":
        reasons.append(f"no ImageNet weights for alpha={alpha}")
    if chosen == "auto":
        if alpha != 1.0:
            raise ValueError(
                f"MobileNetV2 weights='auto' found no pre-trained weights ({'; '.join(reasons)}; "
                f"nsfwjs' are for alpha=1.0). Received: alpha={alpha}; use weights=None"
            )
        chosen = "nsfwjs"
        logger.warning(
            "MobileNetV2 weights='auto': ImageNet weights unavailable (%s); using nsfwjs' instead",
            reasons[0],
        )

    img_input, inputs = _image_input(shape, input_tensor)
    first_block_filters = _make_divisible(32 * alpha, 8)
    x = layers.Conv2D(
        first_block_filters, 3, strides=(2, 2), padding="same", use_bias=False, name="Conv1"
    )(img_input)
    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name="bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        x = _inverted_res_block(
            x, filters=filters, alpha=alpha, stride=stride, expansion=expansion, block_id=block_id
        )
    # The paper applies no alpha below 1 to the last convolution, only above.
    last_block_filters = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last_block_filters, 1, use_bias=False, name="Conv_1")(x)
    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name="Conv_1_bn")(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="global_max_pooling2d")(x)
    model_rows = weight_rows if chosen == "imagenet" else rows
    model = Model(inputs, x, name=name or f"mobilenetv2_{alpha:0.2f}_{model_rows}")

    if chosen == "imagenet":
        _load_weights_by_name(model, weights_path)
        _log_weights(function, chosen, f" ({weights_path.name})")
    elif chosen == "nsfwjs":
        try:
            _load_nsfwjs(model)
        except (OSError, RuntimeError) as error:
            if weights != "auto":
                raise
            raise RuntimeError(
                f"MobileNetV2 weights='auto' found no pre-trained weights: {reasons[0]}; and "
                f"nsfwjs' cannot be read ({error}). Use weights=None for random initialization"
            ) from None
        _log_weights(function, chosen)
    elif chosen is not None:
        _load_weights_by_name(model, chosen)
        _log_weights(function, str(chosen))
    else:
        _log_weights(function, None)
    model.pretrained_weights = None if chosen is None else str(chosen)
    return model


__all__ = [
    "CLASS_INDEX_SHA256",
    "CLASS_INDEX_URL",
    "IMAGENET_ALPHAS",
    "IMAGENET_SIZES",
    "DownloadError",
    "MobileNetV2",
    "correct_pad",
    "decode_predictions",
    "preprocess_input",
]
