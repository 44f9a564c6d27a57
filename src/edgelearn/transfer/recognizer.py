"""Transfer learning on a base model: a new classifier head for your own labels.

:class:`TransferRecognizer` follows the transfer recognizer of TF.js's speech-commands
(``createTransfer(name)``, ``collectExample(word)``, ``countExamples()``, ``removeExample(uid)``,
``train({epochs, validationSplit, callback, fineTuningEpochs})``, ``serializeExamples()`` and
``loadExamples()``; ``src/browser_fft_recognizer.ts`` and ``src/dataset.ts``), for image bases
such as MobileNetV2 with ``include_top=False, pooling="avg"``:

- examples are collected per label and get an id; the labels, sorted as JavaScript sorts strings
  (by UTF-16 code units), are the recognizer's outputs, none of the base's own classes;
- ``train`` needs examples of at least two labels. It first trains only the head (Dense layers
  ending in a softmax over the labels) on the base's embeddings of the examples, which are
  computed once, in batches, and cached; with ``fine_tuning_epochs`` it then unfreezes the last
  ``fine_tuning_layers`` weighted layers of the base and trains base and head together on the
  images, as TF.js unfreezes a layer of its base for fine-tuning;
- a validation split is class-balanced (:func:`edgelearn.data.train_test_split`), as TF.js's
  ``balancedTrainValSplit``;
- ``save`` writes one TF.js layers model, base and head together, that ``tf.loadLayersModel`` and
  :func:`edgelearn.load_model` read, with the labels in ``model.json``'s ``userDefinedMetadata``
  (``{"modelName", "wordLabels"}``, as speech-commands names them).

The base itself is never changed: the recognizer rebuilds its graph from its config and copies
its weights, and trains (and saves) that copy.

Images of another size are resized (bilinear with half-pixel centres, as ``tf.image.resize``:
:func:`edgelearn.applications.images.resize`), grayscale images are repeated to RGB for an RGB
base and RGB images become grayscale (with the weights of ``tf.image.rgbToGrayscale``) for a
grayscale one; pixel values are passed on unchanged, so scale them as the base expects. The
labels ``_unknown_`` and ``_background_noise_``, which speech-commands' models reserve, and the
empty string are refused.

Serialized examples (``serialize_examples`` / ``load_examples``), little-endian::

    b"ELTREX01"              8 bytes: format and version
    uint32                   byte length of the manifest
    manifest (UTF-8 JSON)    [{"id": str, "label": str, "shape": [int, ...]}, ...]
    float32 data             each example's values in row-major order, in manifest order

The examples are in the order of their labels, then in the order they were collected, as TF.js
serializes its dataset; loading and serializing again gives the same bytes.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> from edgelearn.transfer import TransferRecognizer
    >>> inputs = el.layers.Input((8, 8, 1))
    >>> features = el.layers.GlobalAveragePooling2D()(el.layers.Conv2D(4, 3)(inputs))
    >>> recognizer = TransferRecognizer(el.Model(inputs, features), "shapes")
    >>> rng = np.random.default_rng(0)
    >>> ids = recognizer.collect_example("dark", rng.random((5, 8, 8, 1)) * 0.1)
    >>> ids = recognizer.collect_example("light", 0.9 + rng.random((5, 16, 16, 1)) * 0.1)
    >>> recognizer.count_examples()
    {'dark': 5, 'light': 5}
    >>> history = recognizer.train(epochs=2)
    >>> labels, probabilities = recognizer.predict(rng.random((2, 8, 8, 1)))
    >>> recognizer.labels_, probabilities.shape
    (['dark', 'light'], (2, 2))
"""

from __future__ import annotations

import json
import math
import numbers
import os
import struct
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

import edgelearn
from edgelearn import callbacks as callbacks_module
from edgelearn import layers, metrics, optimizers
from edgelearn import random as el_random
from edgelearn.applications.images import resize
from edgelearn.data import train_test_split
from edgelearn.io import tfjs
from edgelearn.models import Functional, Model, Sequential

__all__ = [
    "RESERVED_LABELS",
    "ExamplesFormatError",
    "TransferRecognizer",
    "conform_images",
    "load_labels",
]

#: Labels speech-commands' models reserve; a recognizer refuses them (and the empty string).
RESERVED_LABELS = ("_unknown_", "_background_noise_")
MAGIC = b"ELTREX01"
_HEADER = struct.Struct("<8sI")
# tf.image.rgbToGrayscale's weights (ITU-R BT.601 luma).
_GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)


class ExamplesFormatError(ValueError):
    """Serialized examples that cannot be loaded: says what is wrong."""


# --------------------------------------------------------------------------- images
def conform_images(
    x: Any, input_shape: tuple[int | None, ...], argument: str = "x"
) -> tuple[np.ndarray, bool]:
    """Fit one input or a batch to a model's ``input_shape``; returns (float32 batch, single).

    For an image input (batch, height, width, channels): one image is (h, w) or (h, w, c), a
    batch is (n, h, w, c); other sizes are resized (bilinear, with
    :func:`edgelearn.applications.images.resize`, i.e. ``tf.image.resize``), 1 channel is
    repeated to 3 and 3 channels become 1 (``tf.image.rgbToGrayscale``'s weights) as the model
    needs. Other inputs must have the model's shape exactly.

    Example:
        >>> import numpy as np
        >>> batch, single = conform_images(np.ones((10, 12)), (None, 5, 5, 3))
        >>> batch.shape, single
        ((1, 5, 5, 3), True)
    """
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{argument} must be a numeric array, received dtype {array.dtype}")
    wanted = tuple(input_shape[1:])
    if len(wanted) != 3:
        if array.shape == wanted:
            array, single = array[None], True
        elif array.shape[1:] == wanted and len(array):
            single = False
        else:
            raise ValueError(
                f"{argument} must be one input of shape {wanted} or a non-empty batch "
                f"(n, {', '.join(map(str, wanted))}), received an array of shape {array.shape}"
            )
        return _finite(array.astype(np.float32), argument), single
    height, width, channels = wanted
    single = array.ndim in (2, 3)
    if array.ndim == 2:
        array = array[None, :, :, None]
    elif array.ndim == 3:
        array = array[None]
    elif array.ndim != 4:
        raise ValueError(
            f"{argument} must be one image (height, width) or (height, width, channels), or a "
            f"batch (n, height, width, channels); received an array of shape {array.shape}"
        )
    if 0 in array.shape:
        raise ValueError(f"{argument} is empty: received an array of shape {array.shape}")
    array = _finite(array.astype(np.float32), argument)
    have = array.shape[-1]
    if have == 3 and channels == 1:
        array = (array @ _GRAY_WEIGHTS)[..., None]
    elif have != channels and not (have == 1 and channels == 3):
        raise ValueError(
            f"{argument} has {have} channels, but the base takes {channels}; only 1-channel "
            "(grayscale) and 3-channel (RGB) images are converted"
            + (" (drop an alpha channel with x[..., :3])" if have == 4 else "")
            + (
                "; for a batch of grayscale images add a channel axis, x[..., None]"
                if single and have not in (1, 3)
                else ""
            )
        )
    if array.shape[1:3] != (height, width):
        array = resize(array, (height, width))
    if have == 1 and channels == 3:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array), single


def _finite(array: np.ndarray, argument: str) -> np.ndarray:
    if not np.isfinite(array).all():
        raise ValueError(f"{argument} holds NaN or infinite values")
    return array


def check_base(base: Any, owner: str) -> None:
    """Raise unless ``base`` is a model with one input and one output, both of fixed size."""
    if not isinstance(base, Model):
        raise TypeError(f"{owner} expects base to be an edgelearn Model, received {base!r}")
    if len(base.input_shapes) != 1 or len(base.output_shapes) != 1:
        raise ValueError(
            f"{owner} expects a base with one input and one output; '{base.name}' has "
            f"{len(base.input_shapes)} inputs and {len(base.output_shapes)} outputs"
        )
    if None in base.input_shape[1:] or None in base.output_shape[1:]:
        raise ValueError(
            f"{owner} expects a base of fixed input and output size; '{base.name}' takes "
            f"{base.input_shape} and gives {base.output_shape}. Build it with a fixed input "
            "shape, e.g. input_shape=(224, 224, 3)"
        )


def _check_label(label: Any, argument: str = "label") -> str:
    if not isinstance(label, str):
        raise TypeError(f"{argument} must be a str, received {type(label).__name__} {label!r}")
    if not label or label in RESERVED_LABELS:
        raise ValueError(
            f"{argument} must be a non-empty string other than the reserved labels "
            f"{list(RESERVED_LABELS)}, received {label!r}"
        )
    return label


def _sorted_labels(labels: Any) -> list[str]:
    """Unique labels in JavaScript's default sort order (UTF-16 code units)."""
    return sorted(set(labels), key=lambda label: label.encode("utf-16-be"))


def _copy_model(base: Model) -> Functional:
    """A functional copy of ``base``: the same graph from its config, with its weights."""
    if isinstance(base, Sequential):
        copy = Sequential.from_config(base.get_config())
        inputs = layers.Input(batch_shape=base.input_shape)
        outputs = inputs
        for layer in copy.layers:
            outputs = layer(outputs)
        copy = Functional(inputs, outputs, name=base.name)
    else:
        copy = Functional.from_config(base.get_config())
    copies = {layer.name: layer for layer in copy.layers}
    for layer in base.layers:
        copies[layer.name].set_weights(layer.get_weights())
    return copy


def _merge_histories(
    first: callbacks_module.History, second: callbacks_module.History
) -> callbacks_module.History:
    merged = callbacks_module.History()
    merged.set_model(second.model)
    merged.set_params(second.params)
    merged.epoch = first.epoch + second.epoch
    merged.history = {
        key: first.history.get(key, []) + second.history.get(key, [])
        for key in dict.fromkeys([*first.history, *second.history])
    }
    return merged


def _non_negative_int(value: Any, argument: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(
            f"{argument} must be a non-negative integer, received {argument}={value!r}"
        )
    return int(value)


class TransferRecognizer:
    """A classifier for your own labels on top of a base model's embeddings.

    Args:
        base: a model with one image input of fixed size and one embedding output, e.g.
            ``MobileNetV2(include_top=False, pooling="avg")``; it is copied, never changed.
        name: a non-empty name, used for the saved model.
        head_units: sizes of hidden ReLU Dense layers between the embedding and the softmax.
        dropout: rate of a Dropout layer before each Dense layer of the head (0: none).
        optimizer: name of the optimizer ('adam', 'sgd', 'rmsprop' or 'adagrad').
        learning_rate: the optimizer's learning rate.

    Attributes:
        labels_: the labels the trained model outputs, in the order of its probabilities.
        model_: the trained model, base copy and head in one (what :meth:`save` writes).

    Example:
        >>> import edgelearn as el
        >>> inputs = el.layers.Input((4, 4, 3))
        >>> base = el.Model(inputs, el.layers.GlobalAveragePooling2D()(inputs))
        >>> TransferRecognizer(base, "colours", head_units=(8,)).input_shape
        (None, 4, 4, 3)
    """

    def __init__(
        self,
        base: Model,
        name: str,
        head_units: Sequence[int] = (),
        dropout: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
    ):
        self.base = base
        self.name = name
        self.head_units = head_units
        self.dropout = dropout
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        check_base(base, "TransferRecognizer")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, received name={name!r}")
        if (
            not isinstance(head_units, Sequence)
            or isinstance(head_units, str)
            or not all(
                isinstance(u, numbers.Integral) and not isinstance(u, bool) and u > 0
                for u in head_units
            )
        ):
            raise ValueError(
                "head_units must be a sequence of positive ints, received "
                f"head_units={head_units!r}"
            )
        if not (isinstance(dropout, numbers.Real) and 0 <= dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), received dropout={dropout!r}")
        if not isinstance(optimizer, str):
            raise TypeError(
                f"optimizer must be an optimizer name such as 'adam', received {optimizer!r}"
            )
        optimizers.get(optimizer)  # unknown names fail here, not at the first train()
        if not (isinstance(learning_rate, numbers.Real) and learning_rate > 0):
            raise ValueError(
                f"learning_rate must be a positive number, received learning_rate={learning_rate!r}"
            )
        self._examples: dict[str, tuple[str, np.ndarray]] = {}  # id -> (label, image)
        self._embeddings: dict[str, np.ndarray] = {}  # id -> the base copy's embedding
        self._embedder: Functional | None = None
        self._head: Functional | None = None

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The base's input shape, which collected images are fitted to."""
        return tuple(self.base.input_shape)

    # ----------------------------------------------------------------- examples
    def collect_example(self, label: str, x: Any) -> str | list[str]:
        """Add one image (returns its id) or a batch of images (returns their ids) of ``label``."""
        label = _check_label(label)
        images, single = conform_images(x, self.input_shape)
        ids = [str(uuid.uuid4()) for _ in range(len(images))]
        for example_id, image in zip(ids, images):
            self._examples[example_id] = (label, image)
        return ids[0] if single else ids

    def count_examples(self) -> dict[str, int]:
        """``{label: number of examples}``, labels sorted."""
        counts: dict[str, int] = {}
        for label, _ in self._examples.values():
            counts[label] = counts.get(label, 0) + 1
        return {label: counts[label] for label in _sorted_labels(counts)}

    def example_ids(self, label: str | None = None) -> list[str]:
        """Ids of the examples (of ``label`` only, if given), in the order they were collected."""
        if label is not None and label not in self.count_examples():
            raise ValueError(
                f"There are no examples of label {label!r}; the labels are "
                f"{list(self.count_examples())}"
            )
        return [i for i, (lab, _) in self._examples.items() if label is None or lab == label]

    def remove_example(self, example_id: str) -> None:
        """Remove the example with id ``example_id``."""
        if example_id not in self._examples:
            raise ValueError(f"remove_example: there is no example with id {example_id!r}")
        del self._examples[example_id]
        self._embeddings.pop(example_id, None)

    def clear_examples(self) -> None:
        """Remove every example."""
        self._examples.clear()
        self._embeddings.clear()

    def _ordered_ids(self) -> list[str]:
        """Ids by label (sorted), then in collection order: TF.js's dataset order."""
        rank = {label: i for i, label in enumerate(self.count_examples())}
        return sorted(self._examples, key=lambda i: rank[self._examples[i][0]])

    # ----------------------------------------------------------------- serialization
    def serialize_examples(self) -> bytes:
        """The examples in the binary format of the module docstring."""
        ids = self._ordered_ids()
        manifest = [
            {"id": i, "label": self._examples[i][0], "shape": list(self._examples[i][1].shape)}
            for i in ids
        ]
        text = json.dumps(manifest, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        data = b"".join(
            np.ascontiguousarray(self._examples[i][1], dtype="<f4").tobytes() for i in ids
        )
        return _HEADER.pack(MAGIC, len(text)) + text + data

    def load_examples(self, data: bytes, clear_existing: bool = False) -> list[str]:
        """Add the examples of ``serialize_examples`` output (replacing the current ones with
        ``clear_existing``); returns their ids.

        Corrupt data raises :class:`ExamplesFormatError`; ids that are already present, or
        images the base cannot take, raise a ValueError. Either way nothing changes.
        """
        view = memoryview(data).cast("B")
        if len(view) < _HEADER.size:
            raise ExamplesFormatError(
                f"load_examples: truncated data: {len(view)} bytes, the header alone needs "
                f"{_HEADER.size}"
            )
        magic, length = _HEADER.unpack_from(view)
        if magic != MAGIC:
            raise ExamplesFormatError(
                f"load_examples: not serialized examples: the data starts with {magic!r}, "
                f"expected {MAGIC!r}"
            )
        start = _HEADER.size + length
        if start > len(view):
            raise ExamplesFormatError(
                f"load_examples: truncated data: the manifest claims {length} bytes, "
                f"{len(view) - _HEADER.size} follow the header"
            )
        try:
            manifest = json.loads(bytes(view[_HEADER.size : start]).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ExamplesFormatError(f"load_examples: the manifest is corrupt: {error}") from None
        entries = _parse_manifest(manifest)
        sizes = [math.prod(shape) for _, _, shape in entries]
        needed = 4 * sum(sizes)
        if len(view) - start != needed:
            problem = "truncated data" if len(view) - start < needed else "trailing bytes"
            raise ExamplesFormatError(
                f"load_examples: {problem}: the manifest's {len(entries)} examples need {needed} "
                f"bytes of float32 data, {len(view) - start} follow the manifest"
            )
        values = np.frombuffer(view, dtype="<f4", offset=start)
        if not np.isfinite(values).all():
            raise ExamplesFormatError("load_examples: the examples hold NaN or infinite values")
        offsets = np.cumsum([0, *sizes])
        images = [
            values[offsets[i] : offsets[i + 1]].reshape(shape).astype(np.float32)
            for i, (_, _, shape) in enumerate(entries)
        ]
        conformed: list[np.ndarray | None] = [None] * len(images)
        for shape in dict.fromkeys(shape for _, _, shape in entries):
            # One conversion per distinct shape: the examples of a shape go through together.
            members = [i for i, (_, _, s) in enumerate(entries) if s == shape]
            batch, _ = conform_images(
                np.stack([images[i] for i in members]), self.input_shape, "the serialized examples"
            )
            for i, image in zip(members, batch):
                conformed[i] = image
        existing = set() if clear_existing else set(self._examples)
        clashes = [i for i, _, _ in entries if i in existing]
        if clashes:
            raise ValueError(
                f"load_examples: the recognizer already has examples with ids {clashes[:3]}; "
                "these examples were loaded before (pass clear_existing=True to replace them)"
            )
        if clear_existing:
            self.clear_examples()
        for (example_id, label, _), image in zip(entries, conformed):
            self._examples[example_id] = (label, image)
        return [example_id for example_id, _, _ in entries]

    # ----------------------------------------------------------------- training
    def train(
        self,
        epochs: int = 20,
        batch_size: int = 32,
        validation_split: float = 0.0,
        callbacks: list[callbacks_module.Callback] | None = None,
        fine_tuning_epochs: int = 0,
        fine_tuning_layers: int = 1,
        fine_tuning_learning_rate: float | None = None,
        verbose: int = 0,
    ) -> callbacks_module.History:
        """Train the head on the cached embeddings, then optionally fine-tune.

        Args:
            epochs: epochs of head training on the embeddings.
            batch_size: batch size of training and of computing the embeddings.
            validation_split: fraction of each label's examples held out for validation
                (class-balanced); the history then has ``val_loss`` and ``val_accuracy``.
            callbacks: Keras callbacks, called in both phases.
            fine_tuning_epochs: epochs of training base and head together on the images.
            fine_tuning_layers: how many of the base's last layers with weights (not counting
                BatchNormalization, which stays frozen in inference mode) fine-tuning unfreezes.
            fine_tuning_learning_rate: the fine-tuning learning rate; default a tenth of
                ``learning_rate``, as a pre-trained base should move less than a new head.
            verbose: 0 silent, 1 or 2 report epochs as ``Model.fit`` does.

        Returns:
            A History of both phases: ``epoch`` numbers at or past ``epochs`` are fine-tuning.
        """
        counts = self.count_examples()
        if not counts:
            raise ValueError(
                f"train: TransferRecognizer '{self.name}' has no examples; collect some with "
                "collect_example(label, x) first"
            )
        if len(counts) < 2:
            raise ValueError(f"train needs examples of at least two labels; have: {list(counts)}")
        epochs = _non_negative_int(epochs, "epochs")
        fine_tuning_epochs = _non_negative_int(fine_tuning_epochs, "fine_tuning_epochs")
        if not (isinstance(validation_split, numbers.Real) and 0 <= validation_split < 1):
            raise ValueError(
                "validation_split must be in [0, 1), received "
                f"validation_split={validation_split!r}"
            )
        if fine_tuning_learning_rate is not None and not (
            isinstance(fine_tuning_learning_rate, numbers.Real) and fine_tuning_learning_rate > 0
        ):
            raise ValueError(
                "fine_tuning_learning_rate must be a positive number or None, received "
                f"fine_tuning_learning_rate={fine_tuning_learning_rate!r}"
            )
        embedder = self._base_copy()
        tuned = self._fine_tuned_layers(embedder, fine_tuning_layers) if fine_tuning_epochs else []

        labels = list(counts)
        ids = self._ordered_ids()
        targets = np.array([labels.index(self._examples[i][0]) for i in ids])
        self._embed(ids, batch_size)
        train_index, val_index = self._split(np.arange(len(ids)), targets, validation_split, counts)

        if labels != getattr(self, "labels_", None):
            self._build_head(labels)
        embeddings = np.stack([self._embeddings[i] for i in ids])
        validation = None
        if val_index is not None:
            validation = (embeddings[val_index], targets[val_index])
        self._head.compile(
            optimizer=self._optimizer(self.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        history = self._head.fit(
            embeddings[train_index],
            targets[train_index],
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation,
            callbacks=callbacks,
            verbose=verbose,
        )
        self.labels_ = labels
        if not fine_tuning_epochs:
            return history

        images = np.stack([self._examples[i][1] for i in ids])
        if val_index is not None:
            validation = (images[val_index], targets[val_index])
        rate = fine_tuning_learning_rate or self.learning_rate / 10
        flags = {layer.name: layer.trainable for layer in embedder.layers}
        try:
            for layer in embedder.layers:
                layer.trainable = layer in tuned
            self.model_.compile(
                optimizer=self._optimizer(rate),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
            fine_tuning = self.model_.fit(
                # Keras numbering: epochs continue after the head's, up to the last one.
                images[train_index],
                targets[train_index],
                epochs=epochs + fine_tuning_epochs,
                initial_epoch=epochs,
                batch_size=batch_size,
                validation_data=validation,
                callbacks=callbacks,
                verbose=verbose,
            )
        finally:
            for layer in embedder.layers:
                layer.trainable = flags[layer.name]
            self._embeddings.clear()  # the base changed: every cached embedding is stale
        return _merge_histories(history, fine_tuning)

    def _optimizer(self, learning_rate: float) -> optimizers.Optimizer:
        return type(optimizers.get(self.optimizer))(learning_rate=float(learning_rate))

    def _base_copy(self) -> Functional:
        if self._embedder is None:
            self._embedder = _copy_model(self.base)
        return self._embedder

    @staticmethod
    def _fine_tuned_layers(embedder: Functional, count: Any) -> list[layers.Layer]:
        candidates = [
            layer
            for layer in embedder.layers
            if layer.weights and not isinstance(layer, layers.BatchNormalization)
        ]
        if (
            isinstance(count, (bool, np.bool_))
            or not isinstance(count, numbers.Integral)
            or not 1 <= count <= len(candidates)
        ):
            raise ValueError(
                f"fine_tuning_layers must be an integer in [1, {len(candidates)}] (the base's "
                f"layers with weights, BatchNormalization aside), received "
                f"fine_tuning_layers={count!r}"
            )
        return candidates[-int(count) :]

    def _embed(self, ids: list[str], batch_size: int) -> None:
        """Compute (in batches) and cache the embeddings of the examples that lack one."""
        missing = [i for i in ids if i not in self._embeddings]
        if missing:
            images = np.stack([self._examples[i][1] for i in missing])
            embedded = self._base_copy().predict(images, batch_size=batch_size)
            self._embeddings.update(zip(missing, embedded))

    @staticmethod
    def _split(
        index: np.ndarray, targets: np.ndarray, validation_split: float, counts: dict[str, int]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if not validation_split:
            return index, None
        if min(counts.values()) < 2:
            raise ValueError(
                f"validation_split={validation_split} needs at least 2 examples of every label "
                f"(one to train on, one to validate on); the counts are {counts}"
            )
        seed = int(el_random.generator().integers(2**32))
        try:
            train, val, _, _ = train_test_split(
                index, targets, test_size=validation_split, stratify=True, seed=seed
            )
        except ValueError as error:
            raise ValueError(f"validation_split={validation_split}: {error}") from None
        return train, val

    def _build_head(self, labels: list[str]) -> None:
        """New head layers for ``labels``, as a model on embeddings and on the base copy."""
        embedder = self._base_copy()
        taken = {layer.name for layer in embedder.layers}

        def fresh(name: str) -> str:
            candidate, n = name, 0
            while candidate in taken:
                n += 1
                candidate = f"{name}_{n}"
            taken.add(candidate)
            return candidate

        head: list[layers.Layer] = []
        embedding_shape = embedder.output_shape[1:]
        if len(embedding_shape) > 1:
            head.append(layers.Flatten(name=fresh("transfer_flatten")))
        for i, units in enumerate(self.head_units, 1):
            if self.dropout:
                head.append(
                    layers.Dropout(float(self.dropout), name=fresh(f"transfer_dropout_{i}"))
                )
            head.append(
                layers.Dense(int(units), activation="relu", name=fresh(f"transfer_dense_{i}"))
            )
        if self.dropout:
            head.append(layers.Dropout(float(self.dropout), name=fresh("transfer_dropout")))
        head.append(layers.Dense(len(labels), activation="softmax", name=fresh("transfer_output")))

        embedding = layers.Input(embedding_shape, name=fresh("transfer_embedding"))
        on_embedding, on_base = embedding, embedder.outputs[0]
        for layer in head:
            on_embedding, on_base = layer(on_embedding), layer(on_base)
        self._head = Functional(embedding, on_embedding, name=f"{self.name}_head")
        self.model_ = Functional(embedder.inputs[0], on_base, name=self.name)

    # ----------------------------------------------------------------- using the model
    def _require_trained(self, method: str) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError(
                f"TransferRecognizer '{self.name}' is not trained yet: collect examples of at "
                f"least two labels and call train() before {method}()"
            )

    def predict(self, x: Any, batch_size: int = 32) -> tuple[Any, np.ndarray]:
        """Labels and probabilities (columns in ``labels_`` order) for one image or a batch.

        One image gives ``(label, probabilities of shape (n_labels,))``; a batch gives
        ``(list of labels, probabilities of shape (n, n_labels))``.
        """
        self._require_trained("predict")
        images, single = conform_images(x, self.input_shape)
        probabilities = self.model_.predict(images, batch_size=batch_size)
        labels = [self.labels_[i] for i in probabilities.argmax(axis=1)]
        return (labels[0], probabilities[0]) if single else (labels, probabilities)

    def evaluate(self, x: Any, y: Sequence[str], batch_size: int = 32) -> dict[str, Any]:
        """Accuracy and confusion matrix (rows: true labels, columns: predicted, both in
        ``labels`` order) of the predictions for a batch ``x`` with true labels ``y``."""
        self._require_trained("evaluate")
        truth = list(y) if not isinstance(y, str) else [y]
        images, _ = conform_images(x, self.input_shape)
        if len(truth) != len(images):
            raise ValueError(f"evaluate: x has {len(images)} images but y has {len(truth)} labels")
        unknown = sorted({label for label in truth if label not in self.labels_}, key=str)
        if unknown:
            raise ValueError(
                f"evaluate: y holds labels the recognizer was not trained on: {unknown}; its "
                f"labels are {self.labels_}"
            )
        true_index = np.array([self.labels_.index(label) for label in truth])
        predicted = self.model_.predict(images, batch_size=batch_size).argmax(axis=1)
        return {
            "accuracy": float(np.mean(predicted == true_index)),
            "confusion_matrix": metrics.confusion_matrix(
                true_index, predicted, num_classes=len(self.labels_)
            ),
            "labels": list(self.labels_),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the trained model (base + head) as one TF.js layers-model folder; the labels go
        into ``model.json``'s ``userDefinedMetadata`` (``{"modelName", "wordLabels"}``, as
        speech-commands names them). Saving is crash-safe, as :meth:`Model.save` is.
        """
        self._require_trained("save")
        self.model_.save(
            path,
            metadata={
                "modelName": self.name,
                "wordLabels": list(self.labels_),
                "generatedBy": f"edgelearn {edgelearn.__version__}",
            },
        )


def _parse_manifest(manifest: Any) -> list[tuple[str, str, tuple[int, ...]]]:
    if not isinstance(manifest, list):
        raise ExamplesFormatError(
            f"load_examples: the manifest must be a JSON list, found {type(manifest).__name__}"
        )
    entries, seen = [], set()
    for n, entry in enumerate(manifest):
        fields = entry if isinstance(entry, dict) else {}
        example_id, label, shape = fields.get("id"), fields.get("label"), fields.get("shape")
        if not isinstance(example_id, str) or not example_id:
            raise ExamplesFormatError(f"load_examples: manifest[{n}] needs a non-empty string 'id'")
        if example_id in seen:
            raise ExamplesFormatError(
                f"load_examples: the id {example_id!r} appears twice in the manifest"
            )
        seen.add(example_id)
        try:
            label = _check_label(label, f"manifest[{n}].label")
        except (TypeError, ValueError) as error:
            raise ExamplesFormatError(f"load_examples: {error}") from None
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
        ):
            raise ExamplesFormatError(
                f"load_examples: manifest[{n}].shape must be a list of positive ints, "
                f"found {shape!r}"
            )
        entries.append((example_id, label, tuple(shape)))
    return entries


def load_labels(path: str | os.PathLike[str]) -> list[str]:
    """The labels of a model folder written by :meth:`TransferRecognizer.save`, in the order of
    the model's probabilities."""
    try:
        labels = tfjs.load_metadata(path).get("wordLabels")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"No model.json in {path}: not a saved TransferRecognizer"
        ) from None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ValueError(
            f"{path}: not a saved TransferRecognizer (its model.json has no 'wordLabels' list of "
            f"strings in userDefinedMetadata, found {labels!r})"
        )
    return labels
