"""The compiled kernels behind :mod:`edgelearn.engine.jit` (imported only when numba is present).

Layouts are NHWC and C-contiguous; every kernel writes into arrays its caller allocated, and the
innermost loop runs over contiguous channels, which LLVM vectorises. The kernels run on the
calling thread (numba's ``nogil``: several threads may run them at once): the numba thread pool
was tried and dropped, because its threads and OpenBLAS's, which spin for ~0.1 s after every
GEMM, took the cores from each other (MobileNetV2 inference on 2 threads ran 11-13x slower,
benchmarks/README.md), and the fix on OpenBLAS's side (a short OPENBLAS_THREAD_TIMEOUT) cost
2-thread training up to 25%.
"""

# The max pooling kernels test for NaN as `v != v`, the form LLVM vectorised here (others, even
# `m == m` for `not (m != m)`, ran up to 3x slower).
# ruff: noqa: PLR0124, SIM202

from __future__ import annotations

import numba
import numpy as np

jit = numba.njit(cache=True, nogil=True)

# Elementwise kernels split their arrays into blocks of about this many values, one task each,
# each a slice indexed from 0: indices the compiler can prove non-negative let it drop numba's
# negative-index wraparound and vectorise.
BLOCK = 1 << 15


def n_parts(rows: int) -> int:
    """How many partial sums the kernel gradient of a depthwise convolution keeps: sums over
    fewer terms each lose less to float32 rounding."""
    return min(rows, 8)


# Depthwise convolutions with one filter per channel (depth multiplier 1, as in MobileNets), on
# (N, H, W, C) arrays; other multipliers stay on the NumPy path.
@jit
def depthwise1(xp, kernel, sh, sw, out):
    n, oh, ow, c = out.shape
    kh, kw = kernel.shape[0], kernel.shape[1]
    zero = out.dtype.type(0)
    for row in range(n * oh):
        b, y = row // oh, row % oh
        target = out[b, y]
        for xo in range(ow):
            acc = target[xo]
            for ch in range(c):
                acc[ch] = zero
            for i in range(kh):
                for j in range(kw):
                    source, weight = xp[b, y * sh + i, xo * sw + j], kernel[i, j]
                    for ch in range(c):
                        acc[ch] += source[ch] * weight[ch]
    return 0


@jit
def depthwise1_backprop_input(grad, kernel, sh, sw, out):
    n, oh, ow, c = grad.shape
    hp, wp = out.shape[1], out.shape[2]
    kh, kw = kernel.shape[0], kernel.shape[1]
    zero = out.dtype.type(0)
    for task in range(n * hp):
        b, yy = task // hp, task % hp
        target = out[b, yy]
        for xx in range(wp):
            for ch in range(c):
                target[xx, ch] = zero
        for i in range(kh):
            if (yy - i) % sh != 0:
                continue
            y = (yy - i) // sh
            if y < 0 or y >= oh:
                continue
            for xo in range(ow):
                source = grad[b, y, xo]
                for j in range(kw):
                    acc, weight = target[xo * sw + j], kernel[i, j]
                    for ch in range(c):
                        acc[ch] += source[ch] * weight[ch]
    return 0


@jit
def depthwise1_backprop_kernel(grad, xp, sh, sw, parts):
    n, oh, ow, c = grad.shape
    kh, kw = parts.shape[1], parts.shape[2]
    count = parts.shape[0]
    rows = n * oh
    for part in range(count):
        acc = parts[part]
        for row in range(part * rows // count, (part + 1) * rows // count):
            b, y = row // oh, row % oh
            for i in range(kh):
                for j in range(kw):
                    total = acc[i, j]
                    for xo in range(ow):
                        source, g = xp[b, y * sh + i, xo * sw + j], grad[b, y, xo]
                        for ch in range(c):
                            total[ch] += source[ch] * g[ch]
    return 0


# Inference only: a convolution's output with its (folded) bias and activation, in one pass.
@jit
def bias_clip(out, bias, low, high):
    """``out = clip(out + bias, low, high)`` in place, for a (rows, C) ``out``."""
    rows = out.shape[0]
    rows_per_block = max(1, BLOCK // out.shape[1])
    for block in range((rows + rows_per_block - 1) // rows_per_block):
        part = out[block * rows_per_block : min(rows, (block + 1) * rows_per_block)]
        for r in range(part.shape[0]):
            row = part[r]
            for ch in range(row.shape[0]):
                v = row[ch] + bias[ch]
                v = low if v < low else v  # noqa: FURB136 (NaN passes, as np.clip)
                row[ch] = high if v > high else v  # noqa: FURB136
    return 0


@jit
def depthwise1_inference_flat(x, tiled, bias_row, top, left, low, high, out, first, last):
    """:func:`depthwise1_inference` for strides of 1, over whole rows: the weights (and bias)
    come tiled along an output row (``tiled[i, j, xo * C + ch] = kernel[i, j, ch]``), so each
    kernel position is one multiply-add over a contiguous run of up to OW*C values, which LLVM
    vectorises whatever C is (the per-pixel loop over C runs mostly scalar for C = 32)."""
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    kh, kw = tiled.shape[0], tiled.shape[1]
    rows_in, rows_out = x.reshape(n, h, w * c), out.reshape(n, oh, ow * c)
    for row in range(first, last):
        b = row // oh
        y = row - b * oh
        acc = rows_out[b, y]
        for k in range(acc.shape[0]):
            acc[k] = bias_row[k]
        for i in range(kh):
            iy = y + i - top
            if iy < 0 or iy >= h:
                continue
            source = rows_in[b, iy]
            for j in range(kw):
                # Output columns whose tap j lands inside the input: 0 <= xo + j - left < w.
                start, stop = max(0, left - j), min(ow, w + left - j)
                if stop <= start:
                    continue
                # Slices indexed from 0: the compiler can drop negative-index wraparound.
                target = acc[start * c : stop * c]
                values = source[(start + j - left) * c : (stop + j - left) * c]
                weights = tiled[i, j, start * c : stop * c]
                for k in range(target.shape[0]):
                    target[k] += values[k] * weights[k]
        for k in range(acc.shape[0]):
            v = acc[k]
            v = low if v < low else v  # noqa: FURB136
            acc[k] = high if v > high else v  # noqa: FURB136
    return 0


@jit
def depthwise3x3_inference_flat(x, tiled, bias_row, top, left, low, high, out, first, last):
    """:func:`depthwise3x3_inference` for strides of 1 over whole rows, with the weights tiled
    as :func:`depthwise1_inference_flat` takes them: where a row's windows lie inside ``x``,
    its nine taps are summed in one expression over a contiguous run of OW*C values (vectorised
    whatever C is, the sum in a register), in the same order, bit for bit the per-pixel result;
    rows and columns on the padding go through the per-pixel path."""
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    rows_in, rows_out = x.reshape(n, h, w * c), out.reshape(n, oh, ow * c)
    kernel, bias = tiled[:, :, :c], bias_row[:c]
    # Output columns whose window lies inside x: 0 <= xo - left and xo - left + 2 < w.
    start, stop = max(0, left), min(ow, w - 2 + left)
    lo, size = start * c, max(0, stop - start) * c
    end, shift = lo + size, (start - left) * c  # shift: where tap (i, 0) of column `start` reads
    k00, k01, k02 = tiled[0, 0, lo:end], tiled[0, 1, lo:end], tiled[0, 2, lo:end]
    k10, k11, k12 = tiled[1, 0, lo:end], tiled[1, 1, lo:end], tiled[1, 2, lo:end]
    k20, k21, k22 = tiled[2, 0, lo:end], tiled[2, 1, lo:end], tiled[2, 2, lo:end]
    inside_bias = bias_row[lo:end]
    for row in range(first, last):
        b = row // oh
        y = row - b * oh
        iy = y - top
        inside = 0 <= iy and iy + 2 < h and size > 0
        for xo in range(ow):
            if not (inside and start <= xo < stop):
                target = out[b, y, xo]
                _depthwise1_pixel(x, kernel, bias, b, y, xo, 1, 1, top, left, low, high, target)
        if not inside:
            continue
        acc = rows_out[b, y, lo:end]
        # The expression of depthwise3x3_inference, over a row's run instead of a pixel's
        # channels. One helper taking the nine runs as tuples served both 20-30% slower.
        s00, s01, s02 = _three_runs(rows_in[b, iy], shift, c, size)
        s10, s11, s12 = _three_runs(rows_in[b, iy + 1], shift, c, size)
        s20, s21, s22 = _three_runs(rows_in[b, iy + 2], shift, c, size)
        for k in range(size):
            v = inside_bias[k] + s00[k] * k00[k]
            v += s01[k] * k01[k]
            v += s02[k] * k02[k]
            v += s10[k] * k10[k]
            v += s11[k] * k11[k]
            v += s12[k] * k12[k]
            v += s20[k] * k20[k]
            v += s21[k] * k21[k]
            v += s22[k] * k22[k]
            v = low if v < low else v  # noqa: FURB136
            acc[k] = high if v > high else v  # noqa: FURB136
    return 0


@jit
def _three_runs(row, start, step, size):
    """The runs of ``size`` values of ``row`` from ``start``, ``start + step``, ``start + 2*step``."""
    second, third = start + step, start + 2 * step
    return row[start : start + size], row[second : second + size], row[third : third + size]


@jit
def depthwise1_inference(x, kernel, bias, sh, sw, top, left, low, high, out, first, last):
    """Depthwise convolution (one filter per channel) of the unpadded ``x`` with 'same'/'valid'
    padding ``top``/``left`` (taps outside ``x`` are skipped: zero padding without a padded
    copy), plus ``bias``, clipped to [low, high]; output rows ``first`` to ``last`` (of the
    N*OH rows)."""
    oh, ow = out.shape[1], out.shape[2]
    for row in range(first, last):
        b = row // oh
        y = row - b * oh
        target = out[b, y]
        for xo in range(ow):
            _depthwise1_pixel(x, kernel, bias, b, y, xo, sh, sw, top, left, low, high, target[xo])
    return 0


@jit
def _depthwise1_pixel(x, kernel, bias, b, y, xo, sh, sw, top, left, low, high, acc):
    """One output pixel of :func:`depthwise1_inference` into ``acc``, kernel position by
    kernel position (taps outside ``x`` skipped)."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    for ch in range(c):
        acc[ch] = bias[ch]
    for i in range(kernel.shape[0]):
        iy = y * sh + i - top
        if iy < 0 or iy >= h:
            continue
        for j in range(kernel.shape[1]):
            ix = xo * sw + j - left
            if ix < 0 or ix >= w:
                continue
            source, weight = x[b, iy, ix], kernel[i, j]
            for ch in range(c):
                acc[ch] += source[ch] * weight[ch]
    for ch in range(c):
        v = acc[ch]
        v = low if v < low else v  # noqa: FURB136
        acc[ch] = high if v > high else v  # noqa: FURB136


@jit
def depthwise3x3_inference(x, kernel, bias, sh, sw, top, left, low, high, out, first, last):
    """:func:`depthwise1_inference` for 3x3 kernels (MobileNets'): a pixel whose window lies
    inside ``x`` sums its nine taps per channel in one expression, in the same order, so the
    sum stays in a register instead of going to memory after every tap (1.5-2x on MobileNetV2's
    layers, bit for bit the same); pixels on the padding go through the general path."""
    h, w = x.shape[1], x.shape[2]
    oh, ow = out.shape[1], out.shape[2]
    k00, k01, k02 = kernel[0, 0], kernel[0, 1], kernel[0, 2]
    k10, k11, k12 = kernel[1, 0], kernel[1, 1], kernel[1, 2]
    k20, k21, k22 = kernel[2, 0], kernel[2, 1], kernel[2, 2]
    for row in range(first, last):
        b = row // oh
        y = row - b * oh
        iy = y * sh - top
        rows_inside = iy >= 0 and iy + 2 < h
        for xo in range(ow):
            ix = xo * sw - left
            acc = out[b, y, xo]
            if not (rows_inside and ix >= 0 and ix + 2 < w):
                _depthwise1_pixel(x, kernel, bias, b, y, xo, sh, sw, top, left, low, high, acc)
                continue
            r0, r1, r2 = x[b, iy], x[b, iy + 1], x[b, iy + 2]
            s00, s01, s02 = r0[ix], r0[ix + 1], r0[ix + 2]
            s10, s11, s12 = r1[ix], r1[ix + 1], r1[ix + 2]
            s20, s21, s22 = r2[ix], r2[ix + 1], r2[ix + 2]
            for ch in range(acc.shape[0]):
                v = bias[ch] + s00[ch] * k00[ch]
                v += s01[ch] * k01[ch]
                v += s02[ch] * k02[ch]
                v += s10[ch] * k10[ch]
                v += s11[ch] * k11[ch]
                v += s12[ch] * k12[ch]
                v += s20[ch] * k20[ch]
                v += s21[ch] * k21[ch]
                v += s22[ch] * k22[ch]
                v = low if v < low else v  # noqa: FURB136
                acc[ch] = high if v > high else v  # noqa: FURB136
    return 0


# Max pooling whose windows tile the input (pool == strides, no padding), as
# kernels.max_pool2d_tiles defines it: the output and, per output element, the row-major position
# of its window's first maximum (a NaN makes the output NaN and keeps the winner it found).
@jit
def max_pool_tiles(x, ph, pw, out, winner):
    n, oh, ow, c = out.shape
    for row in range(n * oh):
        b = row // oh
        y = row - b * oh
        for xo in range(ow):
            best, won, first = out[b, y, xo], winner[b, y, xo], x[b, y * ph, xo * pw]
            for ch in range(c):
                best[ch] = first[ch]
                won[ch] = 0
            for i in range(ph):
                for j in range(pw):
                    if i == 0 and j == 0:
                        continue
                    source, position = x[b, y * ph + i, xo * pw + j], np.uint8(i * pw + j)
                    for ch in range(c):
                        # Branch-free selects, which LLVM vectorises over the channels.
                        v, m = source[ch], best[ch]
                        better = v > m
                        best[ch] = v if (better or v != v) and not (m != m) else m
                        won[ch] = position if better else won[ch]
    return 0


@jit
def max_pool_tiles_values(x, ph, pw, out):
    """:func:`max_pool_tiles` without the winners (inference)."""
    n, oh, ow, c = out.shape
    for row in range(n * oh):
        b = row // oh
        y = row - b * oh
        for xo in range(ow):
            best, first = out[b, y, xo], x[b, y * ph, xo * pw]
            for ch in range(c):
                best[ch] = first[ch]
            for i in range(ph):
                for j in range(pw):
                    if i == 0 and j == 0:
                        continue
                    source = x[b, y * ph + i, xo * pw + j]
                    for ch in range(c):
                        v, m = source[ch], best[ch]
                        best[ch] = v if (v > m or v != v) and not (m != m) else m
    return 0


@jit
def _better(v, m, won, position):
    """One step of a window's running maximum ``m`` (winner ``won``) past the value ``v`` at
    ``position``: what :func:`max_pool_tiles` does, on scalars."""
    better = v > m
    return (v if (better or v != v) and not (m != m) else m), (position if better else won)


@jit
def max_pool2x2_tiles(x, out, winner):
    """:func:`max_pool_tiles` for 2x2 windows, bit for bit: each window's four values are read
    into registers through row views, so that LLVM vectorises over the channels (the running
    maximum in ``out`` kept the general kernel scalar: 4-25x slower on the codelab CNN's and
    MobileNet-sized shapes)."""
    n, oh, ow, c = out.shape
    for row in range(n * oh):
        b = row // oh
        y = row - b * oh
        top = x[b, 2 * y, : 2 * ow].reshape(ow, 2 * c)
        bottom = x[b, 2 * y + 1, : 2 * ow].reshape(ow, 2 * c)
        values, winners = out[b, y], winner[b, y]
        for xo in range(ow):
            t, u, best, won = top[xo], bottom[xo], values[xo], winners[xo]
            for ch in range(c):
                m, w = _better(t[c + ch], t[ch], np.uint8(0), np.uint8(1))
                m, w = _better(u[ch], m, w, np.uint8(2))
                m, w = _better(u[c + ch], m, w, np.uint8(3))
                best[ch] = m
                won[ch] = w
    return 0


@jit
def max_pool2x2_tiles_values(x, out):
    """:func:`max_pool2x2_tiles` without the winners (inference)."""
    n, oh, ow, c = out.shape
    for row in range(n * oh):
        b = row // oh
        y = row - b * oh
        top = x[b, 2 * y, : 2 * ow].reshape(ow, 2 * c)
        bottom = x[b, 2 * y + 1, : 2 * ow].reshape(ow, 2 * c)
        values = out[b, y]
        for xo in range(ow):
            t, u, best = top[xo], bottom[xo], values[xo]
            for ch in range(c):
                m = t[ch]
                for v in (t[c + ch], u[ch], u[c + ch]):
                    m = v if (v > m or v != v) and not (m != m) else m
                best[ch] = m
    return 0


@jit
def max_pool_tiles_backward(grad, winner, ph, pw, out):
    """Each output gradient to its window's winner, zeros elsewhere in the tiled part of
    ``out`` (the caller zeroes the cropped edges)."""
    n, oh, ow, c = grad.shape
    zero = out.dtype.type(0)
    for row in range(n * oh):
        b = row // oh
        y = row - b * oh
        for i in range(ph):
            for xo in range(ow):
                g, won = grad[b, y, xo], winner[b, y, xo]
                for j in range(pw):
                    target, position = out[b, y * ph + i, xo * pw + j], np.uint8(i * pw + j)
                    for ch in range(c):
                        target[ch] = g[ch] if won[ch] == position else zero
    return 0


@jit
def col2im(cols, kh, kw, sh, sw, out):
    """Scatter-add a (N, OH, OW, KH*KW*C) patch-gradient matrix into the padded (N, HP, WP, C)
    ``out`` (zeroed here, image by image, so each image is written while it is in cache)."""
    n, oh, ow, _ = cols.shape
    c = out.shape[3]
    zero = out.dtype.type(0)
    for b in range(n):
        image = out[b]
        for y in range(image.shape[0]):
            for x in range(image.shape[1]):
                pixel = image[y, x]
                for ch in range(c):
                    pixel[ch] = zero
        for y in range(oh):
            for x in range(ow):
                source = cols[b, y, x]
                for i in range(kh):
                    for j in range(kw):
                        target, base = image[y * sh + i, x * sw + j], (i * kw + j) * c
                        for ch in range(c):
                            target[ch] += source[base + ch]
    return 0
