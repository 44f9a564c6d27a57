"""Every layer through the shared harness: shapes, weights, config round trip, gradients."""

import numpy as np
import pytest

import edgelearn as el
from edgelearn.layers.base import batch_part
from edgelearn.testing import run_layer_test

L = el.layers

# (layer class, constructor arguments, input shape, expected output shape, expected params)
CASES = [
    (L.Dense, {"units": 3}, (2, 4), (2, 3), 15),
    (L.Dense, {"units": 2, "activation": "tanh", "use_bias": False}, (3, 5), (3, 2), 10),
    (L.Dense, {"units": 2, "activation": "softmax"}, (2, 3, 4), (2, 3, 2), 10),
    (L.Conv2D, {"filters": 2, "kernel_size": 3}, (2, 5, 6, 3), (2, 3, 4, 2), 56),
    (L.Conv2D, {"filters": 2, "kernel_size": 3, "padding": "same"}, (2, 5, 6, 3), (2, 5, 6, 2), 56),
    (
        L.Conv2D,
        {
            "filters": 3,
            "kernel_size": (2, 3),
            "strides": 2,
            "padding": "same",
            "activation": "relu",
        },
        (2, 5, 7, 2),
        (2, 3, 4, 3),
        39,
    ),
    (
        L.Conv2D,
        {"filters": 2, "kernel_size": 3, "strides": (2, 1), "use_bias": False},
        (1, 7, 5, 2),
        (1, 3, 3, 2),
        36,
    ),
    (L.MaxPooling2D, {}, (2, 4, 6, 3), (2, 2, 3, 3), 0),
    (
        L.MaxPooling2D,
        {"pool_size": 3, "strides": 2, "padding": "same"},
        (2, 5, 6, 2),
        (2, 3, 3, 2),
        0,
    ),
    (L.MaxPooling2D, {"pool_size": (2, 3), "strides": 1}, (1, 4, 5, 2), (1, 3, 3, 2), 0),
    (L.AveragePooling2D, {}, (2, 4, 6, 3), (2, 2, 3, 3), 0),
    (
        L.AveragePooling2D,
        {"pool_size": 3, "strides": 2, "padding": "same"},
        (2, 5, 6, 2),
        (2, 3, 3, 2),
        0,
    ),
    (L.GlobalAveragePooling2D, {}, (2, 3, 4, 5), (2, 5), 0),
    (L.GlobalAveragePooling2D, {"keepdims": True}, (2, 3, 4, 5), (2, 1, 1, 5), 0),
    (L.Flatten, {}, (2, 3, 4, 2), (2, 24), 0),
    (L.Reshape, {"target_shape": (4, -1)}, (2, 3, 4), (2, 4, 3), 0),
    (L.Dropout, {"rate": 0.5}, (2, 6), (2, 6), 0),
    (L.ReLU, {}, (2, 7), (2, 7), 0),
    (L.ReLU, {"max_value": 0.5, "negative_slope": 0.1, "threshold": -0.2}, (2, 7), (2, 7), 0),
    (L.Softmax, {}, (2, 5), (2, 5), 0),
    (L.Softmax, {"axis": 1}, (2, 4, 3), (2, 4, 3), 0),
    (L.BatchNormalization, {}, (6, 4), (6, 4), 16),
    (L.BatchNormalization, {"center": False, "momentum": 0.9}, (3, 2, 2, 3), (3, 2, 2, 3), 9),
] + [
    (L.Activation, {"activation": name}, (3, 4), (3, 4), 0)
    for name in ("relu", "relu6", "sigmoid", "tanh", "softmax", "linear", "elu", "leaky_relu")
]


def _case_id(case):
    cls, kwargs, *_ = case
    return f"{cls.__name__}-" + ",".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_layer_inference(case):
    cls, kwargs, input_shape, output_shape, params = case
    run_layer_test(
        cls, kwargs, input_shape, expected_output_shape=output_shape, expected_num_params=params
    )


TRAINING_CASES = [
    (L.BatchNormalization, {}, (6, 4), (6, 4), 16),
    (L.BatchNormalization, {"scale": False, "axis": -1}, (3, 2, 2, 3), (3, 2, 2, 3), 9),
    (L.Dense, {"units": 3, "activation": "elu"}, (4, 2), (4, 3), 9),
]


@pytest.mark.parametrize("case", TRAINING_CASES, ids=[_case_id(c) for c in TRAINING_CASES])
def test_layer_training_mode_gradients(case):
    cls, kwargs, input_shape, output_shape, params = case
    run_layer_test(
        cls,
        kwargs,
        input_shape,
        expected_output_shape=output_shape,
        expected_num_params=params,
        training=True,
    )


def test_batch_normalization_weights_and_moving_statistics():
    layer = run_layer_test(
        L.BatchNormalization,
        {"momentum": 0.5},
        (8, 3),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=2,
    )
    assert [w.name.split("/")[-1] for w in layer.weights] == [
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
    ]
    x = np.random.default_rng(1).normal(5.0, 3.0, size=(1000, 3)).astype(np.float32)
    before_mean, before_var = layer.moving_mean.numpy().copy(), layer.moving_variance.numpy().copy()
    layer(x, training=True)
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), 0.5 * before_mean + 0.5 * x.mean(0), rtol=1e-5
    )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), 0.5 * before_var + 0.5 * x.var(0), rtol=1e-5
    )
    # Inference uses the moving statistics, not the batch's.
    expected = (x - layer.moving_mean.numpy()) / np.sqrt(layer.moving_variance.numpy() + 1e-3)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_dropout_training_scales_kept_units_and_inference_is_identity():
    x = np.ones((200, 50), dtype=np.float32)
    layer = L.Dropout(0.25, seed=3)
    y = layer(x, training=True).numpy()
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)


@pytest.mark.parametrize("noise_shape", [None, (1, None)], ids=["per sample", "batch-wide"])
def test_dropout_masks_drawn_for_a_step_do_not_depend_on_how_the_batch_is_split(noise_shape):
    x = np.random.default_rng(0).normal(size=(6, 40)).astype(np.float32)
    whole = L.Dropout(0.5, noise_shape=noise_shape, seed=11)
    expected = whole(x, training=True).numpy()  # drawn at the call, for the whole batch
    split = L.Dropout(0.5, noise_shape=noise_shape, seed=11)
    split(x[:1])  # builds it: one sample's shape is known
    split.start_step(len(x))
    parts = []
    for start, stop in [(0, 2), (2, 6)]:
        with batch_part(start):
            parts.append(split(x[start:stop], training=True).numpy())
    split.end_step()
    np.testing.assert_array_equal(np.concatenate(parts), expected)
    assert split._step_keep is None


def test_keras_default_names_and_serialized_form():
    conv = L.Conv2D(8, 5)
    assert conv.name.startswith("conv2d")
    config = el.layers.serialize(conv)
    assert config["class_name"] == "Conv2D"
    assert config["config"]["kernel_size"] == [5, 5]
    assert config["config"]["kernel_initializer"] == {
        "class_name": "GlorotUniform",
        "config": {"seed": None},
    }
    assert L.MaxPooling2D().name.startswith("max_pooling2d")


@pytest.mark.parametrize(
    "layer, x, message",
    [
        (L.Dense(3), np.zeros((4,)), "Dense 'dense.*' expects input of rank >= 2"),
        (L.Conv2D(2, 3), np.zeros((2, 5, 5)), "expects 4-D input"),
        (L.Conv2D(2, 5), np.zeros((1, 3, 3, 1)), "at least \\(5, 5\\)"),
        (L.MaxPooling2D(), np.zeros((2, 4)), "expects 4-D input"),
        (L.Reshape((5,)), np.zeros((2, 6)), "5 values per sample"),
    ],
)
def test_bad_inputs_give_clear_errors(layer, x, message):
    with pytest.raises(ValueError, match=message):
        layer(x)


def test_built_layer_rejects_a_different_input_size():
    layer = L.Dense(3)
    layer(np.zeros((2, 4)))
    with pytest.raises(
        ValueError, match="last axis of size 4, received input of shape \\(None, 5\\)"
    ):
        layer(np.zeros((2, 5)))


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: L.Dense(0), "Received: units=0"),
        (lambda: L.Conv2D(4, 3, padding="full"), "Received: padding='full'"),
        (lambda: L.Conv2D(4, 3, dilation_rate=2), "dilation_rate=1"),
        (lambda: L.Dense(3, activation="swishy"), "Known activations: .*relu"),
        (lambda: L.Dense(3, kernel_initializer="nope"), "Known initializers"),
        (lambda: L.Dropout(1.0), "Received: rate=1.0"),
        (lambda: L.Dense(3, kernel_constraint="max_norm"), "kernel_constraint"),
        (lambda: L.Dense(3, kernel_regularizer="l3"), "Unknown regularizer 'l3'"),
    ],
)
def test_bad_arguments_give_clear_errors(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_unknown_layer_class_lists_supported_ones():
    with pytest.raises(ValueError, match="Unknown layer class 'Foo'. Supported layers: .*Conv2D"):
        el.layers.deserialize({"class_name": "Foo", "config": {}})


def test_set_weights_checks_count_and_shapes_before_writing():
    layer = L.Dense(2)
    layer(np.zeros((1, 3)))
    before = layer.get_weights()
    with pytest.raises(ValueError, match="has shape \\(2,\\), received an array of shape \\(3,\\)"):
        layer.set_weights([np.ones((3, 2)), np.ones(3)])
    np.testing.assert_array_equal(layer.get_weights()[0], before[0])
    with pytest.raises(ValueError, match="has 2 weights"):
        layer.set_weights([np.ones((3, 2))])


def test_weight_regularizers_add_keras_penalties_to_the_loss_and_round_trip():
    el.random.set_random_seed(0)
    dense = L.Dense(2, kernel_regularizer=el.regularizers.L2(0.1), bias_regularizer="l1")
    model = el.Sequential([L.Input((3,)), dense])
    model.compile(optimizer=el.optimizers.SGD(0.0 + 1e-9), loss="mse")
    x, y = np.ones((4, 3), dtype=np.float32), np.zeros((4, 2), dtype=np.float32)
    dense.bias.assign([0.5, -1.0])
    kernel = dense.kernel.numpy()
    prediction = x @ kernel + dense.bias.numpy()
    expected = (prediction**2).mean() + 0.1 * (kernel**2).sum() + 0.01 * 1.5
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-5)
    config = dense.get_config()
    assert config["kernel_regularizer"] == {"class_name": "L2", "config": {"l2": 0.1}}
    assert config["bias_regularizer"] == {"class_name": "L1", "config": {"l1": 0.01}}
    clone = L.Dense.from_config(config)
    assert isinstance(clone._regularizers["kernel"], el.regularizers.L2)
    separable = L.SeparableConv2D(2, 3, depthwise_regularizer="l2", pointwise_regularizer="l1")
    separable(np.zeros((1, 5, 5, 2), dtype=np.float32))
    assert len(separable.regularization_losses()) == 2
    assert separable.get_config()["depthwise_regularizer"]["class_name"] == "L2"


def test_regularized_weights_get_the_penalty_gradient():
    el.random.set_random_seed(0)
    model = el.Sequential(
        [L.Input((2,)), L.Dense(1, use_bias=False, kernel_regularizer=el.regularizers.L2(0.5))]
    )
    model.compile(optimizer=el.optimizers.SGD(0.1), loss="mse")
    kernel = model.get_weights()[0]
    x, y = np.zeros((3, 2), dtype=np.float32), np.zeros((3, 1), dtype=np.float32)
    model.train_on_batch(x, y)  # the data gradient is zero; only the penalty 0.5*|w|^2 pulls
    np.testing.assert_allclose(model.get_weights()[0], kernel - 0.1 * 2 * 0.5 * kernel, rtol=1e-6)
