"""Losses with Keras names and semantics (mean over samples, ``from_logits``).

Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` before the logarithm, as Keras and
TensorFlow.js do; ``from_logits=True`` uses the exact, overflow-free formulas instead.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> loss = el.losses.SparseCategoricalCrossentropy()
    >>> round(loss(np.array([1]), el.engine.Tensor(np.array([[0.25, 0.75]]))).item(), 4)
    0.2877
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgelearn.engine import Tensor
from edgelearn.engine import functions as F

EPSILON = 1e-7


def _labels(y_true: Any, y_pred: Tensor) -> np.ndarray:
    return np.asarray(y_true.data if isinstance(y_true, Tensor) else y_true).astype(
        y_pred.dtype, copy=False
    )


def _check_same_shape(name: str, y_true: np.ndarray, y_pred: Tensor) -> np.ndarray:
    if y_true.shape != y_pred.shape:
        if y_true.size == y_pred.size and y_pred.shape[-1] == 1:  # (n,) labels for (n, 1) outputs
            return y_true.reshape(y_pred.shape)
        raise ValueError(
            f"{name} expects y_true and y_pred of the same shape, received y_true {y_true.shape} "
            f"and y_pred {y_pred.shape}"
        )
    return y_true


class Loss:
    """Base class: ``loss(y_true, y_pred)`` returns the mean loss over samples.

    The result is a scalar Tensor.
    """

    name = "loss"

    def __init__(self, from_logits: bool = False, name: str | None = None):
        self.from_logits = bool(from_logits)
        if name is not None:
            self.name = name

    def __call__(self, y_true: Any, y_pred: Tensor) -> Tensor:
        if not isinstance(y_pred, Tensor):
            y_pred = Tensor(y_pred)
        return F.Mean.apply(self.per_sample(y_true, y_pred))

    def per_sample(self, y_true: Any, y_pred: Tensor) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "from_logits": self.from_logits}


def _categorical(y_true: np.ndarray, y_pred: Tensor, from_logits: bool) -> Tensor:
    # Like Keras and TF.js: log-softmax of logits, or probabilities rescaled so each row sums to
    # one and clipped before the logarithm; one fused primitive.
    return F.CategoricalCrossentropy.apply(y_pred, y_true, from_logits=from_logits, epsilon=EPSILON)


class CategoricalCrossentropy(Loss):
    """Cross-entropy with one-hot (or soft) labels of the same shape as the predictions."""

    name = "categorical_crossentropy"

    def per_sample(self, y_true, y_pred):
        y_true = _check_same_shape("CategoricalCrossentropy", _labels(y_true, y_pred), y_pred)
        return _categorical(y_true, y_pred, self.from_logits)


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer labels: y_true (n,) or (n, 1) for y_pred (n, classes)."""

    name = "sparse_categorical_crossentropy"

    def per_sample(self, y_true, y_pred):
        labels = np.asarray(y_true.data if isinstance(y_true, Tensor) else y_true)
        if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
            labels = labels[..., 0]
        if labels.shape != y_pred.shape[:-1]:
            raise ValueError(
                "SparseCategoricalCrossentropy expects integer labels of shape "
                f"{y_pred.shape[:-1]} for predictions of shape {y_pred.shape}, "
                f"received {labels.shape}"
            )
        one_hot = to_one_hot(labels, y_pred.shape[-1], y_pred.dtype)
        return _categorical(one_hot, y_pred, self.from_logits)


def to_one_hot(labels: np.ndarray, num_classes: int, dtype: Any) -> np.ndarray:
    """One-hot rows for integer class labels, with a clear error for labels out of range."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)].ravel()[0].item()
        raise ValueError(
            f"Labels must be integers in [0, {num_classes}) "
            f"for a model with {num_classes} outputs, "
            f"received label {bad!r}"
        )
    flat = labels.astype(np.int64, copy=False).ravel()
    if not np.array_equal(flat, labels.ravel()):
        raise ValueError("Class labels must be whole numbers, received fractional values")
    one_hot = np.zeros((flat.size, num_classes), dtype=dtype)
    one_hot[np.arange(flat.size), flat] = 1
    return one_hot.reshape(*labels.shape, num_classes)


class BinaryCrossentropy(Loss):
    """Cross-entropy of independent yes/no outputs, averaged over the last axis."""

    name = "binary_crossentropy"

    def per_sample(self, y_true, y_pred):
        y_true = _check_same_shape("BinaryCrossentropy", _labels(y_true, y_pred), y_pred)
        if self.from_logits:
            elementwise = F.SigmoidCrossEntropyWithLogits.apply(y_pred, y_true)
        else:
            p = F.Clip.apply(y_pred, low=EPSILON, high=1 - EPSILON)
            log_p, log_not_p = F.Log.apply(p), F.Log.apply(F.Sub.apply(1.0, p))
            elementwise = F.Neg.apply(
                F.Add.apply(F.Mul.apply(log_p, y_true), F.Mul.apply(log_not_p, 1 - y_true))
            )
        return F.Mean.apply(elementwise, axis=-1)


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def per_sample(self, y_true, y_pred):
        diff = F.Sub.apply(
            y_pred, _check_same_shape("MeanSquaredError", _labels(y_true, y_pred), y_pred)
        )
        return F.Mean.apply(F.Mul.apply(diff, diff), axis=-1)

    def get_config(self):
        return {"name": self.name}


class MeanAbsoluteError(Loss):
    name = "mean_absolute_error"

    def per_sample(self, y_true, y_pred):
        diff = F.Sub.apply(
            y_pred, _check_same_shape("MeanAbsoluteError", _labels(y_true, y_pred), y_pred)
        )
        return F.Mean.apply(F.Abs.apply(diff), axis=-1)

    def get_config(self):
        return {"name": self.name}


_LOSSES: dict[str, type[Loss]] = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}
# TF.js spells them in camelCase.
_ALIASES = {
    "categoricalCrossentropy": "categorical_crossentropy",
    "sparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
    "binaryCrossentropy": "binary_crossentropy",
    "meanSquaredError": "mean_squared_error",
    "meanAbsoluteError": "mean_absolute_error",
}


def get(identifier: str | Loss) -> Loss:
    """Resolve a loss from its Keras (or TF.js) name or an instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier, identifier)
        if name in _LOSSES:
            return _LOSSES[name]()
    raise ValueError(
        f"Unknown loss {identifier!r}. Known losses: {', '.join(sorted(_LOSSES))}. "
        f"Received: loss={identifier!r}"
    )
