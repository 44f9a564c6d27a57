"""One shared test harness for every layer, in the spirit of Keras' ``run_layer_test``.

It builds the layer, checks output shapes against ``compute_output_shape``, counts weights and
parameters, round-trips the config (through JSON, as saved models do), and checks the gradients
with respect to the inputs and every trainable weight against float64 central finite
differences. Custom layers can be tested with it too.

Example:
    >>> import edgelearn as el
    >>> from edgelearn.testing import run_layer_test
    >>> run_layer_test(el.layers.Dense, {"units": 3}, input_shape=(2, 4),
    ...                expected_output_shape=(2, 3), expected_num_params=15)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgelearn.engine import Tensor
from edgelearn.layers import Layer, deserialize, serialize


def numeric_gradient(fn: Any, array: np.ndarray, epsilon: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``fn()`` with respect to ``array``, changed in place."""
    grad = np.zeros_like(array)
    flat, flat_grad = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + epsilon
        plus = fn()
        flat[i] = original - epsilon
        minus = fn()
        flat[i] = original
        flat_grad[i] = (plus - minus) / (2 * epsilon)
    return grad


def check_gradients(
    layer: Layer,
    x: np.ndarray,
    training: bool = False,
    seed: int = 0,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> None:
    """Compare backprop with finite differences for ``sum(layer(x) * dy)`` (float64 layer)."""
    if layer.dtype != "float64":
        raise ValueError("Gradient checks need a float64 layer: construct it with dtype='float64'")
    x = np.array(x, dtype=np.float64)
    dy = np.random.default_rng(seed).normal(size=layer(x, training=training).shape)

    def objective() -> float:
        return float((layer(x, training=training).data * dy).sum())

    inputs = Tensor(x.copy(), requires_grad=True)
    for weight in layer.trainable_weights:
        weight.grad = None
    layer(inputs, training=training).backward(dy)
    checks = [("inputs", inputs.grad, x)] + [
        (weight.name, weight.grad, weight.data) for weight in layer.trainable_weights
    ]
    for name, analytic, array in checks:
        if analytic is None:
            raise AssertionError(f"{layer.name}: no gradient reached {name}")
        numeric = numeric_gradient(objective, array)
        np.testing.assert_allclose(
            analytic, numeric, rtol=rtol, atol=atol,
            err_msg=f"{type(layer).__name__} '{layer.name}': gradient of {name} disagrees with finite differences",
        )


def run_layer_test(
    layer_cls: type[Layer],
    init_kwargs: dict[str, Any],
    input_shape: tuple[int, ...],
    expected_output_shape: tuple[int, ...] | None = None,
    expected_num_trainable_weights: int | None = None,
    expected_num_non_trainable_weights: int | None = None,
    expected_num_params: int | None = None,
    training: bool = False,
    check_grads: bool = True,
    input_data: np.ndarray | None = None,
    seed: int = 0,
) -> Layer:
    """Run the standard checks on ``layer_cls(**init_kwargs)``; returns the built float32 layer."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=input_shape).astype(np.float32) if input_data is None else input_data

    # Shapes and weights, in float32 (the dtype users train in).
    layer = layer_cls(**init_kwargs)
    outputs = layer(x, training=training)
    assert outputs.dtype == np.float32, f"{layer_cls.__name__} returned {outputs.dtype}, not float32"
    if expected_output_shape is not None:
        assert outputs.shape == tuple(expected_output_shape), (
            f"{layer_cls.__name__}: output shape {outputs.shape}, expected {expected_output_shape}"
        )
    symbolic = layer.compute_output_shape((None, *x.shape[1:]))
    assert tuple(symbolic) == (None, *outputs.shape[1:]), (
        f"{layer_cls.__name__}: compute_output_shape gave {symbolic}, call gave {outputs.shape}"
    )
    for expected, actual, what in (
        (expected_num_trainable_weights, len(layer.trainable_weights), "trainable weights"),
        (expected_num_non_trainable_weights, len(layer.non_trainable_weights), "non-trainable weights"),
        (expected_num_params, layer.count_params(), "parameters"),
    ):
        if expected is not None:
            assert actual == expected, f"{layer_cls.__name__}: {actual} {what}, expected {expected}"

    # Config round trip through JSON: same config, same outputs with the same weights.
    config = json.loads(json.dumps(layer.get_config()))
    clone = layer_cls.from_config(config)
    assert json.loads(json.dumps(clone.get_config())) == config, f"{layer_cls.__name__}: config changed"
    revived = deserialize(json.loads(json.dumps(serialize(layer))))
    assert type(revived) is layer_cls
    if not training:  # training-mode outputs may be random (Dropout) or change state (BatchNorm)
        revived(x[:1])
        revived.set_weights(layer.get_weights())
        np.testing.assert_allclose(revived(x).data, layer(x).data, rtol=1e-6, atol=1e-6)

    if check_grads:
        float64_config = {**config, "dtype": "float64"}
        float64_layer = layer_cls.from_config(float64_config)
        float64_layer(x.astype(np.float64)[:1])
        float64_layer.set_weights(
            [rng.normal(size=w.shape) if w.trainable else np.abs(rng.normal(size=w.shape)) + 0.5
             for w in float64_layer.weights]
        )
        check_gradients(float64_layer, x.astype(np.float64), training=training, seed=seed)
    return layer
