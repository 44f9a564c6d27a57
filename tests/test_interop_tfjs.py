"""Saved models shared with TensorFlow.js 4.22: edgelearn writes what tf.loadLayersModel reads and
reads what TF.js saves (tests/tfjs/layers_model.js is the TF.js side, docs/formats.md the format).

- Python -> TF.js: models built (most of them trained) in edgelearn are saved with `model.save`,
  in full precision and quantized; one Node process loads every folder with tf.loadLayersModel
  and predicts (the module-scoped `tfjs_predictions` fixture).
- TF.js -> Python: one Node process builds, trains and saves TF.js models (`tfjs_models`);
  `el.load_model` must give TF.js's predictions and weights.
- Round trips, atomic overwrites and malformed folders need no Node and always run.

Tolerance: predictions agree to TOL = 1e-5 absolute (the outputs are of order one): room for the
different summation orders of matmuls and convolutions (measured: below 1e-6), far below what a
wrong weight or layer config gives. Weights are copied, not computed, so they must be bit-exact.
Quantized files are checked twice: TF.js and edgelearn reading the same quantized file agree to
TOL, and every dequantized weight lies within the quantization error of the original.
"""

import json
import os
import re
import pathlib
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from tfjs_reference import decode, encode, run_layers_model

import edgelearn as el
from edgelearn.io import ModelFormatError, tfjs
from edgelearn.layers.base import LAYER_CLASSES

TOL = 1e-5
QUANTIZED = ("uint8", "uint16", "float16")
LAYERS = set(el.layers.__all__)
L = el.layers


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _predict(model, inputs):
    return _as_list(model.predict(inputs if len(inputs) > 1 else inputs[0]))


def _check_result(result):
    if "error" in result:
        pytest.fail(f"TF.js: {result['error']}")
    return result


def _assert_outputs_close(actual, expected, what):
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f"{what}: output {i} has shape {a.shape}, expected {e.shape}"
        np.testing.assert_allclose(a, e, rtol=0, atol=TOL, err_msg=f"{what}: output {i}")


def _assert_weights_bit_exact(variables, named, what):
    """edgelearn's `variables` equal TF.js's [{"name", "value"}] bit for bit, matched by name:
    TF.js lists a model's trainable weights first, edgelearn goes layer by layer."""
    values = {w["name"]: w["value"] for w in named}
    assert sorted(values) == sorted(v.name for v in variables), what
    for variable in variables:
        actual = np.asarray(variable.data, dtype=np.float32)
        assert actual.tobytes() == values[variable.name].tobytes(), f"{what}: {variable.name}"


def _manifest_entries(folder):
    content = json.loads((folder / "model.json").read_text())
    return {e["name"]: e for group in content["weightsManifest"] for e in group["weights"]}


# --------------------------------------------------------------------------- models to save
def _randomize(model, rng):
    """Weights of order one (variances positive), so that every weight shows in the output."""
    model.set_weights(
        [
            (
                1.0 + rng.random(w.shape)
                if "variance" in w.name
                else 0.5 * rng.standard_normal(w.shape)
            ).astype(np.float32)
            for w in model.weights
        ]
    )
    return model


def _mlp():
    return el.Sequential(
        [
            L.Input((10,)),
            L.Dense(16, activation="relu"),
            L.Dropout(0.3),
            L.Dense(8, activation="tanh"),
            L.Dense(4, activation="softmax"),
        ]
    )


def _cnn_strided_valid():
    return el.Sequential(
        [
            L.Input((9, 9, 2)),
            L.Conv2D(4, 3, strides=2, padding="valid"),
            L.ReLU(max_value=6.0),
            L.MaxPooling2D(2, strides=1),
            L.BatchNormalization(),
            L.Flatten(),
            L.Dense(3, activation="softmax"),
        ]
    )


def _cnn_same():
    return el.Sequential(
        [
            L.Input((12, 12, 1)),
            L.Conv2D(6, (3, 2), strides=(2, 1), padding="same", activation="relu"),
            L.MaxPooling2D(3, strides=2, padding="same"),
            L.BatchNormalization(momentum=0.5),
            L.AveragePooling2D(2),
            L.Conv2D(4, 1, use_bias=False),
            L.Flatten(),
            L.Dense(3),
            L.Softmax(),
        ]
    )


def _pooling_same():
    return el.Sequential(
        [
            L.Input((7, 7, 3)),
            L.Conv2D(5, 3, padding="same", activation="sigmoid"),
            L.AveragePooling2D(3, strides=2, padding="same"),
            L.BatchNormalization(scale=False),
            L.GlobalAveragePooling2D(),
            L.Dense(2),
        ]
    )


def _reshapes():
    # The Reshape after the -1 one gives TF.js back a static shape (see KNOWN_DIFFERENCES).
    return el.Sequential(
        [
            L.Input((12,)),
            L.Dense(24, activation="relu"),
            L.Reshape((4, 6)),
            L.Activation("tanh"),
            L.Reshape((-1, 3)),
            L.Softmax(),
            L.Reshape((24,)),
            L.Dense(2),
        ]
    )


def _functional_shared():
    """Two inputs, two outputs, a Dense layer called on both branches, and the merge layers
    edgelearn has."""
    vector, image = L.Input((6,), name="vector"), L.Input((5, 5, 2), name="image")
    seen = L.Dense(6, activation="relu")(L.Flatten()(L.Conv2D(3, 3)(image)))
    shared = L.Dense(8, activation="relu", name="shared")
    a, b = shared(vector), shared(seen)
    merged = L.Add()([a, b]) if "Add" in LAYERS else a
    if "Multiply" in LAYERS:
        merged = L.Multiply()([merged, b])
    wide = L.Concatenate()([merged, a]) if "Concatenate" in LAYERS else merged
    classes = L.Dense(3, activation="softmax", name="classes")(wide)
    value = L.Dense(2, name="value")(L.Dropout(0.2)(merged))
    return el.Model([vector, image], [classes, value])


# name: (builder, loss per output). Each is trained for two epochs, which moves BatchNormalization's
# moving statistics and all biases away from their initial values.
TRAINED = {
    "mlp_dropout": (_mlp, ["categorical_crossentropy"]),
    "cnn_strided_valid": (_cnn_strided_valid, ["categorical_crossentropy"]),
    "cnn_same": (_cnn_same, ["categorical_crossentropy"]),
    "pooling_same": (_pooling_same, ["mean_squared_error"]),
    "reshapes": (_reshapes, ["mean_squared_error"]),
    "functional_shared": (_functional_shared, ["categorical_crossentropy", "mean_squared_error"]),
}

# Layers the trained models do not cover: class name -> [(input shapes, layer factory), ...]; each
# config runs with random weights as a one-layer functional model.
SINGLE_LAYER = {
    "DepthwiseConv2D": [
        (
            [(6, 6, 3)],
            lambda: L.DepthwiseConv2D(
                3, strides=2, padding="same", depth_multiplier=2, activation="relu"
            ),
        ),
        ([(5, 5, 2)], lambda: L.DepthwiseConv2D((2, 3), use_bias=False)),
    ],
    "SeparableConv2D": [
        ([(6, 6, 3)], lambda: L.SeparableConv2D(5, 3, padding="same", depth_multiplier=2)),
        ([(7, 6, 2)], lambda: L.SeparableConv2D(4, (2, 3), strides=2)),
    ],
    "Conv2DTranspose": [
        ([(4, 5, 2)], lambda: L.Conv2DTranspose(3, 3, strides=2, padding="same")),
        ([(4, 5, 2)], lambda: L.Conv2DTranspose(3, (2, 3), strides=(1, 2), activation="relu")),
    ],
    "UpSampling2D": [
        ([(3, 4, 2)], lambda: L.UpSampling2D((2, 3))),
        ([(3, 4, 2)], lambda: L.UpSampling2D(2, interpolation="bilinear")),
    ],
    "ZeroPadding2D": [
        ([(3, 4, 2)], lambda: L.ZeroPadding2D(1)),
        ([(3, 4, 2)], lambda: L.ZeroPadding2D(((1, 2), (0, 3)))),
    ],
    "LeakyReLU": [([(6,)], lambda: L.LeakyReLU()), ([(2, 5)], lambda: L.LeakyReLU(0.1))],
    "GlobalMaxPooling2D": [([(4, 5, 3)], lambda: L.GlobalMaxPooling2D())],
    "Add": [([(4, 3), (4, 3), (4, 3)], lambda: L.Add())],
    "Multiply": [([(4, 3), (4, 3)], lambda: L.Multiply())],
    "Average": [([(4, 3), (4, 3)], lambda: L.Average())],
    "Maximum": [([(4, 3), (4, 3)], lambda: L.Maximum())],
    "Minimum": [([(4, 3), (4, 3)], lambda: L.Minimum())],
    "Concatenate": [
        ([(4, 3), (4, 2)], lambda: L.Concatenate()),
        ([(2, 3), (4, 3)], lambda: L.Concatenate(axis=1)),
    ],
}
SINGLE_LAYER_IDS = [
    f"{name}-{i}" for name, configs in SINGLE_LAYER.items() for i in range(len(configs))
]

# Models edgelearn computes as Keras 3 does that TF.js 4.22 computes differently or cannot load or
# run: the facts docs/formats.md lists. name: (input shapes, layer classes used, outputs from the
# inputs, what TF.js does: a substring of its error, or a note where it silently differs).
KNOWN_DIFFERENCES = {
    "relu_negative_slope": (
        [(6,)],
        ["ReLU"],
        lambda x: L.ReLU(negative_slope=0.1)(x),
        "ignores negative_slope",
    ),
    "relu_threshold": ([(6,)], ["ReLU"], lambda x: L.ReLU(threshold=0.5)(x), "ignores threshold"),
    "activation_leaky_relu": (
        [(6,)],
        ["Activation"],
        lambda x: L.Activation("leaky_relu")(x),
        "Unknown activation: leakyRelu",
    ),
    "softmax_non_last_axis": (
        [(3, 4)],
        ["Softmax"],
        lambda x: L.Softmax(axis=1)(x),
        "non-last dimension is not yet supported",
    ),
    "global_pooling_keepdims": (
        [(4, 4, 2)],
        ["GlobalAveragePooling2D"],
        lambda x: L.GlobalAveragePooling2D(keepdims=True)(x),
        "ignores keepdims",
    ),
    # TF.js leaves the -1 of a target_shape unknown in its static shapes, which Flatten refuses.
    "reshape_minus_one_then_flatten": (
        [(12,)],
        ["Reshape", "Flatten"],
        lambda x: L.Flatten()(L.Reshape((-1, 3))(x)),
        "is not fully defined",
    ),
    "subtract": (
        [(4, 3), (4, 3)],
        ["Subtract"],
        lambda x: L.Subtract()(x),
        "Unknown layer: Subtract",
    ),
}


def _needs(case_id):
    if case_id in KNOWN_DIFFERENCES:
        return KNOWN_DIFFERENCES[case_id][1]
    return [case_id.split("-")[0]] if case_id in SINGLE_LAYER_IDS else []


def _exists(case_id):
    return set(_needs(case_id)) <= LAYERS


def _params(case_ids):
    """One param per case; a case using a class el.layers lacks yet is skipped, visibly."""
    return [
        case_id
        if _exists(case_id)
        else pytest.param(
            case_id, marks=pytest.mark.skip(reason=f"el.layers lacks one of {_needs(case_id)}")
        )
        for case_id in case_ids
    ]


def _train_data(model, losses, rng, n=32):
    xs = [rng.standard_normal((n, *shape[1:])).astype(np.float32) for shape in model.input_shapes]
    ys = []
    for shape, loss in zip(model.output_shapes, losses):
        if loss == "categorical_crossentropy":
            ys.append(np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], n)])
        else:
            ys.append(rng.standard_normal((n, *shape[1:])).astype(np.float32))
    return xs, ys


def _functional(shapes, make):
    inputs = [L.Input(shape) for shape in shapes]
    return el.Model(inputs, make(inputs if len(inputs) > 1 else inputs[0]))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> {"model", "inputs", "outputs", "dirs": {variant: folder}}: every edgelearn model of
    this module, saved in full precision ("float32") and, for the trained ones, quantized."""
    root = tmp_path_factory.mktemp("edgelearn_saved")
    cases = {}
    for i, (name, (build, losses)) in enumerate(TRAINED.items()):
        el.random.set_random_seed(100 + i)
        rng = np.random.default_rng(100 + i)
        model = build()
        model.compile(optimizer="adam", loss=losses if len(losses) > 1 else losses[0])
        xs, ys = _train_data(model, losses, rng)
        model.fit(
            xs if len(xs) > 1 else xs[0],
            ys if len(ys) > 1 else ys[0],
            batch_size=8,
            epochs=2,
            shuffle=False,
            verbose=0,
        )
        cases[name] = {
            "model": model,
            "inputs": [x[:5] for x in xs],
            "variants": ("float32", *QUANTIZED),
        }
    for case_id in [*SINGLE_LAYER_IDS, *KNOWN_DIFFERENCES]:
        if not _exists(case_id):
            continue
        rng = np.random.default_rng(len(cases))
        if case_id in KNOWN_DIFFERENCES:
            shapes, _, make, _ = KNOWN_DIFFERENCES[case_id]
            model = _functional(shapes, make)
        else:
            class_name, index = case_id.split("-")
            shapes, make_layer = SINGLE_LAYER[class_name][int(index)]
            model = _randomize(_functional(shapes, make_layer()), rng)
        cases[case_id] = {
            "model": model,
            "variants": ("float32",),
            "inputs": [rng.standard_normal((3, *s)).astype(np.float32) for s in shapes],
        }
    for name, case in cases.items():
        case["outputs"] = _predict(case["model"], case["inputs"])
        case["dirs"] = {variant: root / f"{name}-{variant}" for variant in case["variants"]}
        for variant, folder in case["dirs"].items():
            case["model"].save(folder, quantize=None if variant == "float32" else variant)
    # A save cut into several shards, as large models are: TF.js must join them in manifest order.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tfjs, "SHARD_BYTES", 256)
        cases["mlp_dropout"]["dirs"]["sharded"] = root / "mlp_dropout-sharded"
        cases["mlp_dropout"]["model"].save(root / "mlp_dropout-sharded")
    return cases


@pytest.fixture(scope="module")
def tfjs_predictions(saved, tmp_path_factory):
    """(name, variant) -> what TF.js computes from that saved folder: outputs and weights."""
    keys = [(name, variant) for name, case in saved.items() for variant in case["dirs"]]
    cases = [
        {
            "model_dir": str(saved[name]["dirs"][variant]),
            "weights": True,
            "inputs": [encode(x) for x in saved[name]["inputs"]],
        }
        for name, variant in keys
    ]
    return dict(zip(keys, run_layers_model("predict", cases, tmp_path_factory.mktemp("tfjs"))))


# --------------------------------------------------------------------------- Python -> TF.js
def test_trained_models_have_moved_batch_norm_statistics(saved):
    for name in TRAINED:
        for variable in saved[name]["model"].weights:
            if "moving_mean" in variable.name:
                assert np.abs(variable.data).min() > 1e-3, variable.name
            if "moving_variance" in variable.name:
                assert np.abs(variable.data - 1).min() > 1e-3, variable.name


@pytest.mark.parametrize("name", [*TRAINED, *_params(SINGLE_LAYER_IDS)])
def test_tfjs_predicts_like_edgelearn(name, saved, tfjs_predictions):
    case = saved[name]
    result = _check_result(tfjs_predictions[(name, "float32")])
    _assert_outputs_close(result["outputs"], case["outputs"], name)
    _assert_weights_bit_exact(case["model"].weights, result["weights"], name)


def test_tfjs_reads_multi_shard_save(saved, tfjs_predictions):
    case = saved["mlp_dropout"]
    shards = sorted(p.name for p in case["dirs"]["sharded"].glob("*.bin"))
    assert len(shards) > 2 and shards[0] == f"group1-shard1of{len(shards)}.bin"
    result = _check_result(tfjs_predictions[("mlp_dropout", "sharded")])
    _assert_outputs_close(result["outputs"], case["outputs"], "sharded")
    _assert_weights_bit_exact(case["model"].weights, result["weights"], "sharded")


@pytest.mark.parametrize("dtype", QUANTIZED)
@pytest.mark.parametrize("name", list(TRAINED))
def test_tfjs_reads_quantized_like_edgelearn(name, dtype, saved, tfjs_predictions):
    result = _check_result(tfjs_predictions[(name, dtype)])
    expected = _predict(el.load_model(saved[name]["dirs"][dtype]), saved[name]["inputs"])
    _assert_outputs_close(result["outputs"], expected, f"{name} {dtype}")


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float16"])
def test_quantized_weights_decode_like_tfjs(dtype, saved, tfjs_predictions):
    for name in TRAINED:
        result = _check_result(tfjs_predictions[(name, dtype)])
        loaded = el.load_model(saved[name]["dirs"][dtype])
        _assert_weights_bit_exact(loaded.weights, result["weights"], f"{name} {dtype}")


def _dequantization_bound(entry, original):
    """The largest |dequantized - original| that the entry's quantization allows, elementwise."""
    q = entry["quantization"]
    if q["dtype"] == "float16":
        # Rounding to nearest: half an ulp, 2^-11 relative for normal numbers, 2^-25 absolute
        # below 2^-14 where float16 numbers are subnormal.
        return 2.0**-11 * np.abs(original) + 2.0**-25
    levels = np.iinfo(q["dtype"]).max
    # Half a step of rounding (values beyond the nudged range lie at most half a step outside),
    # plus the float32 roundings of scale, min, the product and the sum when decoding.
    return 0.5 * q["scale"] * (1 + 1e-6) + 2 * 2.0**-23 * (abs(q["min"]) + levels * q["scale"])


@pytest.mark.parametrize("dtype", QUANTIZED)
@pytest.mark.parametrize("name", list(TRAINED))
def test_quantization_error_within_bound(name, dtype, saved):
    folder = saved[name]["dirs"][dtype]
    entries = _manifest_entries(folder)
    originals = {v.name: v.data for v in saved[name]["model"].weights}
    loaded = el.load_model(folder)
    for variable in loaded.weights:
        original = originals[variable.name]
        error = np.abs(variable.data.astype(np.float64) - original)
        bound = _dequantization_bound(entries[variable.name], original)
        assert np.all(error <= bound), f"{variable.name}: error {error.max()} > bound"
    # Loosely on the outputs, as no tight bound holds through a network: ten times a weight's
    # relative quantization error (half a step of the range, 1/510 or 1/131070; float16 2^-11).
    # These networks amplify it at most 2.5 times (measured, relative to 1 + max |y|).
    loose = 10 * {"uint8": 1 / 510, "uint16": 1 / 131070, "float16": 2.0**-11}[dtype]
    for actual, expected in zip(_predict(loaded, saved[name]["inputs"]), saved[name]["outputs"]):
        atol = loose * (1 + np.abs(expected).max())
        np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("dtype", QUANTIZED)
def test_quantized_dense_output_within_derived_bound(dtype, tmp_path):
    """For y = x W + b the error is at most sum_i |x_i| dW_ij + db_j, dW and db being the weights'
    dequantization bounds, plus the float32 rounding of both evaluations."""
    rng = np.random.default_rng(7)
    model = _randomize(el.Sequential([L.Input((20,)), L.Dense(5)]), rng)
    x = rng.standard_normal((8, 20)).astype(np.float32)
    model.save(tmp_path / "q", quantize=dtype)
    loaded = el.load_model(tmp_path / "q")
    entries = _manifest_entries(tmp_path / "q")
    kernel, bias = (v.data for v in model.weights)
    d_kernel = np.broadcast_to(
        _dequantization_bound(entries[model.weights[0].name], kernel), kernel.shape
    )
    d_bias = _dequantization_bound(entries[model.weights[1].name], bias)
    # Each float32 evaluation of 20 products and a bias is off by at most 21 u sum |x w| + |b|.
    magnitude = np.abs(x) @ (np.abs(kernel) + d_kernel) + np.abs(bias) + d_bias
    bound = np.abs(x) @ d_kernel + d_bias + 2 * 21 * 2.0**-24 * magnitude
    error = np.abs(loaded.predict(x).astype(np.float64) - model.predict(x))
    assert np.all(error <= bound)


@pytest.mark.parametrize("name", _params(KNOWN_DIFFERENCES))
def test_known_differences_with_tfjs(name, saved, tfjs_predictions):
    """TF.js 4.22 fails on these edgelearn files or computes something else: pinned here so that
    docs/formats.md stays true."""
    what = KNOWN_DIFFERENCES[name][-1]
    result = tfjs_predictions[(name, "float32")]
    if "error" in result:
        assert what in result["error"]
        return
    expected, actual = saved[name]["outputs"][0], result["outputs"][0]
    assert actual.shape != expected.shape or np.abs(actual - expected).max() > 1e-2, what


# --------------------------------------------------------------------------- TF.js -> Python
TFJS_KINDS = ("mlp", "cnn", "functional")


@pytest.fixture(scope="module")
def tfjs_models(tmp_path_factory):
    """kind -> {"dir", "inputs", "result"}: models TF.js built, trained and saved. The result holds
    TF.js's predictions and weights after reloading its own folder, and for "cnn" the same for a
    uint8 copy quantized as the tensorflowjs converter does (in "quantized", with the entries)."""
    root = tmp_path_factory.mktemp("tfjs_saved")
    rng = np.random.default_rng(2024)
    n = 24
    vectors, classes = rng.standard_normal((n, 6)), np.eye(3)[rng.integers(0, 3, n)]
    data = {
        "mlp": ([vectors], [classes]),
        "cnn": ([rng.standard_normal((n, 8, 8, 1))], [classes]),
        "functional": (
            [vectors, rng.standard_normal((n, 4))],
            [classes, rng.standard_normal((n, 2))],
        ),
    }
    cases = []
    for seed, kind in enumerate(TFJS_KINDS, start=1):
        xs, ys = ([a.astype(np.float32) for a in arrays] for arrays in data[kind])
        case = {
            "kind": kind,
            "model_dir": str(root / kind),
            "seed": seed,
            "epochs": 3,
            "x": [encode(x) for x in xs],
            "y": [encode(y) for y in ys],
            "predict_inputs": [encode(x[:5]) for x in xs],
            "merge": sorted({"Add", "Concatenate"} & LAYERS),
        }
        if kind == "cnn":
            case["quantized"] = {"dtype": "uint8", "model_dir": str(root / "cnn-uint8")}
        cases.append(case)
    results = run_layers_model("build", cases, root)
    return {
        kind: {
            "dir": root / kind,
            "result": result,
            "inputs": [decode(x) for x in case["predict_inputs"]],
        }
        for kind, case, result in zip(TFJS_KINDS, cases, results)
    }


@pytest.mark.parametrize("kind", TFJS_KINDS)
def test_edgelearn_loads_tfjs_model(kind, tfjs_models):
    case = tfjs_models[kind]
    result = _check_result(case["result"])
    model = el.load_model(case["dir"])
    _assert_outputs_close(_predict(model, case["inputs"]), result["outputs"], kind)
    _assert_weights_bit_exact(model.weights, result["weights"], kind)
    if kind == "functional":
        assert {"Add", "Concatenate"} & LAYERS <= {type(layer).__name__ for layer in model.layers}
        assert len(model.input_names) == 2 and len(model.output_names) == 2


def test_edgelearn_loads_tfjs_uint8_model(tfjs_models):
    case = tfjs_models["cnn"]
    quantized = _check_result(case["result"])["quantized"]
    model = el.load_model(case["dir"].parent / "cnn-uint8")
    _assert_outputs_close(_predict(model, case["inputs"]), quantized["outputs"], "cnn uint8")


def test_edgelearn_decodes_tfjs_uint8_weights_bit_exact(tfjs_models):
    case = tfjs_models["cnn"]
    quantized = _check_result(case["result"])["quantized"]
    model = el.load_model(case["dir"].parent / "cnn-uint8")
    _assert_weights_bit_exact(model.weights, quantized["weights"], "cnn uint8")


def test_edgelearn_quantizes_as_precisely_as_the_converter(tfjs_models):
    """Per tensor, edgelearn's uint8 error stays within the converter's half step (layers_model.js
    quantized the TF.js CNN with the converter's scheme)."""
    result = _check_result(tfjs_models["cnn"]["result"])
    originals = {w["name"]: w["value"] for w in result["weights"]}
    for entry in result["quantized"]["entries"]:
        values = originals[entry["name"]]
        codes, quantization = tfjs.quantize(values, "uint8")
        ours = codes.astype(np.float64) * quantization["scale"] + quantization["min"]
        error = np.abs(ours - values).max()
        assert error <= _dequantization_bound(entry, values), f"{entry['name']}: {error}"


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", [*TRAINED, *_params(SINGLE_LAYER_IDS)])
def test_round_trip_is_bit_exact(name, saved):
    model = saved[name]["model"]
    loaded = el.load_model(saved[name]["dirs"]["float32"])
    assert [v.name for v in loaded.weights] == [v.name for v in model.weights]
    for ours, theirs in zip(loaded.weights, model.weights):
        assert ours.data.dtype == np.float32 and ours.data.tobytes() == theirs.data.tobytes()
    assert loaded.get_config() == model.get_config()
    for a, b in zip(_predict(loaded, saved[name]["inputs"]), saved[name]["outputs"]):
        assert a.tobytes() == b.tobytes()


def test_round_trip_multi_shard_is_bit_exact(saved):
    model = saved["mlp_dropout"]["model"]
    loaded = el.load_model(saved["mlp_dropout"]["dirs"]["sharded"])
    for ours, theirs in zip(loaded.weights, model.weights):
        assert ours.data.tobytes() == theirs.data.tobytes()


def test_float16_round_trip_is_stable(saved, tmp_path):
    """A float16-loaded model saved as float16 again gives the same bytes: no drift."""
    first = saved["cnn_same"]["dirs"]["float16"]
    el.load_model(first).save(tmp_path / "again", quantize="float16")
    shard = "group1-shard1of1.bin"
    assert (tmp_path / "again" / shard).read_bytes() == (first / shard).read_bytes()


def _tiny_model(seed=0):
    return _randomize(el.Sequential([L.Input((4,)), L.Dense(3)]), np.random.default_rng(seed))


def _wide_model():
    return _randomize(el.Sequential([L.Input((40,)), L.Dense(40)]), np.random.default_rng(1))


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _same_weights(a, b):
    return all(x.tobytes() == y.tobytes() for x, y in zip(a.get_weights(), b.get_weights()))


def test_overwrite_replaces_the_whole_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tfjs, "SHARD_BYTES", 1024)
    _wide_model().save(tmp_path / "model")
    assert len(list((tmp_path / "model").glob("*.bin"))) > 1
    small = _tiny_model()
    small.save(tmp_path / "model")
    names = sorted(p.name for p in (tmp_path / "model").iterdir())
    # The new shard gets a fresh name while the old model.json still names the old ones.
    assert len(names) == 2 and names[1] == "model.json"
    assert re.fullmatch(r"group1-shard1of1-[0-9a-f]{8}\.bin", names[0]), names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert _same_weights(el.load_model(tmp_path / "model"), small)


@pytest.mark.parametrize("failure", ["second_shard_write", "model_json_write", "swap_rename"])
def test_failed_overwrite_keeps_the_previous_model(failure, tmp_path, monkeypatch):
    old = _tiny_model()
    old.save(tmp_path / "model")
    before = _snapshot(tmp_path / "model")
    monkeypatch.setattr(tfjs, "SHARD_BYTES", 1024)
    writes = []
    real_write, real_replace = tfjs._write_synced, os.replace

    def failing_write(path, data):
        writes.append(path.name)
        if (failure == "second_shard_write" and len(writes) == 2) or (
            failure == "model_json_write" and path.name.startswith(".model.json.")
        ):
            raise OSError("disk full")
        real_write(path, data)

    def failing_replace(src, dst):
        # Only the final rename of the staged model.json over the old one fails: by then the new
        # shards are on disk and must be cleaned up, the old files left as they were.
        name = pathlib.Path(src).name
        if failure == "swap_rename" and name.startswith(".model.json."):
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(tfjs, "_write_synced", failing_write)
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full|rename failed"):
        _wide_model().save(tmp_path / "model")
    assert _snapshot(tmp_path / "model") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "a temporary folder is left"
    assert _same_weights(el.load_model(tmp_path / "model"), old)


def test_hard_crash_during_overwrite_keeps_a_model_at_the_path(tmp_path):
    _tiny_model().save(tmp_path / "model")
    script = (
        "import os, sys, edgelearn as el\n"
        "real = os.replace\n"
        "def replace_then_die(src, dst):\n"
        "    real(src, dst)\n"
        "    os._exit(3)\n"
        "model = el.load_model(sys.argv[1])\n"
        "os.replace = replace_then_die\n"
        "model.save(sys.argv[1])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "model")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    assert (tmp_path / "model" / "model.json").is_file(), f"after the crash: {left}"


# --------------------------------------------------------------------------- bad input
@pytest.fixture
def model_dir(tmp_path):
    _tiny_model().save(tmp_path / "model")
    return tmp_path / "model"


def _edit(folder, change):
    path = folder / "model.json"
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def _edit_kernel(**fields):
    return lambda d: _edit(d, lambda c: c["weightsManifest"][0]["weights"][0].update(fields))


def _set_paths(paths):
    return lambda d: _edit(d, lambda c: c["weightsManifest"][0].update(paths=paths))


def _rename_layer_class(content):
    content["modelTopology"]["config"]["layers"][1]["class_name"] = "Dense3D"


def _graph_model(content):
    content.update(
        format="graph-model",
        convertedBy="TensorFlow.js Converter v4.22.0",
        modelTopology={"node": [{"name": "x", "op": "Placeholder"}], "versions": {}},
    )


SHARD = "group1-shard1of1.bin"

# name: (change to the folder, message regex, whether model.json alone shows the problem, so that
# loading must fail before the topology is built). All must fail before any shard is read.
BAD_INPUT = {
    "missing_shard": (
        lambda d: (d / SHARD).unlink(),
        r"weight shard group1-shard1of1\.bin is missing from .*model",
        False,
    ),
    "short_shard": (
        lambda d: (d / SHARD).write_bytes(b"\0" * 10),
        r"weight shards group1-shard1of1\.bin hold 10 bytes but the manifest needs 60",
        False,
    ),
    "dtype_float64": (
        _edit_kernel(dtype="float64"),
        r"weight '\S+/kernel' has dtype 'float64'; supported: float32, int32",
        True,
    ),
    "dtype_string": (
        _edit_kernel(dtype="string"),
        r"has dtype 'string'; supported: float32, int32",
        True,
    ),
    "quantization_int8": (
        _edit_kernel(quantization={"dtype": "int8", "scale": 1.0, "min": 0.0}),
        r"quantization \{.*'int8'.*\}; supported dtypes: uint8, uint16, float16",
        True,
    ),
    "quantization_no_scale": (
        _edit_kernel(quantization={"dtype": "uint8", "min": 0.0}),
        r"quantization lacks a numeric 'scale'",
        True,
    ),
    "shape_disagrees": (
        _edit_kernel(shape=[3, 4]),
        r"has shape \[3, 4\] in the manifest but the topology needs \[4, 3\]",
        False,
    ),
    "unknown_layer": (
        lambda d: _edit(d, _rename_layer_class),
        r"Unknown layer class 'Dense3D'\. Supported layers: ",
        False,
    ),
    "path_parent": (
        _set_paths(["../x.bin"]),
        r"weight path '\.\./x\.bin' leaves the model folder",
        True,
    ),
    "path_absolute": (
        _set_paths(["/etc/passwd"]),
        r"weight path '/etc/passwd' must be relative to the model folder",
        True,
    ),
    "path_url": (
        _set_paths(["http://other/x.bin"]),
        r"weight path 'http://other/x\.bin' must be relative to the model folder",
        True,
    ),
    "absurd_shape": (
        _edit_kernel(shape=[1000000, 1000000, 1000]),
        r"claims an absurd shape \[1000000, 1000000, 1000\]",
        True,
    ),
    "negative_shape": (_edit_kernel(shape=[-4, 3]), r"has an invalid shape \[-4, 3\]", True),
    "malformed_json": (
        lambda d: (d / "model.json").write_text('{"format": "layers-model", '),
        r"model\.json is not valid JSON: ",
        True,
    ),
    "graph_model": (
        lambda d: _edit(d, _graph_model),
        r"is a 'graph-model', not a layers model \(format 'layers-model'\)",
        True,
    ),
}


def _forbid_shard_reads(patch):
    """Make opening a .bin file fail (pathlib reads go through Path.open, the rest through open)."""
    real_path_open, real_open = pathlib.Path.open, open

    def check(file):
        assert not str(file).endswith(".bin"), f"shard {file} was read"

    def path_open(path, *args, **kwargs):
        check(path)
        return real_path_open(path, *args, **kwargs)

    def builtin_open(file, *args, **kwargs):
        check(file)
        return real_open(file, *args, **kwargs)

    patch.setattr(pathlib.Path, "open", path_open)
    patch.setattr("builtins.open", builtin_open)


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_folder_is_refused_before_reading_shards(name, model_dir, monkeypatch):
    change, message, _ = BAD_INPUT[name]
    change(model_dir)
    before = _snapshot(model_dir)
    with monkeypatch.context() as patch, pytest.raises(ModelFormatError, match=message) as error:
        _forbid_shard_reads(patch)
        el.load_model(model_dir)
    assert _snapshot(model_dir) == before, "loading changed the folder"
    if name == "unknown_layer":
        assert all(class_name in str(error.value) for class_name in LAYER_CLASSES)


@pytest.mark.parametrize(
    "name", [name for name, (_, _, model_json_alone) in BAD_INPUT.items() if model_json_alone]
)
def test_model_json_problems_are_refused_before_building(name, model_dir, monkeypatch):
    change, message, _ = BAD_INPUT[name]
    change(model_dir)

    def no_build(config):
        raise AssertionError("the model was built, its weights allocated, before the check")

    monkeypatch.setattr(tfjs, "model_from_config", no_build)
    with pytest.raises(ModelFormatError, match=message):
        el.load_model(model_dir)


def test_bad_path_in_a_later_group_is_refused_before_reading(model_dir, monkeypatch):
    def split_groups(content):
        kernel, bias = content["weightsManifest"][0]["weights"]
        content["weightsManifest"] = [
            {"paths": [SHARD], "weights": [kernel]},
            {"paths": ["../elsewhere.bin"], "weights": [bias]},
        ]

    _edit(model_dir, split_groups)
    _forbid_shard_reads(monkeypatch)
    with pytest.raises(ModelFormatError, match=r"'\.\./elsewhere\.bin' leaves the model folder"):
        el.load_model(model_dir)


def test_topology_larger_than_its_manifest_is_refused_before_allocating(model_dir):
    def grow(content):
        input_layer, dense = content["modelTopology"]["config"]["layers"]
        input_layer["config"]["batch_input_shape"] = [None, 3000]
        dense["config"]["units"] = 3000

    _edit(model_dir, grow)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match=r"the topology needs \[3000, 3000\]"):
            el.load_model(model_dir)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The 3000 x 3000 kernel alone is 36 MB of float32.
    assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MiB allocated before the refusal"


def test_folder_without_model_json_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a folder with model.json"):
        el.load_model(tmp_path)
