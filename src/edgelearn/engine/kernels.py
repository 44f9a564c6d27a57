"""Vectorised NHWC kernels: padding arithmetic, im2col convolution and pooling.

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
