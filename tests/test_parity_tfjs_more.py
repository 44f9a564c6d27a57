"""Parity with TensorFlow.js of the layers added for the functional API and model import.

One-input layers (DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, ZeroPadding2D,
UpSampling2D, GlobalMaxPooling2D, LeakyReLU) run through tests/tfjs/reference.js ("layer"
cases: y, the gradients of sum(y * dy) w.r.t. the input and each trainable weight, and the
weights after the call). The merge layers take several inputs, which reference.js cannot feed,
so tests/tfjs/reference_merge.js runs them in a functional TF.js model (y and the gradient
w.r.t. every input). Each script gets one batched Node call for the whole module.

The configs sent to TF.js are the ones edgelearn writes (``get_config``), so these tests also
check that TF.js reads edgelearn's JSON as edgelearn means it; LeakyReLU, for instance, only
agrees because its config carries TF.js's ``alpha`` key beside Keras 3's ``negative_slope``.

Tolerance: elementwise |edgelearn - tfjs| <= TOL + TOL * |tfjs| with TOL = 1e-5, as in
tests/test_parity_tfjs.py: ~80 float32 ulps of a unit-sized value, room for the different
summation orders of convolutions and interpolations, far below what a formula error gives.

Where TF.js departs from Keras 3 in a merge layer (Subtract is missing; Concatenate reads every
negative axis as the last; Maximum/Minimum cannot differentiate broadcast inputs),
reference_merge.js computes the Keras 3 definition and says so in the result's "emulated" field.

Two TF.js 4.22 cpu-backend gradient bugs are pinned down rather than compared around silently
(``TFJS_BUG_CASES``; the tests fail once TF.js fixes them, so that the cases can join the rest):
- ResizeNearestNeighborGrad (tfjs-backend-cpu/dist/kernels/ResizeNearestNeighborGrad.js:70)
  offsets dy by the *input's* batch stride, so the gradient of every sample after the first
  reads the wrong part of dy; the nearest UpSampling2D cases therefore use batch 1;
- ResizeBilinearGrad (same folder, ResizeBilinearGrad.js:82) returns a [batch, width, height,
  depth] gradient, which TF.js rejects for non-square images; bilinear cases use square images.

Not compared, because TF.js does not implement them: Conv2DTranspose's output_padding (TF.js
reads no such argument and computes the output_padding=None shape) and GlobalMaxPooling2D's
keepdims. Those paths are checked against independent definitions in
tests/layers/test_layers_more.py.
"""

import numpy as np
import pytest
from parity_helpers import assert_close, case_rng, check_layer_case, normal, reference
from tfjs_reference import MERGE_SCRIPT, run_tfjs

import edgelearn as el
from edgelearn.engine import Tensor

L = el.layers


def _weights(layer, rng):
    """Random weights for a built layer, scaled by fan-in so that activations stay of order one."""
    weights = []
    for w in layer.weights:
        if w.ndim == 1:  # bias
            weights.append(normal(rng, w.shape, 0.1))
            continue
        fan_in = int(np.prod(w.shape[:-1]))
        if isinstance(layer, L.Conv2DTranspose):
            fan_in = int(np.prod(w.shape[:2])) * w.shape[3]  # kernel (kh, kw, filters, inputs)
        weights.append(normal(rng, w.shape, 1 / np.sqrt(fan_in)))
    return weights


def _layer_case(case_id, cls, kwargs, shape, batch=2, scale=1.0):
    """A reference.js "layer" case for ``cls(**kwargs)`` on inputs of ``shape`` (no batch)."""
    rng = case_rng(case_id)
    layer = cls(name=case_id, **kwargs)
    input_shape = (None, *shape)
    layer.build(input_shape)
    out_shape = layer.compute_output_shape(input_shape)[1:]
    return {
        "kind": "layer",
        "class_name": type(layer).__name__,
        "config": layer.get_config(),
        "input_shape": list(input_shape),
        "weights": _weights(layer, rng),
        "x": normal(rng, (batch, *shape), scale),
        "dy": normal(rng, (batch, *out_shape)),
        "training": False,
    }


def _merge_case(case_id, cls, kwargs, shapes, batch=2):
    """A reference_merge.js "merge" case for ``cls(**kwargs)`` on inputs of ``shapes``."""
    rng = case_rng(case_id)
    layer = cls(name=case_id, **kwargs)
    input_shapes = [(None, *shape) for shape in shapes]
    out_shape = layer.compute_output_shape(input_shapes)[1:]
    return {
        "kind": "merge",
        "class_name": type(layer).__name__,
        "config": layer.get_config(),
        "input_shapes": [list(shape) for shape in input_shapes],
        "xs": [normal(rng, (batch, *shape)) for shape in shapes],
        "dy": normal(rng, (batch, *out_shape)),
    }


LAYER_CASES = [
    _layer_case("depthwise_k3_s1_valid", L.DepthwiseConv2D, {"kernel_size": 3}, (6, 7, 3)),
    _layer_case(
        "depthwise_k3_s1_same_m2",
        L.DepthwiseConv2D,
        {"kernel_size": 3, "padding": "same", "depth_multiplier": 2},
        (6, 6, 3),
    ),
    _layer_case(
        "depthwise_k3_s2_same_m2_odd",
        L.DepthwiseConv2D,
        {"kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2},
        (7, 7, 2),
    ),
    _layer_case(
        "depthwise_k2x3_s2_valid_no_bias",
        L.DepthwiseConv2D,
        {"kernel_size": (2, 3), "strides": 2, "use_bias": False},
        (7, 8, 3),
    ),
    _layer_case(
        "depthwise_k5_s2_same_even_relu",
        L.DepthwiseConv2D,
        {"kernel_size": 5, "strides": 2, "padding": "same", "activation": "relu"},
        (8, 8, 2),
    ),
    _layer_case(
        "separable_k3_s1_valid", L.SeparableConv2D, {"filters": 4, "kernel_size": 3}, (6, 7, 3)
    ),
    _layer_case(
        "separable_k3_s2_same_m2_odd",
        L.SeparableConv2D,
        {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2},
        (7, 7, 2),
    ),
    _layer_case(
        "separable_k3x2_same_m2_no_bias_tanh",
        L.SeparableConv2D,
        {
            "filters": 5,
            "kernel_size": (3, 2),
            "padding": "same",
            "depth_multiplier": 2,
            "use_bias": False,
            "activation": "tanh",
        },
        (5, 6, 3),
    ),
    _layer_case(
        "transpose_k3_s1_valid", L.Conv2DTranspose, {"filters": 4, "kernel_size": 3}, (4, 5, 3)
    ),
    _layer_case(
        "transpose_k3_s2_same",
        L.Conv2DTranspose,
        {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
        (4, 5, 3),
    ),
    _layer_case(
        "transpose_k3_s2_valid",
        L.Conv2DTranspose,
        {"filters": 2, "kernel_size": 3, "strides": 2},
        (4, 5, 3),
    ),
    _layer_case(
        "transpose_k4_s2_same",
        L.Conv2DTranspose,
        {"filters": 3, "kernel_size": 4, "strides": 2, "padding": "same"},
        (3, 3, 2),
    ),
    # Kernel smaller than the stride: 'valid' leaves rows that no input pixel reaches.
    _layer_case(
        "transpose_k2_s3_valid",
        L.Conv2DTranspose,
        {"filters": 2, "kernel_size": 2, "strides": 3},
        (3, 4, 2),
    ),
    _layer_case(
        "transpose_k5_s2_same_odd_no_bias_relu",
        L.Conv2DTranspose,
        {
            "filters": 3,
            "kernel_size": 5,
            "strides": 2,
            "padding": "same",
            "use_bias": False,
            "activation": "relu",
        },
        (3, 5, 2),
    ),
    _layer_case(
        "transpose_k2x3_s1x2_same",
        L.Conv2DTranspose,
        {"filters": 2, "kernel_size": (2, 3), "strides": (1, 2), "padding": "same"},
        (4, 3, 3),
    ),
    _layer_case("zero_padding_default", L.ZeroPadding2D, {}, (3, 4, 2)),
    _layer_case("zero_padding_int", L.ZeroPadding2D, {"padding": 2}, (3, 4, 2)),
    _layer_case("zero_padding_symmetric_pair", L.ZeroPadding2D, {"padding": (1, 2)}, (3, 4, 2)),
    _layer_case(
        "zero_padding_asymmetric", L.ZeroPadding2D, {"padding": ((0, 2), (3, 1))}, (3, 4, 2)
    ),
    _layer_case("upsampling_nearest_default", L.UpSampling2D, {}, (3, 4, 2), batch=1),
    _layer_case("upsampling_nearest_3x2", L.UpSampling2D, {"size": (3, 2)}, (3, 5, 2), batch=1),
    _layer_case(
        "upsampling_bilinear_2", L.UpSampling2D, {"size": 2, "interpolation": "bilinear"}, (4, 4, 3)
    ),
    _layer_case(
        "upsampling_bilinear_3", L.UpSampling2D, {"size": 3, "interpolation": "bilinear"}, (3, 3, 2)
    ),
    _layer_case(
        "upsampling_bilinear_2x3_square_input",
        L.UpSampling2D,
        {"size": (2, 3), "interpolation": "bilinear"},
        (5, 5, 2),
    ),
    _layer_case("global_maxpool", L.GlobalMaxPooling2D, {}, (5, 6, 4)),
    _layer_case("leaky_relu_default", L.LeakyReLU, {}, (4, 5), scale=3.0),
    _layer_case("leaky_relu_0.1", L.LeakyReLU, {"negative_slope": 0.1}, (3, 4, 2), scale=3.0),
    _layer_case("leaky_relu_alpha_0.05", L.LeakyReLU, {"alpha": 0.05}, (4, 5), scale=3.0),
    _layer_case("leaky_relu_0", L.LeakyReLU, {"negative_slope": 0.0}, (4, 5), scale=3.0),
]

MERGE_CASES = [
    _merge_case("add_two", L.Add, {}, [(3, 4), (3, 4)]),
    _merge_case("add_three_broadcast", L.Add, {}, [(3, 4), (1, 4), (4,)]),
    _merge_case("add_images", L.Add, {}, [(4, 4, 3), (4, 4, 3)]),
    _merge_case("subtract", L.Subtract, {}, [(5,), (5,)]),
    _merge_case("subtract_broadcast", L.Subtract, {}, [(2, 5), (5,)]),
    _merge_case("multiply_three", L.Multiply, {}, [(3, 4), (3, 4), (3, 1)]),
    _merge_case("average_three", L.Average, {}, [(6,), (6,), (6,)]),
    _merge_case("maximum_two", L.Maximum, {}, [(3, 4), (3, 4)]),
    _merge_case("maximum_three_broadcast", L.Maximum, {}, [(3, 4), (1, 4), (3, 4)]),
    _merge_case("minimum_two", L.Minimum, {}, [(4, 2, 3), (4, 2, 3)]),
    _merge_case("concatenate_last", L.Concatenate, {}, [(3, 4), (3, 2)]),
    _merge_case("concatenate_axis1_three", L.Concatenate, {"axis": 1}, [(3, 4), (1, 4), (2, 4)]),
    _merge_case(
        "concatenate_images_axis_minus2", L.Concatenate, {"axis": -2}, [(4, 3, 2), (4, 1, 2)]
    ),
]

TFJS_BUG_CASES = [
    _layer_case("upsampling_nearest_batch2", L.UpSampling2D, {"size": (2, 3)}, (3, 4, 2)),
    _layer_case(
        "upsampling_bilinear_non_square", L.UpSampling2D, {"interpolation": "bilinear"}, (3, 5, 2)
    ),
]

CASES = {case["config"]["name"]: case for case in LAYER_CASES + TFJS_BUG_CASES}
MERGE = {case["config"]["name"]: case for case in MERGE_CASES}


@pytest.fixture(scope="module")
def tfjs():
    """TF.js results for every one-input layer case, from one Node process."""
    return dict(zip(CASES, run_tfjs(list(CASES.values()))))


@pytest.fixture(scope="module")
def tfjs_merge():
    """TF.js results for every merge case, from one Node process."""
    return dict(zip(MERGE, run_tfjs(list(MERGE.values()), script=MERGE_SCRIPT)))


@pytest.mark.parametrize("case_id", [case["config"]["name"] for case in LAYER_CASES])
def test_layer_matches_tfjs(tfjs, case_id):
    check_layer_case(CASES[case_id], reference(tfjs, case_id))


@pytest.mark.parametrize("case_id", list(MERGE))
def test_merge_layer_matches_tfjs(tfjs_merge, case_id):
    case = MERGE[case_id]
    ref = reference(tfjs_merge, case_id)
    layer = el.layers.deserialize({"class_name": case["class_name"], "config": case["config"]})
    xs = [Tensor(x, requires_grad=True) for x in case["xs"]]
    y = layer(xs)
    y.backward(case["dy"])
    assert y.numpy().dtype == np.float32
    assert_close(y.numpy(), ref["y"], "y")
    assert len(ref["dxs"]) == len(xs)
    for i, (x, expected) in enumerate(zip(xs, ref["dxs"])):
        assert_close(x.grad, expected, f"gradient of input {i}")


def _upsampling(case):
    layer = el.layers.deserialize({"class_name": case["class_name"], "config": case["config"]})
    x = Tensor(case["x"], requires_grad=True)
    y = layer(x)
    return y, x


def test_tfjs_nearest_upsampling_gradient_misreads_dy_after_the_first_sample(tfjs):
    case = CASES["upsampling_nearest_batch2"]
    ref = reference(tfjs, "upsampling_nearest_batch2")
    y, x = _upsampling(case)
    y.backward(case["dy"])
    assert_close(y.numpy(), ref["y"], "y")
    assert_close(x.grad[0], ref["dx"][0], "dx of the first sample")
    # TF.js reads sample 1's dy at offset 1 * (input sample size) instead of 1 * (output sample
    # size): its dx is the exact gradient of that misplaced slice of dy.
    sample = case["x"][0].size
    misread = case["dy"].ravel()[sample : sample + case["dy"][0].size].reshape(case["dy"][0].shape)
    y, x = _upsampling({**case, "x": case["x"][1:]})
    y.backward(misread[None])
    assert_close(x.grad[0], ref["dx"][1], "TF.js's dx of the second sample, from the misread dy")


def test_tfjs_bilinear_gradient_of_non_square_images_has_height_and_width_swapped(tfjs):
    ref = tfjs["upsampling_bilinear_non_square"]
    assert ref.get("error", "").endswith(
        "Error in gradient for op ResizeBilinear. The gradient of input 'images' has shape "
        "'2,5,3,2', which does not match the shape of the input '2,3,5,2'"
    ), f"TF.js now differentiates non-square bilinear upsampling: compare it ({ref})"
