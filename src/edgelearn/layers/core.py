"""Core layers: InputLayer/Input, Dense, Activation, Flatten, Reshape, Dropout.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> el.layers.Flatten()(np.zeros((2, 3, 4), dtype=np.float32)).shape
    (2, 12)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgelearn import activations, initializers
from edgelearn import random as el_random
from edgelearn.engine import functions as F
from edgelearn.layers.base import Layer, Shape, batch_part_start, register
from edgelearn.layers.graph import KerasTensor, Node


def _no_regularizers(layer: str, **arguments: Any) -> None:
    """Activity regularizers and constraints appear in every Keras config; only ``None`` is
    supported. (Weight regularizers are: see ``Layer.set_weight_regularizers``.)"""
    for argument, value in arguments.items():
        if value is not None:
            raise ValueError(
                f"{layer} does not support {argument} yet (only None). "
                f"Received: {argument}={value!r}"
            )


@register
class InputLayer(Layer):
    """The entry point of a model: holds the input shape, passes inputs through unchanged."""

    samplewise = True

    def __init__(
        self,
        shape: Shape | None = None,
        batch_size: int | None = None,
        dtype: Any = None,
        sparse: bool = False,
        batch_shape: Shape | None = None,
        input_shape: Shape | None = None,
        batch_input_shape: Shape | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        kwargs.pop("ragged", None)  # Keras 2 configs carry it; always False for dense inputs
        super().__init__(name=name, dtype=dtype, **kwargs)
        if sparse:
            raise ValueError(
                f"InputLayer does not support sparse inputs. Received: sparse={sparse}"
            )
        batch_shape = batch_shape or batch_input_shape
        if batch_shape is None:
            shape = shape if shape is not None else input_shape
            if shape is None:
                raise ValueError("InputLayer needs a shape, e.g. InputLayer(shape=(28, 28, 1))")
            batch_shape = (batch_size, *tuple(shape))
        self.batch_input_shape = tuple(None if d is None else int(d) for d in batch_shape)
        self.built = True
        self.output = KerasTensor(self.batch_input_shape, dtype=self.dtype)
        Node(self, None, [self.output])

    def call(self, inputs, training=False):
        return inputs

    def check_input_shape(self, input_shape):
        expected = self.batch_input_shape[1:]
        if len(input_shape) - 1 != len(expected) or any(
            e is not None and e != r for e, r in zip(expected, input_shape[1:])
        ):
            raise self.input_error(f"inputs of shape {(None, *expected)}", input_shape)

    def get_config(self):
        return {
            "batch_input_shape": list(self.batch_input_shape),
            "dtype": self.dtype,
            "sparse": False,
            "name": self.name,
        }


def Input(  # noqa: N802  (Keras spells it as a class)
    shape: Shape | None = None,
    batch_size: int | None = None,
    dtype: Any = None,
    name: str | None = None,
    batch_shape: Shape | None = None,
) -> KerasTensor:
    """Declare a model input: the start of a functional model, or a Sequential's first item.

    Example:
        >>> import edgelearn as el
        >>> el.layers.Input((28, 28, 1)).shape
        (None, 28, 28, 1)
    """
    layer = InputLayer(
        shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape
    )
    return layer.output


@register
class Dense(Layer):
    """``activation(inputs @ kernel + bias)`` on the last axis.

    Example:
        >>> import numpy as np
        >>> import edgelearn as el
        >>> el.layers.Dense(4, activation="relu")(np.ones((2, 3), dtype=np.float32)).shape
        (2, 4)
    """

    samplewise = True

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(
                f"Dense expects a positive integer number of units. Received: units={units!r}"
            )
        _no_regularizers(
            "Dense",
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        self.set_weight_regularizers(kernel=kernel_regularizer, bias=bias_regularizer)
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def check_input_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise self.input_error("input of rank >= 2 with a known last axis", input_shape)
        if self.built and input_shape[-1] != self.kernel.shape[0]:
            raise self.input_error(f"a last axis of size {self.kernel.shape[0]}", input_shape)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            "kernel", (input_shape[-1], self.units), self.kernel_initializer
        )
        self.bias = (
            self.add_weight("bias", (self.units,), self.bias_initializer) if self.use_bias else None
        )
        self.built = True

    def call(self, inputs, training=False):
        outputs = F.MatMul.apply(inputs, self.kernel)
        if self.bias is not None:
            outputs = F.Add.apply(outputs, self.bias)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "activity_regularizer": None,
            "kernel_constraint": None,
            "bias_constraint": None,
        }


@register
class Activation(Layer):
    """Applies an activation function by name, e.g. ``Activation("relu")``."""

    samplewise = True

    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs, training=False):
        return self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@register
class Flatten(Layer):
    """Flattens every axis but the batch axis."""

    samplewise = True

    def __init__(self, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"Flatten supports channels_last only. Received: data_format={data_format!r}"
            )
        self.data_format = "channels_last"

    def check_input_shape(self, input_shape):
        if any(d is None for d in input_shape[1:]):
            raise self.input_error("a fully known shape apart from the batch axis", input_shape)

    def call(self, inputs, training=False):
        return F.Reshape.apply(inputs, shape=(inputs.shape[0], -1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], math.prod(input_shape[1:]))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


@register
class Reshape(Layer):
    """Reshapes every axis but the batch axis to ``target_shape`` (one entry may be -1)."""

    samplewise = True

    def __init__(self, target_shape: Shape, **kwargs: Any):
        super().__init__(**kwargs)
        target_shape = tuple(target_shape)
        if sum(1 for d in target_shape if d == -1) > 1 or any(
            d != -1 and (not isinstance(d, (int, np.integer)) or d <= 0) for d in target_shape
        ):
            raise ValueError(
                "Reshape expects positive sizes with at most one -1. "
                f"Received: target_shape={target_shape!r}"
            )
        self.target_shape = tuple(int(d) for d in target_shape)

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise self.input_error(
                    f"a size divisible by {known} for {self.target_shape}", input_shape
                )
            return (input_shape[0], *(size // known if d == -1 else d for d in self.target_shape))
        if size != known:
            raise self.input_error(
                f"{known} values per sample for {self.target_shape}", input_shape
            )
        return (input_shape[0], *self.target_shape)

    def check_input_shape(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, inputs, training=False):
        shape = self.compute_output_shape(inputs.shape)
        return F.Reshape.apply(inputs, shape=(inputs.shape[0], *shape[1:]))

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@register
class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs during training and scales the rest by
    ``1 / (1 - rate)``; does nothing at inference."""

    def __init__(
        self, rate: float, noise_shape: Shape | None = None, seed: int | None = None, **kwargs: Any
    ):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout expects 0 <= rate < 1. Received: rate={rate!r}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed
        self._rng = el_random.generator(seed) if seed is not None else None
        self._sample_shape: Shape | None = None
        self._step_keep: np.ndarray | None = None  # the step's masks, drawn in start_step

    def build(self, input_shape: Shape) -> None:
        self._sample_shape = tuple(input_shape[1:])
        self.built = True

    def splits_by_sample(self, training: bool) -> bool:
        return not training or self.rate == 0 or self._prepares_masks()

    def _prepares_masks(self) -> bool:
        # The whole batch's masks can be drawn before a step where one sample's shape is known
        # and the layer runs once per step (not twice in a graph).
        return (
            self._sample_shape is not None
            and all(isinstance(d, int) for d in self._sample_shape)
            and len(self.inbound_nodes) <= 1
        )

    def start_step(self, n_samples: int) -> None:
        # The same draws as the call on the whole batch would make, whatever the split.
        if self.rate > 0 and self._prepares_masks():
            self._step_keep = self._draw_keep((n_samples, *self._sample_shape))

    def end_step(self) -> None:
        self._step_keep = None

    def _draw_keep(self, shape: Shape) -> np.ndarray:
        if self.noise_shape is not None:
            shape = tuple(s if n is None else n for s, n in zip(shape, self.noise_shape))
        rng = self._rng or el_random.generator()
        return rng.random(shape) >= self.rate

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        keep = self._step_keep
        if keep is None:
            keep = self._draw_keep(inputs.shape)
        elif len(keep) > 1:  # a row per sample (not a noise_shape shared by the batch)
            start = batch_part_start()
            keep = keep[start : start + len(inputs)]
        mask = keep.astype(inputs.dtype) * inputs.dtype.type(1 / (1 - self.rate))
        return F.Mul.apply(inputs, mask)

    def get_config(self):
        noise = None if self.noise_shape is None else list(self.noise_shape)
        return {**super().get_config(), "rate": self.rate, "noise_shape": noise, "seed": self.seed}


__all__ = ["Activation", "Dense", "Dropout", "Flatten", "Input", "InputLayer", "Reshape"]
