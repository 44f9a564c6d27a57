"""Tensor and reverse-mode autograd.

A :class:`Tensor` wraps a NumPy array. When it is the result of a primitive (a
:class:`~edgelearn.engine.functions.Function`) and some input needs a gradient, it remembers the
primitive that made it; :meth:`Tensor.backward` walks that graph once, in reverse topological
order, and asks each primitive for the gradients of its inputs. There is nothing to free by hand:
the graph lives as long as the output tensor does.

Example:
    >>> import numpy as np
    >>> from edgelearn.engine import Tensor
    >>> x = Tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32), requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    array([2., 4., 6.], dtype=float32)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgelearn.engine.functions import Function

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_grad_mode = threading.local()


def is_grad_enabled() -> bool:
    """Whether primitives currently record the graph (they do unless inside :func:`no_grad`)."""
    return getattr(_grad_mode, "enabled", True)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Run a block without recording the graph: inference uses no memory for gradients.

    Example:
        >>> from edgelearn.engine import Tensor, no_grad
        >>> with no_grad():
        ...     y = Tensor([1.0], requires_grad=True) * 2
        >>> y.requires_grad
        False
    """
    previous = is_grad_enabled()
    _grad_mode.enabled = False
    try:
        yield
    finally:
        _grad_mode.enabled = previous


def as_array(value: Any, dtype: Any = None) -> np.ndarray:
    """Convert to an ndarray; floats keep float32/float64, everything else becomes float32."""
    if isinstance(value, Tensor):
        value = value.data
    array = np.asarray(value)
    if dtype is not None:
        return array.astype(dtype, copy=False)
    if array.dtype not in _FLOAT_DTYPES:
        array = array.astype(np.float32)
    return array


class Tensor:
    """An n-dimensional float array that can record how it was computed."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")
    __array_priority__ = 100.0  # so ndarray * Tensor dispatches to Tensor.__rmul__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        self.data: np.ndarray = as_array(data, dtype)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._ctx: Function | None = None

    # ----------------------------------------------------------------- array-like views
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return float(self.data)

    def detach(self) -> Tensor:
        return Tensor(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}{flag})"

    # ----------------------------------------------------------------- autograd
    def backward(self, grad: Any = None) -> None:
        """Accumulate d(self)/d(leaf) into the ``grad`` of every leaf that requires it."""
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require a gradient")
        for leaf, leaf_grad in self._leaf_gradients(grad).values():
            leaf.grad = leaf_grad if leaf.grad is None else leaf.grad + leaf_grad

    def _leaf_gradients(self, grad: Any = None) -> dict[int, tuple[Tensor, np.ndarray]]:
        """d(self)/d(leaf) for every leaf the graph reaches, keyed by ``id(leaf)``; no ``grad``
        attribute is read or written, so threads may walk graphs that share leaves."""
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    "backward() without a gradient needs a scalar tensor, "
                    f"received shape {self.shape}"
                )
            grad = np.ones_like(self.data)
        else:
            grad = as_array(grad, self.dtype)
            if grad.shape != self.shape:
                raise ValueError(
                    f"backward() expects a gradient of shape {self.shape}, received {grad.shape}"
                )
        grads: dict[int, np.ndarray] = {id(self): grad}
        leaves: dict[int, tuple[Tensor, np.ndarray]] = {}
        for node in self._topological_order():
            node_grad = grads.pop(id(node), None)
            if node_grad is None:
                continue
            ctx = node._ctx
            if ctx is None:  # a leaf: the sum of what every path brought it
                leaves[id(node)] = (node, node_grad)
                continue
            for parent, parent_grad in zip(ctx.parents, ctx.backward(node_grad)):
                if parent is None or parent_grad is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
        return leaves

    def _topological_order(self) -> list[Tensor]:
        # Iterative depth-first search: deep graphs must not hit Python's recursion limit.
        order: list[Tensor] = []
        visited: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            if node._ctx is not None:
                for parent in node._ctx.parents:
                    if parent is not None and parent.requires_grad and id(parent) not in visited:
                        stack.append((parent, False))
        order.reverse()
        return order

    # ----------------------------------------------------------------- operators
    def __add__(self, other: Any) -> Tensor:
        return F.Add.apply(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return F.Add.apply(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return F.Sub.apply(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return F.Sub.apply(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return F.Mul.apply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return F.Mul.apply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return F.Div.apply(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return F.Div.apply(other, self)

    def __neg__(self) -> Tensor:
        return F.Neg.apply(self)

    def __matmul__(self, other: Any) -> Tensor:
        return F.MatMul.apply(self, other)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return F.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return F.Mean.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return F.Reshape.apply(self, shape=shape)

    def exp(self) -> Tensor:
        return F.Exp.apply(self)

    def log(self) -> Tensor:
        return F.Log.apply(self)

    def abs(self) -> Tensor:
        return F.Abs.apply(self)

    def clip(self, low: float, high: float) -> Tensor:
        return F.Clip.apply(self, low=low, high=high)


class Variable(Tensor):
    """A named, assignable tensor: the weights of layers and the state of optimizers.

    Example:
        >>> import numpy as np
        >>> from edgelearn.engine import Variable
        >>> v = Variable(np.zeros(3, dtype=np.float32), name="bias")
        >>> v.assign([1, 2, 3]); v.numpy()
        array([1., 2., 3.], dtype=float32)
    """

    __slots__ = ("name", "trainable")

    def __init__(
        self, value: Any, name: str = "variable", trainable: bool = True, dtype: Any = None
    ):
        super().__init__(np.array(as_array(value, dtype)), requires_grad=trainable)
        self.name = name
        self.trainable = bool(trainable)

    def assign(self, value: Any) -> None:
        array = np.asarray(value.data if isinstance(value, Tensor) else value)
        if array.shape != self.data.shape:
            raise ValueError(
                f"Variable '{self.name}' has shape {self.data.shape}, cannot assign a value of "
                f"shape {array.shape}"
            )
        self.data[...] = array

    def __repr__(self) -> str:
        return f"<Variable '{self.name}' shape={self.shape} dtype={self.dtype}>"


def gradients(output: Tensor, sources: list[Tensor]) -> list[np.ndarray | None]:
    """d(output)/d(source) for each of ``sources`` (None where ``output`` does not depend on
    it), leaving every ``grad`` attribute as it was: what ``tf.GradientTape.gradient`` and
    ``torch.autograd.grad`` return. Unlike :meth:`Tensor.backward`, several threads may take
    gradients of graphs that share weights at once (edgelearn's multi-threaded training steps).

    Example:
        >>> import numpy as np
        >>> from edgelearn.engine import Tensor, gradients
        >>> x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
        >>> gradients((x * x).sum(), [x])
        [array([2., 4.], dtype=float32)]
        >>> x.grad is None
        True
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"gradients expects a Tensor output. Received: output={output!r}")
    sources = list(sources)
    for source in sources:
        if not isinstance(source, Tensor):
            raise TypeError(
                f"gradients expects a list of Tensors as sources. Received: a {type(source).__name__}"
            )
    if not output.requires_grad:
        return [None] * len(sources)
    leaves = output._leaf_gradients()
    return [leaves[id(s)][1] if id(s) in leaves else None for s in sources]


from edgelearn.engine import functions as F  # noqa: E402  (the primitives need Tensor defined)
