"""Symbolic tensors and nodes: how the functional API records a graph of layer calls.

Calling a layer on a :class:`KerasTensor` computes nothing: it checks and infers shapes, builds
the layer's weights, and returns a new KerasTensor that remembers the call in a :class:`Node`.
``el.Model(inputs, outputs)`` walks these nodes back from the outputs to run them in order.

Example:
    >>> import edgelearn as el
    >>> x = el.layers.Input((8,))
    >>> y = el.layers.Dense(4)(x)
    >>> y.shape, y.node.layer.name.startswith("dense")
    ((None, 4), True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgelearn.layers.base import Layer, Shape


class KerasTensor:
    """A placeholder of known shape (batch axis ``None``) and dtype, produced by ``node``."""

    def __init__(
        self, shape: Shape, dtype: Any = "float32", node: Node | None = None, index: int = 0
    ):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.index = index

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def name(self) -> str:
        return self.node.layer.name if self.node is not None else "keras_tensor"

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape} dtype={self.dtype.name} from={self.name!r}>"


class Node:
    """One call of ``layer`` on ``inputs`` (KerasTensors) that produced ``outputs``."""

    def __init__(
        self,
        layer: Layer,
        inputs: KerasTensor | list[KerasTensor] | None,
        outputs: list[KerasTensor],
    ):
        self.layer = layer
        self.inputs = inputs
        self.outputs = outputs
        for index, output in enumerate(outputs):
            output.node, output.index = self, index
        layer.inbound_nodes.append(self)

    @property
    def input_tensors(self) -> list[KerasTensor]:
        if self.inputs is None:
            return []
        return list(self.inputs) if isinstance(self.inputs, (list, tuple)) else [self.inputs]


def is_symbolic(inputs: Any) -> bool:
    if isinstance(inputs, (list, tuple)):
        return any(isinstance(x, KerasTensor) for x in inputs)
    return isinstance(inputs, KerasTensor)
