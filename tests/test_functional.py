"""The functional API: el.Model(inputs, outputs), several inputs and outputs, shared layers."""

import json

import numpy as np
import pytest

import edgelearn as el

L = el.layers


def _two_tower_model():
    el.random.set_random_seed(0)
    left, right = L.Input((4,), name="left"), L.Input((4,), name="right")
    shared = L.Dense(8, activation="tanh", name="shared")
    features = L.Dense(8, name="mix")(shared(left))
    other = shared(right)  # the same weights see both inputs
    merged = L.Activation("relu", name="relu")(features)
    label = L.Dense(3, activation="softmax", name="label")(merged)
    score = L.Dense(1, name="score")(other)
    return el.Model([left, right], [label, score], name="towers")


def test_shared_layers_multiple_inputs_and_outputs_predict_and_config():
    model = _two_tower_model()
    assert [layer.name for layer in model.layers] == [
        "left",
        "right",
        "shared",
        "mix",
        "relu",
        "label",
        "score",
    ]
    assert model.input_shape == [(None, 4), (None, 4)] and model.output_shape == [
        (None, 3),
        (None, 1),
    ]
    assert len(model.get_weights()) == 8  # shared weights counted once
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)
    label, score = model.predict([a, b])
    assert label.shape == (5, 3) and score.shape == (5, 1)
    shared = model.layers[2]
    expected_score = (
        np.tanh(b @ shared.kernel.numpy() + shared.bias.numpy()) @ model.layers[-1].kernel.numpy()
    )
    np.testing.assert_allclose(
        score, expected_score + model.layers[-1].bias.numpy(), rtol=1e-5, atol=1e-6
    )

    config = json.loads(json.dumps(model.get_config()))
    assert config["input_layers"] == [["left", 0, 0], ["right", 0, 0]]
    shared_config = next(layer for layer in config["layers"] if layer["name"] == "shared")
    assert shared_config["inbound_nodes"] == [[["left", 0, 0, {}]], [["right", 0, 0, {}]]]
    clone = el.models.Functional.from_config(config)
    clone.set_weights(model.get_weights())
    for got, want in zip(clone.predict({"left": a, "right": b}), (label, score)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_multi_output_training_reports_per_output_losses_and_metrics():
    model = _two_tower_model()
    model.compile(
        optimizer=el.optimizers.Adam(0.01),
        loss={"label": "sparse_categorical_crossentropy", "score": "mse"},
        metrics={"label": ["accuracy"]},
    )
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(64, 4)), rng.normal(size=(64, 4))
    y_label, y_score = (a[:, 0] > 0).astype(int), b.sum(1, keepdims=True)
    history = model.fit(
        [a, b], [y_label, y_score], epochs=30, batch_size=16, verbose=0, validation_split=0.25
    )
    assert set(history.history) == {
        "loss",
        "label_loss",
        "score_loss",
        "label_accuracy",
        "val_loss",
        "val_label_loss",
        "val_score_loss",
        "val_label_accuracy",
    }
    logs = model.evaluate([a, b], [y_label, y_score], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["label_loss"] + logs["score_loss"], rel=1e-6)
    assert logs["label_accuracy"] > 0.85 and logs["score_loss"] < history.history["score_loss"][0]


def test_merge_free_residual_graph_trains_like_sequential():
    el.random.set_random_seed(0)
    inputs = L.Input((2,))
    hidden = L.Dense(16, activation="relu")(inputs)
    outputs = L.Dense(3, activation="softmax")(hidden)
    model = el.Model(inputs=inputs, outputs=outputs)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = np.array([[0, 4], [4, -2], [-4, -2]], dtype=np.float32)[y] + rng.normal(size=(300, 2))
    model.compile(
        optimizer=el.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(x, y, epochs=10, verbose=0)
    assert history.history["accuracy"][-1] > 0.95
    lines = []
    model.summary(print_fn=lines.append)
    assert any("input_layer" in line for line in lines) and "Total params: 99" in lines


def test_keras3_inbound_node_format_is_read():
    config = {
        "name": "k3",
        "layers": [
            {
                "class_name": "InputLayer",
                "name": "input_layer",
                "config": {
                    "batch_shape": [None, 3],
                    "dtype": "float32",
                    "sparse": False,
                    "name": "input_layer",
                },
                "inbound_nodes": [],
            },
            {
                "class_name": "Dense",
                "name": "dense_k3",
                "config": {
                    "name": "dense_k3",
                    "units": 2,
                    "activation": "relu",
                    "dtype": {
                        "module": "keras",
                        "class_name": "DTypePolicy",
                        "config": {"name": "float32"},
                    },
                },
                "inbound_nodes": [
                    {
                        "args": [
                            {
                                "class_name": "__keras_tensor__",
                                "config": {
                                    "shape": [None, 3],
                                    "dtype": "float32",
                                    "keras_history": ["input_layer", 0, 0],
                                },
                            }
                        ],
                        "kwargs": {},
                    }
                ],
            },
        ],
        "input_layers": ["input_layer", 0, 0],
        "output_layers": ["dense_k3", 0, 0],
    }
    model = el.models.Functional.from_config(config)
    assert model.output_shape == (None, 2)
    assert model.predict(np.ones((2, 3))).shape == (2, 2)


def test_graph_errors_are_clear():
    a, b = L.Input((2,)), L.Input((2,))
    out = L.Dense(1)(a)
    with pytest.raises(ValueError, match="Graph disconnected: the outputs depend on input"):
        el.Model(b, out)
    with pytest.raises(TypeError, match="must be symbolic tensors"):
        el.Model(a, np.zeros(2))
    model = el.Model([a, b], [out, L.Dense(1)(b)])
    with pytest.raises(ValueError, match="has 2 inputs, so x must be a list of 2 arrays"):
        model.predict(np.zeros((3, 2)))
    with pytest.raises(TypeError, match="mix of symbolic Input tensors and arrays"):
        L.Dense(1)([a, np.zeros((1, 2))])


def test_config_without_inputs_or_outputs_is_refused():
    with pytest.raises(ValueError, match="at least one entry in input_layers and in output_layers"):
        el.models.Functional.from_config(
            {"name": "x", "layers": [], "input_layers": [], "output_layers": []}
        )


# --------------------------------------------------------------------------- batch norm folding
def _randomize_batch_norms(model, rng):
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            for weight in layer.weights:
                weight.data[...] = rng.uniform(0.5, 1.5, weight.data.shape)
            layer.moving_mean.data[...] = rng.normal(size=layer.moving_mean.data.shape)


def _folding_model(**norm_args):
    el.random.set_random_seed(3)
    inputs = L.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    skip = x = L.BatchNormalization(name="bn1", **norm_args)(x)
    x = L.ReLU(6.0, name="relu6")(x)  # bn1's output is read twice: it folds, this does not
    x = L.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = L.BatchNormalization(name="bn2", **norm_args)(x)
    x = L.ReLU(6.0, name="folded_relu6")(x)
    x = L.Add()([x, skip])
    x = L.Conv2D(4, 1, name="pointwise")(x)  # a bias, and a normalisation after it
    x = L.BatchNormalization(name="bn3", **norm_args)(x)
    x = L.ReLU(name="folded_relu")(x)
    x = L.ReLU(negative_slope=0.1, name="leaky")(x)  # not a clip: never folded
    x = L.ZeroPadding2D(((0, 1), (1, 0)), name="folded_pad")(x)  # MobileNetV2's stride-2 form
    x = L.DepthwiseConv2D(3, strides=2, name="depthwise_s2")(x)
    x = L.BatchNormalization(name="bn4", **norm_args)(x)
    x = L.ReLU(3.0, name="folded_relu3")(x)
    padded = L.ZeroPadding2D(1, name="pad")(x)  # read twice: copied as usual
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise_x2")(padded)
    x = L.BatchNormalization(name="bn5", **norm_args)(x)
    x = L.Concatenate()([L.Flatten()(x), L.GlobalAveragePooling2D()(padded)])
    model = el.Model(inputs, L.Dense(2)(x))
    _randomize_batch_norms(model, np.random.default_rng(1))
    return model


@pytest.fixture(params=["numpy", "numba"])
def engine_kernels(request, monkeypatch):
    """Both kernel paths (the numba one for these small arrays too)."""
    if request.param == "numba":
        pytest.importorskip("numba")
        monkeypatch.setattr(el.engine.jit, "MIN_ELEMENTS", 0)
    el.engine.jit.set_kernels(request.param)
    yield request.param
    el.engine.jit.set_kernels("auto")


def _count_calls(monkeypatch, layer_class):
    calls = []
    call = layer_class.call
    monkeypatch.setattr(
        layer_class, "call", lambda self, *a, **k: calls.append(self.name) or call(self, *a, **k)
    )
    return calls


@pytest.mark.parametrize(
    "norm_args", [{}, {"center": False, "scale": False}, {"axis": 3, "epsilon": 0.1}]
)
def test_predict_folds_batch_norms_into_the_convolutions_before_them(
    norm_args, engine_kernels, monkeypatch
):
    model = _folding_model(**norm_args)
    assert sorted(model._nodes[step].layer.name for step in model._folds) == [
        "conv",
        "depthwise",
        "depthwise_s2",
        "depthwise_x2",
        "pointwise",
    ]
    pads = [model._nodes[pad].layer.name for _, _, pad in model._folds.values() if pad]
    assert pads == ["folded_pad"]
    x = np.random.default_rng(2).normal(size=(4, 12, 12, 3)).astype(np.float32)
    normalised = _count_calls(monkeypatch, L.BatchNormalization)
    relus = _count_calls(monkeypatch, L.ReLU)
    paddings = _count_calls(monkeypatch, L.ZeroPadding2D)
    folded = model.predict(x)
    assert not normalised  # all five ran inside their convolutions ...
    # ... and so did the clipping ReLUs that alone read them, with the convolutions' biases
    assert sorted(relus) == ["leaky", "relu6"]
    assert paddings == ["pad"]
    folds, model._folds = model._folds, {}
    unfolded = model.predict(x)
    model._folds = folds
    np.testing.assert_allclose(folded, unfolded, rtol=1e-5, atol=1e-5)
    # Training and gradients see the layers as they are: no folding with a graph recorded.
    layered = model(el.engine.Tensor(x)).numpy()
    np.testing.assert_allclose(layered, unfolded, rtol=1e-6, atol=1e-6)


def test_batch_norms_stay_apart_where_folding_would_change_the_result():
    inputs = L.Input((8, 8, 3))
    relu = L.Conv2D(4, 3, activation="relu")(inputs)  # the activation comes first
    relu_norm = L.BatchNormalization()(relu)
    shared = L.Conv2D(4, 3)(inputs)  # its output is read twice
    shared_norm = L.BatchNormalization()(shared)
    channels_first = L.BatchNormalization(axis=1)(L.Conv2D(4, 3)(inputs))
    exposed = L.Conv2D(4, 3, name="exposed")(inputs)  # a model output itself
    exposed_norm = L.BatchNormalization()(exposed)
    model = el.Model(
        inputs,
        [relu_norm, L.Add()([shared_norm, shared]), channels_first, exposed, exposed_norm],
    )
    assert model._folds == {}


def test_folded_call_with_a_clip_refuses_a_recorded_graph():
    # The clip runs in place on the convolution's output, where a graph would not see it.
    layer = L.Conv2D(2, 1)
    layer(np.zeros((1, 3, 3, 2), dtype=np.float32))
    x = el.engine.Tensor(np.ones((1, 3, 3, 2), dtype=np.float32), requires_grad=True)
    ones = np.ones(2, dtype=np.float32)
    with pytest.raises(RuntimeError, match="inference only"):
        layer.call_folded(x, *layer.folded_weights(ones, ones), clip=(0.0, 6.0))
