"""ONNX export and the ONNX Runtime backend against edgelearn's own ``predict``.

Every supported layer runs in small Sequential and functional models with random weights, in
several configurations (strides, 'valid' / 'same' padding on odd sizes, depth multipliers,
pooling variants, merges, layouts), and in the real nsfwjs MobileNetV2 on real photos. ONNX
Runtime's outputs must match ``model.predict`` to 1e-5 (max abs) for the small models and to
1e-4 for MobileNetV2, whose folded BatchNormalizations round differently; every exported model
passes ``onnx.checker.check_model``. The tests skip when onnx or onnxruntime is missing, except
the one that checks ``import edgelearn`` works without them.
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from assets import photo_array

import edgelearn as el
from edgelearn.io import onnx as el_onnx
from edgelearn.utils.files import find_node_package

L = el.layers
HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(
    not HAVE_ONNX, reason='onnx and onnxruntime are missing: pip install "edgelearn[onnx]"'
)
DATA = pathlib.Path(__file__).parent / "data"
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")


def randomize(model, seed=0):
    """Random biases and BatchNormalization parameters (kernels keep their initialisers, which
    keep activations of order one); variances stay positive."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = []
        for variable in layer.weights:
            name = variable.name.rsplit("/", 1)[-1]
            if name == "moving_variance":
                weights.append(rng.uniform(0.5, 2.0, variable.shape))
            elif name in ("bias", "beta", "moving_mean"):
                weights.append(rng.normal(0, 0.5, variable.shape))
            elif name == "gamma":
                weights.append(rng.uniform(0.5, 1.5, variable.shape))
            else:
                weights.append(variable.data)
        layer.set_weights(weights)
    return model


def inputs_for(model, batch=3, seed=1):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(batch, *shape[1:])).astype(np.float32) for shape in model.input_shapes]
    return xs[0] if len(xs) == 1 else xs


def assert_matches(model, x=None, atol=1e-5, opset=el_onnx.DEFAULT_OPSET):
    """ONNX Runtime's outputs equal edgelearn's; returns the exported model and the max diff."""
    import onnx

    from edgelearn.runtime import OnnxRuntimePredictor

    x = inputs_for(model) if x is None else x
    proto = el_onnx.export(model, opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    expected = model.predict(x)
    actual = OnnxRuntimePredictor(model, threads=1, opset=opset).predict(x)
    expected = expected if isinstance(expected, list) else [expected]
    actual = actual if isinstance(actual, list) else [actual]
    assert len(actual) == len(expected)
    worst = 0.0
    for ours, theirs in zip(actual, expected):
        assert ours.shape == theirs.shape and ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol)
        worst = max(worst, float(np.abs(ours - theirs).max()))
    return proto, worst


def op_types(proto):
    return [node.op_type for node in proto.graph.node]


def sequential(input_shape, *layers):
    return randomize(el.Sequential([L.Input(input_shape), *layers]))


# --------------------------------------------------------------------------- convolutions
CONV_CONFIGS = [  # kernel, strides, padding, on 9x11 images
    (3, 1, "valid"),
    (3, 1, "same"),
    (3, 2, "same"),
    (4, 2, "same"),
    (2, 2, "valid"),
    (5, 3, "same"),
    (1, 1, "same"),
    ((3, 2), (2, 1), "same"),
    (1, 3, "same"),
]


@needs_onnx
@pytest.mark.parametrize("kernel, strides, padding", CONV_CONFIGS)
def test_conv2d(kernel, strides, padding):
    model = sequential(
        (9, 11, 3), L.Conv2D(5, kernel, strides=strides, padding=padding, activation="relu")
    )
    proto, _ = assert_matches(model)
    assert op_types(proto) == ["Transpose", "Conv", "Relu", "Transpose"]


@needs_onnx
@pytest.mark.parametrize("kernel, strides, padding", CONV_CONFIGS)
@pytest.mark.parametrize("depth_multiplier", [1, 2, 3])
def test_depthwise_conv2d(kernel, strides, padding, depth_multiplier):
    model = sequential(
        (9, 11, 4),
        L.DepthwiseConv2D(
            kernel,
            strides=strides,
            padding=padding,
            depth_multiplier=depth_multiplier,
        ),
    )
    proto, _ = assert_matches(model)
    (conv,) = [node for node in proto.graph.node if node.op_type == "Conv"]
    assert {a.name: a.i for a in conv.attribute}["group"] == 4


@needs_onnx
@pytest.mark.parametrize(
    "strides, padding, depth_multiplier, use_bias",
    [(1, "valid", 1, True), (2, "same", 2, True), (1, "same", 3, False)],
)
def test_separable_conv2d(strides, padding, depth_multiplier, use_bias):
    model = sequential(
        (9, 11, 3),
        L.SeparableConv2D(
            6,
            3,
            strides=strides,
            padding=padding,
            depth_multiplier=depth_multiplier,
            use_bias=use_bias,
            activation="tanh",
        ),
    )
    assert_matches(model)


@needs_onnx
@pytest.mark.parametrize(
    "kernel, strides, padding, output_padding",
    [
        (3, 1, "valid", None),
        (3, 2, "same", None),
        (3, 2, "valid", None),
        (4, 2, "same", None),
        (2, 3, "valid", None),
        (2, 3, "same", None),
        (3, 2, "same", 1),
        (5, 3, "valid", 2),
        (1, 2, "same", None),
        ((3, 2), (2, 1), "same", None),
        (4, 2, "same", 0),
    ],
)
def test_conv2d_transpose(kernel, strides, padding, output_padding):
    model = sequential(
        (5, 7, 3),
        L.Conv2DTranspose(
            4,
            kernel,
            strides=strides,
            padding=padding,
            output_padding=output_padding,
        ),
    )
    assert_matches(model)


@needs_onnx
def test_unknown_height_and_width_use_same_upper():
    model = sequential(
        (None, None, 3),
        L.Conv2D(4, 3, strides=2, padding="same"),
        L.MaxPooling2D(3, strides=2, padding="same"),
        L.AveragePooling2D(2, padding="same"),
        L.DepthwiseConv2D(3, padding="same"),
        L.Conv2DTranspose(2, 3, strides=2, padding="same"),
        L.GlobalAveragePooling2D(),
    )
    for height, width in ((9, 11), (16, 5)):
        x = np.random.default_rng(height).normal(size=(2, height, width, 3)).astype(np.float32)
        assert_matches(model, x)


# --------------------------------------------------------------------------- pooling, resizing
@needs_onnx
@pytest.mark.parametrize("layer", [L.MaxPooling2D, L.AveragePooling2D])
@pytest.mark.parametrize(
    "pool, strides, padding",
    [
        (2, None, "valid"),
        (2, None, "same"),
        (3, 2, "same"),
        (3, 2, "valid"),
        ((3, 2), 1, "same"),
        (2, 3, "same"),
        (4, 3, "same"),
    ],
)
def test_pooling(layer, pool, strides, padding):
    model = sequential((9, 11, 3), layer(pool, strides=strides, padding=padding))
    proto, _ = assert_matches(model)
    if layer is L.AveragePooling2D:  # TF 'same': the padded pixels are not counted
        (pool_node,) = [node for node in proto.graph.node if node.op_type == "AveragePool"]
        assert {a.name: a.i for a in pool_node.attribute}["count_include_pad"] == 0


@needs_onnx
@pytest.mark.parametrize("layer", [L.GlobalAveragePooling2D, L.GlobalMaxPooling2D])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(layer, keepdims):
    assert_matches(sequential((7, 5, 4), L.Conv2D(3, 2), layer(keepdims=keepdims)))


@needs_onnx
@pytest.mark.parametrize("padding", [1, (2, 0), ((0, 1), (2, 3))])
def test_zero_padding2d(padding):
    assert_matches(sequential((5, 6, 2), L.ZeroPadding2D(padding), L.Conv2D(3, 3, strides=2)))


@needs_onnx
@pytest.mark.parametrize("size", [2, (2, 3), (1, 2)])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_up_sampling2d(size, interpolation):
    assert_matches(sequential((5, 4, 3), L.UpSampling2D(size, interpolation=interpolation)))


# --------------------------------------------------------------------------- core layers
@needs_onnx
def test_flatten_after_conv_keeps_the_nhwc_order():
    model = sequential(
        (7, 9, 3),
        L.Conv2D(4, 3, strides=2, padding="same"),
        L.Flatten(),
        L.Dense(6, activation="relu"),
        L.Dropout(0.5),
        L.Dense(3, activation="softmax"),
    )
    proto, _ = assert_matches(model)
    assert op_types(proto) == [
        "Transpose",
        "Conv",
        "Transpose",
        "Flatten",
        "Gemm",
        "Relu",
        "Gemm",
        "Softmax",
    ]


@needs_onnx
def test_reshape_and_dense_on_3d_and_4d_tensors():
    model = sequential(
        (6, 4, 2),
        L.Conv2D(3, 1),
        L.Reshape((-1, 3)),
        L.Dense(5, activation="elu"),
        L.Reshape((4, 6, 5)),
        L.Dense(2),
        L.Conv2D(3, 2),
        L.Flatten(),
    )
    proto, _ = assert_matches(model)
    assert "MatMul" in op_types(proto)


@needs_onnx
@pytest.mark.parametrize(
    "activation", ["relu", "relu6", "sigmoid", "tanh", "softmax", "linear", "elu", "leaky_relu"]
)
def test_activations(activation):
    model = sequential(
        (5, 5, 3),
        L.Conv2D(4, 3, activation=activation),
        L.Activation(activation),
        L.Flatten(),
        L.Dense(3, activation=activation),
    )
    x = inputs_for(model) * 4  # reach the flat parts of relu6, sigmoid, tanh
    assert_matches(model, x)


@needs_onnx
@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"max_value": 6.0},
        {"max_value": 0.5},
        {"negative_slope": 0.1},
        {"negative_slope": 0.2, "max_value": 1.0},
        {"threshold": 0.5},
        {"threshold": -0.5},
        {"threshold": 0.3, "max_value": 1.2},
        {"threshold": 0.4, "negative_slope": 0.25},
        {"threshold": -0.2, "negative_slope": 0.1, "max_value": 0.8},
    ],
)
def test_relu_arguments(arguments):
    model = sequential(
        (4, 5, 3), L.Conv2D(4, 1), L.ReLU(**arguments), L.Flatten(), L.Dense(3), L.ReLU(**arguments)
    )
    proto, _ = assert_matches(model)
    if arguments == {"max_value": 6.0}:
        assert op_types(proto).count("Clip") == 2


@needs_onnx
def test_leaky_relu_and_softmax_axes():
    inputs = L.Input((4, 5, 3))
    x = L.LeakyReLU(0.15)(L.Conv2D(6, 2)(inputs))
    outputs = [L.Softmax(axis)(x) for axis in (-1, 1, 2, 3)]
    sequence = L.Reshape((20, 3))(inputs)
    outputs += [L.Softmax()(sequence), L.Softmax(axis=1)(sequence)]
    assert_matches(randomize(el.Model(inputs, outputs)))


# --------------------------------------------------------------------------- BatchNormalization
def trained(model, epochs=3):
    """``model`` after a few epochs of training, so that the moving statistics have moved."""
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(64, *model.input_shape[1:])) * 3 + 1).astype(np.float32)
    y = rng.normal(size=(64, *model.output_shape[1:])).astype(np.float32)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return model


@needs_onnx
def test_batch_normalization_after_training_is_folded_into_convolutions():
    model = el.Sequential(
        [
            L.Input((9, 9, 3)),
            L.Conv2D(8, 3, strides=2, padding="same"),
            L.BatchNormalization(momentum=0.5),
            L.ReLU(6.0),
            L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False),
            L.BatchNormalization(momentum=0.5),
            L.SeparableConv2D(6, 3),
            L.BatchNormalization(momentum=0.5, center=False),
            L.Conv2DTranspose(4, 3, strides=2),
            L.BatchNormalization(momentum=0.5, scale=False),
            L.Flatten(),
            L.Dense(8),
            L.BatchNormalization(momentum=0.5),
            L.Dense(2),
        ]
    )
    model = trained(model)
    norms = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)]
    assert all(np.abs(bn.moving_variance.data - 1).max() > 0.25 for bn in norms)
    proto, _ = assert_matches(model, inputs_for(model) * 3 + 1)
    assert "BatchNormalization" not in op_types(proto)


@needs_onnx
def test_batch_normalization_not_after_a_convolution():
    model = el.Sequential(
        [
            L.Input((8, 8, 3)),
            L.BatchNormalization(momentum=0.5),  # on the input: an ONNX op in NCHW
            L.Conv2D(4, 3, activation="relu"),
            L.BatchNormalization(momentum=0.5),  # after relu
            L.MaxPooling2D(),
            L.BatchNormalization(axis=1, momentum=0.5),  # on the height axis
            L.Reshape((9, 4)),
            L.BatchNormalization(momentum=0.5),  # 3-D, last axis
            L.Flatten(),
            L.Dense(4, activation="relu"),
            L.BatchNormalization(momentum=0.5),
        ]
    )
    model = trained(model)
    proto, _ = assert_matches(model, inputs_for(model) * 3 + 1)
    assert op_types(proto).count("BatchNormalization") == 3  # the channel-axis ones


@needs_onnx
def test_batch_normalization_after_a_shared_output_is_not_folded():
    inputs = L.Input((6, 6, 2))
    conv = L.Conv2D(4, 3)(inputs)
    normalized = L.BatchNormalization()(conv)
    model = randomize(el.Model(inputs, [normalized, L.GlobalMaxPooling2D()(conv)]))
    proto, _ = assert_matches(model)
    assert "BatchNormalization" in op_types(proto)


# --------------------------------------------------------------------------- functional models
@needs_onnx
@pytest.mark.parametrize("merge", [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum])
def test_merges_of_mixed_layouts(merge):
    inputs = L.Input((6, 7, 3))
    conv = L.Conv2D(3, 3, padding="same")(inputs)  # NCHW inside the graph; the input is NHWC
    merged = merge()([conv, inputs])
    flat = L.Dense(3)(L.Flatten()(inputs))
    vector = merge()([L.GlobalAveragePooling2D()(merged), flat])
    broadcast = merge()([conv, L.Dense(3)(vector)])  # (N, 3) broadcast as (N, 1, 1, 3)
    assert_matches(randomize(el.Model(inputs, [merged, vector, broadcast])))


@needs_onnx
@pytest.mark.parametrize("merge", [L.Add, L.Multiply, L.Average, L.Maximum, L.Minimum])
def test_merges_of_three_inputs(merge):
    inputs = [L.Input((5, 5, 2)) for _ in range(3)]
    convs = [L.Conv2D(2, 1)(x) for x in inputs[:2]]
    assert_matches(randomize(el.Model(inputs, merge()([*convs, inputs[2]]))))


@needs_onnx
@pytest.mark.parametrize("axis", [-1, 1, 2, 3])
def test_concatenate_axes(axis):
    inputs = L.Input((6, 6, 3))
    a = L.Conv2D(3, 3, padding="same")(inputs)
    b = L.DepthwiseConv2D(3, padding="same")(inputs)
    joined = L.Concatenate(axis=axis)([a, b, inputs])
    assert_matches(randomize(el.Model(inputs, L.Conv2D(2, 1)(joined))))


@needs_onnx
def test_multiple_inputs_and_outputs_shared_layers_and_passthrough_outputs():
    image, vector = L.Input((8, 8, 3), name="image"), L.Input((5,), name="vector")
    shared = L.Conv2D(3, 3, padding="same", activation="relu")
    first = shared(image)
    second = shared(L.MaxPooling2D()(first))  # the same layer called twice, other sizes
    head = L.Dense(4)(vector)
    features = L.Concatenate()(
        [L.GlobalAveragePooling2D()(first), L.GlobalMaxPooling2D()(second), head]
    )
    logits = L.Dense(3, activation="softmax", name="probabilities")(features)
    model = randomize(el.Model([image, vector], [logits, second, head, image, head]))
    proto, _ = assert_matches(model)
    names = [o.name for o in proto.graph.output]
    assert names[0] == "probabilities" and len(set(names)) == 5
    assert [i.name for i in proto.graph.input] == ["image", "vector"]
    second_shape = [d.dim_value for d in proto.graph.output[1].type.tensor_type.shape.dim]
    assert second_shape[1:] == [4, 4, 3]  # NHWC


@needs_onnx
@pytest.mark.parametrize(
    "name", ["sequential.keras", "functional.keras", "sequential.h5", "functional.h5"]
)
def test_models_keras_wrote(name):
    if name.endswith(".h5"):
        pytest.importorskip("h5py")
    model = el.load_model(DATA / name)
    assert_matches(model, inputs_for(model, batch=5))


@needs_onnx
@pytest.mark.parametrize("opset", [el_onnx.MIN_OPSET, 21])
def test_other_opsets(opset):
    model = sequential(
        (9, 9, 2),
        L.Conv2D(4, 3, strides=2, padding="same", activation="relu6"),
        L.ZeroPadding2D(1),
        L.AveragePooling2D(3, strides=2, padding="same"),
        L.UpSampling2D(2, interpolation="bilinear"),
        L.BatchNormalization(),
        L.Flatten(),
        L.Dense(2, activation="softmax"),
    )
    proto, _ = assert_matches(model, opset=opset)
    assert proto.opset_import[0].version == opset


# --------------------------------------------------------------------------- the real MobileNetV2
@needs_onnx
@pytest.mark.skipif(
    find_node_package("nsfwjs") is None, reason="node_modules/nsfwjs is missing: run `npm ci`"
)
def test_nsfwjs_mobilenet_v2_on_real_photos():
    from edgelearn.applications import nsfwjs

    model = el.load_model(nsfwjs.extract_model("mobilenet_v2"))
    photos = np.stack([photo_array(name, (224, 224)) for name in PHOTOS]) / np.float32(255)
    proto, worst = assert_matches(model, photos, atol=1e-4)
    ops = op_types(proto)
    # All 52 BatchNormalizations folded; one Transpose in, one before Flatten.
    assert "BatchNormalization" not in ops and ops.count("Conv") == 52
    assert ops.count("Transpose") == 2 and worst < 1e-4


# --------------------------------------------------------------------------- the predictor
@needs_onnx
def test_predictor_follows_predict_conventions():
    from edgelearn.runtime import OnnxRuntimePredictor

    a, b = L.Input((4, 4, 2), name="a"), L.Input((3,), name="b")
    out = L.Dense(2)(L.Concatenate()([L.Flatten()(L.Conv2D(2, 3)(a)), b]))
    model = randomize(el.Model([a, b], out))
    xs = inputs_for(model, batch=37)
    predictor = OnnxRuntimePredictor(model)
    expected = model.predict(xs)
    for batch_size in (None, 5, 37, 100):
        actual = predictor.predict(xs, batch_size=batch_size)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    by_name = predictor.predict({"b": xs[1].astype(np.float64), "a": xs[0]})
    np.testing.assert_allclose(by_name, expected, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="expects input of shape"):
        predictor.predict([xs[0][:, :3], xs[1]])
    with pytest.raises(ValueError, match="2 inputs"):
        predictor.predict(xs[0])
    with pytest.raises(ValueError, match="empty"):
        predictor.predict([xs[0][:0], xs[1][:0]])
    with pytest.raises(ValueError, match="batch_size"):
        predictor.predict(xs, batch_size=0)


@needs_onnx
@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_predictor_rejects_bad_thread_counts(threads):
    from edgelearn.runtime import OnnxRuntimePredictor

    with pytest.raises(ValueError, match="threads"):
        OnnxRuntimePredictor(sequential((2,), L.Dense(1)), threads=threads)


# --------------------------------------------------------------------------- errors
class Doubler(L.Layer):
    def call(self, inputs, training=False):
        return inputs * 2


class CustomConv(L.Conv2D):
    """A subclass may compute something else: it is not exported as a Conv2D."""


@needs_onnx
@pytest.mark.parametrize("layer", [Doubler(name="doubler"), CustomConv(2, 3, name="doubler")])
def test_unsupported_layers_are_named(layer):
    model = el.Sequential([L.Input((5, 5, 3)), layer, L.Flatten()])
    with pytest.raises(
        ValueError,
        match=r"layer 'doubler' \((Doubler|CustomConv)\).*Supported "
        r"layers: Activation, Add, .*ZeroPadding2D",
    ):
        el_onnx.export(model)


@needs_onnx
def test_unsupported_activations_arguments_and_models():
    model = el.Sequential([L.Input((3,)), L.Dense(2, activation=lambda x: x, name="odd")])
    with pytest.raises(ValueError, match=r"activation .* of layer 'odd' \(Dense\).*relu6"):
        el_onnx.export(model)
    model = sequential((3,), L.Dense(2))
    for opset in (12, 10_000, "17"):
        with pytest.raises(ValueError, match=r"opsets 13 to \d+.*opset="):
            el_onnx.export(model, opset=opset)
    with pytest.raises(ValueError, match="no input shape"):
        el_onnx.export(el.Sequential([L.Dense(2)]))
    with pytest.raises(TypeError, match="Sequential and functional"):
        el_onnx.export(L.Dense(2))


# --------------------------------------------------------------------------- writing
@needs_onnx
def test_export_writes_the_file_atomically(tmp_path, monkeypatch):
    import onnx

    model = sequential((4, 4, 1), L.Conv2D(2, 3), L.Flatten())
    target = tmp_path / "model.onnx"
    proto = el_onnx.export(model, target)
    assert target.read_bytes() == proto.SerializeToString()
    onnx.checker.check_model(str(target))
    before = target.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        el_onnx.export(sequential((4, 4, 1), L.Conv2D(3, 3), L.Flatten()), target)
    assert target.read_bytes() == before  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary left


def test_edgelearn_imports_without_onnx():
    script = """
import sys
sys.modules["onnx"] = None          # an import of either now raises ImportError
sys.modules["onnxruntime"] = None
import numpy as np
import edgelearn as el
from edgelearn.io import onnx as el_onnx
from edgelearn.runtime import OnnxRuntimePredictor
model = el.Sequential([el.layers.Input((2,)), el.layers.Dense(1)])
assert model.predict(np.ones((1, 2))).shape == (1, 1)
for attempt in (lambda: el_onnx.export(model), lambda: OnnxRuntimePredictor(model)):
    try:
        attempt()
    except ImportError as error:
        assert 'pip install "edgelearn[onnx]"' in str(error), error
    else:
        raise AssertionError("no ImportError")
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
