"""edgelearn.runtime.Predictor: model.predict's results with the batch norms folded once."""

import numpy as np
import pytest

import edgelearn as el
from edgelearn.models import folding
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
        [L.Input((8, 8, 2)), L.Conv2D(3, 3), L.BatchNormalization(), L.ReLU(), L.Flatten()]
    )
    model.layers[1].moving_variance.assign(np.full(3, 0.25))
    return model


@pytest.mark.parametrize("build", [_mobile_block, _sequential])
def test_predictor_predicts_what_the_model_predicts(build):
    model = build(0)
    x = np.random.default_rng(1).random((5, *model.input_shape[1:]), dtype=np.float32)
    predictor = Predictor(model)
    expected = model.predict(x, batch_size=2)
    np.testing.assert_allclose(predictor.predict(x, batch_size=2), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(predictor.predict_on_batch(x), expected, rtol=1e-6, atol=1e-6)
    assert len(predictor._folded) > 0  # it kept folded weights


def test_predictor_keeps_the_weights_of_its_first_prediction_and_the_model_does_not():
    model = _mobile_block(0)
    x = np.random.default_rng(1).random((2, 10, 10, 3), dtype=np.float32)
    predictor = Predictor(model)
    before = predictor.predict(x)
    norm = next(layer for layer in model.layers if isinstance(layer, L.BatchNormalization))
    norm.moving_mean.assign(norm.moving_mean.numpy() + 1.0)
    changed = model.predict(x)
    assert not np.allclose(changed, before, atol=1e-4)  # the model sees the new weights ...
    np.testing.assert_array_equal(predictor.predict(x), before)  # ... the snapshot does not
    np.testing.assert_allclose(Predictor(model).predict(x), changed, rtol=1e-6, atol=1e-6)


def test_folded_weights_are_kept_only_inside_the_predictor():
    model = _sequential(0)
    x = np.ones((1, 8, 8, 2), dtype=np.float32)
    store: dict = {}
    with folding.keep_folded_weights(store):
        model.predict(x)
    assert len(store) == 1
    model.predict(x)  # outside the block nothing is kept
    assert len(store) == 1


def test_predictor_rejects_what_is_not_a_model():
    with pytest.raises(TypeError, match="Received: model="):
        Predictor(lambda x: x)
