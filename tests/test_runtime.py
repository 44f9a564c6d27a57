"""edgelearn.runtime.Predictor and its InferencePlan: model.predict's results from a plan made
once, with the batch norms folded once."""

import numpy as np
import pytest

import edgelearn as el
from edgelearn.engine import jit
from edgelearn.runtime import Predictor

L = el.layers


def _mobile_block(seed):
    """A MobileNetV2-style block: padding, depthwise, 1x1 convolutions, batch norms, ReLU6."""
    el.random.set_random_seed(seed)
    inputs = L.Input((10, 10, 3))
    x = L.Conv2D(8, 1, use_bias=False)(inputs)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = L.DepthwiseConv2D(3, strides=2, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.Conv2D(4, 1)(x)
    x = L.BatchNormalization()(x)
    outputs = L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(x))
    model = el.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # moving statistics away from 0 and 1, so folding matters
        if isinstance(layer, L.BatchNormalization):
            size = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(size=size))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=size))
            layer.gamma.assign(rng.uniform(0.5, 1.5, size=size))
    return model


def _sequential(seed):
    el.random.set_random_seed(seed)
    model = el.Sequential(
        [
            L.Input((8, 8, 2)),
            L.Conv2D(3, 3),
            L.BatchNormalization(),
            L.ReLU(),
            L.Flatten(),
            L.Dense(4, use_bias=False),
        ]
    )
    model.layers[1].moving_variance.assign(np.full(3, 0.25))
    return model


def _stem(seed):
    """Folded convolutions larger than 1x1: strided 'same' on one channel, 'valid' on four."""
    el.random.set_random_seed(seed)
    inputs = L.Input((9, 9, 1))
    x = L.Conv2D(4, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = L.ReLU(6.0)(L.BatchNormalization()(x))
    x = L.BatchNormalization()(L.Conv2D(20, 3)(x))
    model = el.Model(inputs, L.Flatten()(x))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
    return model


def _branches(seed):
    """Several inputs and outputs, a shared layer, a layer with a list input, an unfolded norm,
    a Dense on 4-D inputs."""
    el.random.set_random_seed(seed)
    a, b = L.Input((6, 6, 2)), L.Input((6, 6, 2))
    shared = L.Conv2D(3, 3, padding="same")
    x, y = shared(a), shared(b)
    norm = L.BatchNormalization()
    joined = L.Concatenate()([norm(x), L.ReLU(6.0)(y)])
    exposed = L.Dense(2, activation="relu")(L.Conv2D(2, 1)(joined))
    return el.Model([a, b], [L.GlobalMaxPooling2D()(exposed), L.Add()([x, y])])


def _inputs(model, n, seed=1):
    rng = np.random.default_rng(seed)
    shapes = [t.shape for t in model.inputs] if hasattr(model, "inputs") else [model.input_shape]
    xs = [rng.random((n, *shape[1:]), dtype=np.float32) for shape in shapes]
    return xs[0] if len(xs) == 1 else xs


@pytest.fixture(params=["numpy", "numba"])
def engine_kernels(request):
    if request.param == "numba":
        pytest.importorskip("numba")
    jit.set_kernels(request.param)
    yield request.param
    jit.set_kernels("auto")


@pytest.mark.parametrize("build", [_mobile_block, _sequential, _branches, _stem])
def test_predictor_predicts_what_the_model_predicts(build, engine_kernels):
    model = build(0)
    x = _inputs(model, 5)
    predictor = Predictor(model)
    expected = model.predict(x, batch_size=2)
    for actual in (predictor.predict(x, batch_size=2), predictor.predict_on_batch(x)):
        for a, e in zip(actual if isinstance(actual, list) else [actual],
                        expected if isinstance(expected, list) else [expected]):  # fmt: skip
            np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6)


def test_the_plan_frees_what_no_later_step_reads():
    plan = Predictor(_mobile_block(0)).plan
    read_later = set()
    for step in reversed(plan.steps):
        assert not set(step.release) & read_later  # nothing released is read again
        read_later |= set(step.inputs)
    released = {slot for step in plan.steps for slot in step.release}
    assert released | set(plan.output_slots) >= read_later - set(plan.input_slots)


def test_predictor_keeps_the_weights_it_was_made_with_and_the_model_does_not():
    model = _mobile_block(0)
    x = np.random.default_rng(1).random((2, 10, 10, 3), dtype=np.float32)
    predictor = Predictor(model)
    before = predictor.predict(x)
    norm = next(layer for layer in model.layers if isinstance(layer, L.BatchNormalization))
    norm.moving_mean.assign(norm.moving_mean.numpy() + 1.0)  # folded into a convolution
    dense = next(layer for layer in model.layers if isinstance(layer, L.Dense))
    dense.kernel.assign(dense.kernel.numpy() * 2.0)  # a layer the plan calls as it is
    changed = model.predict(x)
    assert not np.allclose(changed, before, atol=1e-4)  # the model sees the new weights ...
    np.testing.assert_array_equal(predictor.predict(x), before)  # ... the snapshot does not
    np.testing.assert_allclose(Predictor(model).predict(x), changed, rtol=1e-6, atol=1e-6)


def test_a_predictor_follows_the_kernels_chosen_after_it_was_made(monkeypatch):
    # The plan prepares a depthwise step per input shape and kernel choice.
    pytest.importorskip("numba")
    monkeypatch.setattr(jit, "MIN_ELEMENTS", 0)
    model = _mobile_block(0)
    x = np.random.default_rng(1).random((3, 10, 10, 3), dtype=np.float32)
    predictor, launched = Predictor(model), []
    compiled = jit._load().depthwise3x3_inference

    def counted(*args):
        launched.append(args[-2:])
        return compiled(*args)

    monkeypatch.setattr(jit._module, "depthwise3x3_inference", counted)
    try:
        results = []
        for choice in ("numba", "numpy", "numba"):
            jit.set_kernels(choice)
            results.append(predictor.predict(x, batch_size=2))  # batches of 2 and 1
    finally:
        jit.set_kernels("auto")
    assert launched == [(0, 10), (0, 5), (0, 10), (0, 5)]  # output rows; none with "numpy"
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(results[2], results[0])


def test_predictor_rejects_what_is_not_a_model_and_a_model_without_weights():
    with pytest.raises(TypeError, match="Received: model="):
        Predictor(lambda x: x)
    model = el.Sequential([L.Dense(3)])  # its input size, hence its weights, not known yet
    with pytest.raises(ValueError, match="has none yet.*Received: an unbuilt model"):
        Predictor(model)
    model.predict(np.ones((2, 5), dtype=np.float32))
    assert Predictor(model).predict(np.ones((2, 5), dtype=np.float32)).shape == (2, 3)


def test_predictor_adds_arrays_of_different_ranks_as_the_layer_does():
    # Keras' Add inserts missing axes after the batch axis; the plan's fast path only takes
    # inputs of one rank and leaves these to the layer.
    a, b = L.Input((4,)), L.Input((3, 4))
    model = el.Model([a, b], L.Add()([a, b]))
    x = [np.arange(8, dtype=np.float32).reshape(2, 4), np.ones((2, 3, 4), dtype=np.float32)]
    np.testing.assert_array_equal(Predictor(model).predict(x), model.predict(x))
    assert Predictor(model).predict(x).shape == (2, 3, 4)
