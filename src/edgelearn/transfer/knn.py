"""A K-nearest-neighbours classifier over embeddings, with the rules of TF.js's knn-classifier.

:class:`KNNClassifier` does what ``@tensorflow-models/knn-classifier`` (1.2.x, ``src/index.ts``
and ``src/util.ts``) does, so that a classifier built here behaves like one built in the browser:

- every example is flattened and scaled to unit length when it is added; a query is scaled the
  same way, so a matrix product gives the cosine similarity to every example;
- the ``k`` most similar examples vote, ``k`` being capped at the number of examples
  (``kVal = min(k, numExamples)``); a class's confidence is its votes divided by that capped
  ``k``, so the confidences always sum to one;
- ties are broken by order, as TF.js's stable ``Array.prototype.sort`` and its ``for ... in``
  loops over a JavaScript object break them. Classes come in the order JavaScript iterates
  object keys: labels that are array indices (ints 0 <= n <= 2**32 - 2, or their decimal
  strings) in ascending numeric order, then the other labels in the order their class was
  (re)created; examples keep their class's order, then the order they were added in. Among
  equally similar examples the earlier one is nearer, and among classes with equally many votes
  the earlier one wins;
- class indices are given out in the order labels are first seen and survive
  :meth:`KNNClassifier.clear_class` and :meth:`KNNClassifier.clear_all`, and the example shape
  is fixed by the first example, as in TF.js.

Two deliberate differences: an all-zero (or non-finite) vector is rejected, where TF.js would
divide by a zero norm and vote with NaN similarities, and since JavaScript object keys are
strings, a label ``1`` and a label ``"1"`` (one class in TF.js) cannot both be used.

With ``base=`` (an image model that outputs embeddings, for example MobileNetV2 with
``include_top=False, pooling="avg"``), examples and queries are images: they are fitted to the
base's input (see :func:`edgelearn.transfer.recognizer.conform_images`) and embedded by it.

File format (``save`` / ``load``), little-endian::

    b"ELKNNC01"                      8 bytes: format and version
    uint32                           byte length of the JSON header
    JSON header (UTF-8)              {"example_shape": [d, ...] or null,
                                      "classes": [{"label": str or int, "class_index": int,
                                                   "count": int}, ...]}
    float32 data                     the unit-length examples, class after class in
                                     ``classes`` order (the vote order), count rows each

``classes`` lists every label ever seen, cleared ones with ``count`` 0, so that class indices
survive a round trip. Nothing is pickled.

Example:
    >>> import numpy as np
    >>> from edgelearn.transfer import KNNClassifier
    >>> knn = KNNClassifier()
    >>> knn.add_example(np.array([1.0, 0.0]), "left")
    >>> knn.add_example(np.array([0.9, 0.2]), "left")
    >>> knn.add_example(np.array([0.0, 1.0]), "up")
    >>> result = knn.predict_class(np.array([1.0, 0.1]), k=3)
    >>> result["label"], result["class_index"], result["confidences"]
    ('left', 0, {'left': 0.6666666666666666, 'up': 0.3333333333333333})
"""

from __future__ import annotations

import json
import math
import numbers
import os
import pathlib
import struct
from typing import Any

import numpy as np

from edgelearn.models import Model
from edgelearn.transfer.recognizer import check_base, conform_images
from edgelearn.utils.files import atomic_write_bytes

__all__ = ["KNNClassifier", "KNNFormatError"]

MAGIC = b"ELKNNC01"
_HEADER = struct.Struct("<8sI")
# JavaScript's array indices: the object keys that for ... in visits first, in numeric order.
_MAX_ARRAY_INDEX = 2**32 - 2
# Similarities are computed for this many (query, example) pairs at a time at most (256 MiB of
# float32), so that a huge batch of queries does not allocate one huge matrix.
_MAX_PAIRS_PER_PRODUCT = 2**26

Label = str | int


class KNNFormatError(ValueError):
    """A saved KNN classifier that cannot be read: says which file and what is wrong."""


def _check_label(label: Any, argument: str = "label") -> Label:
    if isinstance(label, (bool, np.bool_)):
        raise TypeError(f"{argument} must be a str or an int, received the bool {label!r}")
    if isinstance(label, (str, np.str_)):
        if not label:
            raise ValueError(f"{argument} must be a non-empty string, received ''")
        return str(label)
    if isinstance(label, numbers.Integral):
        return int(label)
    raise TypeError(
        f"{argument} must be a str or an int, received {type(label).__name__} {label!r}"
    )


def _js_key(label: Label) -> str:
    """The JavaScript object key TF.js files the label under."""
    return str(label)


def _array_index(key: str) -> int | None:
    """The key's value if JavaScript treats it as an array index (iterated first), else None."""
    if key == "0" or (key[:1] in "123456789" and key.isdigit() and key.isascii()):
        value = int(key)
        return value if value <= _MAX_ARRAY_INDEX else None
    return None


def _unit_rows(vectors: np.ndarray, argument: str) -> np.ndarray:
    """Rows of ``vectors`` (n, d) scaled to unit length in float32, as TF.js's
    ``normalizeVectorToUnitLength`` does; zero and non-finite rows are refused."""
    rows = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    bad = np.flatnonzero(~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0))
    if bad.size:
        where = "" if len(rows) == 1 else f" (row {int(bad[0])})"
        raise ValueError(
            f"{argument}{where} has a zero or non-finite norm: cosine similarity needs a finite "
            "vector with at least one non-zero value"
        )
    return rows / norms


class KNNClassifier:
    """K-nearest-neighbours classification by cosine similarity, as TF.js's knn-classifier.

    Args:
        base: optional model that turns inputs into embeddings (one input, one output). With a
            base, ``add_example`` and ``predict_class`` take images (any size, 1 or 3 channels;
            they are fitted to the base's input) and the base embeds them; without one they
            take the embeddings themselves.

    Attributes:
        example_shape_: the shape of an embedding, fixed by the first example.

    Example:
        >>> import numpy as np
        >>> from edgelearn.transfer import KNNClassifier
        >>> knn = KNNClassifier()
        >>> for vector, label in [([1, 0], 7), ([0, 1], 3), ([1, 1], 3)]:
        ...     knn.add_example(np.array(vector, dtype="float32"), label)
        >>> knn.class_example_count()  # array-index labels come first, in numeric order
        {3: 2, 7: 1}
        >>> [r["label"] for r in knn.predict_classes(np.array([[1, 0.1], [0.1, 1]]), k=1)]
        [7, 3]
    """

    def __init__(self, base: Model | None = None):
        self.base = base
        if base is not None:
            check_base(base, "KNNClassifier")
        self._labels: dict[str, Label] = {}  # JS key -> the label as the caller gave it
        self._class_indices: dict[str, int] = {}  # JS key -> class index, never given back
        self._rows: dict[str, list[np.ndarray]] = {}  # JS key -> unit rows, one array per add
        self._created: dict[str, int] = {}  # JS key -> when its class was (re)created
        self._creations = 0
        self._dataset: tuple[list[str], np.ndarray, np.ndarray] | None = None

    # ----------------------------------------------------------------- examples
    def add_example(self, x: Any, label: Label) -> None:
        """Add one example of class ``label`` (a str or an int).

        ``x`` is an embedding of any fixed shape (flattened), or with a ``base`` one image.
        """
        label = _check_label(label)
        embedding = self._embed(x, "x", single=True)[0]
        shape = tuple(embedding.shape)
        expected = getattr(self, "example_shape_", None)
        if expected is not None and shape != expected:
            raise ValueError(
                f"add_example: the example has shape {shape}, but the previous examples have "
                f"shape {expected}"
            )
        key = _js_key(label)
        known = self._labels.get(key)
        if known is not None and known != label:
            raise ValueError(
                f"add_example: label {label!r} and the existing label {known!r} would be one class "
                "in TF.js (its labels are object keys, i.e. strings); use one of the two"
            )
        row = _unit_rows(embedding.reshape(1, -1), "x")
        self.example_shape_ = shape
        if key not in self._class_indices:
            self._class_indices[key] = len(self._class_indices)
        if key not in self._rows:
            self._rows[key] = []
            self._created[key] = self._creations
            self._creations += 1
        self._labels[key] = label
        self._rows[key].append(row)
        self._dataset = None

    def class_example_count(self) -> dict[Label, int]:
        """``{label: number of examples}``, in the classes' vote order."""
        return {self._labels[key]: sum(len(r) for r in self._rows[key]) for key in self._order()}

    @property
    def num_classes(self) -> int:
        """The number of classes that have examples."""
        return len(self._rows)

    def clear_class(self, label: Label) -> None:
        """Remove every example of ``label``; its class index stays reserved for it."""
        label = _check_label(label)
        key = _js_key(label)
        if key not in self._rows or self._labels[key] != label:
            raise ValueError(
                f"clear_class: there are no examples of label {label!r}; the labels with "
                f"examples are {list(self.class_example_count())}"
            )
        del self._rows[key], self._created[key]
        self._dataset = None

    def clear_all(self) -> None:
        """Remove every example (class indices and the example shape stay, as in TF.js)."""
        self._rows.clear()
        self._created.clear()
        self._dataset = None

    # ----------------------------------------------------------------- prediction
    def predict_class(self, x: Any, k: int = 3) -> dict[str, Any]:
        """Classify one example by the votes of its ``k`` most similar examples.

        Returns ``{"label": ..., "class_index": int, "confidences": {label: float}}``: the winning
        label, its class index, and votes / min(k, number of examples) for every class.
        """
        return self._predict(self._embed(x, "x", single=True), k)[0]

    def predict_classes(self, x: Any, k: int = 3) -> list[dict[str, Any]]:
        """:meth:`predict_class` for a batch (the first axis), with one matrix product."""
        return self._predict(self._embed(x, "x", single=False), k)

    def _predict(self, embeddings: np.ndarray, k: int) -> list[dict[str, Any]]:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"k must be a positive integer, received k={k!r}")
        if not self._rows:
            raise ValueError(
                "The KNN classifier has no examples: add some with add_example(x, label) before "
                "predicting"
            )
        shape = tuple(embeddings.shape[1:])
        if shape != self.example_shape_:
            raise ValueError(
                f"The KNN classifier's examples have shape {self.example_shape_}; received "
                f"{'an example' if len(embeddings) == 1 else 'examples'} of shape {shape}"
            )
        keys, matrix, row_class = self._matrix()
        queries = _unit_rows(embeddings.reshape(len(embeddings), -1), "x")
        k_used = min(int(k), len(matrix))
        chunk = max(1, _MAX_PAIRS_PER_PRODUCT // len(matrix))
        votes = np.empty((len(queries), len(keys)), dtype=np.int64)
        for start in range(0, len(queries), chunk):
            similarities = queries[start : start + chunk] @ matrix.T
            # A stable sort of the negated similarities is TF.js's topK: Array.prototype.sort
            # with (a, b) => b.value - a.value, which is stable, so equal similarities keep the
            # examples' order and the earlier example is the nearer one.
            nearest = np.argsort(-similarities, axis=1, kind="stable")[:, :k_used]
            n = len(nearest)
            cells = np.arange(n)[:, None] * len(keys) + row_class[nearest]
            votes[start : start + n] = np.bincount(cells.ravel(), minlength=n * len(keys)).reshape(
                n, len(keys)
            )
        # argmax takes the first of equal maxima: TF.js's strict `probability > topConfidence`
        # over the classes in order keeps the earliest class too.
        winners = votes.argmax(axis=1)
        labels = [self._labels[key] for key in keys]
        return [
            {
                "label": labels[winner],
                "class_index": self._class_indices[keys[winner]],
                "confidences": {label: int(v) / k_used for label, v in zip(labels, row)},
            }
            for winner, row in zip(winners.tolist(), votes)
        ]

    # ----------------------------------------------------------------- internals
    def _order(self) -> list[str]:
        """The class keys in JavaScript's for ... in order over TF.js's classDatasetMatrices."""

        def position(key: str) -> tuple[int, int]:
            index = _array_index(key)
            return (0, index) if index is not None else (1, self._created[key])

        return sorted(self._rows, key=position)

    def _matrix(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(class keys in order, all unit rows in that order, each row's class position)."""
        if self._dataset is None:
            keys = self._order()
            blocks = [np.concatenate(self._rows[key]) for key in keys]
            self._rows.update({key: [block] for key, block in zip(keys, blocks)})
            matrix = np.concatenate(blocks)
            row_class = np.repeat(np.arange(len(keys)), [len(b) for b in blocks])
            self._dataset = (keys, matrix, row_class)
        return self._dataset

    def _embed(self, x: Any, argument: str, single: bool) -> np.ndarray:
        """A batch of embeddings (n, *shape) from one example (``single``) or a batch."""
        if self.base is None:
            array = np.asarray(x)
            if array.dtype.kind not in "biuf":
                raise ValueError(
                    f"{argument} must be a numeric array, received dtype {array.dtype}"
                )
            if single:
                if array.ndim == 0:
                    raise ValueError(f"{argument} must be an embedding with at least one axis")
                return array.astype(np.float32)[None]
            if array.ndim < 2 or len(array) == 0:
                raise ValueError(
                    f"{argument} must be a non-empty batch of examples (n, ...), received an array "
                    f"of shape {array.shape}"
                )
            return array.astype(np.float32)
        images, was_single = conform_images(x, self.base.input_shape, argument)
        if single and not was_single:
            raise ValueError(
                f"{argument} must be one example; received a batch of shape {np.shape(x)} "
                "(use predict_classes for batches)"
            )
        if not single and was_single:
            raise ValueError(
                f"{argument} must be a batch of examples; received one of shape {np.shape(x)} "
                "(use predict_class for one example)"
            )
        return np.asarray(self.base.predict(images), dtype=np.float32)

    # ----------------------------------------------------------------- files
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the examples to ``path`` (format in the module docstring), atomically."""
        keys = self._order()
        known = sorted(self._class_indices, key=self._class_indices.__getitem__)
        counts = {key: sum(len(r) for r in self._rows[key]) for key in keys}
        classes = [
            {
                "label": self._labels[key],
                "class_index": self._class_indices[key],
                "count": counts.get(key, 0),
            }
            for key in keys + [key for key in known if key not in self._rows]
        ]
        shape = getattr(self, "example_shape_", None)
        header = json.dumps(
            {"example_shape": None if shape is None else list(shape), "classes": classes},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        data = self._matrix()[1] if keys else np.zeros((0,), np.float32)
        atomic_write_bytes(
            path, _HEADER.pack(MAGIC, len(header)) + header + data.astype("<f4").tobytes()
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], base: Model | None = None) -> KNNClassifier:
        """Read a classifier written by :meth:`save`; ``base`` as for the constructor."""
        source = str(path)
        data = pathlib.Path(path).read_bytes()
        if len(data) < _HEADER.size:
            raise KNNFormatError(
                f"{source}: truncated: {len(data)} bytes, the header alone needs {_HEADER.size}"
            )
        magic, length = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise KNNFormatError(
                f"{source}: not a saved KNNClassifier: it starts with {magic!r}, expected {MAGIC!r}"
            )
        end = _HEADER.size + length
        if end > len(data):
            raise KNNFormatError(
                f"{source}: truncated: the JSON header claims {length} bytes, "
                f"{len(data) - _HEADER.size} follow"
            )
        try:
            header = json.loads(data[_HEADER.size : end].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise KNNFormatError(f"{source}: the JSON header is corrupt: {error}") from None
        shape, classes = _parse_header(header, source)
        width = math.prod(shape) if shape is not None else 0
        rows = sum(c["count"] for c in classes)
        needed = rows * width * 4
        if len(data) - end != needed:
            problem = "truncated" if len(data) - end < needed else "trailing bytes"
            raise KNNFormatError(
                f"{source}: {problem}: {rows} examples of shape {shape} need {needed} bytes of "
                f"float32 data, the file holds {len(data) - end}"
            )
        matrix = np.frombuffer(data, dtype="<f4", offset=end).reshape(rows, width)
        if not np.isfinite(matrix).all():
            raise KNNFormatError(f"{source}: the examples hold NaN or infinite values")
        classifier = cls(base=base)
        if shape is not None:
            classifier.example_shape_ = shape
        offset = 0
        for entry in sorted(classes, key=lambda c: c["class_index"]):
            key = _js_key(entry["label"])
            classifier._labels[key] = entry["label"]
            classifier._class_indices[key] = entry["class_index"]
        for entry in classes:  # file order is vote order: recreate the classes in it
            if entry["count"]:
                key = _js_key(entry["label"])
                block = matrix[offset : offset + entry["count"]].astype(np.float32)
                offset += entry["count"]
                classifier._rows[key] = [block]
                classifier._created[key] = classifier._creations
                classifier._creations += 1
        if classifier._order() != [_js_key(c["label"]) for c in classes if c["count"]]:
            raise KNNFormatError(f"{source}: the classes are not stored in vote order")
        return classifier


def _parse_header(header: Any, source: str) -> tuple[tuple[int, ...] | None, list[dict[str, Any]]]:
    if not isinstance(header, dict) or not isinstance(header.get("classes"), list):
        raise KNNFormatError(f"{source}: the JSON header must be an object with a 'classes' list")
    raw_shape = header.get("example_shape")
    shape = None
    if raw_shape is not None:
        if not isinstance(raw_shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in raw_shape
        ):
            raise KNNFormatError(
                f"{source}: example_shape must be a list of positive ints, found {raw_shape!r}"
            )
        shape = tuple(raw_shape)
    classes, keys = [], set()
    for i, entry in enumerate(header["classes"]):
        fields = entry if isinstance(entry, dict) else {}
        label, index, count = fields.get("label"), fields.get("class_index"), fields.get("count")
        try:
            label = _check_label(label, f"classes[{i}].label")
        except (TypeError, ValueError) as error:
            raise KNNFormatError(f"{source}: {error}") from None
        for name, value in (("class_index", index), ("count", count)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise KNNFormatError(
                    f"{source}: classes[{i}].{name} must be a non-negative int, found {value!r}"
                )
        if _js_key(label) in keys:
            raise KNNFormatError(f"{source}: label {label!r} appears twice")
        keys.add(_js_key(label))
        classes.append({"label": label, "class_index": index, "count": count})
    if sorted(c["class_index"] for c in classes) != list(range(len(classes))):
        raise KNNFormatError(f"{source}: the class indices must be 0, 1, ... {len(classes) - 1}")
    if shape is None and any(c["count"] for c in classes):
        raise KNNFormatError(f"{source}: examples are stored but example_shape is null")
    return shape, classes
