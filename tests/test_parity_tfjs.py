"""Parity of edgelearn with TensorFlow.js, the independent reference (tests/tfjs/reference.js).

Both sides compute every case in float32 from identical inputs and weights:
- layers: the output y, the gradients of sum(y * dy) with respect to the input and the trainable
  weights, and all weights after the call (BatchNormalization updates its moving statistics);
- activation functions: value and gradient;
- losses: the batch mean (Keras's 'sum_over_batch_size') and its gradient w.r.t. y_pred;
- optimizers: the weights after each of three steps with given gradients;
- the TF.js codelab CNN trained with three train_on_batch steps (Adam, then SGD).

Tolerance: elementwise |edgelearn - tfjs| <= TOL + TOL * |tfjs| (numpy.testing.assert_allclose,
rtol = atol = TOL = 1e-5). That is ~80 float32 ulps of a unit-sized value: room for different
summation orders in matmuls, convolutions and reductions of a few hundred terms (the largest
difference measured, in a convolution's kernel gradient, is 2.4e-6 in those units), and far
below what a formula error produces. The model case uses MODEL_TOL, justified where it is
defined.

Where TF.js departs from Keras 3 or cannot compute a case (Adam's epsilon placement, centered
RMSprop's epsilon sign, ReLU arguments and activations it lacks, its 'same' average-pooling
gradient, batch-norm gradients it cannot take), reference.js computes the Keras 3 definition from
other TF.js ops and names the substitution in the case's "emulated" field; its comments give the
formulas. Each substitution was checked against a float64 NumPy evaluation of the Keras formula.

All TF.js cases run in one Node process (the module-scoped `tfjs` fixture). Each case draws its
data from its own fixed seed, so adding a case changes no other case.
"""

import numpy as np
import pytest
from parity_helpers import assert_close, case_rng, check_layer_case, normal, reference
from tfjs_reference import run_tfjs

import edgelearn as el
from edgelearn.engine import Tensor, Variable

# Three training steps of the CNN chain forward and backward passes through convolutions whose
# kernel gradients sum 4608 products (8 samples x 24 x 24 positions) in an order that differs
# between the implementations, so gradients agree to ~1e-6 relative. Adam moves each weight by
# about lr * g / (|g| + eps'), which carries a small gradient's relative rounding error into an
# lr-sized step, and each later step starts from weights that already differ. Measured in the
# units of the tolerance formula: 3e-6 with Adam, 1e-7 with SGD; 1e-4 keeps a margin for other
# BLAS summation orders, while formula errors show far above it (moving Adam's epsilon to
# sqrt(v_hat) + eps alone gives 5e-3 here).
MODEL_TOL = 1e-4


def _keras_config(case_id, config):
    """`config` with the base keys Keras 3 serialises for every layer."""
    return {"name": case_id, "trainable": True, "dtype": "float32", **config}


def _layer_weights(class_name, config, input_shape, rng):
    """Random weights in Keras order, scaled so that activations stay of order one."""
    if class_name == "Dense":
        fan_in, units = input_shape[-1], config["units"]
        weights = [normal(rng, (fan_in, units), 1 / np.sqrt(fan_in))]
        if config["use_bias"]:
            weights.append(normal(rng, (units,), 0.1))
        return weights
    if class_name == "Conv2D":
        (kh, kw), cin, filters = config["kernel_size"], input_shape[-1], config["filters"]
        weights = [normal(rng, (kh, kw, cin, filters), 1 / np.sqrt(kh * kw * cin))]
        if config["use_bias"]:
            weights.append(normal(rng, (filters,), 0.1))
        return weights
    if class_name == "BatchNormalization":
        channels = input_shape[config["axis"]]
        weights = []
        if config["scale"]:
            weights.append(normal(rng, (channels,), 0.2, 1.0))
        if config["center"]:
            weights.append(normal(rng, (channels,), 0.2))
        moving_mean = normal(rng, (channels,), 0.5)
        moving_variance = rng.uniform(0.5, 1.5, (channels,)).astype(np.float32)
        return weights + [moving_mean, moving_variance]
    return []


def _layer_case(
    case_id, class_name, config, shape, out_shape, batch=2, training=False, scale=1.0, loc=0.0
):
    """A layer case on inputs of `shape` giving outputs of `out_shape` (batch excluded)."""
    rng = case_rng(case_id)
    config = _keras_config(case_id, config)
    input_shape = [None, *shape]
    return {
        "kind": "layer",
        "class_name": class_name,
        "config": config,
        "input_shape": input_shape,
        "weights": _layer_weights(class_name, config, input_shape, rng),
        "x": normal(rng, (batch, *shape), scale, loc),
        "dy": normal(rng, (batch, *out_shape)),
        "training": training,
    }


def _dense(case_id, units=4, activation="linear", use_bias=True, shape=(6,)):
    config = {"units": units, "activation": activation, "use_bias": use_bias}
    return _layer_case(case_id, "Dense", config, shape, (*shape[:-1], units), batch=3)


def _out_size(size, window, stride, padding):
    return -(-size // stride) if padding == "same" else (size - window) // stride + 1


def _conv_config(filters, kernel, stride, padding, use_bias=True, activation="linear"):
    return {
        "filters": filters,
        "kernel_size": [kernel, kernel],
        "strides": [stride, stride],
        "padding": padding,
        "data_format": "channels_last",
        "dilation_rate": [1, 1],
        "groups": 1,
        "activation": activation,
        "use_bias": use_bias,
    }


def _pool_config(pool, stride, padding):
    return {
        "pool_size": [pool, pool],
        "strides": [stride, stride],
        "padding": padding,
        "data_format": "channels_last",
    }


def _conv(case_id, kernel, stride, padding, size=9, use_bias=True, activation="linear"):
    config = _conv_config(4, kernel, stride, padding, use_bias, activation)
    out = _out_size(size, kernel, stride, padding)
    return _layer_case(case_id, "Conv2D", config, (size, size, 3), (out, out, 4))


def _pool(case_id, class_name, pool, stride, padding, size):
    config = _pool_config(pool, stride, padding)
    out = _out_size(size, pool, stride, padding)
    return _layer_case(case_id, class_name, config, (size, size, 3), (out, out, 3))


def _same_shape(case_id, class_name, config, shape, batch=2, training=False, scale=1.0, loc=0.0):
    return _layer_case(case_id, class_name, config, shape, shape, batch, training, scale, loc)


def _batch_norm(
    case_id, shape, training, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, batch=4
):
    config = {
        "axis": axis,
        "momentum": momentum,
        "epsilon": epsilon,
        "center": center,
        "scale": scale,
    }
    return _same_shape(case_id, "BatchNormalization", config, shape, batch, training, 2.0, 1.0)


def _relu(case_id, max_value=None, negative_slope=0.0, threshold=0.0):
    config = {"max_value": max_value, "negative_slope": negative_slope, "threshold": threshold}
    return _same_shape(case_id, "ReLU", config, (4, 5), scale=3.0)


ACTIVATIONS = ["relu", "relu6", "sigmoid", "tanh", "softmax", "linear", "elu", "leaky_relu"]

LAYER_CASES = [
    _dense("dense_linear"),
    _dense("dense_relu", activation="relu"),
    _dense("dense_sigmoid", activation="sigmoid"),
    _dense("dense_tanh", activation="tanh"),
    _dense("dense_softmax", units=5, activation="softmax"),
    _dense("dense_elu", activation="elu"),
    _dense("dense_relu_no_bias", activation="relu", use_bias=False),
    _dense("dense_linear_no_bias", units=3, use_bias=False),
    _dense("dense_rank3_tanh", activation="tanh", shape=(4, 6)),
    _conv("conv_k3_s1_valid", 3, 1, "valid"),
    _conv("conv_k3_s1_same", 3, 1, "same"),
    _conv("conv_k3_s2_valid", 3, 2, "valid"),
    _conv("conv_k3_s2_same_even", 3, 2, "same", size=8),
    _conv("conv_k3_s2_same_odd", 3, 2, "same", size=9),
    _conv("conv_k3_s1_same_no_bias", 3, 1, "same", use_bias=False),
    _conv("conv_k5_s1_valid_no_bias", 5, 1, "valid", use_bias=False),
    _conv("conv_k5_s1_same_relu", 5, 1, "same", activation="relu"),
    _conv("conv_k5_s2_valid_tanh", 5, 2, "valid", activation="tanh"),
    _conv("conv_k5_s2_same_no_bias", 5, 2, "same", size=8, use_bias=False),
    _pool("maxpool_p2_s2_valid_even", "MaxPooling2D", 2, 2, "valid", 8),
    _pool("maxpool_p2_s2_valid_odd", "MaxPooling2D", 2, 2, "valid", 7),
    _pool("maxpool_p2_s2_same_odd", "MaxPooling2D", 2, 2, "same", 7),
    _pool("maxpool_p3_s2_same_odd", "MaxPooling2D", 3, 2, "same", 7),
    _pool("maxpool_p3_s2_same_even", "MaxPooling2D", 3, 2, "same", 8),
    _pool("maxpool_p3_s2_valid", "MaxPooling2D", 3, 2, "valid", 7),
    _pool("avgpool_p2_s2_valid_even", "AveragePooling2D", 2, 2, "valid", 8),
    _pool("avgpool_p2_s2_valid_odd", "AveragePooling2D", 2, 2, "valid", 7),
    _pool("avgpool_p2_s2_same_odd", "AveragePooling2D", 2, 2, "same", 7),
    _pool("avgpool_p3_s2_same_odd", "AveragePooling2D", 3, 2, "same", 7),
    _pool("avgpool_p3_s2_same_even", "AveragePooling2D", 3, 2, "same", 8),
    _pool("avgpool_p3_s2_valid", "AveragePooling2D", 3, 2, "valid", 7),
    _layer_case(
        "global_avgpool",
        "GlobalAveragePooling2D",
        {"data_format": "channels_last", "keepdims": False},
        (5, 6, 4),
        (4,),
    ),
    _layer_case("flatten", "Flatten", {"data_format": "channels_last"}, (3, 4, 2), (24,)),
    _layer_case("reshape", "Reshape", {"target_shape": [6, 4]}, (3, 4, 2), (6, 4)),
    _layer_case("reshape_infer", "Reshape", {"target_shape": [-1, 2]}, (3, 4, 2), (12, 2)),
    _same_shape("dropout_inference", "Dropout", {"rate": 0.5, "seed": 1}, (4, 5)),
    _same_shape(
        "dropout_rate0_training", "Dropout", {"rate": 0.0, "seed": 1}, (4, 5), training=True
    ),
    _same_shape("dropout_inference_4d", "Dropout", {"rate": 0.3, "seed": 1}, (3, 3, 2)),
    *[
        # Scaled so that relu6 saturates and softmax/sigmoid leave their linear range.
        _same_shape(f"activation_{name}", "Activation", {"activation": name}, (4, 5), scale=4.0)
        for name in ACTIVATIONS
    ],
    _relu("relu_default"),
    _relu("relu_max_value_6", max_value=6.0),
    _relu("relu_max_value_1.5", max_value=1.5),
    _relu("relu_negative_slope", negative_slope=0.1),
    _relu("relu_threshold", threshold=0.5),
    _relu("relu_slope_max_value", max_value=3.0, negative_slope=0.2),
    _relu("relu_all_arguments", max_value=2.0, negative_slope=0.1, threshold=0.5),
    _same_shape("softmax_last_axis", "Softmax", {"axis": -1}, (5,), batch=3, scale=3.0),
    _same_shape("softmax_axis1_rank3", "Softmax", {"axis": 1}, (3, 4), scale=3.0),
    _same_shape("softmax_last_axis_rank3", "Softmax", {"axis": -1}, (3, 4), scale=3.0),
    _batch_norm("batchnorm_inference_4d", (4, 4, 3), training=False),
    _batch_norm("batchnorm_training_4d", (4, 4, 3), training=True, momentum=0.9),
    _batch_norm("batchnorm_training_2d", (5,), training=True, batch=6),
    _batch_norm("batchnorm_training_axis1", (3, 4, 4), training=True, axis=1, momentum=0.8),
    _batch_norm("batchnorm_training_epsilon", (4, 4, 3), training=True, epsilon=0.1),
    _batch_norm(
        "batchnorm_inference_no_center_scale", (4, 4, 3), training=False, center=False, scale=False
    ),
]


def _activation_case(name):
    rng = case_rng(f"fn_{name}")
    return {
        "kind": "activation",
        "name": name,
        "x": normal(rng, (4, 5), 4.0),
        "dy": normal(rng, (4, 5)),
    }


ACTIVATION_CASES = {f"fn_{name}": _activation_case(name) for name in ACTIVATIONS}


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _one_hot(labels, classes):
    return np.eye(classes, dtype=np.float32)[labels]


def _loss_case(case_id, loss, from_logits, y_true, y_pred):
    return case_id, {
        "kind": "loss",
        "loss": loss,
        "from_logits": from_logits,
        "y_true": np.asarray(y_true, np.float32),
        "y_pred": np.asarray(y_pred, np.float32),
    }


def _loss_cases():
    rng = case_rng("losses")
    labels = np.array([0, 3, 1, 2, 0, 4])
    # Rows 0-2 are ordinary; row 3 gives the true class probability 0 (clipped to epsilon);
    # row 4 is certain of the true class (clipped to 1 - epsilon, so no gradient reaches it);
    # row 5 does not sum to one, which Keras normalises away before clipping.
    probs = _softmax(normal(rng, (6, 5), 2.0))
    probs[3] = [0.1, 0.5, 0.0, 0.3, 0.1]
    probs[4] = [1.0, 0.0, 0.0, 0.0, 0.0]
    probs[5] = [0.2, 0.4, 0.6, 0.1, 0.3]
    soft = _one_hot(labels, 5)
    soft[5] = [0.1, 0.1, 0.6, 0.1, 0.1]
    # Ordinary logits plus a saturated row, which Keras's log-softmax formulation keeps finite.
    logits = normal(rng, (6, 5), 3.0)
    logits[4] = [60.0, -60.0, 0.0, 30.0, -5.0]
    logits[1] = [-40.0, 1.0, 2.0, -40.0, 3.0]
    # Binary: exact 0 and 1, a value below epsilon and values near the clip bounds on both sides.
    bin_true = (rng.uniform(size=(4, 3)) > 0.5).astype(np.float32)
    bin_true[3, 2] = 0.25
    bin_pred = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
    bin_pred[0] = [0.0, 1.0, 1e-9]
    bin_true[0] = [1.0, 0.0, 1.0]
    bin_pred[1, 0], bin_true[1, 0] = 0.99999, 1.0
    bin_pred[2, 1], bin_true[2, 1] = 1e-6, 0.0
    bin_logits = normal(rng, (4, 3), 3.0)
    bin_logits[0] = [40.0, -40.0, 0.5]
    reg_true = normal(rng, (5, 3))
    reg_pred = normal(rng, (5, 3))
    return dict(
        [
            _loss_case("cce_probs", "categorical_crossentropy", False, soft, probs),
            _loss_case("cce_logits", "categorical_crossentropy", True, soft, logits),
            _loss_case("sparse_cce_probs", "sparse_categorical_crossentropy", False, labels, probs),
            _loss_case(
                "sparse_cce_logits", "sparse_categorical_crossentropy", True, labels, logits
            ),
            _loss_case("bce_probs", "binary_crossentropy", False, bin_true, bin_pred),
            _loss_case("bce_logits", "binary_crossentropy", True, bin_true, bin_logits),
            _loss_case("mse", "mean_squared_error", False, reg_true, reg_pred),
            _loss_case("mae", "mean_absolute_error", False, reg_true, reg_pred),
        ]
    )


LOSS_CASES = _loss_cases()
LOSS_CLASSES = {
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "binary_crossentropy": "BinaryCrossentropy",
}


def _optimizer_case(case_id, name, config, grad_scale=0.5):
    rng = case_rng(case_id)
    weights = [normal(rng, (3, 4)), normal(rng, (4,))]
    grads = [[normal(rng, w.shape, grad_scale) for w in weights] for _ in range(3)]
    return {
        "kind": "optimizer",
        "optimizer": name,
        "config": config,
        "weights": weights,
        "grads": grads,
    }


OPTIMIZER_CASES = {
    "sgd": _optimizer_case("sgd", "sgd", {"learning_rate": 0.1}),
    "sgd_momentum": _optimizer_case("sgd_momentum", "sgd", {"learning_rate": 0.1, "momentum": 0.9}),
    "sgd_nesterov": _optimizer_case(
        "sgd_nesterov", "sgd", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}
    ),
    "adam": _optimizer_case("adam", "adam", {"learning_rate": 0.01}),
    "adam_betas": _optimizer_case(
        "adam_betas", "adam", {"learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.95}
    ),
    # With epsilon comparable to |g|, Keras's epsilon placement differs from TF.js's by far
    # more than the tolerance, so this case pins the Keras 3 formula.
    "adam_large_epsilon": _optimizer_case(
        "adam_large_epsilon", "adam", {"learning_rate": 0.05, "epsilon": 0.1}, 0.1
    ),
    "rmsprop": _optimizer_case("rmsprop", "rmsprop", {"learning_rate": 0.01}),
    "rmsprop_momentum": _optimizer_case(
        "rmsprop_momentum", "rmsprop", {"learning_rate": 0.01, "rho": 0.8, "momentum": 0.9}
    ),
    "rmsprop_centered": _optimizer_case(
        "rmsprop_centered", "rmsprop", {"learning_rate": 0.01, "centered": True}
    ),
    "rmsprop_centered_momentum": _optimizer_case(
        "rmsprop_centered_momentum",
        "rmsprop",
        {"learning_rate": 0.01, "momentum": 0.5, "centered": True, "epsilon": 1e-3},
    ),
    "adagrad": _optimizer_case("adagrad", "adagrad", {"learning_rate": 0.1}),
    "adagrad_accumulator": _optimizer_case(
        "adagrad_accumulator", "adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.5}
    ),
}
OPTIMIZER_CLASSES = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop", "adagrad": "Adagrad"}


def _el_optimizer(name, config):
    return getattr(el.optimizers, OPTIMIZER_CLASSES[name])(**config)


# The CNN of the TF.js "handwritten digit recognition" codelab.
CNN_LAYERS = [
    {
        "class_name": "Conv2D",
        "config": _keras_config("conv1", _conv_config(8, 5, 1, "valid", activation="relu")),
    },
    {"class_name": "MaxPooling2D", "config": _keras_config("pool1", _pool_config(2, 2, "valid"))},
    {
        "class_name": "Conv2D",
        "config": _keras_config("conv2", _conv_config(16, 5, 1, "valid", activation="relu")),
    },
    {"class_name": "MaxPooling2D", "config": _keras_config("pool2", _pool_config(2, 2, "valid"))},
    {"class_name": "Flatten", "config": _keras_config("flatten", {"data_format": "channels_last"})},
    {
        "class_name": "Dense",
        "config": _keras_config("logits", {"units": 10, "activation": "softmax", "use_bias": True}),
    },
]
CNN_INPUT = (None, 28, 28, 1)
CNN_STEPS = 3


def _model_case(case_id, optimizer, config):
    rng = case_rng(case_id)
    shapes = [(5, 5, 1, 8), (8,), (5, 5, 8, 16), (16,), (256, 10), (10,)]
    weights = [
        # He-normal kernels and small biases keep about half of the ReLUs active.
        normal(rng, shape, np.sqrt(2 / np.prod(shape[:-1])) if len(shape) > 1 else 0.05)
        for shape in shapes
    ]
    batch = 8
    # Pixels strictly inside (0, 1): all-zero patches would give equal pooled activations, ties
    # that the two max-pool backward passes may route to different positions.
    x = rng.uniform(0.01, 1.0, (batch, 28, 28, 1)).astype(np.float32)
    y = _one_hot(rng.integers(0, 10, batch), 10)
    topology = {
        "class_name": "Sequential",
        "config": {
            "name": case_id,
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {
                        "name": "pixels",
                        "batch_shape": list(CNN_INPUT),
                        "dtype": "float32",
                    },
                },
                *CNN_LAYERS,
            ],
        },
    }
    return {
        "kind": "model",
        "model": topology,
        "weights": weights,
        "optimizer": {"name": optimizer, "config": config},
        "loss": "categorical_crossentropy",
        "x": x,
        "y": y,
        "steps": CNN_STEPS,
    }


MODEL_CASES = {
    "cnn_adam": _model_case("cnn_adam", "adam", {"learning_rate": 0.01}),
    "cnn_sgd": _model_case("cnn_sgd", "sgd", {"learning_rate": 0.1}),
}

CASES = {
    **{case["config"]["name"]: case for case in LAYER_CASES},
    **ACTIVATION_CASES,
    **LOSS_CASES,
    **OPTIMIZER_CASES,
    **MODEL_CASES,
}


@pytest.fixture(scope="module")
def tfjs():
    """TF.js results for every case of this module, from one Node process."""
    return dict(zip(CASES, run_tfjs(list(CASES.values()))))


@pytest.mark.parametrize("case_id", [case["config"]["name"] for case in LAYER_CASES])
def test_layer_matches_tfjs(tfjs, case_id):
    check_layer_case(CASES[case_id], reference(tfjs, case_id))


@pytest.mark.parametrize("case_id", list(ACTIVATION_CASES))
def test_activation_matches_tfjs(tfjs, case_id):
    case = CASES[case_id]
    ref = reference(tfjs, case_id)
    fn = el.activations.get(case["name"])
    x = Tensor(case["x"], requires_grad=True)
    y = fn(x)
    y.backward(case["dy"])
    assert_close(y.numpy(), ref["y"], "y")
    assert_close(x.grad, ref["dx"], "dx")


@pytest.mark.parametrize("case_id", list(LOSS_CASES))
def test_loss_matches_tfjs(tfjs, case_id):
    case = CASES[case_id]
    ref = reference(tfjs, case_id)
    assert ref["reduction"] == "sum_over_batch_size"
    if case["from_logits"]:
        loss = getattr(el.losses, LOSS_CLASSES[case["loss"]])(from_logits=True)
    else:
        loss = el.losses.get(case["loss"])
    y_pred = Tensor(case["y_pred"], requires_grad=True)
    value = loss(case["y_true"], y_pred)
    value.backward()
    assert_close(value.numpy(), np.float32(ref["value"]), "loss value")
    assert_close(y_pred.grad, ref["grad"], "gradient w.r.t. y_pred")


@pytest.mark.parametrize("case_id", list(OPTIMIZER_CASES))
def test_optimizer_matches_tfjs(tfjs, case_id):
    case = CASES[case_id]
    ref = reference(tfjs, case_id)
    optimizer = _el_optimizer(case["optimizer"], case["config"])
    variables = [Variable(w.copy(), name=f"w{i}") for i, w in enumerate(case["weights"])]
    for step, (grads, expected) in enumerate(zip(case["grads"], ref["weights"]), start=1):
        optimizer.apply_gradients(list(zip(grads, variables)))
        for variable, want in zip(variables, expected):
            assert_close(variable.numpy(), want, f"{variable.name} after step {step}")


@pytest.mark.parametrize("case_id", list(MODEL_CASES))
def test_codelab_cnn_training_matches_tfjs(tfjs, case_id):
    case = CASES[case_id]
    ref = reference(tfjs, case_id)
    model = el.Sequential([el.layers.deserialize(layer) for layer in CNN_LAYERS])
    model.build(CNN_INPUT)
    model.set_weights(case["weights"])
    model.compile(optimizer=_el_optimizer(**case["optimizer"]), loss=case["loss"])
    x, y = case["x"], case["y"]
    assert_close(model.predict(x, verbose=0), ref["predict_before"], "predictions before training")
    losses = [float(model.train_on_batch(x, y)) for _ in range(case["steps"])]
    assert_close(losses, ref["losses"], "train_on_batch losses", MODEL_TOL)
    weights = model.get_weights()
    assert len(weights) == len(ref["weights"])
    for i, (got, expected) in enumerate(zip(weights, ref["weights"])):
        assert_close(got, expected, f"weight {i} after training", MODEL_TOL)
    assert_close(
        model.predict(x, verbose=0), ref["predict_after"], "predictions after training", MODEL_TOL
    )
