"""Weight regularizers with Keras names: ``l1 * sum(|w|) + l2 * sum(w^2)`` added to the loss.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> w = el.engine.Tensor(np.array([1.0, -2.0]))
    >>> el.regularizers.L1L2(l1=0.1, l2=0.01)(w).item()
    0.35000000000000003
"""

from __future__ import annotations

from typing import Any

from edgelearn.engine import Tensor
from edgelearn.engine import functions as F


class Regularizer:
    """Base class: ``regularizer(weight)`` returns a scalar Tensor penalty."""

    def __call__(self, weight: Tensor) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)


class L1L2(Regularizer):
    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        for argument, value in (("l1", l1), ("l2", l2)):
            if value < 0:
                raise ValueError(
                    f"{type(self).__name__} expects {argument} >= 0. Received: {argument}={value!r}"
                )
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, weight):
        penalty = None
        if self.l1:
            penalty = F.Mul.apply(F.Sum.apply(F.Abs.apply(weight)), self.l1)
        if self.l2:
            squares = F.Mul.apply(F.Sum.apply(F.Mul.apply(weight, weight)), self.l2)
            penalty = squares if penalty is None else F.Add.apply(penalty, squares)
        return penalty if penalty is not None else Tensor(weight.data.dtype.type(0))

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


_CLASSES = {"L1L2": L1L2, "L1": L1, "L2": L2, "l1_l2": L1L2}
_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2}


def get(identifier: str | dict | Regularizer | None) -> Regularizer | None:
    """Resolve a regularizer from a name ('l1', 'l2', 'l1_l2'), a Keras dict, or an instance."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in _NAMES:
        return _NAMES[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        config = {k: v for k, v in (identifier.get("config") or {}).items() if k in ("l1", "l2")}
        return _CLASSES[identifier["class_name"]](**config)
    raise ValueError(
        f"Unknown regularizer {identifier!r}. Known regularizers: l1, l2, l1_l2 "
        "(or a dict with class_name L1, L2 or L1L2)"
    )


def serialize(regularizer: Regularizer | None) -> dict[str, Any] | None:
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
