"""The engine: float arrays with reverse-mode autograd, the primitives, and their kernels.

Example:
    >>> import numpy as np
    >>> from edgelearn.engine import Tensor
    >>> w = Tensor(np.ones((2, 1), dtype=np.float32), requires_grad=True)
    >>> (Tensor(np.array([[1.0, 2.0]], dtype=np.float32)) @ w).sum().backward()
    >>> w.grad.ravel()
    array([1., 2.], dtype=float32)
"""

from edgelearn.engine.tensor import (
    Tensor,
    Variable,
    as_array,
    gradients,
    is_grad_enabled,
    no_grad,
)

__all__ = ["Tensor", "Variable", "as_array", "gradients", "is_grad_enabled", "no_grad"]
