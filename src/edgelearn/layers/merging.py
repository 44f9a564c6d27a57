"""Merge layers: combine a list of inputs into one output (the functional API's joins).

The elementwise merges broadcast as Keras does: shapes (batch axis excluded) align on their
last axes and axes of size 1 stretch; an input of lower rank first gains axes of size 1 right
after the batch axis.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> a, b = np.ones((2, 3), dtype=np.float32), np.full((2, 3), 2.0, dtype=np.float32)
    >>> el.layers.Add()([a, b]).numpy()[0], el.layers.Concatenate()([a, b]).shape
    (array([3., 3., 3.], dtype=float32), (2, 6))
"""

from __future__ import annotations

from typing import Any

from edgelearn.engine import Tensor
from edgelearn.engine import functions as F
from edgelearn.layers.base import Layer, Shape, register


def _is_shape_list(input_shape: Any) -> bool:
    return isinstance(input_shape, (list, tuple)) and all(
        isinstance(shape, (list, tuple)) for shape in input_shape
    )


class _Merge(Layer):
    """Base of the merge layers: checks the list of input shapes, then merges the tensors."""

    samplewise = True

    _exact_inputs: int | None = None

    def _shapes(self, input_shape: Any) -> list[Shape]:
        if not _is_shape_list(input_shape) or not input_shape:
            raise self.input_error("a list of at least one input", input_shape)
        if self._exact_inputs is not None and len(input_shape) != self._exact_inputs:
            raise self.input_error(f"a list of exactly {self._exact_inputs} inputs", input_shape)
        return [tuple(shape) for shape in input_shape]

    def _batch_size(self, shapes: list[Shape]) -> int | None:
        known = {shape[0] for shape in shapes if shape and shape[0] is not None}
        if len(known) > 1:
            raise self.input_error(f"inputs of one batch size, not {sorted(known)}", shapes)
        return known.pop() if known else None

    def check_input_shape(self, input_shape):
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        shapes = self._shapes(input_shape)
        batch = self._batch_size(shapes)
        output = shapes[0][1:]
        for shape in shapes[1:]:
            output = self._broadcast(output, shape[1:], shapes)
        return (batch, *output)

    def _broadcast(self, first: Shape, second: Shape, shapes: list[Shape]) -> Shape:
        """Keras' broadcast of two shapes without their batch axis."""
        if len(first) < len(second):
            first, second = second, first
        output = list(first[: len(first) - len(second)])
        for i, j in zip(first[len(first) - len(second) :], second):
            if i is None or j is None:
                output.append(None)
            elif i == 1 or j == 1 or i == j:
                output.append(j if i == 1 else i)
            else:
                raise self.input_error(
                    f"inputs whose shapes broadcast together, but {(None, *first)} and "
                    f"{(None, *second)} do not",
                    shapes,
                )
        return tuple(output)

    def call(self, inputs, training=False):
        rank = max(x.ndim for x in inputs)
        # Keras inserts the missing axes right after the batch axis, not in front of it.
        aligned = [
            x
            if x.ndim == rank
            else F.Reshape.apply(x, shape=(x.shape[0], *(1,) * (rank - x.ndim), *x.shape[1:]))
            for x in inputs
        ]
        return self._merge(aligned)

    def _merge(self, inputs: list[Tensor]) -> Tensor:
        raise NotImplementedError


@register
class Add(_Merge):
    """Elementwise sum of the inputs."""

    def _merge(self, inputs):
        return F.AddN.apply(*inputs)


@register
class Subtract(_Merge):
    """``inputs[0] - inputs[1]`` for exactly two inputs.

    Example:
        >>> import numpy as np
        >>> import edgelearn as el
        >>> a, b = np.ones((1, 2), dtype=np.float32), np.full((1, 2), 3.0, dtype=np.float32)
        >>> el.layers.Subtract()([a, b]).numpy()
        array([[-2., -2.]], dtype=float32)
    """

    _exact_inputs = 2

    def _merge(self, inputs):
        return F.Sub.apply(inputs[0], inputs[1])


@register
class Multiply(_Merge):
    """Elementwise product of the inputs."""

    def _merge(self, inputs):
        return F.MulN.apply(*inputs)


@register
class Average(_Merge):
    """Elementwise mean of the inputs."""

    def _merge(self, inputs):
        return F.Div.apply(F.AddN.apply(*inputs), len(inputs))


@register
class Maximum(_Merge):
    """Elementwise maximum of the inputs; ties send the gradient to the first maximal input."""

    def _merge(self, inputs):
        return F.MaxN.apply(*inputs)


@register
class Minimum(_Merge):
    """Elementwise minimum of the inputs; ties send the gradient to the first minimal input."""

    def _merge(self, inputs):
        return F.MinN.apply(*inputs)


@register
class Concatenate(_Merge):
    """Joins the inputs along ``axis`` (counted with the batch axis); every other axis must match.

    Example:
        >>> import numpy as np
        >>> import edgelearn as el
        >>> a, b = np.zeros((2, 4, 3), dtype=np.float32), np.zeros((2, 1, 3), dtype=np.float32)
        >>> el.layers.Concatenate(axis=1)([a, b]).shape
        (2, 5, 3)
    """

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Concatenate expects an integer axis. Received: axis={axis!r}")
        self.axis = axis

    def compute_output_shape(self, input_shape):
        shapes = self._shapes(input_shape)
        rank = len(shapes[0])
        if any(len(shape) != rank for shape in shapes) or not -rank <= self.axis < rank:
            raise self.input_error(f"inputs of one rank that has an axis {self.axis}", shapes)
        axis = self.axis % rank
        output: list[int | None] = [None] * rank
        for i in range(rank):
            sizes = [shape[i] for shape in shapes]
            if i == axis:
                output[i] = None if None in sizes else sum(sizes)
                continue
            known = {size for size in sizes if size is not None}
            if len(known) > 1:
                raise self.input_error(
                    f"inputs with matching shapes except along axis {self.axis}", shapes
                )
            output[i] = known.pop() if known else None
        if axis != 0:
            output[0] = self._batch_size(shapes)
        return tuple(output)

    def call(self, inputs, training=False):
        return F.Concatenate.apply(*inputs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
