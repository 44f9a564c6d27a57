"""Activation layers with arguments: ReLU, LeakyReLU and Softmax.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> el.layers.ReLU(max_value=6.0)(np.array([[-1.0, 3.0, 9.0]], dtype=np.float32)).numpy()
    array([[0., 3., 6.]], dtype=float32)
"""

from __future__ import annotations

from typing import Any

from edgelearn.engine import functions as F
from edgelearn.layers.base import Layer, register


@register
class ReLU(Layer):
    """``min(max_value, x)`` for ``x > threshold``, else ``negative_slope * (x - threshold)``."""

    samplewise = True

    def __init__(
        self,
        max_value: float | None = None,
        negative_slope: float = 0.0,
        threshold: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        for argument, value in (("max_value", max_value), ("negative_slope", negative_slope)):
            if value is not None and value < 0:
                raise ValueError(f"ReLU expects {argument} >= 0. Received: {argument}={value!r}")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)

    def call(self, inputs, training=False):
        return F.ReLU.apply(
            inputs,
            max_value=self.max_value,
            negative_slope=self.negative_slope,
            threshold=self.threshold,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


@register
class LeakyReLU(Layer):
    """``x`` for ``x > 0``, else ``negative_slope * x``.

    Keras 2 and TF.js call the slope ``alpha``; ``LeakyReLU(alpha=...)`` and configs holding
    ``alpha`` are read as ``negative_slope``, as Keras 3 reads them.

    Example:
        >>> import numpy as np
        >>> import edgelearn as el
        >>> el.layers.LeakyReLU(0.1)(np.array([[-2.0, 3.0]], dtype=np.float32)).numpy()
        array([[-0.2,  3. ]], dtype=float32)
    """

    samplewise = True

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any):
        alpha = kwargs.pop("alpha", None)
        super().__init__(**kwargs)
        if alpha is not None:
            negative_slope = alpha
        if negative_slope is None or negative_slope < 0:
            raise ValueError(
                "LeakyReLU expects negative_slope >= 0. "
                f"Received: negative_slope={negative_slope!r}"
            )
        self.negative_slope = float(negative_slope)

    def call(self, inputs, training=False):
        return F.ReLU.apply(inputs, negative_slope=self.negative_slope)

    def get_config(self):
        # Keras 3 reads negative_slope; TF.js's LeakyReLU reads only alpha and would silently
        # fall back to its default 0.3 (tfjs-layers/src/layers/advanced_activations.ts), so both
        # keys are written. Keras 3 accepts alpha as an alias of the same value.
        return {
            **super().get_config(),
            "negative_slope": self.negative_slope,
            "alpha": self.negative_slope,
        }


@register
class Softmax(Layer):
    """Softmax along ``axis``."""

    samplewise = True

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def check_input_shape(self, input_shape):
        if not -len(input_shape) <= self.axis < len(input_shape):
            raise self.input_error(f"an axis {self.axis} to exist", input_shape)

    def call(self, inputs, training=False):
        return F.Softmax.apply(inputs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
