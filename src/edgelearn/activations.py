"""Activation functions by their Keras names.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> el.activations.get("relu6")(el.engine.Tensor(np.array([-1.0, 3.0, 9.0]))).numpy()
    array([0., 3., 6.])
"""

from __future__ import annotations

from collections.abc import Callable

from edgelearn.engine import Tensor
from edgelearn.engine import functions as F


def linear(x: Tensor) -> Tensor:
    return x


def relu(x: Tensor) -> Tensor:
    return F.ReLU.apply(x)


def relu6(x: Tensor) -> Tensor:
    return F.ReLU.apply(x, max_value=6.0)


def leaky_relu(x: Tensor, negative_slope: float = 0.2) -> Tensor:
    return F.ReLU.apply(x, negative_slope=negative_slope)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return F.Elu.apply(x, alpha=alpha)


def sigmoid(x: Tensor) -> Tensor:
    return F.Sigmoid.apply(x)


def tanh(x: Tensor) -> Tensor:
    return F.Tanh.apply(x)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return F.Softmax.apply(x, axis=axis)


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": linear,
    "relu": relu,
    "relu6": relu6,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
}
# Spellings TensorFlow.js writes into model.json files.
_ALIASES = {"leakyrelu": "leaky_relu", "leakyRelu": "leaky_relu"}


def get(identifier: str | Callable[[Tensor], Tensor] | None) -> Callable[[Tensor], Tensor]:
    """Resolve an activation from its name, a callable, or None (linear)."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier, identifier)
        if name in _ACTIVATIONS:
            return _ACTIVATIONS[name]
    raise ValueError(
        f"Unknown activation {identifier!r}. Known activations: {', '.join(sorted(_ACTIVATIONS))}. "
        f"Received: activation={identifier!r}"
    )


def serialize(activation: Callable[[Tensor], Tensor]) -> str:
    """The Keras name of an activation function."""
    for name, fn in _ACTIVATIONS.items():
        if fn is activation:
            return name
    raise ValueError(
        f"Cannot serialize activation {activation!r}: only the built-in activations "
        f"({', '.join(sorted(_ACTIVATIONS))}) can be saved"
    )
