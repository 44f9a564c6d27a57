"""The layers real networks need beyond the codelab CNN: depthwise, separable and transposed
convolutions, padding and upsampling, global max pooling, LeakyReLU and the merge layers.

Every layer goes through the shared harness (shapes, weights, config round trip, float64 finite
differences); the convolutions are also checked against independent definitions built from
Conv2D, and the argument and input checks against their messages."""

import json

import numpy as np
import pytest

import edgelearn as el
from edgelearn.engine import Tensor
from edgelearn.engine import functions as F
from edgelearn.testing import run_layer_test

L = el.layers

# (layer class, constructor arguments, input shape(s), expected output shape, expected params)
CASES = [
    (L.DepthwiseConv2D, {"kernel_size": 3}, (2, 5, 6, 3), (2, 3, 4, 3), 30),
    (
        L.DepthwiseConv2D,
        {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"},
        (2, 5, 6, 3),
        (2, 5, 6, 6),
        60,
    ),
    (
        L.DepthwiseConv2D,
        {
            "kernel_size": (2, 3),
            "strides": 2,
            "padding": "same",
            "depth_multiplier": 2,
            "activation": "relu",
        },
        (2, 5, 7, 2),
        (2, 3, 4, 4),
        28,
    ),
    (
        L.DepthwiseConv2D,
        {"kernel_size": 3, "strides": (2, 1), "use_bias": False},
        (1, 7, 5, 2),
        (1, 3, 3, 2),
        18,
    ),
    (L.SeparableConv2D, {"filters": 4, "kernel_size": 3}, (2, 5, 6, 3), (2, 3, 4, 4), 43),
    (
        L.SeparableConv2D,
        {"filters": 2, "kernel_size": 3, "depth_multiplier": 2, "strides": 2, "padding": "same"},
        (2, 5, 6, 3),
        (2, 3, 3, 2),
        68,
    ),
    (
        L.SeparableConv2D,
        {"filters": 3, "kernel_size": 2, "use_bias": False, "activation": "tanh"},
        (1, 4, 5, 2),
        (1, 3, 4, 3),
        14,
    ),
    (L.Conv2DTranspose, {"filters": 2, "kernel_size": 3}, (2, 3, 4, 3), (2, 5, 6, 2), 56),
    (
        L.Conv2DTranspose,
        {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"},
        (2, 3, 4, 3),
        (2, 6, 8, 2),
        56,
    ),
    (
        L.Conv2DTranspose,
        {"filters": 2, "kernel_size": 3, "strides": 2},
        (2, 3, 4, 3),
        (2, 7, 9, 2),
        56,
    ),
    (
        L.Conv2DTranspose,
        {
            "filters": 3,
            "kernel_size": (2, 3),
            "strides": (2, 1),
            "padding": "same",
            "output_padding": (1, 0),
            "use_bias": False,
        },
        (2, 3, 4, 2),
        (2, 5, 4, 3),
        36,
    ),
    (
        L.Conv2DTranspose,
        {"filters": 2, "kernel_size": 3, "strides": 3, "output_padding": 2},
        (1, 3, 4, 2),
        (1, 11, 14, 2),
        38,
    ),
    (
        L.Conv2DTranspose,
        {"filters": 2, "kernel_size": 1, "strides": 2},
        (1, 3, 4, 1),
        (1, 6, 8, 2),
        4,
    ),
    (
        L.Conv2DTranspose,
        {"filters": 1, "kernel_size": 4, "strides": 3, "padding": "same", "activation": "sigmoid"},
        (1, 3, 5, 2),
        (1, 9, 15, 1),
        33,
    ),
    (L.ZeroPadding2D, {}, (2, 3, 4, 2), (2, 5, 6, 2), 0),
    (L.ZeroPadding2D, {"padding": 2}, (1, 3, 4, 2), (1, 7, 8, 2), 0),
    (L.ZeroPadding2D, {"padding": (1, 2)}, (2, 3, 4, 2), (2, 5, 8, 2), 0),
    (L.ZeroPadding2D, {"padding": ((0, 2), (3, 1))}, (2, 3, 4, 2), (2, 5, 8, 2), 0),
    (L.UpSampling2D, {}, (2, 3, 4, 2), (2, 6, 8, 2), 0),
    (L.UpSampling2D, {"size": (3, 1)}, (2, 3, 5, 2), (2, 9, 5, 2), 0),
    (L.UpSampling2D, {"size": 2, "interpolation": "bilinear"}, (2, 3, 4, 2), (2, 6, 8, 2), 0),
    (L.UpSampling2D, {"size": (3, 2), "interpolation": "bilinear"}, (1, 3, 5, 2), (1, 9, 10, 2), 0),
    (L.GlobalMaxPooling2D, {}, (2, 3, 4, 5), (2, 5), 0),
    (L.GlobalMaxPooling2D, {"keepdims": True}, (2, 3, 4, 5), (2, 1, 1, 5), 0),
    (L.LeakyReLU, {}, (2, 7), (2, 7), 0),
    (L.LeakyReLU, {"negative_slope": 0.1}, (2, 3, 4), (2, 3, 4), 0),
    (L.LeakyReLU, {"alpha": 0.2}, (2, 7), (2, 7), 0),
    (L.Add, {}, [(2, 3), (2, 3)], (2, 3), 0),
    (L.Add, {}, [(2, 3, 4), (2, 1, 4), (2, 4)], (2, 3, 4), 0),
    (L.Add, {}, [(2, 3)], (2, 3), 0),
    (L.Subtract, {}, [(2, 5), (2, 5)], (2, 5), 0),
    (L.Subtract, {}, [(2, 2, 5), (2, 5)], (2, 2, 5), 0),
    (L.Multiply, {}, [(2, 3, 4), (2, 3, 4), (2, 3, 1)], (2, 3, 4), 0),
    (L.Multiply, {}, [(2, 4), (2, 4)], (2, 4), 0),
    (L.Average, {}, [(2, 3), (2, 3), (2, 3)], (2, 3), 0),
    (L.Maximum, {}, [(2, 3, 4), (2, 3, 4), (2, 1, 4)], (2, 3, 4), 0),
    (L.Minimum, {}, [(2, 3, 4), (2, 3, 4)], (2, 3, 4), 0),
    (L.Concatenate, {}, [(2, 3, 4), (2, 3, 2)], (2, 3, 6), 0),
    (L.Concatenate, {"axis": 1}, [(2, 3, 4), (2, 1, 4), (2, 2, 4)], (2, 6, 4), 0),
    (L.Concatenate, {"axis": -2}, [(2, 5, 3, 2), (2, 5, 1, 2)], (2, 5, 4, 2), 0),
]


def _case_id(case):
    cls, kwargs, *_ = case
    return f"{cls.__name__}-" + ",".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_layer(case):
    cls, kwargs, input_shape, output_shape, params = case
    run_layer_test(
        cls, kwargs, input_shape, expected_output_shape=output_shape, expected_num_params=params
    )


def test_weight_names_and_shapes():
    x = np.zeros((1, 5, 5, 3), dtype=np.float32)
    depthwise = L.DepthwiseConv2D(3, depth_multiplier=2)
    separable = L.SeparableConv2D(4, 3, depth_multiplier=2)
    transpose = L.Conv2DTranspose(4, 3)
    for layer in (depthwise, separable, transpose):
        layer(x)
    names = [
        [(w.name.split("/")[-1], w.shape) for w in layer.weights]
        for layer in (depthwise, separable, transpose)
    ]
    assert names == [
        [("depthwise_kernel", (3, 3, 3, 2)), ("bias", (6,))],
        [("depthwise_kernel", (3, 3, 3, 2)), ("pointwise_kernel", (1, 1, 6, 4)), ("bias", (4,))],
        [("kernel", (3, 3, 4, 3)), ("bias", (4,))],
    ]


# --------------------------------------------------------------------------- independent oracles
def _conv(x, kernel, strides=(1, 1), padding="valid"):
    return F.Conv2D.apply(Tensor(x), Tensor(kernel), None, strides=strides, padding=padding).numpy()


@pytest.mark.parametrize(
    "strides, padding, multiplier", [((1, 1), "valid", 1), ((2, 2), "same", 2), ((2, 1), "same", 3)]
)
def test_depthwise_is_a_convolution_per_channel(strides, padding, multiplier):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 6, 3))
    layer = L.DepthwiseConv2D(
        (3, 2), strides=strides, padding=padding, depth_multiplier=multiplier, dtype="float64"
    )
    layer(x)
    kernel, bias = [rng.normal(size=w.shape) for w in layer.weights]
    layer.set_weights([kernel, bias])
    # Output channel c * M + m is input channel c through filter m, as in TensorFlow.
    expected = (
        np.concatenate(
            [
                _conv(x[..., c : c + 1], kernel[:, :, c : c + 1, m : m + 1], strides, padding)
                for c in range(3)
                for m in range(multiplier)
            ],
            axis=-1,
        )
        + bias
    )
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_separable_is_depthwise_then_pointwise():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 6, 3))
    layer = L.SeparableConv2D(5, 3, strides=2, padding="same", depth_multiplier=2, dtype="float64")
    layer(x)
    depthwise, pointwise, bias = [rng.normal(size=w.shape) for w in layer.weights]
    layer.set_weights([depthwise, pointwise, bias])
    reference = L.DepthwiseConv2D(
        3, strides=2, padding="same", depth_multiplier=2, use_bias=False, dtype="float64"
    )
    reference(x)
    reference.set_weights([depthwise])
    expected = _conv(reference(x).numpy(), pointwise) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-12, atol=1e-12)


def _transposed_reference(x, kernel, strides, out_hw, start):
    """Scatter every input pixel's kernel-weighted patch, then crop, pixel by pixel."""
    n, h, w, _ = x.shape
    kh, kw, filters, _ = kernel.shape
    full = np.zeros((n, (h - 1) * strides[0] + kh, (w - 1) * strides[1] + kw, filters))
    for i in range(h):
        for j in range(w):
            full[:, i * strides[0] : i * strides[0] + kh, j * strides[1] : j * strides[1] + kw] += (
                np.einsum("nc,abfc->nabf", x[:, i, j], kernel)
            )
    out = np.zeros((n, *out_hw, filters))
    rows, cols = min(out_hw[0], full.shape[1] - start[0]), min(out_hw[1], full.shape[2] - start[1])
    out[:, :rows, :cols] = full[:, start[0] : start[0] + rows, start[1] : start[1] + cols]
    return out


@pytest.mark.parametrize(
    "kernel_size, strides, padding, output_padding, out_hw, start",
    [
        ((3, 3), (1, 1), "valid", None, (6, 7), (0, 0)),
        ((3, 3), (2, 2), "same", None, (8, 10), (0, 0)),
        ((4, 4), (2, 2), "same", None, (8, 10), (1, 1)),
        ((3, 2), (2, 3), "valid", None, (9, 15), (0, 0)),  # width: kernel < stride, zero tail
        ((3, 3), (2, 2), "same", (1, 0), (8, 9), (0, 1)),
        ((5, 3), (3, 2), "valid", (2, 1), (16, 12), (0, 0)),
    ],
)
def test_conv2d_transpose_against_its_definition(
    kernel_size, strides, padding, output_padding, out_hw, start
):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 5, 3))
    layer = L.Conv2DTranspose(
        2,
        kernel_size,
        strides=strides,
        padding=padding,
        output_padding=output_padding,
        use_bias=False,
        dtype="float64",
    )
    y = layer(x).numpy()
    expected = _transposed_reference(x, layer.kernel.numpy(), strides, out_hw, start)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "strides, padding", [((1, 1), "valid"), ((2, 2), "same"), ((3, 2), "same")]
)
def test_conv2d_transpose_is_the_input_gradient_of_conv2d(strides, padding):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, 5, 3))
    layer = L.Conv2DTranspose(
        2, 3, strides=strides, padding=padding, use_bias=False, dtype="float64"
    )
    y = layer(x).numpy()
    # Conv2D with the same kernel maps y's shape back to x's; its input gradient is y.
    probe = Tensor(np.zeros(y.shape), requires_grad=True)
    F.Conv2D.apply(probe, layer.kernel.detach(), None, strides=strides, padding=padding).backward(x)
    np.testing.assert_allclose(y, probe.grad, rtol=1e-12, atol=1e-12)


def test_upsampling_values():
    x = np.array([[1.0, 3.0], [5.0, 7.0]], dtype=np.float32).reshape(1, 2, 2, 1)
    nearest = L.UpSampling2D((2, 1))(x).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(nearest, [[1, 3], [1, 3], [5, 7], [5, 7]])
    # TF.js's bilinear samples row r at r / 2: 0, 0.5, 1, 1.5 (clamped to the last row).
    bilinear = L.UpSampling2D(2, interpolation="bilinear")(x).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(
        bilinear, [[1, 2, 3, 3], [3, 4, 5, 5], [5, 6, 7, 7], [5, 6, 7, 7]]
    )


def test_global_max_pooling_sends_the_gradient_to_the_first_maximum():
    x = Tensor(
        np.array([[1.0, 4.0], [4.0, 2.0]], dtype=np.float32).reshape(1, 2, 2, 1), requires_grad=True
    )
    y = L.GlobalMaxPooling2D()(x)
    y.backward(np.ones((1, 1), dtype=np.float32))
    np.testing.assert_array_equal(y.numpy(), [[4.0]])
    np.testing.assert_array_equal(x.grad.ravel(), [0, 1, 0, 0])
    assert x.grad.dtype == np.float32


def test_maximum_ties_send_the_gradient_to_the_first_input():
    a = Tensor(np.ones((1, 3), dtype=np.float32), requires_grad=True)
    b = Tensor(np.array([[1.0, 2.0, 0.0]], dtype=np.float32), requires_grad=True)
    L.Maximum()([a, b]).backward(np.ones((1, 3), dtype=np.float32))
    np.testing.assert_array_equal(a.grad, [[1, 0, 1]])
    np.testing.assert_array_equal(b.grad, [[0, 1, 0]])


def test_merges_broadcast_lower_rank_inputs_after_the_batch_axis():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    b = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(L.Add()([a, b]).numpy(), a + b[:, None, :])
    np.testing.assert_array_equal(L.Subtract()([b, a]).numpy(), b[:, None, :] - a)
    np.testing.assert_array_equal(L.Multiply()([a, b, b]).numpy(), a * (b * b)[:, None, :])
    np.testing.assert_allclose(L.Average()([a, b]).numpy(), (a + b[:, None, :]) / 2)


def test_single_input_merge_does_not_alias_its_input():
    x = np.ones((2, 3), dtype=np.float32)
    for layer in (L.Add(), L.Multiply(), L.Maximum(), L.Concatenate()):
        y = layer([x])
        np.testing.assert_array_equal(y.numpy(), x)
        assert not np.shares_memory(y.numpy(), x), type(layer).__name__


@pytest.mark.parametrize(
    "layer, inputs",
    [
        (L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), [(2, 5, 5, 3)]),
        (L.SeparableConv2D(4, 3, strides=2), [(2, 5, 5, 3)]),
        (L.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1), [(2, 5, 5, 3)]),
        (L.ZeroPadding2D(((1, 0), (2, 1))), [(2, 3, 3, 2)]),
        (L.UpSampling2D(interpolation="bilinear"), [(2, 3, 3, 2)]),
        (L.GlobalMaxPooling2D(), [(2, 3, 3, 2)]),
        (L.LeakyReLU(), [(2, 4)]),
        (L.Multiply(), [(2, 4), (2, 1)]),
        (L.Maximum(), [(2, 4), (2, 4)]),
        (L.Concatenate(), [(2, 4), (2, 1)]),
    ],
)
def test_float32_in_float32_gradients_out(layer, inputs):
    rng = np.random.default_rng(5)
    tensors = [Tensor(rng.normal(size=s).astype(np.float32), requires_grad=True) for s in inputs]
    y = layer(tensors if len(tensors) > 1 else tensors[0])
    y.backward(np.ones(y.shape, dtype=np.float32))
    assert y.dtype == np.float32
    assert all(t.grad.dtype == np.float32 for t in tensors)
    assert all(w.grad.dtype == np.float32 for w in layer.trainable_weights)


# --------------------------------------------------------------------------- configs
def test_leaky_relu_reads_alpha_and_writes_both_keys():
    layer = L.deserialize({"class_name": "LeakyReLU", "config": {"alpha": 0.1, "name": "leaky"}})
    assert layer.negative_slope == pytest.approx(0.1)
    np.testing.assert_allclose(layer(np.array([[-1.0, 2.0]])).numpy(), [[-0.1, 2.0]], rtol=1e-6)
    config = layer.get_config()
    assert config["negative_slope"] == config["alpha"] == pytest.approx(0.1)
    assert L.LeakyReLU().negative_slope == pytest.approx(0.3)  # Keras' default


def test_keras_config_keys():
    configs = {
        "DepthwiseConv2D": L.DepthwiseConv2D(3).get_config(),
        "SeparableConv2D": L.SeparableConv2D(4, 3).get_config(),
        "Conv2DTranspose": L.Conv2DTranspose(4, 3).get_config(),
        "ZeroPadding2D": L.ZeroPadding2D((1, 2)).get_config(),
        "UpSampling2D": L.UpSampling2D().get_config(),
        "Concatenate": L.Concatenate(axis=1).get_config(),
        "GlobalMaxPooling2D": L.GlobalMaxPooling2D().get_config(),
    }
    base = {"name", "trainable", "dtype"}
    assert set(configs["DepthwiseConv2D"]) == base | {
        "kernel_size",
        "strides",
        "padding",
        "depth_multiplier",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
        "depthwise_initializer",
        "bias_initializer",
        "depthwise_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "depthwise_constraint",
        "bias_constraint",
    }
    assert set(configs["SeparableConv2D"]) == base | {
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "dilation_rate",
        "depth_multiplier",
        "activation",
        "use_bias",
        "depthwise_initializer",
        "pointwise_initializer",
        "bias_initializer",
        "depthwise_regularizer",
        "pointwise_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "depthwise_constraint",
        "pointwise_constraint",
        "bias_constraint",
    }
    assert set(configs["Conv2DTranspose"]) == base | {
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "output_padding",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "kernel_constraint",
        "bias_constraint",
    }
    assert configs["Conv2DTranspose"]["output_padding"] is None
    assert configs["ZeroPadding2D"]["padding"] == [[1, 1], [2, 2]]
    assert configs["UpSampling2D"]["size"] == [2, 2]
    assert configs["UpSampling2D"]["interpolation"] == "nearest"
    assert configs["Concatenate"]["axis"] == 1
    assert configs["GlobalMaxPooling2D"]["keepdims"] is False
    padded = L.Conv2DTranspose(4, 3, strides=2, output_padding=1)
    assert padded.get_config()["output_padding"] == [1, 1]


def test_aliases():
    assert L.GlobalMaxPool2D is L.GlobalMaxPooling2D
    assert L.SeparableConvolution2D is L.SeparableConv2D
    assert L.Convolution2DTranspose is L.Conv2DTranspose
    assert L.DepthwiseConv2D(3).name.startswith("depthwise_conv2d")
    assert L.Conv2DTranspose(2, 3).name.startswith("conv2d_transpose")


# --------------------------------------------------------------------------- functional API
def test_merge_layers_in_a_functional_model():
    image = L.Input((8, 8, 3))
    branch = L.Conv2D(3, 3, padding="same")(image)
    residual = L.Add()([image, branch])
    down = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)(residual)
    up = L.Conv2DTranspose(3, 3, strides=2, padding="same")(down)
    joined = L.Concatenate()([up, L.UpSampling2D()(L.MaxPooling2D()(image))])
    assert joined.shape == (None, 8, 8, 6)
    pooled = L.GlobalMaxPooling2D()(L.LeakyReLU(0.1)(joined))
    model = el.Model(image, pooled)
    x = np.random.default_rng(6).normal(size=(2, 8, 8, 3)).astype(np.float32)
    assert model.predict(x, verbose=0).shape == (2, 6)
    json.dumps(model.get_config())


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "factory, error, message",
    [
        (
            lambda: L.DepthwiseConv2D(3, depth_multiplier=0),
            ValueError,
            "Received: depth_multiplier=0",
        ),
        (lambda: L.DepthwiseConv2D(3, dilation_rate=2), ValueError, "Received: dilation_rate=2"),
        (lambda: L.DepthwiseConv2D(3, padding="full"), ValueError, "Received: padding='full'"),
        (
            lambda: L.DepthwiseConv2D(3, depthwise_constraint="non_neg"),
            ValueError,
            "Received: depthwise_constraint='non_neg'",
        ),
        (lambda: L.DepthwiseConv2D(0), ValueError, "Received: kernel_size=0"),
        (lambda: L.SeparableConv2D(0, 3), ValueError, "Received: filters=0"),
        (
            lambda: L.SeparableConv2D(4, 3, pointwise_constraint="non_neg"),
            ValueError,
            "Received: pointwise_constraint='non_neg'",
        ),
        (
            lambda: L.SeparableConv2D(4, 3, data_format="channels_first"),
            ValueError,
            "Received: data_format='channels_first'",
        ),
        (
            lambda: L.Conv2DTranspose(4, 3, strides=2, output_padding=2),
            ValueError,
            "Received: output_padding=2",
        ),
        (
            lambda: L.Conv2DTranspose(4, 3, output_padding=(0, 1)),
            ValueError,
            "Received: output_padding=\\(0, 1\\)",
        ),
        (
            lambda: L.Conv2DTranspose(4, 3, strides=2, output_padding=-1),
            ValueError,
            "Received: output_padding=-1",
        ),
        (lambda: L.Conv2DTranspose(-1, 3), ValueError, "Received: filters=-1"),
        (lambda: L.ZeroPadding2D(-1), ValueError, "Received: padding=-1"),
        (lambda: L.ZeroPadding2D((1, 2, 3)), ValueError, "Received: padding=\\(1, 2, 3\\)"),
        (lambda: L.ZeroPadding2D(((1,), (2, 2))), ValueError, "Received: padding="),
        (lambda: L.UpSampling2D(0), ValueError, "Received: size=0"),
        (
            lambda: L.UpSampling2D(interpolation="bicubic"),
            ValueError,
            "Received: interpolation='bicubic'",
        ),
        (lambda: L.LeakyReLU(-0.1), ValueError, "Received: negative_slope=-0.1"),
        (
            lambda: L.GlobalMaxPooling2D(data_format="channels_first"),
            ValueError,
            "Received: data_format='channels_first'",
        ),
        (lambda: L.Concatenate(axis=1.5), TypeError, "Received: axis=1.5"),
    ],
)
def test_bad_arguments_give_clear_errors(factory, error, message):
    with pytest.raises(error, match=message):
        factory()


def _built(layer, shape):
    layer(np.zeros(shape, dtype=np.float32))
    return layer


@pytest.mark.parametrize(
    "layer, x, message",
    [
        (L.DepthwiseConv2D(3), np.zeros((2, 5, 5)), "expects 4-D input"),
        (L.DepthwiseConv2D(5), np.zeros((1, 3, 3, 1)), "at least \\(5, 5\\)"),
        (
            _built(L.DepthwiseConv2D(3), (1, 5, 5, 3)),
            np.zeros((1, 5, 5, 2)),
            "3 input channels, received input of shape \\(None, 5, 5, 2\\)",
        ),
        (L.SeparableConv2D(2, 3), np.zeros((2, 5)), "expects 4-D input"),
        (_built(L.SeparableConv2D(2, 3), (1, 5, 5, 3)), np.zeros((1, 5, 5, 4)), "3 input channels"),
        (L.Conv2DTranspose(2, 3), np.zeros((2, 5, 5)), "expects 4-D input"),
        (_built(L.Conv2DTranspose(2, 3), (1, 2, 2, 3)), np.zeros((1, 2, 2, 1)), "3 input channels"),
        (L.ZeroPadding2D(), np.zeros((2, 3)), "expects 4-D input"),
        (L.UpSampling2D(), np.zeros((2, 3, 3)), "expects 4-D input"),
        (L.GlobalMaxPooling2D(), np.zeros((2, 3)), "expects 4-D input"),
        (
            L.Add(),
            [np.zeros((2, 3)), np.zeros((2, 4))],
            "shapes broadcast together, but \\(None, 3\\) and \\(None, 4\\) do not",
        ),
        (
            L.Multiply(),
            [np.zeros((2, 3, 2)), np.zeros((2, 4, 2))],
            "\\(None, 3, 2\\) and \\(None, 4, 2\\) do not",
        ),
        (L.Add(), np.zeros((2, 3)), "expects a list of at least one input"),
        (L.Maximum(), [], "expects a list of at least one input"),
        (L.Subtract(), [np.zeros((2, 3))] * 3, "expects a list of exactly 2 inputs"),
        (
            L.Concatenate(),
            [np.zeros((2, 3, 4)), np.zeros((2, 2, 4))],
            (
                "matching shapes except along axis -1, received input of shape "
                "\\(\\(None, 3, 4\\), \\(None, 2, 4\\)\\)"
            ),
        ),
        (L.Concatenate(), [np.zeros((2, 3)), np.zeros((2, 3, 1))], "inputs of one rank"),
        (L.Concatenate(axis=3), [np.zeros((2, 3)), np.zeros((2, 3))], "has an axis 3"),
    ],
)
def test_bad_inputs_give_clear_errors(layer, x, message):
    with pytest.raises(ValueError, match=message):
        layer(x)


def test_merge_of_symbolic_inputs_with_different_batch_sizes():
    a = L.Input((3,), batch_size=2)
    b = L.Input((3,), batch_size=4)
    with pytest.raises(ValueError, match="inputs of one batch size, not \\[2, 4\\]"):
        L.Add()([a, b])
    assert L.Add()([a, L.Input((3,))]).shape == (2, 3)
