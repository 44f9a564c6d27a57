"""Optimizers with Keras names, defaults and update rules.

Each optimizer keeps per-variable state (momentum, moment estimates) and updates the variables
in place.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> w = el.engine.Variable(np.array([1.0], dtype=np.float32))
    >>> el.optimizers.SGD(learning_rate=0.1).apply_gradients(
    ...     [(np.array([2.0], dtype=np.float32), w)]
    ... )
    >>> w.numpy()
    array([0.8], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from edgelearn.engine import Variable


class Optimizer:
    """Base class: subclasses implement ``update(variable, grad, state)``."""

    name = "optimizer"

    def __init__(self, learning_rate: float = 0.001, name: str | None = None):
        if not learning_rate > 0:
            raise ValueError(
                f"{type(self).__name__} expects a positive learning_rate. "
                f"Received: learning_rate={learning_rate!r}"
            )
        self.learning_rate = float(learning_rate)
        if name is not None:
            self.name = name
        self.iterations = 0
        self._state: dict[int, dict[str, np.ndarray]] = {}

    def apply_gradients(self, grads_and_vars: Iterable[tuple[Any, Variable]]) -> None:
        """Apply one step: ``[(gradient, variable), ...]``.

        Variables with a None gradient are skipped.
        """
        self.iterations += 1
        for grad, variable in grads_and_vars:
            if grad is None:
                continue
            grad = np.asarray(grad, dtype=variable.dtype)
            if grad.shape != variable.shape:
                raise ValueError(
                    f"Gradient for '{variable.name}' has shape {grad.shape}, "
                    f"expected {variable.shape}"
                )
            state = self._state.get(id(variable))
            if state is None:
                state = self._state[id(variable)] = self.init_state(variable)
            self.update(variable.data, grad, state)

    def apply(self, grads: list[Any], variables: list[Variable]) -> None:
        """Keras 3 spelling: gradients and variables as two parallel lists."""
        if len(grads) != len(variables):
            raise ValueError(f"apply() got {len(grads)} gradients for {len(variables)} variables")
        self.apply_gradients(zip(grads, variables))

    def init_state(self, variable: Variable) -> dict[str, np.ndarray]:
        return {}

    def update(self, value: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        return cls(**config)


class SGD(Optimizer):
    """``v = momentum * v + g; w -= lr * v`` (Nesterov: ``w -= lr * (g + momentum * v)``)."""

    name = "SGD"

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs
    ):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"SGD expects 0 <= momentum <= 1. Received: momentum={momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def init_state(self, variable):
        return {"velocity": np.zeros_like(variable.data)} if self.momentum else {}

    def update(self, value, grad, state):
        lr = value.dtype.type(self.learning_rate)
        if not self.momentum:
            value -= lr * grad
            return
        velocity = state["velocity"]
        velocity *= value.dtype.type(self.momentum)
        velocity += grad
        step = grad + value.dtype.type(self.momentum) * velocity if self.nesterov else velocity
        value -= lr * step

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam: ``w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)``."""

    name = "adam"

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs,
    ):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def init_state(self, variable):
        return {"m": np.zeros_like(variable.data), "v": np.zeros_like(variable.data), "t": 0}

    def update(self, value, grad, state):
        t = state["t"] = state["t"] + 1
        dtype = value.dtype.type
        m, v = state["m"], state["v"]
        m *= dtype(self.beta_1)
        m += dtype(1 - self.beta_1) * grad
        v *= dtype(self.beta_2)
        v += dtype(1 - self.beta_2) * grad * grad
        # Keras' form (Keras 2 and 3 alike): the bias corrections fold into the step size, so
        # epsilon is added to sqrt(v), not to sqrt(v_hat) as TensorFlow.js does.
        alpha = self.learning_rate * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        value -= dtype(alpha) * m / (np.sqrt(v) + dtype(self.epsilon))

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


class RMSprop(Optimizer):
    """``ms = rho ms + (1 - rho) g^2; w -= lr g / sqrt(ms + epsilon)`` (with optional momentum and
    centering, as TensorFlow.js implements them)."""

    name = "rmsprop"

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **kwargs,
    ):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)

    def init_state(self, variable):
        state = {"ms": np.zeros_like(variable.data), "mom": np.zeros_like(variable.data)}
        if self.centered:
            state["mg"] = np.zeros_like(variable.data)
        return state

    def update(self, value, grad, state):
        dtype = value.dtype.type
        ms = state["ms"]
        ms *= dtype(self.rho)
        ms += dtype(1 - self.rho) * grad * grad
        denominator = ms + dtype(self.epsilon)
        if self.centered:
            mg = state["mg"]
            mg *= dtype(self.rho)
            mg += dtype(1 - self.rho) * grad
            denominator = denominator - mg * mg
        step = dtype(self.learning_rate) * grad / np.sqrt(denominator)
        mom = state["mom"]
        mom *= dtype(self.momentum)
        mom += step
        value -= mom

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


class Adagrad(Optimizer):
    """``acc += g^2; w -= lr g / sqrt(acc + epsilon)``."""

    name = "adagrad"

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kwargs,
    ):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def init_state(self, variable):
        return {"acc": np.full_like(variable.data, self.initial_accumulator_value)}

    def update(self, value, grad, state):
        dtype = value.dtype.type
        acc = state["acc"]
        acc += grad * grad
        value -= dtype(self.learning_rate) * grad / np.sqrt(acc + dtype(self.epsilon))

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


_OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}


def get(identifier: str | Optimizer) -> Optimizer:
    """Resolve an optimizer from its name (with Keras defaults) or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()]()
    raise ValueError(
        f"Unknown optimizer {identifier!r}. Known optimizers: {', '.join(sorted(_OPTIMIZERS))}. "
        f"Received: optimizer={identifier!r}"
    )
