"""Metrics, with ``"accuracy"`` resolved as Keras resolves it.

``"accuracy"`` (or ``"acc"``) becomes binary accuracy when the model has one output unit or the
loss is binary cross-entropy, sparse categorical accuracy when the labels are class indices, and
categorical accuracy when they are one-hot.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> float(el.metrics.sparse_categorical_accuracy(
    ...     np.array([1, 0]), np.array([[0.2, 0.8], [0.3, 0.7]])
    ... ).mean())
    0.5
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def categorical_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    labels = np.asarray(y_true)
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    return (labels.astype(np.int64) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def binary_accuracy(y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    y_true = np.asarray(y_true).reshape(y_pred.shape)
    return ((y_pred > threshold) == (y_true > 0.5)).astype(np.float32).mean(axis=-1)


_METRICS: dict[str, MetricFn] = {
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "binary_accuracy": binary_accuracy,
}


def resolve(identifier: str | MetricFn, loss_name: str, y_true: np.ndarray, y_pred: np.ndarray):
    """Return ``(name, fn)`` for a metric given as a name or a function ``fn(y_true, y_pred)``.

    ``"accuracy"`` is resolved from the loss and the shapes of the first batch, like Keras.
    """
    if callable(identifier):
        return getattr(identifier, "__name__", "metric"), identifier
    if identifier in ("accuracy", "acc"):
        if loss_name == "binary_crossentropy" or y_pred.shape[-1] == 1:
            return identifier, binary_accuracy
        if loss_name == "sparse_categorical_crossentropy" or np.ndim(y_true) < y_pred.ndim:
            return identifier, sparse_categorical_accuracy
        return identifier, categorical_accuracy
    if identifier in _METRICS:
        return identifier, _METRICS[identifier]
    raise ValueError(
        f"Unknown metric {identifier!r}. "
        f"Known metrics: accuracy, acc, {', '.join(sorted(_METRICS))}, "
        "or a function fn(y_true, y_pred) returning one value per sample. "
        f"Received: metrics=[{identifier!r}]"
    )


def check_known(identifier: Any) -> None:
    """Fail at compile time, not at the first batch, for a metric name that does not exist."""
    if not callable(identifier) and identifier not in ("accuracy", "acc", *_METRICS):
        resolve(identifier, "", np.zeros(1), np.zeros((1, 2)))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs; rows are true classes.

    Example:
        >>> import edgelearn as el
        >>> el.metrics.confusion_matrix([0, 1, 1], [0, 1, 0])
        array([[1, 0],
               [1, 1]])
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"confusion_matrix expects y_true and y_pred of the same length, "
            f"received {y_true.size} and {y_pred.size}"
        )
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix
