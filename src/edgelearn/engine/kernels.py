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

import itertools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edgelearn.engine import jit, threads


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
    (top, bottom), (left, right) = pads
    n, h, w, c = x.shape
    # np.pad walks the result several times; fill the four borders, then copy the interior once.
    out = np.empty((n, top + h + bottom, left + w + right, c), dtype=x.dtype)
    out[:, :top] = value
    out[:, top + h :] = value
    out[:, top : top + h, :left] = value
    out[:, top : top + h, left + w :] = value
    out[:, top : top + h, left : left + w] = x
    return out


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
    if (kh, kw) == (1, 1):
        # A 1x1 patch is the pixel itself: with stride 1 the matrix is a view of x, no copy.
        return x[:, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw].reshape(n * oh * ow, c)
    return _patches(x, kernel, strides, out_hw).reshape(n * oh * ow, kh * kw * c)


def _patches(x: np.ndarray, kernel, strides, out_hw) -> np.ndarray:
    """A read-only (N, OH, OW, KH, KW, C) view of the patches of a padded NHWC array."""
    n, _, _, c = x.shape
    (kh, kw), (sh, sw), (oh, ow) = kernel, strides, out_hw
    sn, sy, sx, sc = x.strides
    return as_strided(
        x, shape=(n, oh, ow, kh, kw, c), strides=(sn, sy * sh, sx * sw, sy, sx, sc), writeable=False
    )


# Values in one chunk of a patch matrix (with its ones column): 2 MiB of float32, which stays in
# the caches between the copy that builds a chunk and the GEMM that reads it.
PATCH_CHUNK = 1 << 19


def patch_chunks(x: np.ndarray, kernel, strides, out_hw, ones_column: bool = False):
    """The patch matrix of :func:`im2col`, a few images at a time, for GEMMs chunk by chunk.

    Yields ``(rows, cols)``: a slice of the matrix's N*OH*OW rows and their patches, followed
    by a column of ones if ``ones_column`` (which folds a bias into the GEMM, and the bias
    gradient into the kernel gradient's GEMM). Every chunk is built in the same buffer, valid
    until the next one: the whole matrix, KH*KW times the size of the input, never exists. Fresh
    memory that large costs more in page faults than rebuilding the chunks in backward does.
    """
    n, _, _, c = x.shape
    (kh, kw), (oh, ow) = kernel, out_hw
    depth = kh * kw * c
    images = max(1, min(n, PATCH_CHUNK // (oh * ow * (depth + 1))))
    if c == 1:
        yield from _single_channel_patch_chunks(x, kernel, strides, out_hw, ones_column, images)
        return
    patches = _patches(x, kernel, strides, out_hw)
    buffer = np.empty((images * oh * ow, depth + ones_column), dtype=x.dtype)
    if ones_column:
        buffer[:, depth] = 1
    for start in range(0, n, images):
        stop = min(n, start + images)
        cols = buffer[: (stop - start) * oh * ow]
        np.copyto(cols[:, :depth].reshape(stop - start, oh, ow, kh, kw, c), patches[start:stop])
        yield slice(start * oh * ow, stop * oh * ow), cols


def _single_channel_patch_chunks(x, kernel, strides, out_hw, ones_column, images):
    """:func:`patch_chunks` for C == 1, where a patch row is made of runs of only KW values and
    copying it crawls: this builds the transposed chunk, one whole window of the input per
    kernel position (runs of OW values), and yields its transpose, twice as fast in all."""
    n = x.shape[0]
    (kh, kw), (oh, ow) = kernel, out_hw
    buffer = np.empty((kh * kw + ones_column, images * oh * ow), dtype=x.dtype)
    if ones_column:
        buffer[kh * kw] = 1
    for start in range(0, n, images):
        stop = min(n, start + images)
        cols_t = buffer[:, : (stop - start) * oh * ow]
        windows = cols_t[: kh * kw].reshape(kh, kw, stop - start, oh, ow)
        for i, j, rows, columns in window_slices(kernel, strides, out_hw):
            windows[i, j] = x[start:stop, rows, columns, 0]
        yield slice(start * oh * ow, stop * oh * ow), cols_t.T


def conv2d_backprop_input(grad2d: np.ndarray, kernel: np.ndarray, strides, out_hw, out):
    """Gradient of a convolution w.r.t. its padded input, written into ``out``.

    ``grad2d`` is the (N*OH*OW, F) output gradient, ``kernel`` the (KH, KW, C, F) kernel and
    ``out`` the (N, HP, WP, C) result. One GEMM per kernel position
    lands in that position's window of the result, whose rows are contiguous runs of OW*C values
    for stride 1; one GEMM into a (N*OH*OW, KH*KW*C) patch matrix would need a scatter-add
    (col2im) that moves runs of only C values and takes several times as long as the GEMMs.
    """
    n, hp, wp, c = out.shape
    kh, kw = kernel.shape[:2]
    oh, ow = out_hw
    if (kh, kw) == (1, 1) and (oh, ow) == (hp, wp) and out.flags.c_contiguous:
        np.matmul(grad2d, kernel[0, 0].T, out=out.reshape(-1, c))
        return out
    if jit.enabled(out.size) and out.flags.c_contiguous:
        return jit.conv2d_backprop_input(grad2d, kernel, strides, out_hw, out)
    out[...] = 0
    for i, j, rows, columns in window_slices((kh, kw), strides, out_hw):
        out[:, rows, columns, :] += (grad2d @ kernel[i, j].T).reshape(n, oh, ow, c)
    return out


def bias_clip_(out: np.ndarray, bias: np.ndarray, low: float, high: float) -> None:
    """``out = clip(out + bias, low, high)`` in place (a convolution's bias and activation at
    inference), ``bias`` along the last axis."""
    if jit.enabled(out.size) and out.flags.c_contiguous:
        jit.bias_clip_(out, bias, low, high)
        return
    out += bias
    np.clip(out, low, high, out=out)


def crop_nhwc(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    (top, bottom), (left, right) = pads
    return x[:, top : x.shape[1] - bottom, left : x.shape[2] - right, :]


# --------------------------------------------------------------------------- pooling
def max_pool2d(x: np.ndarray, pool: tuple[int, int], strides: tuple[int, int], padding: str):
    """Max pooling; returns the output and, per output element, which window position won.

    Ties go to the first position in row-major window order, as in TensorFlow; a NaN anywhere
    in a window makes its output NaN.
    """
    n, h, w, c = x.shape
    out_hw = (
        output_length(h, pool[0], strides[0], padding),
        output_length(w, pool[1], strides[1], padding),
    )
    pads = pad_amounts(h, w, pool, strides, padding)
    xp = pad_nhwc(x, pads, value=-np.inf)
    out = None
    winner = np.zeros((n, out_hw[0], out_hw[1], c), dtype=np.min_scalar_type(pool[0] * pool[1] - 1))
    for position, (_, _, rows, columns) in enumerate(window_slices(pool, strides, out_hw)):
        window = xp[:, rows, columns, :]
        if out is None:
            out = window.copy()
            continue
        better = window > out
        # Positions only grow, so a maximum records the latest strictly better one.
        np.maximum(winner, better * winner.dtype.type(position), out=winner)
        np.maximum(out, window, out=out)
    return out, winner


def max_pool2d_backward(grad, winner, input_shape, pool, strides, padding) -> np.ndarray:
    n, h, w, c = input_shape
    pads = pad_amounts(h, w, pool, strides, padding)
    padded = (n, h + sum(pads[0]), w + sum(pads[1]), c)
    out = np.zeros(padded, dtype=grad.dtype)
    for position, (_, _, rows, columns) in enumerate(window_slices(pool, strides, grad.shape[1:3])):
        out[:, rows, columns, :] += grad * (winner == position)
    return crop_nhwc(out, pads)


def pool_tiles(input_shape, pool: tuple[int, int], strides: tuple[int, int], padding: str) -> bool:
    """Whether the pooling windows tile the input: stride == pool (larger than 1x1), no padding."""
    _, h, w, _ = input_shape
    if tuple(strides) != tuple(pool) or pool[0] * pool[1] == 1:
        return False
    return padding == "valid" or (h % pool[0] == 0 and w % pool[1] == 0)


def max_pool2d_tiles(x: np.ndarray, pool: tuple[int, int], need_winner: bool = True):
    """Max pooling for windows that tile the input (see :func:`pool_tiles`), as
    :func:`max_pool2d` computes it, several times faster.

    Returns the output and the winners for :func:`max_pool2d_tiles_backward` (None unless
    ``need_winner``): per input column of each band of ``pool[0]`` rows, the row of its maximum;
    per output element, the column of the window's first maximum in row-major order.

    The first pass takes maxima down each window's columns over whole contiguous rows; only
    the second, on 1/pool[0] of the data, works on runs of C values, the window's pixels.
    """
    if jit.enabled(x.size):
        return jit.max_pool2d_tiles(x, pool, need_winner)
    n, h, w, c = x.shape
    ph, pw = pool
    oh, ow = h // ph, w // pw
    bands = x[:, : oh * ph, : ow * pw].reshape(n, oh, ph, ow * pw * c)
    column_max, column_row = bands[:, :, 0], None
    for i in range(1, ph):
        row = bands[:, :, i]
        if need_winner:
            better = (row > column_max).view(np.uint8)
            if column_row is not None:  # rows only grow: a maximum keeps the latest better one
                better = np.maximum(column_row, better * np.uint8(i))
            column_row = better
        column_max = np.maximum(column_max, row)
    columns = column_max.reshape(n, oh, ow, pw, c)
    rows = None if column_row is None else column_row.reshape(n, oh, ow, pw, c)
    out, out_row, out_column = columns[:, :, :, 0], None if rows is None else rows[:, :, :, 0], None
    for j in range(1, pw):
        value = columns[:, :, :, j]
        if need_winner:
            take = value > out
            if rows is not None:
                # An equal maximum in an earlier row of a later column comes first row-major.
                take |= (value == out) & (rows[:, :, :, j] < out_row)
                if j < pw - 1:
                    out_row = np.where(take, rows[:, :, :, j], out_row)
            take = take.view(np.uint8)
            out_column = take if out_column is None else np.maximum(out_column, take * np.uint8(j))
        out = np.maximum(out, value)
    return out, ((column_row, out_column) if need_winner else None)


def max_pool2d_tiles_backward(grad: np.ndarray, winner, input_shape, pool) -> np.ndarray:
    """Gradient of :func:`max_pool2d_tiles`: each output gradient goes to its window's winner."""
    if not isinstance(winner, tuple):  # the winners of the numba kernel
        return jit.max_pool2d_tiles_backward(grad, winner, input_shape, pool)
    n, h, w, c = input_shape
    ph, pw = pool
    _, oh, ow, _ = grad.shape
    column_row, out_column = winner
    spread = grad
    if pw > 1:  # first to the winning column of each window ...
        spread = np.empty((n, oh, ow, pw, c), dtype=grad.dtype)
        for j in range(pw):
            np.multiply(grad, out_column == j, out=spread[:, :, :, j])
    spread = spread.reshape(n, oh, ow * pw * c)
    tiled = (h, w) == (oh * ph, ow * pw)
    out = (np.empty if tiled else np.zeros)(input_shape, dtype=grad.dtype)
    bands = out[:, : oh * ph, : ow * pw].reshape(n, oh, ph, ow * pw * c)
    if ph == 1:
        bands[:, :, 0] = spread
    else:  # ... then to the winning row of that column
        for i in range(ph):
            np.multiply(spread, column_row == i, out=bands[:, :, i])
    return out


def _window_counts(h: int, w: int, pool, strides, padding, dtype) -> np.ndarray:
    """How many real (unpadded) pixels each output window covers: 'same' averages skip padding."""
    ones = np.ones((1, h, w, 1), dtype=dtype)
    return avg_pool2d_sums(ones, pool, strides, padding)


def avg_pool2d_sums(x: np.ndarray, pool, strides, padding) -> np.ndarray:
    n, h, w, c = x.shape
    out_hw = (
        output_length(h, pool[0], strides[0], padding),
        output_length(w, pool[1], strides[1], padding),
    )
    xp = pad_nhwc(x, pad_amounts(h, w, pool, strides, padding))
    out = np.zeros((n, out_hw[0], out_hw[1], c), dtype=x.dtype)
    for _, _, rows, columns in window_slices(pool, strides, out_hw):
        out += xp[:, rows, columns, :]
    return out


def avg_pool2d(x: np.ndarray, pool, strides, padding) -> tuple[np.ndarray, np.ndarray]:
    """Average pooling; returns the output and the per-window divisor used."""
    counts = _window_counts(x.shape[1], x.shape[2], pool, strides, padding, x.dtype)
    return avg_pool2d_sums(x, pool, strides, padding) / counts, counts


def avg_pool2d_tiles(x: np.ndarray, pool: tuple[int, int]) -> np.ndarray:
    """Average pooling for windows that tile the input (see :func:`pool_tiles`).

    Each band of ``pool[0]`` rows is summed first (whole rows at a time), then each window's
    ``pool[1]`` columns: ph + pw - 2 additions of large arrays instead of :func:`avg_pool2d`'s
    ph * pw window sums and its divisor map (MobileNet's 7x7 average pooling ~10x faster).
    """
    n, h, w, c = x.shape
    (ph, pw), oh, ow = pool, h // pool[0], w // pool[1]
    bands = x[:, : oh * ph, : ow * pw].reshape(n, oh, ph, ow * pw * c)
    rows = bands[:, :, 0].copy()
    for i in range(1, ph):
        rows += bands[:, :, i]
    columns = rows.reshape(n, oh, ow, pw, c)
    out = columns[:, :, :, 0].copy()
    for j in range(1, pw):
        out += columns[:, :, :, j]
    out /= x.dtype.type(ph * pw)
    return out


def avg_pool2d_tiles_backward(
    grad: np.ndarray, input_shape: tuple[int, ...], pool: tuple[int, int]
) -> np.ndarray:
    """The input gradient of :func:`avg_pool2d_tiles`: each window's share spread over it."""
    n, h, w, c = input_shape
    (ph, pw), (oh, ow) = pool, grad.shape[1:3]
    share = grad / grad.dtype.type(ph * pw)
    spread = np.broadcast_to(share[:, :, None, :, None, :], (n, oh, ph, ow, pw, c))
    spread = spread.reshape(n, oh * ph, ow * pw, c)
    if (oh * ph, ow * pw) == (h, w):
        return spread
    out = np.zeros(input_shape, dtype=grad.dtype)  # 'valid' windows left the last rows out
    out[:, : oh * ph, : ow * pw] = spread
    return out


def avg_pool2d_backward(grad, counts, input_shape, pool, strides, padding) -> np.ndarray:
    n, h, w, c = input_shape
    pads = pad_amounts(h, w, pool, strides, padding)
    out = np.zeros((n, h + sum(pads[0]), w + sum(pads[1]), c), dtype=grad.dtype)
    share = grad / counts
    for _, _, rows, columns in window_slices(pool, strides, grad.shape[1:3]):
        out[:, rows, columns, :] += share
    return crop_nhwc(out, pads)


# --------------------------------------------------------------------------- depthwise convolution
def _depthwise_layout(kernel: np.ndarray, strides, out_hw):
    """Whether windows are flat, and each kernel position's weights shaped to match.

    With a column stride of 1 and one filter per channel a window row is one contiguous run of
    OW*C values ("flat"), and the weights are tiled along it: NumPy's loops then run over whole
    rows instead of runs of C values, about twice as fast for the narrow layers of MobileNets.
    Otherwise windows are (N, OH, OW, C, 1) views against (C, M) weights.
    """
    kh, kw, c, m = kernel.shape
    weights = kernel.reshape(kh * kw, c, m)
    flat = strides[1] == 1 and m == 1
    return flat, (np.tile(weights[:, :, 0], (1, out_hw[1])) if flat else weights)


def _depthwise_windows(a: np.ndarray, kernel_hw, strides, out_hw, flat: bool):
    """The window of each kernel position in the padded ``a``, in row-major kernel order."""
    n, hp, wp, c = a.shape
    rows_view = a.reshape(n, hp, wp * c) if flat else None
    for _, j, rows, columns in window_slices(kernel_hw, strides, out_hw):
        if flat:
            yield rows_view[:, rows, j * c : (j + out_hw[1]) * c]
        else:
            yield a[:, rows, columns, :, None]


# Output values per block of a depthwise convolution: the block and the product being added to it
# stay in the L2 cache through all the kernel positions.
DEPTHWISE_BLOCK = 1 << 16


def depthwise_conv2d(xp: np.ndarray, kernel: np.ndarray, strides, out_hw) -> np.ndarray:
    """Depthwise convolution of a padded NHWC array with a (KH, KW, C, M) kernel.

    Returns (N, OH, OW, C, M): each channel c is convolved with its own M filters. The output
    is computed a block at a time (rows of one image, or whole small images), each kernel
    position a multiply into a small reused buffer and an in-place add.
    """
    if kernel.shape[3] == 1 and jit.enabled(xp.shape[0] * out_hw[0] * out_hw[1] * xp.shape[3]):
        return jit.depthwise_conv2d(xp, kernel, strides, out_hw)
    n, c = xp.shape[0], xp.shape[3]
    kh, kw, _, m = kernel.shape
    oh, ow = out_hw
    flat, weights = _depthwise_layout(kernel, strides, out_hw)
    windows = list(_depthwise_windows(xp, (kh, kw), strides, out_hw, flat))
    row = (ow * c,) if flat else (ow, c, m)
    out = np.empty((n, oh, *row), dtype=np.result_type(xp, kernel))
    rows = max(1, DEPTHWISE_BLOCK // (ow * c * m))
    images = max(1, rows // oh)

    def part(start: int, stop: int) -> None:
        tmp = np.empty((min(images, stop - start), min(rows, oh), *row), dtype=out.dtype)
        for first in range(start, stop, images):
            for top in range(0, oh, rows):
                block = (slice(first, min(stop, first + images)), slice(top, top + rows))
                target = out[block]
                product = tmp[: target.shape[0], : target.shape[1]]
                np.multiply(windows[0][block], weights[0], out=target)
                for window, weight in zip(windows[1:], weights[1:]):
                    target += np.multiply(window[block], weight, out=product)

    # Images split over threads (engine.threads); ~KH*KW multiply-adds per output value.
    work_per_image = kh * kw * oh * ow * c * m
    threads.split(n, part, min_items=max(1, threads.ELEMENTS_PER_PART // work_per_image))
    return out.reshape(n, oh, ow, c, m)


def depthwise_conv2d_backward(
    grad: np.ndarray,
    xp: np.ndarray,
    kernel: np.ndarray,
    strides,
    need_input: bool,
    need_kernel: bool,
):
    """Gradients of :func:`depthwise_conv2d` for a (N, OH, OW, C, M) ``grad``.

    Returns the gradient w.r.t. the padded input (or None) and w.r.t. the kernel (or None).
    """
    if kernel.shape[3] == 1 and jit.enabled(grad.size):
        return jit.depthwise_conv2d_backward(grad, xp, kernel, strides, need_input, need_kernel)
    n, oh, ow, c, m = grad.shape
    kh, kw = kernel.shape[:2]
    flat, weights = _depthwise_layout(kernel, strides, (oh, ow))
    grad = grad.reshape(n, oh, ow * c) if flat else grad
    tmp = np.empty_like(grad) if flat else None
    # C order whatever xp's layout: the flat windows below must be views of it, not copies.
    grad_xp = np.zeros(xp.shape, dtype=xp.dtype) if need_input else None
    grad_weights = np.empty((kh * kw, c, m), dtype=kernel.dtype) if need_kernel else None
    windows = zip(
        _depthwise_windows(xp, (kh, kw), strides, (oh, ow), flat),
        _depthwise_windows(grad_xp, (kh, kw), strides, (oh, ow), flat)
        if need_input
        else itertools.repeat(None),
    )
    for p, (window, grad_window) in enumerate(windows):
        if need_input and flat:
            grad_window += np.multiply(grad, weights[p], out=tmp)
        elif need_input:
            grad_window[..., 0] += np.einsum("nhwcm,cm->nhwc", grad, weights[p])
        if need_kernel and flat:
            grad_weights[p, :, 0] = np.multiply(window, grad, out=tmp).reshape(-1, c).sum(axis=0)
        elif need_kernel:
            grad_weights[p] = np.einsum("nhwc,nhwcm->cm", window[..., 0], grad)
    return grad_xp, None if grad_weights is None else grad_weights.reshape(kernel.shape)


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
