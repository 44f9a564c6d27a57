"""Convolution layers (NHWC, Keras kernel layout (kh, kw, in, out)).

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> el.layers.Conv2D(8, 5, activation="relu")(np.zeros((1, 28, 28, 1), dtype=np.float32)).shape
    (1, 24, 24, 8)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgelearn import activations, initializers
from edgelearn.engine import functions as F
from edgelearn.engine import kernels
from edgelearn.layers.base import Layer, normalize_tuple, register
from edgelearn.layers.core import _no_regularizers


def check_padding(layer: str, padding: str) -> str:
    padding = padding.lower() if isinstance(padding, str) else padding
    if padding not in ("valid", "same"):
        raise ValueError(f"{layer} expects padding 'valid' or 'same'. Received: padding={padding!r}")
    return padding


def check_data_format(layer: str, data_format: str | None) -> str:
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"{layer} supports data_format='channels_last' (NHWC) only. "
            f"Received: data_format={data_format!r}"
        )
    return "channels_last"


@register
class Conv2D(Layer):
    """2-D convolution: ``activation(conv2d(inputs, kernel) + bias)``."""

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | tuple[int, int] = (1, 1),
        groups: int = 1,
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
        if not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(f"Conv2D expects a positive integer number of filters. Received: filters={filters!r}")
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", "Conv2D")
        self.strides = normalize_tuple(strides, 2, "strides", "Conv2D")
        self.padding = check_padding("Conv2D", padding)
        self.data_format = check_data_format("Conv2D", data_format)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", "Conv2D")
        if self.dilation_rate != (1, 1) or groups != 1:
            raise ValueError(
                "Conv2D supports dilation_rate=1 and groups=1 only. "
                f"Received: dilation_rate={dilation_rate!r}, groups={groups!r}"
            )
        _no_regularizers(
            "Conv2D", kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def check_input_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise self.input_error("4-D input (batch, height, width, channels)", input_shape)
        if self.built and input_shape[-1] != self.kernel.shape[2]:
            raise self.input_error(f"{self.kernel.shape[2]} input channels", input_shape)
        if self.padding == "valid":
            for size, k in zip(input_shape[1:3], self.kernel_size):
                if size is not None and size < k:
                    raise self.input_error(
                        f"height and width of at least {self.kernel_size} with padding='valid'",
                        input_shape,
                    )

    def build(self, input_shape):
        shape = (*self.kernel_size, input_shape[-1], self.filters)
        self.kernel = self.add_weight("kernel", shape, self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer) if self.use_bias else None
        self.built = True

    def call(self, inputs, training=False):
        outputs = F.Conv2D.apply(
            inputs, self.kernel, self.bias, strides=self.strides, padding=self.padding
        )
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        out = [
            None if size is None else kernels.output_length(size, k, s, self.padding)
            for size, k, s in zip((h, w), self.kernel_size, self.strides)
        ]
        return (n, out[0], out[1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate),
            "groups": 1,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": None,
            "bias_regularizer": None,
            "activity_regularizer": None,
            "kernel_constraint": None,
            "bias_constraint": None,
        }
