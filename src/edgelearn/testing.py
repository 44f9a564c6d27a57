"""One shared test harness for every layer, in the spirit of Keras' ``run_layer_test``.

It builds the layer, checks output shapes against ``compute_output_shape``, counts weights and
parameters, round-trips the config (through JSON, as saved models do), and checks the gradients
with respect to the inputs and every trainable weight against float64 central finite
differences. Layers that take a list of inputs (merge layers) get a list of input shapes.
Custom layers can be tested with it too.

Example:
    >>> import edgelearn as el
    >>> from edgelearn.testing import run_layer_test
    >>> dense = run_layer_test(el.layers.Dense, {"units": 3}, input_shape=(2, 4),
    ...                        expected_output_shape=(2, 3), expected_num_params=15)
    >>> add = run_layer_test(el.layers.Add, {}, input_shape=[(2, 3), (2, 1)],
    ...                      expected_output_shape=(2, 3))
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


Inputs = np.ndarray | list[np.ndarray]


def _is_shape_list(input_shape: Any) -> bool:
    """A list of shapes (a merge layer's inputs) rather than one shape."""
    return isinstance(input_shape, list) and all(isinstance(s, (tuple, list)) for s in input_shape)


def _map(fn: Any, x: Inputs) -> Any:
    """Apply ``fn`` to one input array, or to each array of a list of inputs."""
    return [fn(a) for a in x] if isinstance(x, list) else fn(x)


def check_gradients(
    layer: Layer,
    x: Inputs,
    training: bool = False,
    seed: int = 0,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> None:
    """Compare backprop with finite differences for ``sum(layer(x) * dy)`` (float64 layer).

    ``x`` is one array, or a list of arrays for a layer that takes several inputs.
    """
    if layer.dtype != "float64":
        raise ValueError("Gradient checks need a float64 layer: construct it with dtype='float64'")
    x = _map(lambda a: np.array(a, dtype=np.float64), x)
    dy = np.random.default_rng(seed).normal(size=layer(x, training=training).shape)

    def objective() -> float:
        return float((layer(x, training=training).data * dy).sum())

    inputs = _map(lambda a: Tensor(a.copy(), requires_grad=True), x)
    for weight in layer.trainable_weights:
        weight.grad = None
    layer(inputs, training=training).backward(dy)
    if isinstance(x, list):
        checks = [(f"inputs[{i}]", t.grad, a) for i, (t, a) in enumerate(zip(inputs, x))]
    else:
        checks = [("inputs", inputs.grad, x)]
    checks += [(weight.name, weight.grad, weight.data) for weight in layer.trainable_weights]
    for name, analytic, array in checks:
        if analytic is None:
            raise AssertionError(f"{layer.name}: no gradient reached {name}")
        numeric = numeric_gradient(objective, array)
        np.testing.assert_allclose(
            analytic,
            numeric,
            rtol=rtol,
            atol=atol,
            err_msg=(
                f"{type(layer).__name__} '{layer.name}': gradient of {name} "
                "disagrees with finite differences"
            ),
        )


def run_layer_test(
    layer_cls: type[Layer],
    init_kwargs: dict[str, Any],
    input_shape: tuple[int, ...] | list[tuple[int, ...]],
    expected_output_shape: tuple[int, ...] | None = None,
    expected_num_trainable_weights: int | None = None,
    expected_num_non_trainable_weights: int | None = None,
    expected_num_params: int | None = None,
    training: bool = False,
    check_grads: bool = True,
    input_data: Inputs | None = None,
    seed: int = 0,
) -> Layer:
    """Run the standard checks on ``layer_cls(**init_kwargs)``; returns the built float32 layer.

    For a layer that takes a list of inputs (a merge layer), ``input_shape`` is a list of shapes
    and ``input_data``, if given, a list of arrays.
    """
    rng = np.random.default_rng(seed)
    if input_data is not None:
        x = input_data
    elif _is_shape_list(input_shape):
        x = [rng.normal(size=tuple(shape)).astype(np.float32) for shape in input_shape]
    else:
        x = rng.normal(size=input_shape).astype(np.float32)

    # Shapes and weights, in float32 (the dtype users train in).
    layer = layer_cls(**init_kwargs)
    outputs = layer(x, training=training)
    assert outputs.dtype == np.float32, (
        f"{layer_cls.__name__} returned {outputs.dtype}, not float32"
    )
    if expected_output_shape is not None:
        assert outputs.shape == tuple(expected_output_shape), (
            f"{layer_cls.__name__}: output shape {outputs.shape}, expected {expected_output_shape}"
        )
    symbolic = layer.compute_output_shape(_map(lambda a: (None, *a.shape[1:]), x))
    assert tuple(symbolic) == (None, *outputs.shape[1:]), (
        f"{layer_cls.__name__}: compute_output_shape gave {symbolic}, call gave {outputs.shape}"
    )
    for expected, actual, what in (
        (expected_num_trainable_weights, len(layer.trainable_weights), "trainable weights"),
        (
            expected_num_non_trainable_weights,
            len(layer.non_trainable_weights),
            "non-trainable weights",
        ),
        (expected_num_params, layer.count_params(), "parameters"),
    ):
        if expected is not None:
            assert actual == expected, f"{layer_cls.__name__}: {actual} {what}, expected {expected}"

    # Config round trip through JSON: same config, same outputs with the same weights.
    config = json.loads(json.dumps(layer.get_config()))
    clone = layer_cls.from_config(config)
    assert json.loads(json.dumps(clone.get_config())) == config, (
        f"{layer_cls.__name__}: config changed"
    )
    revived = deserialize(json.loads(json.dumps(serialize(layer))))
    assert type(revived) is layer_cls
    if not training:  # training-mode outputs may be random (Dropout) or change state (BatchNorm)
        revived(_map(lambda a: a[:1], x))
        revived.set_weights(layer.get_weights())
        np.testing.assert_allclose(revived(x).data, layer(x).data, rtol=1e-6, atol=1e-6)

    if check_grads:
        float64_config = {**config, "dtype": "float64"}
        float64_layer = layer_cls.from_config(float64_config)
        x64 = _map(lambda a: a.astype(np.float64), x)
        float64_layer(_map(lambda a: a[:1], x64))
        float64_layer.set_weights(
            [
                rng.normal(size=w.shape) if w.trainable else np.abs(rng.normal(size=w.shape)) + 0.5
                for w in float64_layer.weights
            ]
        )
        check_gradients(float64_layer, x64, training=training, seed=seed)
    return layer
