"""The primitives of the engine, each with its forward and backward side by side.

A primitive receives NumPy arrays in ``forward``, keeps what its backward pass needs on ``self``,
and in ``backward`` turns the gradient of its output into one gradient per input (``None`` where
an input needs none). Everything a model does is built from these; gradients of every primitive
are checked against finite differences and TensorFlow.js in the tests.

Example:
    >>> import numpy as np
    >>> from edgelearn.engine import Tensor, functions as F
    >>> x = Tensor(np.array([[-1.0, 2.0]], dtype=np.float32), requires_grad=True)
    >>> y = F.ReLU.apply(x); y.sum().backward(); x.grad
    array([[0., 1.]], dtype=float32)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgelearn.engine import jit, kernels, threads
from edgelearn.engine.tensor import Tensor, as_array, is_grad_enabled


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a broadcast gradient back down to ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def column_sums(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=0)`` of a 2-D array as a matrix-vector product: NumPy's sum down a narrow
    array (a bias gradient: N*H*W rows of a few filters) runs ~20x slower than BLAS does it."""
    return np.ones(a.shape[0], dtype=a.dtype) @ a


class Function:
    """Base class of primitives. Subclasses implement ``forward`` and ``backward``."""

    parents: tuple[Tensor | None, ...] = ()
    needs_grad: tuple[bool, ...] = ()
    # Whether backward can follow: primitives skip saving what only backward needs (masks,
    # patch matrices) when it cannot, e.g. at inference under no_grad.
    recording = True

    @classmethod
    def run(cls, *inputs: Any, **attrs: Any) -> tuple[Function, Tensor]:
        """Apply the primitive; return the primitive instance (for its saved values) and output."""
        dtype = next((x.dtype for x in inputs if isinstance(x, Tensor)), None)
        # Constants take the dtype of the tensors they meet: a float64 scalar must not silently
        # promote a float32 graph.
        tensors = tuple(
            x if x is None or isinstance(x, Tensor) else Tensor(as_array(x, dtype)) for x in inputs
        )
        fn = cls()
        fn.needs_grad = tuple(t is not None and t.requires_grad for t in tensors)
        fn.recording = is_grad_enabled() and any(fn.needs_grad)
        output = Tensor(fn.forward(*(None if t is None else t.data for t in tensors), **attrs))
        if fn.recording:
            output.requires_grad = True
            output._ctx = fn
            fn.parents = tensors
        return fn, output

    @classmethod
    def apply(cls, *inputs: Any, **attrs: Any) -> Tensor:
        return cls.run(*inputs, **attrs)[1]

    def forward(self, *arrays: Any, **attrs: Any) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        raise NotImplementedError


# --------------------------------------------------------------------------- arithmetic
class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, grad):
        return unbroadcast(grad, self.shapes[0]), unbroadcast(grad, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, grad):
        return unbroadcast(grad, self.shapes[0]), unbroadcast(-grad, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        a, b = self.a, self.b
        grad_a = unbroadcast(grad * b, a.shape) if self.needs_grad[0] else None
        grad_b = unbroadcast(grad * a, b.shape) if self.needs_grad[1] else None
        return grad_a, grad_b


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, grad):
        a, b = self.a, self.b
        grad_a = unbroadcast(grad / b, a.shape) if self.needs_grad[0] else None
        grad_b = unbroadcast(-grad * a / (b * b), b.shape) if self.needs_grad[1] else None
        return grad_a, grad_b


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, grad):
        return (-grad,)


class MatMul(Function):
    """``x @ w`` for x of shape (..., k) and a 2-D w of shape (k, n)."""

    def forward(self, x, w):
        self.x, self.w = x, w
        x2d = _rows(x)
        out = np.empty((len(x2d), w.shape[1]), dtype=np.result_type(x, w))
        threads.split(
            len(x2d),
            lambda a, b: np.matmul(x2d[a:b], w, out=out[a:b]),
            min_items=gemm_rows_per_part(x2d.shape[1] * w.shape[1]),
        )
        return out.reshape(*x.shape[:-1], w.shape[1])

    def backward(self, grad):
        x, w = self.x, self.w
        grad2d = _rows(grad)
        rows = gemm_rows_per_part(w.size)
        grad_x = grad_w = None
        if self.needs_grad[0]:
            grad_x = np.empty((len(grad2d), w.shape[0]), dtype=np.result_type(grad, w))
            threads.split(
                len(grad2d),
                lambda a, b: np.matmul(grad2d[a:b], w.T, out=grad_x[a:b]),
                min_items=rows,
            )
            grad_x = grad_x.reshape(x.shape)
        if self.needs_grad[1]:
            x2d = _rows(x)
            parts = threads.split(
                len(grad2d), lambda a, b: x2d[a:b].T @ grad2d[a:b], min_items=rows
            )
            grad_w = sum(parts[1:], parts[0])
        return grad_x, grad_w


def _rows(a: np.ndarray) -> np.ndarray:
    """``a`` as a matrix of its last axis (sizes spelled out: -1 fails for empty arrays)."""
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


# The least multiply-adds of a GEMM part worth a thread of its own (~0.3 ms on one core).
GEMM_WORK_PER_PART = 1 << 25


def gemm_rows_per_part(work_per_row: int) -> int:
    """The least rows of a GEMM part (engine.threads) for ``work_per_row`` multiply-adds a row."""
    return max(1, GEMM_WORK_PER_PART // max(1, work_per_row))


# --------------------------------------------------------------------------- elementwise math
class Exp(Function):
    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, grad):
        return (grad * self.out,)


class Log(Function):
    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, grad):
        return (grad / self.a,)


class Abs(Function):
    def forward(self, a):
        self.sign = np.sign(a)
        return np.abs(a)

    def backward(self, grad):
        return (grad * self.sign,)


class Clip(Function):
    """Clip to [low, high]; the gradient passes only where the input was inside (inclusive)."""

    def forward(self, a, low, high):
        self.inside = (a >= low) & (a <= high)
        return np.clip(a, low, high)

    def backward(self, grad):
        return (np.where(self.inside, grad, 0).astype(grad.dtype, copy=False),)


# --------------------------------------------------------------------------- shape
class Reshape(Function):
    def forward(self, a, shape):
        self.input_shape = a.shape
        return a.reshape(shape)

    def backward(self, grad):
        return (grad.reshape(self.input_shape),)


class Transpose(Function):
    def forward(self, a, axes):
        self.axes = axes
        return a.transpose(axes)

    def backward(self, grad):
        return (grad.transpose(np.argsort(self.axes)),)


class Sum(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.input_shape, self.axis, self.keepdims = a.shape, axis, keepdims
        return np.asarray(a.sum(axis=axis, keepdims=keepdims))

    def backward(self, grad):
        if self.axis is not None and not self.keepdims:
            grad = np.expand_dims(grad, self.axis)
        return (np.broadcast_to(grad, self.input_shape),)


class Mean(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.input_shape, self.axis, self.keepdims = a.shape, axis, keepdims
        out = np.asarray(a.mean(axis=axis, keepdims=keepdims))
        self.count = a.size // max(out.size, 1)
        return out

    def backward(self, grad):
        if self.axis is not None and not self.keepdims:
            grad = np.expand_dims(grad, self.axis)
        return (np.broadcast_to(grad / grad.dtype.type(self.count), self.input_shape),)


# --------------------------------------------------------------------------- activations
class ReLU(Function):
    """Keras ReLU: ``x`` above ``threshold`` (capped at ``max_value``), else
    ``negative_slope * (x - threshold)``. NaN passes through, as in TensorFlow."""

    def forward(self, a, max_value=None, negative_slope=0.0, threshold=0.0):
        dtype = a.dtype.type
        self.slope = negative_slope
        if not negative_slope and not threshold:
            low, high = dtype(0), dtype(np.inf if max_value is None else max_value)
            out = np.empty(a.shape, dtype=a.dtype)
            flat_a, flat_out, flat_passed = a.reshape(-1), out.reshape(-1), None
            if self.recording:  # only backward reads the mask
                self.passed = np.empty(a.shape, dtype=bool)
                flat_passed = self.passed.reshape(-1)

            def relu(start: int, stop: int) -> None:
                # One clip pass keeps NaN; np.maximum does too but is ~4x slower than clip here.
                part = np.clip(flat_a[start:stop], low, high, out=flat_out[start:stop])
                if flat_passed is not None:
                    # The gradient passes where 0 < a < max_value, and where a is NaN.
                    passed = np.not_equal(part, low, out=flat_passed[start:stop])
                    if max_value is not None:
                        passed &= part != high

            threads.split(a.size, relu, min_items=threads.ELEMENTS_PER_PART)
            return out
        self.below = a <= threshold
        low = (a - dtype(threshold)) * dtype(negative_slope) if negative_slope else dtype(0)
        out = np.where(self.below, low, a)
        self.passed = ~self.below
        if max_value is not None:
            self.passed &= ~(a >= max_value)
            out = np.minimum(out, dtype(max_value))
        return out.astype(a.dtype, copy=False)

    def backward(self, grad):
        # A multiply by the mask, as TensorFlow's ReluGrad computes it; np.where with a mask
        # that changes every element takes ~20x as long (a mispredicted branch per element).
        if not self.slope and grad.flags.c_contiguous:
            result = np.empty(grad.shape, dtype=grad.dtype)
            flat_grad, flat = grad.reshape(-1), result.reshape(-1)
            flat_passed = self.passed.reshape(-1)
            threads.split(
                grad.size,
                lambda a, b: np.multiply(flat_grad[a:b], flat_passed[a:b], out=flat[a:b]),
                min_items=threads.ELEMENTS_PER_PART,
            )
            return (result,)
        result = grad * self.passed
        if self.slope:
            result += grad * (self.below * grad.dtype.type(self.slope))
        return (result,)


class Sigmoid(Function):
    def forward(self, a):
        # Two branches keep exp() from overflowing for large |a|.
        e = np.exp(-np.abs(a))
        self.out = np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        return self.out

    def backward(self, grad):
        return (grad * self.out * (1 - self.out),)


class Tanh(Function):
    def forward(self, a):
        self.out = np.tanh(a)
        return self.out

    def backward(self, grad):
        return (grad * (1 - self.out * self.out),)


class Elu(Function):
    def forward(self, a, alpha=1.0):
        self.positive = a > 0
        self.alpha = a.dtype.type(alpha)
        self.negative_part = self.alpha * np.expm1(np.minimum(a, 0))
        return np.where(self.positive, a, self.negative_part)

    def backward(self, grad):
        return (np.where(self.positive, grad, grad * (self.negative_part + self.alpha)),)


class Softmax(Function):
    def forward(self, a, axis=-1):
        shifted = np.exp(a - a.max(axis=axis, keepdims=True))
        self.out = shifted / shifted.sum(axis=axis, keepdims=True)
        self.axis = axis
        return self.out

    def backward(self, grad):
        out = self.out
        return (out * (grad - (grad * out).sum(axis=self.axis, keepdims=True)),)


def log_softmax(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log(softmax(a))`` along ``axis``, shifted by the maximum so that nothing overflows."""
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, a, axis=-1):
        out = log_softmax(a, axis)
        self.softmax = np.exp(out)
        self.axis = axis
        return out

    def backward(self, grad):
        return (grad - self.softmax * grad.sum(axis=self.axis, keepdims=True),)


class CategoricalCrossentropy(Function):
    """Per-sample ``-sum(labels * log(p))`` over the last axis, with ``p`` as Keras and TF.js
    compute it: ``log_softmax(predictions)`` with ``from_logits``, else the predictions
    rescaled to sum to one and clipped to ``[epsilon, 1 - epsilon]`` (the gradient passes only
    where they were inside, as through a clip). One primitive for the seven of that formula:
    a loss runs once per training step (per thread in a split step), and the seven cost
    ~220 us of Python a step, one primitive ~40 us."""

    def forward(self, predictions, labels, from_logits=False, epsilon=1e-7):
        self.labels, self.from_logits = labels, from_logits
        if from_logits:
            log_probs = log_softmax(predictions)
        else:
            self.total = predictions.sum(axis=-1, keepdims=True)
            self.probs = predictions / self.total
            self.inside = (self.probs >= epsilon) & (self.probs <= 1 - epsilon)
            self.clipped = np.clip(self.probs, epsilon, 1 - epsilon)
            log_probs = np.log(self.clipped)
        self.log_probs = log_probs
        return -(log_probs * labels).sum(axis=-1)

    def backward(self, grad):
        grad = grad[..., None]
        labels = self.labels
        grad_labels = -grad * self.log_probs if self.needs_grad[1] else None
        if not self.needs_grad[0]:
            return None, grad_labels
        if self.from_logits:  # d/dx -sum(y * log_softmax(x)) = softmax(x) * sum(y) - y
            softmax = np.exp(self.log_probs)
            return grad * (softmax * labels.sum(axis=-1, keepdims=True) - labels), grad_labels
        # Through the clip and the rescaling p = x / sum(x): (g - sum(g * p)) / sum(x).
        grad_probs = np.where(self.inside, -grad * labels / self.clipped, 0).astype(
            self.probs.dtype, copy=False
        )
        grad_x = (grad_probs - (grad_probs * self.probs).sum(axis=-1, keepdims=True)) / self.total
        return grad_x, grad_labels


class SigmoidCrossEntropyWithLogits(Function):
    """Elementwise ``-(z log(sigmoid(x)) + (1 - z) log(1 - sigmoid(x)))``, overflow-free."""

    def forward(self, logits, labels):
        self.logits, self.labels = logits, labels
        return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))

    def backward(self, grad):
        e = np.exp(-np.abs(self.logits))
        sigmoid = np.where(self.logits >= 0, 1 / (1 + e), e / (1 + e))
        grad_labels = -grad * self.logits if self.needs_grad[1] else None
        return grad * (sigmoid - self.labels), grad_labels


# --------------------------------------------------------------------------- convolution, pooling
# The least rows (output pixels) of a convolution through patch matrices worth a thread of their
# own: building the patches costs more than their GEMM for the small kernels of small CNNs.
ROWS_PER_PART = 1 << 12

# The fewest filters for which a convolution's forward GEMM goes to numba's kernel (its panels
# are 16 columns wide).
FUSED_GEMM_MIN_FILTERS = 16


class Conv2D(Function):
    """NHWC convolution with an optional bias, as GEMMs of the input's patches and the kernel.

    ``x``: (N, H, W, C); ``kernel``: (KH, KW, C, F) (Keras layout); ``bias``: (F,) or None.
    A 1x1 kernel multiplies the pixels themselves; larger kernels go through the patch matrix
    chunk by chunk (:func:`kernels.patch_chunks`), with the bias folded into the GEMMs.
    """

    def forward(self, x, kernel, bias, strides=(1, 1), padding="valid"):
        kh, kw, channels, filters = kernel.shape
        n, h, w, _ = x.shape
        self.pads = kernels.pad_amounts(h, w, (kh, kw), strides, padding)
        self.xp = kernels.pad_nhwc(x, self.pads)
        self.out_hw = (
            kernels.output_length(h, kh, strides[0], padding),
            kernels.output_length(w, kw, strides[1], padding),
        )
        self.kernel, self.strides = kernel, strides
        weights = kernel.reshape(kh * kw * channels, filters)
        pixels = self.out_hw[0] * self.out_hw[1]
        out = np.empty((n * pixels, filters), dtype=np.result_type(x, kernel))
        if (kh, kw) == (1, 1):
            self.cols = kernels.im2col(self.xp, (1, 1), strides, self.out_hw)

            def pointwise(start: int, stop: int) -> None:
                np.matmul(self.cols[start:stop], weights, out=out[start:stop])
                if bias is not None:
                    out[start:stop] += bias

            threads.split(n * pixels, pointwise, min_items=gemm_rows_per_part(weights.size))
        else:
            self.cols = None
            # numba's GEMM (bias added as it stores) where the batch is split over threads, so
            # that OpenBLAS would run each part's GEMM on one thread too: 0.78-0.97x its time
            # for 16-64 filters (a panel of 16 columns is half empty for 8). Elsewhere
            # OpenBLAS's threads win (the Keras example at batch 64 on 2 threads: 1.11x).
            fused = (
                out.dtype == np.float32
                and filters >= FUSED_GEMM_MIN_FILTERS
                and threads.width() > 1
                and jit.enabled(out.size)
            )
            gemm = None
            if fused:
                zeros = np.zeros(filters, dtype=np.float32)
                gemm = jit.gemm_bias_clip_step(
                    weights.astype(np.float32, copy=False),
                    zeros if bias is None else bias,
                    -np.inf,
                    np.inf,
                    rows_per_part=len(out),  # parts come from the split over images below
                )
                fused = gemm is not None
            if not fused and bias is not None:
                weights = np.concatenate([weights, bias[None].astype(weights.dtype)])

            def images(start: int, stop: int) -> None:
                part = out[start * pixels : stop * pixels]
                for chunk, cols in kernels.patch_chunks(
                    self.xp[start:stop],
                    (kh, kw),
                    strides,
                    self.out_hw,
                    bias is not None and not fused,
                ):
                    if fused:
                        gemm(cols, out=part[chunk])
                    else:
                        np.matmul(cols, weights, out=part[chunk])

            threads.split(n, images, min_items=max(1, ROWS_PER_PART // pixels))
        return out.reshape(n, self.out_hw[0], self.out_hw[1], filters)

    def backward(self, grad):
        kh, kw, channels, filters = self.kernel.shape
        grad2d = grad.reshape(-1, filters)
        n, pixels = self.xp.shape[0], self.out_hw[0] * self.out_hw[1]
        per_part = max(1, ROWS_PER_PART // pixels)
        grad_x = grad_kernel = grad_bias = None
        if self.needs_grad[0]:
            padded = np.empty(self.xp.shape, dtype=np.result_type(grad, self.kernel))

            def input_gradient(start: int, stop: int) -> None:
                kernels.conv2d_backprop_input(
                    grad2d[start * pixels : stop * pixels],
                    self.kernel,
                    self.strides,
                    self.out_hw,
                    out=padded[start:stop],
                )

            threads.split(n, input_gradient, min_items=per_part)
            grad_x = kernels.crop_nhwc(padded, self.pads)
        if self.needs_grad[1] and self.cols is not None:
            parts = threads.split(
                len(grad2d),
                lambda start, stop: self.cols[start:stop].T @ grad2d[start:stop],
                min_items=gemm_rows_per_part(self.kernel.size),
            )
            grad_kernel = sum(parts[1:], parts[0]).reshape(self.kernel.shape)
        elif self.needs_grad[1]:
            depth, fold = kh * kw * channels, self.needs_grad[2]

            def kernel_gradient(start: int, stop: int) -> np.ndarray:
                sums = np.zeros((depth + fold, filters), dtype=grad.dtype)
                part = grad2d[start * pixels : stop * pixels]
                for chunk, cols in kernels.patch_chunks(
                    self.xp[start:stop], (kh, kw), self.strides, self.out_hw, ones_column=fold
                ):
                    sums += cols.T @ part[chunk]
                return sums

            parts = threads.split(n, kernel_gradient, min_items=per_part)
            sums = sum(parts[1:], parts[0])
            grad_kernel = sums[:depth].reshape(self.kernel.shape)
            grad_bias = sums[depth] if fold else None
        if self.needs_grad[2] and grad_bias is None:
            grad_bias = column_sums(grad2d)
        return grad_x, grad_kernel, grad_bias


class MaxPool2D(Function):
    """Max pooling; windows that tile the input (the usual pool 2, stride 2) take a faster path
    with the same result, ties and gradients included."""

    def forward(self, x, pool_size, strides, padding):
        self.input_shape, self.args = x.shape, (pool_size, strides, padding)
        self.tiled = kernels.pool_tiles(x.shape, pool_size, strides, padding)
        if self.tiled:
            out, self.winner = kernels.max_pool2d_tiles(x, pool_size, need_winner=self.recording)
        else:
            out, self.winner = kernels.max_pool2d(x, pool_size, strides, padding)
        return out

    def backward(self, grad):
        if self.tiled:
            return (
                kernels.max_pool2d_tiles_backward(
                    grad, self.winner, self.input_shape, self.args[0]
                ),
            )
        return (kernels.max_pool2d_backward(grad, self.winner, self.input_shape, *self.args),)


class AvgPool2D(Function):
    """Average pooling ('same' windows average their real pixels, as TensorFlow); windows that
    tile the input take a faster path."""

    def forward(self, x, pool_size, strides, padding):
        self.input_shape, self.args = x.shape, (pool_size, strides, padding)
        self.tiled = kernels.pool_tiles(x.shape, pool_size, strides, padding)
        if self.tiled:
            return kernels.avg_pool2d_tiles(x, pool_size)
        out, self.counts = kernels.avg_pool2d(x, pool_size, strides, padding)
        return out

    def backward(self, grad):
        if self.tiled:
            return (kernels.avg_pool2d_tiles_backward(grad, self.input_shape, self.args[0]),)
        return (kernels.avg_pool2d_backward(grad, self.counts, self.input_shape, *self.args),)


# --------------------------------------------------------------------------- normalisation
class BatchNormTraining(Function):
    """Batch normalisation with the batch's own statistics over every axis but ``axis``.

    After ``run``, the primitive exposes ``mean`` and ``variance`` (biased, as TensorFlow uses for
    both normalising and the moving averages) for the layer's moving statistics.
    """

    def forward(self, x, gamma, beta, axis=-1, epsilon=1e-3):
        axis = axis % x.ndim
        self.reduce = tuple(i for i in range(x.ndim) if i != axis)
        self.bshape = [1] * x.ndim
        self.bshape[axis] = x.shape[axis]
        self.mean = x.mean(axis=self.reduce)
        self.variance = x.var(axis=self.reduce)
        self.inv_std = 1 / np.sqrt(self.variance + x.dtype.type(epsilon))
        self.xhat = (x - self.mean.reshape(self.bshape)) * self.inv_std.reshape(self.bshape)
        self.gamma = gamma
        out = self.xhat if gamma is None else self.xhat * gamma.reshape(self.bshape)
        return out if beta is None else out + beta.reshape(self.bshape)

    def backward(self, grad):
        count = grad.size // grad.shape[self.reduce_axis]
        grad_xhat = grad if self.gamma is None else grad * self.gamma.reshape(self.bshape)
        grad_x = None
        if self.needs_grad[0]:
            sum_g = grad_xhat.sum(axis=self.reduce).reshape(self.bshape)
            sum_gx = (grad_xhat * self.xhat).sum(axis=self.reduce).reshape(self.bshape)
            scale = (self.inv_std / count).reshape(self.bshape)
            grad_x = scale * (count * grad_xhat - sum_g - self.xhat * sum_gx)
        grad_gamma = (grad * self.xhat).sum(axis=self.reduce) if self.needs_grad[1] else None
        grad_beta = grad.sum(axis=self.reduce) if self.needs_grad[2] else None
        return grad_x, grad_gamma, grad_beta

    @property
    def reduce_axis(self) -> int:
        return next(i for i in range(len(self.bshape)) if i not in self.reduce)


# --------------------------------------------------------------------------- more convolutions
class DepthwiseConv2D(Function):
    """NHWC depthwise convolution: every input channel has its own ``M`` filters.

    ``x``: (N, H, W, C); ``kernel``: (KH, KW, C, M); ``bias``: (C*M,) or None. Output channel
    ``c * M + m`` is channel ``c`` convolved with filter ``m``, as in TensorFlow.
    """

    def forward(self, x, kernel, bias, strides=(1, 1), padding="valid"):
        kh, kw, channels, multiplier = kernel.shape
        n, h, w, _ = x.shape
        self.pads = kernels.pad_amounts(h, w, (kh, kw), strides, padding)
        self.xp, self.kernel, self.strides = kernels.pad_nhwc(x, self.pads), kernel, strides
        out_hw = (
            kernels.output_length(h, kh, strides[0], padding),
            kernels.output_length(w, kw, strides[1], padding),
        )
        out = kernels.depthwise_conv2d(self.xp, kernel, strides, out_hw)
        out = out.reshape(n, out_hw[0], out_hw[1], channels * multiplier)
        if bias is not None:
            out += bias
        return out

    def backward(self, grad):
        channels, multiplier = self.kernel.shape[2:]
        grad5d = grad.reshape(*grad.shape[:3], channels, multiplier)
        grad_xp, grad_kernel = kernels.depthwise_conv2d_backward(
            grad5d, self.xp, self.kernel, self.strides, self.needs_grad[0], self.needs_grad[1]
        )
        grad_x = None if grad_xp is None else kernels.crop_nhwc(grad_xp, self.pads)
        grad_bias = column_sums(grad.reshape(-1, grad.shape[-1])) if self.needs_grad[2] else None
        return grad_x, grad_kernel, grad_bias


class Conv2DTranspose(Function):
    """NHWC transposed convolution: the gradient of :class:`Conv2D` w.r.t. its input.

    ``x``: (N, H, W, C); ``kernel``: (KH, KW, F, C) (Keras' transposed layout); ``bias``: (F,) or
    None. The output size follows Keras (``output_padding=None``: ``H * stride`` for 'same',
    ``H * stride + max(KH - stride, 0)`` for 'valid'), the placement follows TensorFlow.
    """

    def forward(self, x, kernel, bias, strides=(1, 1), padding="valid", output_padding=None):
        kh, kw, filters, channels = kernel.shape
        n, h, w, _ = x.shape
        output_padding = output_padding or (None, None)
        out_hw = tuple(
            kernels.transpose_output_length(size, k, s, padding, p)
            for size, k, s, p in zip((h, w), (kh, kw), strides, output_padding)
        )
        self.start = tuple(
            kernels.transpose_crop(size, k, s, out, padding)
            for size, k, s, out in zip((h, w), (kh, kw), strides, out_hw)
        )
        self.full_shape = (n, (h - 1) * strides[0] + kh, (w - 1) * strides[1] + kw, filters)
        self.x2d, self.kernel = x.reshape(-1, channels), kernel
        self.strides, self.input_hw = strides, (h, w)
        # The transposed convolution is the input gradient of a convolution with this kernel.
        full = np.empty(self.full_shape, dtype=np.result_type(x, kernel))
        kernels.conv2d_backprop_input(self.x2d, kernel, strides, (h, w), out=full)
        out = kernels.crop_or_zero_extend(full, self.start, out_hw)
        return out if bias is None else out + bias

    def backward(self, grad):
        kh, kw, filters, channels = self.kernel.shape
        full = kernels.crop_or_zero_extend_backward(grad, self.start, self.full_shape)
        cols = kernels.im2col(full, (kh, kw), self.strides, self.input_hw)
        kernel2d = self.kernel.reshape(kh * kw * filters, channels)
        grad_x = None
        if self.needs_grad[0]:
            grad_x = (cols @ kernel2d).reshape(self.full_shape[0], *self.input_hw, channels)
        grad_kernel = None
        if self.needs_grad[1]:
            grad_kernel = (cols.T @ self.x2d).reshape(self.kernel.shape)
        grad_bias = column_sums(grad.reshape(-1, grad.shape[-1])) if self.needs_grad[2] else None
        return grad_x, grad_kernel, grad_bias


# --------------------------------------------------------------------------- padding, resizing
class Pad2D(Function):
    """Zero padding of NHWC height and width by ``((top, bottom), (left, right))``."""

    def forward(self, x, padding):
        self.padding = tuple(tuple(p) for p in padding)
        return kernels.pad_nhwc(x, self.padding)

    def backward(self, grad):
        return (kernels.crop_nhwc(grad, self.padding),)


class UpSampling2D(Function):
    """NHWC upsampling by integer factors ``size``, as TF.js's UpSampling2D computes it.

    'nearest' repeats every pixel. 'bilinear' is TF.js's ``resizeBilinear`` (alignCorners and
    halfPixelCenters false: output pixel r samples the input at ``r / size``), applied as one
    interpolation matrix per axis so that the backward pass is the transposed matrices.
    """

    def forward(self, x, size, interpolation="nearest"):
        self.size, self.interpolation = size, interpolation
        n, h, w, c = x.shape
        if interpolation == "nearest":
            return np.repeat(np.repeat(x, size[0], axis=1), size[1], axis=2)
        self.rows = kernels.bilinear_matrix(h, h * size[0], x.dtype)
        self.cols = kernels.bilinear_matrix(w, w * size[1], x.dtype)
        tall = (self.rows @ x.reshape(n, h, w * c)).reshape(n * h * size[0], w, c)
        return (self.cols @ tall).reshape(n, h * size[0], w * size[1], c)

    def backward(self, grad):
        n, oh, ow, c = grad.shape
        (sh, sw), h, w = self.size, oh // self.size[0], ow // self.size[1]
        if self.interpolation == "nearest":
            return (grad.reshape(n, h, sh, w, sw, c).sum(axis=(2, 4)),)
        tall = (self.cols.T @ grad.reshape(n * oh, ow, c)).reshape(n, oh, w * c)
        return ((self.rows.T @ tall).reshape(n, h, w, c),)


class GlobalMaxPool(Function):
    """Maximum over the spatial axes of (N, *spatial, C); the gradient goes to the first maximum
    (in row-major order) of each channel, like :class:`MaxPool2D`."""

    def forward(self, x, keepdims=False):
        n, c = x.shape[0], x.shape[-1]
        self.input_shape = x.shape
        flat = x.reshape(n, -1, c)
        self.winner = flat.argmax(axis=1)[:, None, :]
        out = np.take_along_axis(flat, self.winner, axis=1)[:, 0, :]
        return out.reshape(n, *([1] * (x.ndim - 2)), c) if keepdims else out

    def backward(self, grad):
        n, c = self.input_shape[0], self.input_shape[-1]
        out = np.zeros((n, int(np.prod(self.input_shape[1:-1])), c), dtype=grad.dtype)
        np.put_along_axis(out, self.winner, grad.reshape(n, 1, c), axis=1)
        return (out.reshape(self.input_shape),)


# --------------------------------------------------------------------------- n-ary merging
class Concatenate(Function):
    """Join any number of arrays along ``axis``."""

    def forward(self, *arrays, axis=-1):
        self.axis = axis
        self.splits = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    def backward(self, grad):
        parts = np.split(grad, self.splits, axis=self.axis)
        return tuple(p if needed else None for p, needed in zip(parts, self.needs_grad))


class AddN(Function):
    """Sum of any number of arrays, broadcast together."""

    def forward(self, *arrays):
        self.shapes = [a.shape for a in arrays]
        if len(arrays) == 1:
            return np.array(arrays[0])  # a copy: the output must not alias the input
        out = arrays[0] + arrays[1]
        for a in arrays[2:]:
            if np.broadcast_shapes(out.shape, a.shape) == out.shape:
                out += a  # in place into the fresh sum: one pass instead of a copy and a pass
            else:
                out = out + a
        return out

    def backward(self, grad):
        return tuple(
            unbroadcast(grad, shape) if needed else None
            for shape, needed in zip(self.shapes, self.needs_grad)
        )


class MulN(Function):
    """Product of any number of arrays, broadcast together."""

    def forward(self, *arrays):
        self.arrays = arrays
        # prefix[i] is the product of the arrays before i; the backward pass needs it.
        self.prefix = [None]
        out = np.array(arrays[0])  # a copy: with a single input the output must not alias it
        for a in arrays[1:]:
            self.prefix.append(out)
            out = out * a
        return out

    def backward(self, grad):
        grads: list[np.ndarray | None] = [None] * len(self.arrays)
        suffix = grad  # grad times the product of the arrays after i
        for i in range(len(self.arrays) - 1, -1, -1):
            if self.needs_grad[i]:
                others = suffix if self.prefix[i] is None else suffix * self.prefix[i]
                grads[i] = unbroadcast(others, self.arrays[i].shape)
            suffix = suffix * self.arrays[i]
        return tuple(grads)


class MaxN(Function):
    """Elementwise maximum of any number of arrays; where several are maximal, the gradient
    goes to the first of them (as TF.js's chain of ``maximum`` ops gives it)."""

    _reduce = staticmethod(np.argmax)

    def forward(self, *arrays):
        self.shapes = [a.shape for a in arrays]
        stacked = np.stack(np.broadcast_arrays(*arrays))
        self.winner = self._reduce(stacked, axis=0)
        return np.take_along_axis(stacked, self.winner[None], axis=0)[0]

    def backward(self, grad):
        zero = grad.dtype.type(0)
        return tuple(
            unbroadcast(np.where(self.winner == i, grad, zero), shape) if needed else None
            for i, (shape, needed) in enumerate(zip(self.shapes, self.needs_grad))
        )


class MinN(MaxN):
    """Elementwise minimum of any number of arrays; ties send the gradient to the first."""

    _reduce = staticmethod(np.argmin)


def inverse_std(variance: np.ndarray, epsilon: float, dtype: Any) -> np.ndarray:
    """``1 / sqrt(variance + epsilon)`` in ``dtype``: batch normalisation's per-feature scale."""
    return (1 / np.sqrt(variance + np.dtype(dtype).type(epsilon))).astype(dtype)


def batch_norm_affine(inv_std, gamma, beta, mean) -> tuple[np.ndarray, np.ndarray]:
    """Batch normalisation with fixed statistics as ``x * scale + shift``: returns
    ``(scale, shift)``. ``gamma``/``beta`` may be None (``scale``/``center`` off)."""
    scale = inv_std if gamma is None else inv_std * gamma
    shift = -mean * scale if beta is None else beta - mean * scale
    return scale, shift


class BatchNormInference(Function):
    """Batch normalisation with fixed statistics as one affine pass: ``x * scale + shift`` with
    ``scale = gamma / sqrt(variance + epsilon)`` and ``shift = beta - mean * scale``, per feature
    along ``axis``. ``gamma``/``beta`` may be None (``scale``/``center`` off); gradients reach
    ``x``, ``gamma`` and ``beta`` (a frozen-statistics layer can still be fine-tuned)."""

    def forward(self, x, gamma, beta, mean=None, variance=None, axis=-1, epsilon=1e-3):
        self.bshape = [1] * x.ndim
        self.bshape[axis % x.ndim] = x.shape[axis]
        self.reduce = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        self.inv_std = inverse_std(variance, epsilon, x.dtype)
        scale, shift = batch_norm_affine(self.inv_std, gamma, beta, mean)
        if self.recording and self.needs_grad[1]:
            self.xhat_parts = (x, mean)  # xhat is recomputed in backward, only if gamma needs it
        self.scale = scale
        out = x * scale.reshape(self.bshape)
        out += shift.reshape(self.bshape)
        return out

    def backward(self, grad):
        grad_x = grad * self.scale.reshape(self.bshape) if self.needs_grad[0] else None
        grad_gamma = grad_beta = None
        if self.needs_grad[1]:
            x, mean = self.xhat_parts
            xhat = (x - mean.reshape(self.bshape)) * self.inv_std.reshape(self.bshape)
            grad_gamma = (grad * xhat).sum(axis=self.reduce)
        if self.needs_grad[2]:
            grad_beta = grad.sum(axis=self.reduce)
        return grad_x, grad_gamma, grad_beta
