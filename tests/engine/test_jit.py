"""The numba kernels of the ``jit`` extra against the NumPy path they replace.

Forward results must be bit-identical (the same products added in the same order); gradients
that sum over many pixels agree to float32 rounding. The NumPy path itself is checked against
finite differences and TensorFlow.js elsewhere; ``test_fast_paths.py`` runs under both paths.
"""

import subprocess
import sys
import threading

import numpy as np
import pytest

from edgelearn.engine import functions as F
from edgelearn.engine import jit, kernels

pytest.importorskip("numba")
rng = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def small_arrays_too(monkeypatch):
    """The kernels for every size here (the engine keeps small arrays on the NumPy path)."""
    monkeypatch.setattr(jit, "MIN_ELEMENTS", 0)


def _both(fn):
    """``fn()`` with the NumPy kernels, then with the numba kernels."""
    previous = jit.get_kernels()
    try:
        jit.set_kernels("numpy")
        expected = fn()
        jit.set_kernels("numba")
        actual = fn()
    finally:
        jit.set_kernels(previous)
    return expected, actual


# MobileNet-like layers (one filter per channel): stride 1 and 2, odd sizes and kernels.
DEPTHWISE_CASES = [
    ((2, 9, 9, 16), (3, 3), (1, 1), 1),
    ((1, 17, 17, 24), (3, 3), (2, 2), 1),
    ((3, 8, 11, 5), (3, 5), (2, 1), 1),
    ((1, 10, 9, 4), (2, 3), (1, 2), 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel_hw, strides, multiplier", DEPTHWISE_CASES)
def test_depthwise_matches_the_numpy_path(shape, kernel_hw, strides, multiplier, dtype):
    xp = rng.normal(size=shape).astype(dtype)
    kernel = rng.normal(size=(*kernel_hw, shape[3], multiplier)).astype(dtype)
    out_hw = tuple((shape[1 + a] - kernel_hw[a]) // strides[a] + 1 for a in range(2))
    expected, actual = _both(lambda: kernels.depthwise_conv2d(xp, kernel, strides, out_hw))
    assert actual.dtype == dtype and actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)

    grad = rng.normal(size=expected.shape).astype(dtype)
    expected, actual = _both(
        lambda: kernels.depthwise_conv2d_backward(grad, xp, kernel, strides, True, True)
    )
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for a, e in zip(actual, expected):
        assert a.dtype == dtype and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * np.abs(e).max())


def test_depthwise_gradients_are_computed_only_when_needed():
    xp, kernel = rng.normal(size=(1, 6, 6, 2)), rng.normal(size=(3, 3, 2, 1))
    grad = rng.normal(size=(1, 4, 4, 2, 1))
    for need_input, need_kernel in [(True, False), (False, True)]:

        def backward(need_input=need_input, need_kernel=need_kernel):
            return kernels.depthwise_conv2d_backward(
                grad, xp, kernel, (1, 1), need_input, need_kernel
            )

        expected, actual = _both(backward)
        assert [a is None for a in actual] == [not need_input, not need_kernel]
        assert [e is None for e in expected] == [not need_input, not need_kernel]


def test_kernels_launched_from_many_threads_at_once():
    # A web server predicts from worker threads: the kernels release the GIL, share nothing.
    jit.set_kernels("numba")
    xp = rng.normal(size=(2, 30, 30, 8)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 8, 1)).astype(np.float32)
    expected = kernels.depthwise_conv2d(xp, kernel, (1, 1), (28, 28))
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(kernels.depthwise_conv2d(xp, kernel, (1, 1), (28, 28)))
        except Exception as error:  # noqa: BLE001 - any failure in a thread is reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    jit.set_kernels("auto")
    assert not errors and len(results) == 80
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_other_depth_multipliers_stay_on_the_numpy_path(monkeypatch):
    launched = []
    monkeypatch.setattr(jit, "call", lambda name, *args: launched.append(name))
    xp = np.ones((1, 6, 6, 2), dtype=np.float32)
    kernels.depthwise_conv2d(xp, np.ones((3, 3, 2, 2), dtype=np.float32), (1, 1), (4, 4))
    grad = np.ones((1, 4, 4, 2, 2), dtype=np.float32)
    kernel = np.ones((3, 3, 2, 2), dtype=np.float32)
    kernels.depthwise_conv2d_backward(grad, xp, kernel, (1, 1), True, True)
    assert launched == []


def test_small_arrays_do_not_load_numba_but_use_it_once_loaded(monkeypatch):
    monkeypatch.setattr(jit, "MIN_ELEMENTS", 1000)
    module, loads = jit._load(), []

    def load():
        loads.append(1)
        jit._module = module  # monkeypatch puts the original back after the test
        return module

    monkeypatch.setattr(jit, "_module", None)
    monkeypatch.setattr(jit, "_load", load)
    launched = []
    monkeypatch.setattr(jit, "call", lambda name, *args: launched.append(name))
    kernel = np.ones((3, 3, 1, 1), dtype=np.float32)
    small, large = np.ones((1, 33, 32, 1), np.float32), np.ones((1, 34, 36, 1), np.float32)
    kernels.depthwise_conv2d(small, kernel, (1, 1), (31, 30))
    assert launched == [] and loads == []  # 930 values out: numba stays unloaded
    kernels.depthwise_conv2d(large, kernel, (1, 1), (32, 34))
    assert launched == ["depthwise1"] and loads == [1]  # 1,088 load it
    kernels.depthwise_conv2d(small, kernel, (1, 1), (31, 30))
    assert launched == ["depthwise1"] * 2  # loaded: small arrays use it too


def test_set_kernels_validates_its_argument():
    with pytest.raises(ValueError, match="Received: kernels='gpu'"):
        jit.set_kernels("gpu")
    assert jit.get_kernels() == "auto"
    jit.set_kernels("numpy")
    assert not jit.enabled()
    jit.set_kernels("auto")
    assert jit.enabled()


@pytest.mark.parametrize("flat", [False, True], ids=["per-pixel", "row-wise"])
@pytest.mark.parametrize("kernel_hw", [(3, 3), (5, 2)])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (2, 1)])
@pytest.mark.parametrize("shape", [(2, 9, 9, 16), (1, 8, 11, 5)])
def test_fused_inference_depthwise_matches_the_layered_computation(
    shape, strides, padding, kernel_hw, flat, monkeypatch
):
    # The row-wise kernel serves large outputs with strides of 1; here it serves all of them.
    monkeypatch.setattr(jit, "FLAT_DEPTHWISE_PIXELS", 0 if flat else 1 << 40)
    x = rng.normal(size=shape).astype(np.float32)
    kernel = rng.normal(size=(*kernel_hw, shape[3], 1)).astype(np.float32)
    bias = rng.normal(size=shape[3]).astype(np.float32)
    plain = F.DepthwiseConv2D.apply(x, kernel, bias, strides=strides, padding=padding).numpy()
    pads = kernels.pad_amounts(shape[1], shape[2], kernel_hw, strides, padding)
    fused = jit.depthwise_conv2d_inference(x, kernel, bias, strides, pads, plain.shape[1:3], 0, 1)
    np.testing.assert_allclose(fused, np.clip(plain, 0, 1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("flat", [False, True], ids=["per-pixel", "row-wise"])
def test_fused_inference_depthwise_reads_extra_zero_padding_in_place(flat, monkeypatch):
    # A ZeroPadding2D ((1, 0), (2, 0)) before a 'valid' convolution: taps before the input's
    # first row and columns read zeros.
    monkeypatch.setattr(jit, "FLAT_DEPTHWISE_PIXELS", 0 if flat else 1 << 40)
    x = rng.normal(size=(2, 7, 6, 8)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 8, 1)).astype(np.float32)
    bias = rng.normal(size=8).astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 0), (2, 0), (0, 0)))
    plain = F.DepthwiseConv2D.apply(padded, kernel, bias, strides=(1, 1), padding="valid")
    fused = jit.depthwise_conv2d_inference(
        x, kernel, bias, (1, 1), ((1, 0), (2, 0)), plain.shape[1:3], -1.0, 2.0
    )
    np.testing.assert_allclose(fused, np.clip(plain.numpy(), -1, 2), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 9, 9, 16), (1, 3, 12, 5), (1, 3, 3, 3)])
@pytest.mark.parametrize("pads", [((1, 1), (1, 1)), ((0, 0), (0, 0)), ((2, 0), (0, 2))])
def test_3x3_depthwise_kernels_equal_the_general_kernel_bit_for_bit(shape, pads, monkeypatch):
    # The same products added in the same order, inside the input and on its padding.
    compiled = jit._load()  # the entry points expect the kernels loaded (jit.enabled() loads)
    x = rng.normal(size=shape).astype(np.float32)
    kernel = rng.normal(size=(3, 3, shape[3], 1)).astype(np.float32)
    bias = rng.normal(size=shape[3]).astype(np.float32)
    out_hw = tuple(size + sum(pad) - 2 for size, pad in zip(shape[1:3], pads))
    results = []
    for pixels in (1 << 40, 0):  # per pixel, then row-wise
        monkeypatch.setattr(jit, "FLAT_DEPTHWISE_PIXELS", pixels)
        results.append(
            jit.depthwise_conv2d_inference(x, kernel, bias, (1, 1), pads, out_hw, -1.0, 1.5)
        )
    # The kernel for any size, tap by tap into memory: the reference order of the additions.
    general = np.empty_like(results[0])
    low, high = np.float32(-1.0), np.float32(1.5)
    weights = kernel.reshape(3, 3, shape[3])
    compiled.depthwise1_inference(
        x, weights, bias, 1, 1, pads[0][0], pads[1][0], low, high, general, 0, len(x) * out_hw[0]
    )
    np.testing.assert_array_equal(results[0], general)
    np.testing.assert_array_equal(results[1], general)


def test_bias_clip_matches_numpy():
    out = rng.normal(size=(3, 70, 90, 7)).astype(np.float32) * 4
    out[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    bias = rng.normal(size=7).astype(np.float32)
    expected = np.clip(out + bias, 0, 6)
    jit.bias_clip_(out, bias, 0, 6)
    np.testing.assert_array_equal(out, expected)


def test_a_numba_that_cannot_compile_here_leaves_the_numpy_path():
    # numba raises RuntimeError at decoration when it has nowhere to write its cache.
    code = (
        "import sys, types\n"
        "numba = types.ModuleType('numba')\n"
        "def njit(**options):\n"
        "    raise RuntimeError('cannot cache function: no locator available')\n"
        "numba.njit = njit\n"
        "sys.modules['numba'] = numba\n"
        "import numpy as np\n"
        "import edgelearn as el\n"
        "from edgelearn.engine import jit\n"
        "model = el.Sequential([el.layers.Input((40, 40, 64)), el.layers.DepthwiseConv2D(3)])\n"
        "print(model.predict(np.ones((1, 40, 40, 64))).shape, jit.enabled())\n"
        "try:\n"
        "    jit.set_kernels('numba')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    shape_and_state, message = result.stdout.strip().splitlines()
    assert shape_and_state == "(1, 38, 38, 64) False"
    assert "RuntimeError: cannot cache function" in message and "edgelearn[jit]" in message


@pytest.mark.parametrize("need_winner", [True, False])
@pytest.mark.parametrize("shape", [(3, 6, 6, 8), (2, 7, 9, 5), (1, 12, 10, 33)])
def test_2x2_max_pool_kernels_equal_the_general_kernel_bit_for_bit(shape, need_winner):
    # Ties in every arrangement (few distinct values) and NaNs in several window positions.
    x = rng.integers(0, 3, size=shape).astype(np.float32)
    x.reshape(-1)[::17] = np.nan
    n, h, w, c = shape
    expected = np.empty((n, h // 2, w // 2, c), np.float32)
    expected_winner = np.empty(expected.shape, np.uint8)
    jit.enabled()  # loads the kernels
    jit.call("max_pool_tiles", x, 2, 2, expected, expected_winner)
    out, winner = jit.max_pool2d_tiles(x, (2, 2), need_winner)
    np.testing.assert_array_equal(out, expected)
    if need_winner:
        np.testing.assert_array_equal(winner, expected_winner)
