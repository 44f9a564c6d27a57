"""The real pre-trained MobileNetV2 that npm nsfwjs@4.4.0 ships: it loads in edgelearn, predicts
like TensorFlow.js on real photos, and survives a save/reload bit for bit."""

import numpy as np
import pytest
from assets import photo_array
from tfjs_reference import encode, run_layers_model

import edgelearn as el
from edgelearn.applications import nsfwjs
from edgelearn.utils.files import find_node_package

pytestmark = pytest.mark.skipif(
    find_node_package("nsfwjs") is None, reason="node_modules/nsfwjs is missing: run `npm ci`"
)

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")


@pytest.fixture(scope="module")
def folder():
    return nsfwjs.extract_model("mobilenet_v2")


@pytest.fixture(scope="module")
def model(folder):
    return el.load_model(folder)


@pytest.fixture(scope="module")
def photos():
    # nsfwjs feeds 224x224 RGB scaled to [0, 1].
    return np.stack([photo_array(name, (224, 224)) for name in PHOTOS]) / np.float32(255)


def test_real_mobilenet_v2_topology(model):
    assert len(model.layers) == 162 and model.count_params() == 2_619_461
    counts = {}
    for layer in model.layers:
        counts[type(layer).__name__] = counts.get(type(layer).__name__, 0) + 1
    assert counts["DepthwiseConv2D"] == 17 and counts["Add"] == 10 and counts["ZeroPadding2D"] == 5
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (
        None,
        len(nsfwjs.CLASSES),
    )


def test_predictions_match_tfjs_on_real_photos(folder, model, photos, tmp_path):
    ours = model.predict(photos)
    (result,) = run_layers_model(
        "predict", [{"model_dir": str(folder), "inputs": [encode(photos)]}], tmp_path
    )
    theirs = result["outputs"][0]
    assert ours.shape == theirs.shape == (len(PHOTOS), 5)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    # All four are ordinary photos: the 'Neutral' class should be among the top two.
    top_two = np.argsort(ours, axis=1)[:, -2:]
    assert all(nsfwjs.CLASSES.index("Neutral") in row for row in top_two)


def test_save_reload_is_bit_exact(model, photos, tmp_path):
    model.save(tmp_path / "copy")
    reloaded = el.load_model(tmp_path / "copy")
    for a, b in zip(reloaded.get_weights(), model.get_weights()):
        assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(reloaded.predict(photos[:1]), model.predict(photos[:1]))
