"""BatchNormalization.

In training (``training=True`` and the layer trainable) it normalises with the batch's mean and
(biased) variance and moves ``moving_mean`` / ``moving_variance`` towards them by ``1 - momentum``;
at inference it uses the moving statistics. Weights in Keras order: gamma, beta, moving_mean,
moving_variance (gamma/beta absent when ``scale`` / ``center`` are False).

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> bn = el.layers.BatchNormalization()
    >>> y = bn(np.random.default_rng(0).normal(3, 2, (64, 4)).astype(np.float32), training=True)
    >>> bool(abs(y.numpy().mean()) < 1e-5)
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgelearn import initializers
from edgelearn.engine import functions as F
from edgelearn.layers.base import Layer, register
from edgelearn.layers.core import _no_regularizers


@register
class BatchNormalization(Layer):
    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):  # Keras 2 configs store [3]
            if len(axis) != 1:
                raise ValueError(
                    f"BatchNormalization supports a single axis. Received: axis={axis!r}"
                )
            axis = axis[0]
        if not 0 <= momentum <= 1:
            raise ValueError(
                f"BatchNormalization expects 0 <= momentum <= 1. Received: momentum={momentum!r}"
            )
        if epsilon <= 0:
            raise ValueError(
                f"BatchNormalization expects epsilon > 0. Received: epsilon={epsilon!r}"
            )
        _no_regularizers(
            "BatchNormalization",
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
        )
        self.set_weight_regularizers(gamma=gamma_regularizer, beta=beta_regularizer)
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def check_input_shape(self, input_shape):
        if not -len(input_shape) < self.axis < len(input_shape) or input_shape[self.axis] is None:
            raise self.input_error(f"a known axis {self.axis}", input_shape)
        if self.built and input_shape[self.axis] != self.moving_mean.shape[0]:
            raise self.input_error(
                f"{self.moving_mean.shape[0]} features on axis {self.axis}", input_shape
            )

    def build(self, input_shape):
        shape = (input_shape[self.axis],)
        self.gamma = self.add_weight("gamma", shape, self.gamma_initializer) if self.scale else None
        self.beta = self.add_weight("beta", shape, self.beta_initializer) if self.center else None
        self.moving_mean = self.add_weight(
            "moving_mean", shape, self.moving_mean_initializer, trainable=False
        )
        self.moving_variance = self.add_weight(
            "moving_variance", shape, self.moving_variance_initializer, trainable=False
        )
        self.built = True

    def splits_by_sample(self, training: bool) -> bool:
        # A trainable layer in training normalises by the batch's statistics and updates state.
        return not (training and self.trainable)

    def call(self, inputs, training=False):
        if training and self.trainable:
            primitive, outputs = F.BatchNormTraining.run(
                inputs, self.gamma, self.beta, axis=self.axis, epsilon=self.epsilon
            )
            decay = inputs.dtype.type(1 - self.momentum)
            self.moving_mean.data -= (self.moving_mean.data - primitive.mean) * decay
            self.moving_variance.data -= (self.moving_variance.data - primitive.variance) * decay
            return outputs
        return F.BatchNormInference.apply(
            inputs,
            self.gamma,
            self.beta,
            mean=self.moving_mean.data,
            variance=self.moving_variance.data,
            axis=self.axis,
            epsilon=self.epsilon,
        )

    def inference_affine(self, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
        """The per-feature ``(scale, shift)`` with which this layer maps ``x`` to
        ``x * scale + shift`` at inference (from the moving statistics)."""
        inv_std = F.inverse_std(self.moving_variance.data, self.epsilon, dtype)
        return F.batch_norm_affine(
            inv_std,
            None if self.gamma is None else self.gamma.data,
            None if self.beta is None else self.beta.data,
            self.moving_mean.data,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            "beta_constraint": None,
            "gamma_constraint": None,
        }
