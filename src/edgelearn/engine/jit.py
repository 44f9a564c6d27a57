"""Optional numba kernels for passes NumPy does slowly (the ``jit`` extra).

NumPy's GEMMs already use every core through BLAS, but a depthwise convolution in NumPy is one
pass over the whole output per kernel position. The compiled kernels do the same arithmetic in
one pass, output row by output row, on the calling thread: depthwise convolutions with one
filter per channel (forward and both gradients; at inference also with the folded bias and
clip, over the unpadded input, row-wise for large outputs with strides of 1), max pooling whose
windows tile the input (forward with its winners, and backward), a convolution's input
gradient (one GEMM into a patch-gradient matrix and a scatter-add, col2im, chunk by chunk) and
the in-place bias-and-clip pass of folded convolutions at inference
(:mod:`edgelearn.models.folding`). Callers split large batches over threads
(:mod:`edgelearn.engine.threads`). They are compiled on first use and cached on disk
(numba's ``cache=True``; the first compilation takes a few seconds, loading numba and the cached
kernels about 0.4 s of a process's first MobileNet prediction).

Measured with ``benchmarks/engine_ablation.py`` (MobileNetV2 inference 1.5-1.8x faster than the
NumPy path) and ``benchmarks/mobilenet_inference.py``; see benchmarks/README.md. Kernels that
did not pay are not here: patch matrices (numba did not vectorise their short runs of C values
and lost to NumPy's copies), ReLU (faster alone, but
its pool's threads slowed the BLAS calls around it in 2-thread training), and numba's thread
pool itself (see ``_numba_kernels``).

:mod:`edgelearn.engine.kernels` and the convolution layers call these when :func:`enabled` says
so: with the default ``set_kernels("auto")`` whenever numba can be imported, for arrays of
:data:`MIN_ELEMENTS` values and more. Forward results equal the NumPy path's bit for bit (the
same products added in the same order, no fast-math; the fused inference kernel starts from the
bias, so it agrees to float32 rounding); gradients that sum over many pixels (the depthwise
kernel gradient) add in another order, so they agree to float32 rounding. The tests run both
paths against the same references.

Example:
    >>> from edgelearn.engine import jit
    >>> jit.set_kernels("numpy")   # NumPy only, e.g. to compare
    >>> jit.enabled()
    False
    >>> jit.set_kernels("auto")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgelearn.engine import threads

KERNEL_CHOICES = ("auto", "numba", "numpy")

_choice = "auto"
_module: Any = None  # the compiled kernels (_numba_kernels), once imported
_import_error: str | None = None


def set_kernels(choice: str) -> None:
    """Choose the kernels: "auto" (numba when installed), "numba" (required) or "numpy".

    Raises ImportError for "numba" when numba cannot be imported.
    """
    global _choice
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {KERNEL_CHOICES}. Received: kernels={choice!r}")
    if choice == "numba" and _load() is None:
        raise ImportError(
            f"set_kernels('numba') needs numba ({_import_error}); "
            "install it with `pip install edgelearn[jit]`"
        )
    _choice = choice


def get_kernels() -> str:
    """The current choice of :func:`set_kernels`."""
    return _choice


# Arrays smaller than this do not load numba: a small model's first prediction does not wait
# for it (0.3-0.4 s). Once a larger array has loaded it, small arrays use the kernels too (a
# call costs a few microseconds, less than NumPy's path through the same pass).
MIN_ELEMENTS = 1 << 16


def enabled(elements: int | None = None) -> bool:
    """Whether the numba kernels are in use (for arrays of ``elements`` values, if given)."""
    if _choice == "numpy":
        return False
    if elements is not None and elements < MIN_ELEMENTS:
        return _module is not None
    return _load() is not None


def _load() -> Any:
    global _module, _import_error
    if _module is None and _import_error is None:
        try:
            from edgelearn.engine import _numba_kernels
        # numba missing, or a numba that cannot work here (e.g. nowhere writable for its cache,
        # which it reports with a RuntimeError): the NumPy path serves instead.
        except Exception as error:  # noqa: BLE001
            _import_error = f"{type(error).__name__}: {error}"
        else:
            _module = _numba_kernels
    return _module


def call(name: str, *args: Any) -> Any:
    """Run the compiled kernel ``name`` with ``args``."""
    return getattr(_module, name)(*args)


# --------------------------------------------------------------------------- entry points
# Each returns what the NumPy function of the same name in kernels.py returns.


def depthwise_conv2d(xp: np.ndarray, kernel: np.ndarray, strides, out_hw) -> np.ndarray:
    """``kernels.depthwise_conv2d`` for a depth multiplier of 1."""
    n, c = xp.shape[0], xp.shape[3]
    kh, kw = kernel.shape[:2]
    dtype = np.result_type(xp, kernel)
    out = np.empty((n, out_hw[0], out_hw[1], c, 1), dtype=dtype)
    call(
        "depthwise1",
        np.ascontiguousarray(xp, dtype=dtype),
        np.ascontiguousarray(kernel, dtype=dtype).reshape(kh, kw, c),
        *strides,
        out.reshape(out.shape[:4]),
    )
    return out


def depthwise_conv2d_backward(grad, xp, kernel, strides, need_input: bool, need_kernel: bool):
    """``kernels.depthwise_conv2d_backward`` for a depth multiplier of 1."""
    n, oh, ow, c, _ = grad.shape
    kh, kw = kernel.shape[:2]
    grad = np.ascontiguousarray(grad, dtype=xp.dtype).reshape(n, oh, ow, c)
    grad_xp = grad_kernel = None
    if need_input:
        grad_xp = np.empty(xp.shape, dtype=xp.dtype)
        weights = np.ascontiguousarray(kernel, dtype=xp.dtype).reshape(kh, kw, c)
        call("depthwise1_backprop_input", grad, weights, *strides, grad_xp)
    if need_kernel:
        # Partial sums over bands of output rows, added up at the end.
        parts = np.zeros((_module.n_parts(n * oh), kh, kw, c), dtype=kernel.dtype)
        call("depthwise1_backprop_kernel", grad, np.ascontiguousarray(xp), *strides, parts)
        grad_kernel = parts.sum(axis=0).reshape(kernel.shape)
    return grad_xp, grad_kernel


def bias_clip_(out: np.ndarray, bias: np.ndarray, low: float, high: float) -> None:
    """``out = clip(out + bias, low, high)`` in place, ``bias`` along the last axis."""
    rows, bounds = out.reshape(-1, out.shape[-1]), out.dtype.type([low, high])
    threads.split(
        len(rows),
        lambda a, b: call("bias_clip", rows[a:b], bias, *bounds),
        min_items=max(1, threads.ELEMENTS_PER_PART // rows.shape[1]),
    )


# Outputs of at least this many pixels per image with strides of 1 take the row-wise kernels:
# tiling the weights along a row costs 1/OH of the work, and on MobileNetV2 (batch 1) it won at
# 112x112 (32 channels: 0.56 -> 0.21 ms) and 56x56 (0.31 -> 0.26 ms) and lost below. For 3x3
# kernels only under this many channels: with more, the 3x3 kernel's per-channel loop is long
# enough and wins (56x56x144: 0.17 ms; 112x112x32 0.28 ms against the row-wise 0.21). The
# row-wise 3x3 kernel sums its nine taps in a register (AVX2 machine, 112x112x32: 0.60 ms for
# the row-wise kernel that adds tap by tap into the row, 0.46 per pixel, 0.38-0.39 ms).
FLAT_DEPTHWISE_PIXELS = 56 * 56
FLAT_DEPTHWISE_CHANNELS = 64


def depthwise_conv2d_inference(x, kernel, bias, strides, pads, out_hw, low, high) -> np.ndarray:
    """Depthwise convolution with one filter per channel, its bias and a clip, in one pass over
    the unpadded ``x`` (``pads`` as ``kernels.pad_amounts`` gives them). Inference only."""
    return depthwise_inference_step(kernel, bias, strides, pads, out_hw, low, high, x.dtype)(x)


def depthwise_inference_step(
    kernel, bias, strides, pads, out_hw, low, high, dtype
) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`depthwise_conv2d_inference` as a function of ``x`` alone, its weights laid out for
    the kernel once (an inference plan calls it at every prediction)."""
    kh, kw, c = kernel.shape[:3]
    kernel = np.asarray(kernel, dtype=dtype).reshape(kh, kw, c)
    bias, (low, high) = np.asarray(bias, dtype=dtype), np.dtype(dtype).type([low, high])
    flat = tuple(strides) == (1, 1) and out_hw[0] * out_hw[1] >= FLAT_DEPTHWISE_PIXELS
    if flat and (c < FLAT_DEPTHWISE_CHANNELS or (kh, kw) != (3, 3)):
        ow = out_hw[1]
        tiled = np.tile(kernel.reshape(kh, kw, 1, c), (1, 1, ow, 1)).reshape(kh, kw, ow * c)
        name = "depthwise3x3_inference_flat" if (kh, kw) == (3, 3) else "depthwise1_inference_flat"
        weights: tuple = (tiled, np.tile(bias, ow))
    else:
        name = "depthwise3x3_inference" if (kh, kw) == (3, 3) else "depthwise1_inference"
        weights = (np.ascontiguousarray(kernel), np.ascontiguousarray(bias), *strides)
    compiled = getattr(_module, name)
    # Parts of output rows, each ~kh*kw multiply-adds per value: fewer values per part than a
    # plain pass over memory.
    rows_per_part = max(1, threads.ELEMENTS_PER_PART // (kh * kw * out_hw[1] * c))

    def run(x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], *out_hw, c), dtype=dtype)
        args = (np.ascontiguousarray(x), *weights, pads[0][0], pads[1][0], low, high, out)
        threads.split(
            x.shape[0] * out_hw[0],
            lambda first, last: compiled(*args, first, last),
            min_items=rows_per_part,
        )
        return out

    return run


def max_pool2d_tiles(x: np.ndarray, pool, need_winner: bool):
    """``kernels.max_pool2d_tiles``; the winners are one uint8 array, the row-major window
    position of each output's first maximum (None unless ``need_winner``)."""
    n, h, w, c = x.shape
    ph, pw = pool
    out = np.empty((n, h // ph, w // pw, c), dtype=x.dtype)
    winner = np.empty(out.shape, dtype=np.uint8) if need_winner else None
    x = np.ascontiguousarray(x)

    def pool(a: int, b: int) -> None:
        if winner is None:
            call("max_pool_tiles_values", x[a:b], ph, pw, out[a:b])
        else:
            call("max_pool_tiles", x[a:b], ph, pw, out[a:b], winner[a:b])

    threads.split(n, pool, min_items=max(1, threads.ELEMENTS_PER_PART // (h * w * c)))
    return out, winner


def max_pool2d_tiles_backward(grad: np.ndarray, winner: np.ndarray, input_shape, pool):
    """``kernels.max_pool2d_tiles_backward`` for the winners of :func:`max_pool2d_tiles`."""
    _, h, w, _ = input_shape
    (ph, pw), (oh, ow) = pool, grad.shape[1:3]
    tiled = (h, w) == (oh * ph, ow * pw)
    out = (np.empty if tiled else np.zeros)(input_shape, dtype=grad.dtype)
    grad = np.ascontiguousarray(grad)
    threads.split(
        len(grad),
        lambda a, b: call("max_pool_tiles_backward", grad[a:b], winner[a:b], ph, pw, out[a:b]),
        min_items=max(1, threads.ELEMENTS_PER_PART // (h * w * input_shape[3])),
    )
    return out


# Values in one chunk of the patch-gradient matrix: 2 MiB of float32, as kernels.PATCH_CHUNK.
COL2IM_CHUNK = 1 << 19


def conv2d_backprop_input(grad2d: np.ndarray, kernel: np.ndarray, strides, out_hw, out):
    """``kernels.conv2d_backprop_input`` as one GEMM into a patch-gradient matrix and a
    scatter-add (col2im), a few images at a time: the matrix's chunk stays in the caches
    between the two. 1.7-1.9x the NumPy path's per-position GEMMs and window adds."""
    n, _, _, c = out.shape
    kh, kw, _, filters = kernel.shape
    oh, ow = out_hw
    depth = kh * kw * c
    weights_t = np.ascontiguousarray(kernel.reshape(depth, filters).T, dtype=out.dtype)
    images = max(1, min(n, COL2IM_CHUNK // (oh * ow * depth)))
    buffer = np.empty((images * oh * ow, depth), dtype=out.dtype)
    for start in range(0, n, images):
        stop = min(n, start + images)
        cols = buffer[: (stop - start) * oh * ow]
        np.matmul(grad2d[start * oh * ow : stop * oh * ow], weights_t, out=cols)
        patches = cols.reshape(stop - start, oh, ow, depth)
        call("col2im", patches, kh, kw, *strides, out[start:stop])
    return out
