"""The engine's fast paths against the general paths and direct computations: tiled max pooling
(pool == stride), ReLU by clip and mask, 1x1 and single-channel convolutions, chunked patch
matrices, per-position input gradients, blocked depthwise convolution, padding and AddN.

Every test runs twice: with the NumPy kernels and with the numba kernels of the ``jit`` extra
(where numba is installed), which replace some of these paths."""

import numpy as np
import pytest

from edgelearn.engine import Tensor, jit, kernels, no_grad
from edgelearn.engine import functions as F
from edgelearn.testing import numeric_gradient

rng = np.random.default_rng(0)


@pytest.fixture(autouse=True, params=["numpy", "numba"])
def engine_kernels(request, monkeypatch):
    if request.param == "numba":
        pytest.importorskip("numba")
        monkeypatch.setattr(jit, "MIN_ELEMENTS", 0)  # the kernels for these small arrays too
    jit.set_kernels(request.param)
    yield request.param
    jit.set_kernels("auto")


def _grads(fn, arrays, dy):
    """Output of ``fn(*arrays)`` (a Tensor) and the gradients of ``sum(fn(*arrays) * dy)``."""
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(dy)
    return out.numpy(), [t.grad for t in tensors]


def _check_against_finite_differences(fn, arrays):
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    dy = rng.normal(size=fn(*arrays).shape)
    _, grads = _grads(fn, arrays, dy)
    for array, grad in zip(arrays, grads):

        def objective():
            return float((fn(*arrays).numpy() * dy).sum())

        np.testing.assert_allclose(grad, numeric_gradient(objective, array), rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- max pooling
def _first_max_pool(x, pool):
    """Direct max pooling with pool == stride: the value and the gradient mask (the first
    maximum of each window in row-major order gets the gradient)."""
    n, h, w, c = x.shape
    (ph, pw), (oh, ow) = pool, (h // pool[0], w // pool[1])
    out = np.zeros((n, oh, ow, c), x.dtype)
    mask = np.zeros(x.shape, x.dtype)
    for b in range(n):
        for y in range(oh):
            for z in range(ow):
                for ch in range(c):
                    window = x[b, y * ph : (y + 1) * ph, z * pw : (z + 1) * pw, ch]
                    i, j = np.unravel_index(np.argmax(window), window.shape)  # first maximum
                    out[b, y, z, ch] = window[i, j]
                    mask[b, y * ph + i, z * pw + j, ch] = 1
    return out, mask


@pytest.mark.parametrize("pool", [(2, 2), (3, 3), (2, 3), (3, 2), (1, 2), (2, 1)])
@pytest.mark.parametrize("size", [(6, 6), (7, 9)])
def test_tiled_max_pool_matches_the_general_path_and_direct_pooling_with_ties(pool, size):
    # Few distinct values: most windows hold ties, in every arrangement of rows and columns.
    x = rng.integers(0, 3, size=(3, *size, 4)).astype(np.float32)
    assert kernels.pool_tiles(x.shape, pool, pool, "valid")
    tiled_out, tiled_winner = kernels.max_pool2d_tiles(x, pool)
    general_out, general_winner = kernels.max_pool2d(x, pool, pool, "valid")
    direct_out, mask = _first_max_pool(x, pool)
    np.testing.assert_array_equal(tiled_out, direct_out)
    np.testing.assert_array_equal(general_out, direct_out)
    grad = rng.normal(size=direct_out.shape).astype(np.float32)
    # Each output's gradient goes to its window's first maximum; cropped edges get none.
    tiles = (grad.shape[1] * pool[0], grad.shape[2] * pool[1])
    expected = np.zeros(x.shape, np.float32)
    expected[:, : tiles[0], : tiles[1]] = np.repeat(np.repeat(grad, pool[0], 1), pool[1], 2)
    expected *= mask
    tiled = kernels.max_pool2d_tiles_backward(grad, tiled_winner, x.shape, pool)
    general = kernels.max_pool2d_backward(grad, general_winner, x.shape, pool, pool, "valid")
    np.testing.assert_array_equal(tiled, expected)
    np.testing.assert_array_equal(general, expected)


def test_tiled_max_pool_ties_go_to_the_first_maximum_in_row_major_order():
    # The maximum 5 is at (0, 1) and (1, 0): row-major order puts (0, 1) first, even though
    # (1, 0) is in the earlier column.
    x = Tensor(
        np.array([[1.0, 5.0], [5.0, 0.0]], dtype=np.float32).reshape(1, 2, 2, 1), requires_grad=True
    )
    F.MaxPool2D.apply(x, pool_size=(2, 2), strides=(2, 2), padding="valid").sum().backward()
    np.testing.assert_array_equal(x.grad[0, :, :, 0], [[0, 1], [0, 0]])
    x = Tensor(np.full((1, 2, 2, 1), 3.0, dtype=np.float32), requires_grad=True)
    F.MaxPool2D.apply(x, pool_size=(2, 2), strides=(2, 2), padding="same").sum().backward()
    np.testing.assert_array_equal(x.grad[0, :, :, 0], [[1, 0], [0, 0]])


def test_max_pool_takes_the_tiled_path_only_when_windows_tile_the_input():
    assert kernels.pool_tiles((1, 8, 8, 1), (2, 2), (2, 2), "same")
    assert not kernels.pool_tiles((1, 7, 8, 1), (2, 2), (2, 2), "same")  # 'same' pads here
    assert not kernels.pool_tiles((1, 8, 8, 1), (3, 3), (2, 2), "valid")
    assert not kernels.pool_tiles((1, 8, 8, 1), (1, 1), (1, 1), "valid")


@pytest.mark.parametrize("pool, strides", [((2, 2), (2, 2)), ((3, 3), (2, 2))])
def test_max_pool_propagates_nan(pool, strides):
    x = rng.normal(size=(1, 6, 6, 2)).astype(np.float32)
    x[0, 1, 0, 1] = np.nan  # in the second position of the first window
    out = F.MaxPool2D.apply(x, pool_size=pool, strides=strides, padding="valid").numpy()
    assert np.isnan(out[0, 0, 0, 1])
    assert np.isfinite(np.delete(out.reshape(-1), 1)).all()


def test_tiled_max_pool_gradients_match_finite_differences():
    x = rng.normal(size=(2, 5, 7, 3))  # odd sizes: the last row and column are cropped
    _check_against_finite_differences(
        lambda x: F.MaxPool2D.apply(x, pool_size=(2, 2), strides=(2, 2), padding="valid"), [x]
    )


# --------------------------------------------------------------------------- average pooling
@pytest.mark.parametrize("pool", [(2, 2), (3, 3), (2, 3), (7, 7), (1, 2)])
@pytest.mark.parametrize("size", [(7, 7), (14, 9)])
def test_tiled_average_pool_matches_the_general_path_and_a_direct_mean(pool, size):
    x = rng.normal(size=(3, *size, 5)).astype(np.float32)
    assert kernels.pool_tiles(x.shape, pool, pool, "valid")
    (ph, pw), (oh, ow) = pool, (size[0] // pool[0], size[1] // pool[1])
    windows = x[:, : oh * ph, : ow * pw].reshape(3, oh, ph, ow, pw, 5)
    direct = windows.astype(np.float64).mean(axis=(2, 4))
    tiled = kernels.avg_pool2d_tiles(x, pool)
    general, counts = kernels.avg_pool2d(x, pool, pool, "valid")
    assert tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tiled, general, rtol=1e-5, atol=1e-6)
    grad = rng.normal(size=tiled.shape).astype(np.float32)
    np.testing.assert_allclose(
        kernels.avg_pool2d_tiles_backward(grad, x.shape, pool),
        kernels.avg_pool2d_backward(grad, counts, x.shape, pool, pool, "valid"),
        rtol=1e-6,
    )


def test_tiled_average_pool_gradients_match_finite_differences():
    x = rng.normal(size=(2, 5, 7, 3))  # odd sizes: the last row and column are cropped
    assert kernels.pool_tiles(x.shape, (2, 2), (2, 2), "valid")
    _check_against_finite_differences(
        lambda x: F.AvgPool2D.apply(x, pool_size=(2, 2), strides=(2, 2), padding="valid"), [x]
    )


def test_max_pool_outputs_agree_with_and_without_a_graph():
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    with no_grad():
        inference = F.MaxPool2D.apply(
            Tensor(x, requires_grad=True), pool_size=(2, 2), strides=(2, 2), padding="valid"
        ).numpy()
    training = F.MaxPool2D.apply(
        Tensor(x, requires_grad=True), pool_size=(2, 2), strides=(2, 2), padding="valid"
    ).numpy()
    np.testing.assert_array_equal(inference, training)


# --------------------------------------------------------------------------- ReLU
@pytest.mark.parametrize("max_value", [None, 6.0])
def test_relu_propagates_nan_and_keeps_the_gradient_rules(max_value):
    a = np.array([np.nan, -np.inf, -1.0, -0.0, 0.0, 0.5, 6.0, 7.0, np.inf], dtype=np.float32)
    cap = np.inf if max_value is None else max_value
    x = Tensor(a, requires_grad=True)
    out = F.ReLU.apply(x, max_value=max_value)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(
        out.numpy(), [np.nan, 0, 0, 0, 0, 0.5, min(6, cap), min(7, cap), cap]
    )
    out.backward(np.full(a.shape, 2.0, dtype=np.float32))
    # NaN passes its gradient on (as before); 0 and the cap are outside the open interval.
    passed = [1, 0, 0, 0, 0, 1, max_value is None, max_value is None, max_value is None]
    np.testing.assert_array_equal(x.grad, 2.0 * np.array(passed, dtype=np.float32))
    assert x.grad.dtype == np.float32


def test_leaky_and_thresholded_relu_keep_their_gradients():
    a = rng.normal(size=(4, 5)) * 2
    _check_against_finite_differences(
        lambda a: F.ReLU.apply(a, negative_slope=0.2, max_value=1.5), [a]
    )
    _check_against_finite_differences(lambda a: F.ReLU.apply(a, threshold=0.3), [a])


def test_relu_saves_its_mask_only_when_backward_can_follow():
    ones = np.ones(3, dtype=np.float32)
    with no_grad():
        primitive, _ = F.ReLU.run(Tensor(ones, requires_grad=True))
    assert not primitive.recording and not hasattr(primitive, "passed")
    primitive, _ = F.ReLU.run(Tensor(ones))  # nothing needs a gradient
    assert not primitive.recording and not hasattr(primitive, "passed")
    primitive, _ = F.ReLU.run(Tensor(ones, requires_grad=True))
    assert primitive.recording and hasattr(primitive, "passed")


# --------------------------------------------------------------------------- convolution
def _direct_conv(x, w, b, strides, padding):
    kh, kw = w.shape[:2]
    (top, _), (left, _) = kernels.pad_amounts(x.shape[1], x.shape[2], (kh, kw), strides, padding)
    oh = kernels.output_length(x.shape[1], kh, strides[0], padding)
    ow = kernels.output_length(x.shape[2], kw, strides[1], padding)
    xp = np.zeros((x.shape[0], x.shape[1] + kh, x.shape[2] + kw, x.shape[3]), x.dtype)
    xp[:, top : top + x.shape[1], left : left + x.shape[2]] = x
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    (sh, sw) = strides
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw]
            out[:, i, j] = np.einsum("nhwc,hwcf->nf", patch, w)
    return out if b is None else out + b


CONV_CASES = [  # input shape, kernel shape, strides, padding, bias
    ((2, 5, 6, 3), (1, 1, 3, 4), (1, 1), "valid", True),  # 1x1: the input is the matrix
    ((2, 5, 6, 3), (1, 1, 3, 4), (2, 1), "same", False),  # 1x1 with a stride: a strided copy
    ((3, 7, 6, 1), (3, 2, 1, 4), (1, 1), "valid", True),  # single channel: transposed chunks
    ((3, 7, 6, 1), (3, 3, 1, 2), (2, 2), "same", False),
    ((3, 6, 7, 2), (3, 3, 2, 3), (1, 2), "same", True),
    ((2, 6, 6, 4), (2, 2, 4, 3), (2, 2), "valid", True),
]


@pytest.mark.parametrize("x_shape, w_shape, strides, padding, bias", CONV_CASES)
@pytest.mark.parametrize("chunk", [kernels.PATCH_CHUNK, 40])  # 40: a chunk per image or two
def test_conv2d_paths_match_a_direct_convolution_and_finite_differences(
    monkeypatch, x_shape, w_shape, strides, padding, bias, chunk
):
    monkeypatch.setattr(kernels, "PATCH_CHUNK", chunk)
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    b = rng.normal(size=w_shape[3]) if bias else None
    out = F.Conv2D.apply(x, w, b, strides=strides, padding=padding).numpy()
    np.testing.assert_allclose(out, _direct_conv(x, w, b, strides, padding), rtol=1e-10)
    _check_against_finite_differences(
        lambda x, w, *b: F.Conv2D.apply(x, w, *(b or [None]), strides=strides, padding=padding),
        [x, w] + ([b] if bias else []),
    )


def test_conv2d_float32_stays_float32_and_matches_float64():
    x, w, b = rng.normal(size=(5, 9, 9, 1)), rng.normal(size=(5, 5, 1, 8)), rng.normal(size=8)
    arrays32 = [x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)]
    out32, grads32 = _grads(F.Conv2D.apply, arrays32, np.ones((5, 5, 5, 8), np.float32))
    out64, grads64 = _grads(F.Conv2D.apply, [x, w, b], np.ones((5, 5, 5, 8)))
    assert out32.dtype == np.float32 and all(g.dtype == np.float32 for g in grads32)
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-5)
    for g32, g64 in zip(grads32, grads64):
        np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (2, 1)])
def test_conv2d_backprop_input_matches_scattering_the_patch_gradients(strides):
    kernel = rng.normal(size=(3, 2, 4, 5))
    padded_shape, out_hw = (2, 8, 7, 4), ((8 - 3) // strides[0] + 1, (7 - 2) // strides[1] + 1)
    grad = rng.normal(size=(2 * out_hw[0] * out_hw[1], 5))
    cols = (grad @ kernel.reshape(-1, 5).T).reshape(2, *out_hw, 3, 2, 4)
    expected = np.zeros(padded_shape)
    (sh, sw) = strides
    for y in range(out_hw[0]):
        for z in range(out_hw[1]):
            expected[:, y * sh : y * sh + 3, z * sw : z * sw + 2] += cols[:, y, z]
    actual = kernels.conv2d_backprop_input(
        grad, kernel, strides, out_hw, out=np.empty(padded_shape)
    )
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


def test_patch_chunks_cover_every_row_once_and_fold_a_ones_column(monkeypatch):
    monkeypatch.setattr(kernels, "PATCH_CHUNK", 100)
    for channels in (1, 3):
        x = rng.normal(size=(5, 6, 6, channels))
        full = kernels.im2col(x, (3, 3), (1, 1), (4, 4))
        seen = np.zeros(len(full), dtype=int)
        for rows, cols in kernels.patch_chunks(x, (3, 3), (1, 1), (4, 4), ones_column=True):
            np.testing.assert_array_equal(cols[:, :-1], full[rows])
            np.testing.assert_array_equal(cols[:, -1], 1)
            seen[rows] += 1
        np.testing.assert_array_equal(seen, 1)


def test_column_sums_is_the_sum_down_the_rows():
    a = rng.normal(size=(1000, 7)).astype(np.float32)
    np.testing.assert_allclose(F.column_sums(a), a.sum(axis=0), rtol=1e-5, atol=1e-5)
    assert F.column_sums(a).dtype == np.float32


# --------------------------------------------------------------------------- depthwise convolution
def _direct_depthwise(xp, kernel, strides, out_hw):
    kh, kw, c, m = kernel.shape
    out = np.zeros((xp.shape[0], *out_hw, c, m))
    (sh, sw) = strides
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            patch = xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw]
            out[:, i, j] = np.einsum("nhwc,hwcm->ncm", patch, kernel)
    return out


@pytest.mark.parametrize(
    "strides, multiplier", [((1, 1), 1), ((2, 2), 1), ((1, 1), 2), ((2, 1), 1)]
)
@pytest.mark.parametrize("block", ["default", "rows", "images"])
def test_depthwise_blocks_match_a_direct_convolution(monkeypatch, strides, multiplier, block):
    xp, kernel = rng.normal(size=(5, 7, 8, 3)), rng.normal(size=(3, 3, 3, multiplier))
    out_hw = ((7 - 3) // strides[0] + 1, (8 - 3) // strides[1] + 1)
    # One output row per block, or two whole images per block (the last block has one).
    sizes = {
        "default": kernels.DEPTHWISE_BLOCK,
        "rows": 1,
        "images": 2 * out_hw[0] * out_hw[1] * 3 * multiplier,
    }
    monkeypatch.setattr(kernels, "DEPTHWISE_BLOCK", sizes[block])
    np.testing.assert_allclose(
        kernels.depthwise_conv2d(xp, kernel, strides, out_hw),
        _direct_depthwise(xp, kernel, strides, out_hw),
        rtol=1e-10,
    )
    x, bias = rng.normal(size=(2, 6, 5, 3)), rng.normal(size=3 * multiplier)
    _check_against_finite_differences(
        lambda x, k, b: F.DepthwiseConv2D.apply(x, k, b, strides=strides, padding="same"),
        [x, kernel, bias],
    )


def test_depthwise_gradients_do_not_depend_on_the_input_layout():
    kernel = rng.normal(size=(3, 3, 4, 1))
    xp = rng.normal(size=(2, 4, 7, 6)).transpose(0, 2, 3, 1)  # NHWC values, other strides
    grad = rng.normal(size=(2, 5, 4, 4, 1))
    strided = kernels.depthwise_conv2d_backward(grad, xp, kernel, (1, 1), True, True)
    contiguous = kernels.depthwise_conv2d_backward(
        grad, np.ascontiguousarray(xp), kernel, (1, 1), True, True
    )
    for a, b in zip(strided, contiguous):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert np.abs(strided[0]).sum() > 0


# --------------------------------------------------------------------------- padding, AddN
def test_pad_nhwc_matches_np_pad():
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    for pads, value in ((((1, 2), (0, 3)), 0.0), (((0, 1), (2, 0)), -np.inf)):
        expected = np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=value)
        actual = kernels.pad_nhwc(x, pads, value)
        assert actual.dtype == np.float32
        np.testing.assert_array_equal(actual, expected)


def test_addn_adds_in_place_only_into_its_own_sum():
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    c, d = rng.normal(size=(3,)), rng.normal(size=(4, 2, 3))  # d broadcasts the sum larger
    inputs = [a.copy(), b.copy(), c.copy(), d.copy()]
    np.testing.assert_allclose(F.AddN.apply(*inputs).numpy(), a + b + c + d)
    for original, passed in zip((a, b, c, d), inputs):
        np.testing.assert_array_equal(original, passed)  # no input was written to
    single = F.AddN.apply(a).numpy()
    assert not np.shares_memory(single, a)
