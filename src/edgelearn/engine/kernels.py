"""Vectorised NHWC kernels: padding arithmetic, im2col, depthwise and transposed convolution,
pooling and resizing.

Everything works on whole batches with strided views; the only Python loops run over the
``kernel_height * kernel_width`` positions of a window, never over samples or pixels.

Example:
    >>> import numpy as np
    >>> from edgelearn.engine import kernels
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> kernels.max_pool2d(x, (2, 2), (2, 2), "valid")[0][0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def output_length(length: int, kernel: int, stride: int, padding: str) -> int:
    """Output length along one axis, with TensorFlow's rules for 'valid' and 'same'."""
    if padding == "same":
        return -(-length // stride)
    return (length - kernel) // stride + 1


def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding: the extra pixel (when the total is odd) goes after."""
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


def pad_amounts(
    height: int, width: int, kernel: tuple[int, int], strides: tuple[int, int], padding: str
) -> tuple[tuple[int, int], tuple[int, int]]:
    if padding == "valid":
        return (0, 0), (0, 0)
    return same_padding(height, kernel[0], strides[0]), same_padding(width, kernel[1], strides[1])


def pad_nhwc(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], value: float = 0.0):
    if pads == ((0, 0), (0, 0)):
        return x
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def window_slices(kernel: tuple[int, int], strides: tuple[int, int], out_hw: tuple[int, int]):
    """For each kernel position (i, j), the (rows, cols) slices it reads in the padded input."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, strides, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)


# --------------------------------------------------------------------------- convolution
def im2col(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], out_hw):
    """Patches of a padded NHWC array as a (N*OH*OW, KH*KW*C) matrix, in Keras kernel order."""
    n, _, _, c = x.shape
    (kh, kw), (sh, sw), (oh, ow) = kernel, strides, out_hw
    sn, sy, sx, sc = x.strides
    view = as_strided(
        x, shape=(n, oh, ow, kh, kw, c), strides=(sn, sy * sh, sx * sw, sy, sx, sc), writeable=False
    )
    return view.reshape(n * oh * ow, kh * kw * c)


def col2im(cols: np.ndarray, padded_shape, kernel, strides, out_hw) -> np.ndarray:
    """Scatter-add (N*OH*OW, KH*KW*C) patch gradients back onto a padded NHWC array."""
    n, _, _, c = padded_shape
    (kh, kw), (oh, ow) = kernel, out_hw
    patches = cols.reshape(n, oh, ow, kh, kw, c)
    out = np.zeros(padded_shape, dtype=cols.dtype)
    for i, j, rows, columns in window_slices(kernel, strides, out_hw):
        out[:, rows, columns, :] += patches[:, :, :, i, j, :]
    return out


def crop_nhwc(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    (top, bottom), (left, right) = pads
    return x[:, top : x.shape[1] - bottom, left : x.shape[2] - right, :]


# --------------------------------------------------------------------------- pooling
def max_pool2d(x: np.ndarray, pool: tuple[int, int], strides: tuple[int, int], padding: str):
    """Max pooling; returns the output and, per output element, which window position won.

    Ties go to the first position in row-major window order, as in TensorFlow.
    """
    n, h, w, c = x.shape
    out_hw = (output_length(h, pool[0], strides[0], padding), output_length(w, pool[1], strides[1], padding))
    pads = pad_amounts(h, w, pool, strides, padding)
    xp = pad_nhwc(x, pads, value=-np.inf)
    out = None
    winner = np.zeros((n, out_hw[0], out_hw[1], c), dtype=np.uint8)
    for position, (_, _, rows, columns) in enumerate(window_slices(pool, strides, out_hw)):
        window = xp[:, rows, columns, :]
        if out is None:
            out = window.copy()
            continue
        better = window > out
        np.copyto(out, window, where=better)
        winner[better] = position
    return out, winner


def max_pool2d_backward(grad, winner, input_shape, pool, strides, padding) -> np.ndarray:
    n, h, w, c = input_shape
    pads = pad_amounts(h, w, pool, strides, padding)
    padded = (n, h + sum(pads[0]), w + sum(pads[1]), c)
    out = np.zeros(padded, dtype=grad.dtype)
    for position, (_, _, rows, columns) in enumerate(window_slices(pool, strides, grad.shape[1:3])):
        out[:, rows, columns, :] += np.where(winner == position, grad, 0)
    return crop_nhwc(out, pads)


def _window_counts(h: int, w: int, pool, strides, padding, dtype) -> np.ndarray:
    """How many real (unpadded) pixels each output window covers: 'same' averages skip padding."""
    ones = np.ones((1, h, w, 1), dtype=dtype)
    return avg_pool2d_sums(ones, pool, strides, padding)


def avg_pool2d_sums(x: np.ndarray, pool, strides, padding) -> np.ndarray:
    n, h, w, c = x.shape
    out_hw = (output_length(h, pool[0], strides[0], padding), output_length(w, pool[1], strides[1], padding))
    xp = pad_nhwc(x, pad_amounts(h, w, pool, strides, padding))
    out = np.zeros((n, out_hw[0], out_hw[1], c), dtype=x.dtype)
    for _, _, rows, columns in window_slices(pool, strides, out_hw):
        out += xp[:, rows, columns, :]
    return out


def avg_pool2d(x: np.ndarray, pool, strides, padding) -> tuple[np.ndarray, np.ndarray]:
    """Average pooling; returns the output and the per-window divisor used."""
    counts = _window_counts(x.shape[1], x.shape[2], pool, strides, padding, x.dtype)
    return avg_pool2d_sums(x, pool, strides, padding) / counts, counts


def avg_pool2d_backward(grad, counts, input_shape, pool, strides, padding) -> np.ndarray:
    n, h, w, c = input_shape
    pads = pad_amounts(h, w, pool, strides, padding)
    out = np.zeros((n, h + sum(pads[0]), w + sum(pads[1]), c), dtype=grad.dtype)
    share = grad / counts
    for _, _, rows, columns in window_slices(pool, strides, grad.shape[1:3]):
        out[:, rows, columns, :] += share
    return crop_nhwc(out, pads)


# --------------------------------------------------------------------------- depthwise convolution
def depthwise_conv2d(xp: np.ndarray, kernel: np.ndarray, strides, out_hw) -> np.ndarray:
    """Depthwise convolution of a padded NHWC array with a (KH, KW, C, M) kernel.

    Returns (N, OH, OW, C, M): each channel c is convolved with its own M filters.
    """
    n, _, _, c = xp.shape
    kh, kw, _, m = kernel.shape
    out = np.zeros((n, out_hw[0], out_hw[1], c, m), dtype=np.result_type(xp, kernel))
    for i, j, rows, columns in window_slices((kh, kw), strides, out_hw):
        out += xp[:, rows, columns, :, None] * kernel[i, j]
    return out


def depthwise_conv2d_backward(
    grad: np.ndarray, xp: np.ndarray, kernel: np.ndarray, strides, need_input: bool,
    need_kernel: bool,
):
    """Gradients of :func:`depthwise_conv2d` for a (N, OH, OW, C, M) ``grad``.

    Returns the gradient w.r.t. the padded input (or None) and w.r.t. the kernel (or None).
    """
    kh, kw = kernel.shape[:2]
    out_hw = grad.shape[1:3]
    grad_xp = np.zeros_like(xp) if need_input else None
    grad_kernel = np.zeros_like(kernel) if need_kernel else None
    for i, j, rows, columns in window_slices((kh, kw), strides, out_hw):
        if need_input:
            grad_xp[:, rows, columns, :] += np.einsum("nhwcm,cm->nhwc", grad, kernel[i, j])
        if need_kernel:
            grad_kernel[i, j] = np.einsum("nhwc,nhwcm->cm", xp[:, rows, columns, :], grad)
    return grad_xp, grad_kernel


# --------------------------------------------------------------------------- transposed convolution
def transpose_output_length(
    length: int, kernel: int, stride: int, padding: str, output_padding: int | None = None
) -> int:
    """Output length of a transposed convolution, with Keras' rules (TF's for the default
    ``output_padding=None``)."""
    if output_padding is None:
        if padding == "valid":
            return length * stride + max(kernel - stride, 0)
        return length * stride
    pad = kernel // 2 if padding == "same" else 0
    return (length - 1) * stride + kernel - 2 * pad + output_padding


def transpose_crop(length: int, kernel: int, stride: int, out_length: int, padding: str) -> int:
    """Where a transposed convolution's output starts in its full (uncropped) result.

    The full result of an input of ``length`` is ``(length - 1) * stride + kernel`` long. TF
    takes the transposed convolution as the input gradient of a convolution of an
    ``out_length`` input, so 'same' crops what that convolution padded before (the smaller half).
    """
    if padding == "valid":
        return 0
    return max((length - 1) * stride + kernel - out_length, 0) // 2


def crop_or_zero_extend(x: np.ndarray, start: tuple[int, int], out_hw: tuple[int, int]):
    """``out[:, r, c] = x[:, r + start[0], c + start[1]]``, zero where that lies past ``x``."""
    n, h, w, c = x.shape
    out = np.zeros((n, out_hw[0], out_hw[1], c), dtype=x.dtype)
    rows, cols = min(out_hw[0], h - start[0]), min(out_hw[1], w - start[1])
    out[:, :rows, :cols] = x[:, start[0] : start[0] + rows, start[1] : start[1] + cols]
    return out


def crop_or_zero_extend_backward(grad: np.ndarray, start: tuple[int, int], full_shape):
    out = np.zeros(full_shape, dtype=grad.dtype)
    _, h, w, _ = full_shape
    rows, cols = min(grad.shape[1], h - start[0]), min(grad.shape[2], w - start[1])
    out[:, start[0] : start[0] + rows, start[1] : start[1] + cols] = grad[:, :rows, :cols]
    return out


# --------------------------------------------------------------------------- resizing
def bilinear_matrix(in_length: int, out_length: int, dtype) -> np.ndarray:
    """(out, in) weights of TF.js's ``resizeBilinear`` along one axis (alignCorners=false,
    halfPixelCenters=false: output pixel r samples the input at ``r * in / out``)."""
    source = np.arange(out_length) * (in_length / out_length)  # float64, as JavaScript computes
    low = np.floor(source).astype(np.int64)
    high = np.minimum(np.ceil(source).astype(np.int64), in_length - 1)
    frac = source - low
    matrix = np.zeros((out_length, in_length))
    rows = np.arange(out_length)
    # add.at: where low == high (exact or clamped samples) both weights land on one pixel.
    np.add.at(matrix, (rows, low), 1 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix.astype(dtype)
