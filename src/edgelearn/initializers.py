"""Weight initializers with Keras names, arguments, defaults and serialised form.

Example:
    >>> import edgelearn as el
    >>> w = el.initializers.get("glorot_uniform")((784, 10), dtype="float32")
    >>> w.shape, w.dtype, bool(abs(w).max() <= (6 / (784 + 10)) ** 0.5)
    ((784, 10), dtype('float32'), True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgelearn import random as el_random


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras fan-in / fan-out: convolution kernels multiply by the receptive field."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class Initializer:
    """Base class: ``initializer(shape, dtype)`` returns a new array."""

    def __call__(self, shape: tuple[int, ...], dtype: Any = "float32") -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        return cls(**config)


class Zeros(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.zeros(shape, dtype=dtype)


class Ones(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.ones(shape, dtype=dtype)


class Constant(Initializer):
    def __init__(self, value: float = 0.0):
        self.value = value

    def __call__(self, shape, dtype="float32"):
        return np.full(shape, self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype="float32"):
        rng = el_random.generator(self.seed)
        return rng.normal(self.mean, self.stddev, size=shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype="float32"):
        rng = el_random.generator(self.seed)
        return rng.uniform(self.minval, self.maxval, size=shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class TruncatedNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype="float32"):
        rng = el_random.generator(self.seed)
        return (self.mean + self.stddev * _truncated_standard_normal(rng, shape)).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated_standard_normal(rng: np.random.Generator, shape) -> np.ndarray:
    """Standard normal samples redrawn until they lie within two standard deviations."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2
    return values


class VarianceScaling(Initializer):
    """Samples with variance ``scale / n`` where n is fan_in, fan_out or their average."""

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "normal", "uniform")

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ):
        if scale <= 0:
            raise ValueError(f"VarianceScaling expects a positive scale. Received: scale={scale}")
        if mode not in self._MODES:
            raise ValueError(
                f"VarianceScaling mode must be one of {self._MODES}. Received: mode={mode!r}"
            )
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(
                f"VarianceScaling distribution must be one of {self._DISTRIBUTIONS}. "
                f"Received: distribution={distribution!r}"
            )
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = compute_fans(tuple(shape))
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        rng = el_random.generator(self.seed)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            values = rng.uniform(-limit, limit, size=shape)
        elif self.distribution in ("truncated_normal", "normal"):  # Keras 2 meant truncated
            # 0.8796... is the standard deviation of a standard normal truncated at +-2.
            values = (
                math.sqrt(variance) / 0.87962566103423978 * _truncated_standard_normal(rng, shape)
            )
        else:
            values = math.sqrt(variance) * rng.standard_normal(shape)
        return values.astype(dtype)

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
        }


class GlorotUniform(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_avg", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


class GlorotNormal(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


class HeNormal(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


class HeUniform(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(2.0, "fan_in", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


_CLASSES: dict[str, type[Initializer]] = {
    cls.__name__: cls
    for cls in (
        Zeros,
        Ones,
        Constant,
        RandomNormal,
        RandomUniform,
        TruncatedNormal,
        VarianceScaling,
        GlorotUniform,
        GlorotNormal,
        HeNormal,
        HeUniform,
    )
}
_NAMES = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_normal": HeNormal,
    "he_uniform": HeUniform,
}


def get(identifier: str | dict | Initializer | None) -> Initializer:
    """Resolve an initializer from a Keras name, a serialised dict or an instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str) and identifier in _NAMES:
        return _NAMES[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config") or {})
    raise ValueError(
        f"Unknown initializer {identifier!r}. Known initializers: {', '.join(sorted(_NAMES))} "
        f"(or a dict with class_name one of {', '.join(sorted(_CLASSES))})"
    )


def serialize(initializer: Initializer) -> dict[str, Any]:
    """The Keras JSON form: ``{"class_name": "GlorotUniform", "config": {"seed": None}}``."""
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
