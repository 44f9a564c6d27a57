"""TransferRecognizer: transfer to unseen digits, saving for TF.js, serialized examples, errors.

Accuracy floor (real digits): a small CNN trained for 5 epochs on the digits 0-5 of the local
MNIST copy is the base (32-dimensional embeddings). A softmax head trained for 60 epochs on 20
examples of each of the digits 6-9 classifies the 1,202 test digits 6-9 with accuracy 0.869 at
these seeds (0.85-0.87 over five seeds); with a hidden layer, a quarter of the examples held out
for validation and 4 epochs of fine-tuning of the base's last convolution, 0.846 (0.77-0.85).
The floor for both is 0.70, far above chance (0.25).

TF.js: the saved folder is loaded with ``tf.loadLayersModel`` in node (tests/tfjs/layers_model.js)
and must give the same probabilities to 1e-5, the tolerance of the other interop tests.
"""

import json
import struct

import numpy as np
import pytest
from tfjs_reference import encode, run_layers_model

import edgelearn as el
from edgelearn.applications.images import resize
from edgelearn.transfer import ExamplesFormatError, TransferRecognizer, load_labels
from edgelearn.transfer import recognizer as recognizer_module

RECOGNIZER_FLOOR = 0.70
TFJS_TOL = 1e-5
NEW_DIGITS = ("6", "7", "8", "9")


def _collect(recognizer, x, y, count, seed):
    rng = np.random.default_rng(seed)
    for digit in NEW_DIGITS:
        chosen = rng.permutation(np.flatnonzero(y == int(digit)))[:count]
        recognizer.collect_example(digit, x[chosen])


def _new_digits(x, y):
    keep = y >= 6
    return x[keep], [str(label) for label in y[keep]]


@pytest.fixture(scope="module")
def trained(digits, base):
    x_train, y_train, _, _ = digits
    el.random.set_random_seed(2)
    recognizer = TransferRecognizer(base, "new_digits", learning_rate=1e-2)
    _collect(recognizer, x_train, y_train, count=20, seed=0)
    history = recognizer.train(epochs=60, batch_size=16)
    return recognizer, history


def _tiny_base(shape=(8, 8, 1), filters=4):
    inputs = el.layers.Input(shape)
    return el.Model(
        inputs,
        el.layers.GlobalAveragePooling2D()(el.layers.Conv2D(filters, 3, activation="relu")(inputs)),
    )


# --------------------------------------------------------------------------- training
def test_transfer_to_unseen_digits_beats_the_floor(trained, digits):
    recognizer, history = trained
    _, _, x_test, y_test = digits
    x_new, y_new = _new_digits(x_test, y_test)
    result = recognizer.evaluate(x_new, y_new)
    assert result["accuracy"] > RECOGNIZER_FLOOR, f"accuracy {result['accuracy']:.3f}"
    assert result["labels"] == list(NEW_DIGITS) == recognizer.labels_
    matrix = result["confusion_matrix"]
    assert matrix.shape == (4, 4) and matrix.sum() == len(y_new)
    assert np.trace(matrix) / len(y_new) == pytest.approx(result["accuracy"])
    assert len(history.history["accuracy"]) == 60 == len(history.epoch)
    assert history.history["accuracy"][-1] > history.history["accuracy"][0]
    labels, probabilities = recognizer.predict(x_new[:50])
    # Only the recognizer's own labels come out: the base's six digits are gone.
    assert probabilities.shape == (50, 4) and recognizer.model_.output_shape == (None, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert labels == [NEW_DIGITS[i] for i in probabilities.argmax(axis=1)]
    label, single = recognizer.predict(x_new[0])
    assert label == labels[0]
    # A batch of one sums in another order than a batch of 50: float32 rounding apart.
    np.testing.assert_allclose(single, probabilities[0], rtol=0, atol=1e-6)


def test_fine_tuning_trains_a_copy_of_the_base_and_continues_the_history(digits, base):
    x_train, y_train, x_test, y_test = digits
    before = base.get_weights()
    el.random.set_random_seed(3)
    recognizer = TransferRecognizer(
        base, "tuned", head_units=(16,), dropout=0.1, learning_rate=1e-2
    )
    _collect(recognizer, x_train, y_train, count=20, seed=3)
    history = recognizer.train(
        epochs=60, batch_size=16, validation_split=0.25, fine_tuning_epochs=4, fine_tuning_layers=1
    )
    assert history.epoch == list(range(64))
    assert len(history.history["val_accuracy"]) == 64 == len(history.history["accuracy"])
    x_new, y_new = _new_digits(x_test, y_test)
    accuracy = recognizer.evaluate(x_new, y_new)["accuracy"]
    assert accuracy > RECOGNIZER_FLOOR, f"accuracy {accuracy:.3f} after fine-tuning"
    for original, now in zip(before, base.get_weights()):
        assert np.array_equal(original, now), "the caller's base must not change"
    copied = {layer.name: layer for layer in recognizer.model_.layers}
    changed = [
        layer.name
        for layer in base.layers
        if layer.weights
        and not all(
            np.array_equal(w, c)
            for w, c in zip(layer.get_weights(), copied[layer.name].get_weights())
        )
    ]
    assert changed == [base.layers[-2].name], "only the last weighted layer is fine-tuned"
    assert all(layer.trainable for layer in recognizer.model_.layers)
    # The cached embeddings came from the base before fine-tuning: they are recomputed.
    assert recognizer._embeddings == {}
    recognizer.train(epochs=1, batch_size=16)
    some_id = recognizer.example_ids("6")[0]
    image = recognizer._examples[some_id][1]
    cached = recognizer._embeddings[some_id]
    np.testing.assert_allclose(cached, recognizer._embedder.predict(image[None])[0], rtol=1e-5)
    assert np.abs(cached - base.predict(image[None])[0]).max() > 1e-3


def test_validation_split_is_balanced_per_label(base, digits, monkeypatch):
    x_train, y_train, _, _ = digits
    held_out = []

    def spy(*args, **kwargs):
        parts = el.data.train_test_split(*args, **kwargs)
        held_out.append(parts[3])
        return parts

    monkeypatch.setattr(recognizer_module, "train_test_split", spy)
    recognizer = TransferRecognizer(base, "balanced")
    _collect(recognizer, x_train, y_train, count=20, seed=2)
    history = recognizer.train(epochs=2, validation_split=0.25)
    assert np.bincount(held_out[0]).tolist() == [5, 5, 5, 5]
    assert len(history.history["val_accuracy"]) == 2


def test_labels_are_sorted_and_new_labels_rebuild_the_head():
    rng = np.random.default_rng(0)
    recognizer = TransferRecognizer(_tiny_base(), "words")
    ids = recognizer.collect_example("b", rng.random((3, 8, 8, 1)))
    first = recognizer.collect_example("Z", rng.random((8, 8, 1)))
    assert isinstance(first, str) and len(ids) == 3
    assert recognizer.count_examples() == {"Z": 1, "b": 3}  # JavaScript's sort: "Z" < "b"
    assert recognizer.example_ids("b") == ids and recognizer.example_ids() == [*ids, first]
    recognizer.collect_example("Z", rng.random((2, 8, 8, 1)))
    recognizer.remove_example(ids[0])
    assert recognizer.count_examples() == {"Z": 3, "b": 2}
    recognizer.train(epochs=1)
    assert recognizer.labels_ == ["Z", "b"] and recognizer.model_.output_shape == (None, 2)
    recognizer.collect_example("a", rng.random((2, 8, 8, 1)))
    recognizer.train(epochs=1)
    assert recognizer.labels_ == ["Z", "a", "b"] and recognizer.model_.output_shape == (None, 3)
    recognizer.clear_examples()
    assert recognizer.count_examples() == {}


def test_a_sequential_base_works_too(tmp_path):
    el.random.set_random_seed(4)
    base = el.Sequential(
        [el.layers.Input((8, 8, 3)), el.layers.Conv2D(3, 3), el.layers.GlobalAveragePooling2D()]
    )
    recognizer = TransferRecognizer(base, "sequential", head_units=(4,))
    rng = np.random.default_rng(1)
    recognizer.collect_example("x", rng.random((4, 8, 8, 3)))
    recognizer.collect_example("y", rng.random((4, 8, 8, 3)) + 1)
    recognizer.train(epochs=2, fine_tuning_epochs=1)
    recognizer.save(tmp_path / "model")
    queries = rng.random((3, 8, 8, 3))
    np.testing.assert_array_equal(
        el.load_model(tmp_path / "model").predict(queries), recognizer.predict(queries)[1]
    )


# --------------------------------------------------------------------------- images
def test_images_are_resized_and_channels_mapped(trained, digits):
    recognizer, _ = trained
    _, _, x_test, _ = digits
    images = x_test[:8]
    doubled = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)  # 56 x 56
    # Half-pixel bilinear halving averages each 2 x 2 block: the original digit exactly.
    np.testing.assert_array_equal(recognizer.predict(doubled)[1], recognizer.predict(images)[1])
    rgb = np.random.default_rng(0).random((3, 28, 28, 3), dtype=np.float32)
    gray = rgb @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    np.testing.assert_array_equal(
        recognizer.predict(rgb)[1], recognizer.predict(gray[..., None])[1]
    )
    odd = np.random.default_rng(1).random((2, 40, 30, 1), dtype=np.float32)
    np.testing.assert_array_equal(
        recognizer.predict(odd)[1], recognizer.predict(resize(odd, (28, 28)))[1]
    )


def _parse(data):
    length = struct.unpack_from("<I", data, 8)[0]
    manifest = json.loads(data[12 : 12 + length])
    return manifest, np.frombuffer(data, "<f4", offset=12 + length)


def test_grayscale_examples_are_repeated_for_an_rgb_base():
    recognizer = TransferRecognizer(_tiny_base((8, 8, 3)), "rgb")
    gray = np.arange(64, dtype=np.float32).reshape(8, 8)
    recognizer.collect_example("a", gray)
    recognizer.collect_example("b", gray[..., None].astype(np.uint8))
    manifest, values = _parse(recognizer.serialize_examples())
    assert [entry["shape"] for entry in manifest] == [[8, 8, 3], [8, 8, 3]]
    expected = np.repeat(gray[..., None], 3, axis=-1)
    np.testing.assert_array_equal(values.reshape(2, 8, 8, 3), [expected, expected])


# --------------------------------------------------------------------------- files
def test_saved_model_predicts_the_same_in_edgelearn_and_tfjs(trained, digits, tmp_path):
    recognizer, _ = trained
    _, _, x_test, y_test = digits
    x_new, _ = _new_digits(x_test, y_test)
    queries = x_new[:16]
    folder = tmp_path / "new_digits"
    recognizer.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["group1-shard1of1.bin", "model.json"]
    assert load_labels(folder) == list(NEW_DIGITS)
    content = json.loads((folder / "model.json").read_text())
    assert content["userDefinedMetadata"]["wordLabels"] == list(NEW_DIGITS)
    expected = recognizer.predict(queries)[1]
    loaded = el.load_model(folder)
    np.testing.assert_array_equal(loaded.predict(queries), expected)
    assert [layer.name for layer in loaded.layers][-1] == "transfer_output"
    [result] = run_layers_model(
        "predict", [{"model_dir": str(folder), "inputs": [encode(queries)]}], tmp_path
    )
    assert "error" not in result, result.get("error")
    np.testing.assert_allclose(result["outputs"][0], expected, rtol=0, atol=TFJS_TOL)
    recognizer.save(folder)  # replaces the folder, leaving nothing behind
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    (tmp_path / "notes").mkdir()
    with pytest.raises(FileExistsError, match="not a saved model folder"):
        recognizer.save(tmp_path / "notes")


def test_examples_serialize_and_reload_bit_exactly(digits):
    x_train, _, _, _ = digits
    rng = np.random.default_rng(5)
    recognizer = TransferRecognizer(_tiny_base((28, 28, 1)), "digits")
    ids = recognizer.collect_example("zero", x_train[:3])
    ids += recognizer.collect_example("one", rng.random((2, 40, 40, 3)))
    ids.append(recognizer.collect_example("ünïcødé", x_train[5, :, :, 0]))
    data = recognizer.serialize_examples()
    assert data[:8] == b"ELTREX01"
    again = TransferRecognizer(_tiny_base((28, 28, 1)), "copy")
    assert sorted(again.load_examples(data)) == sorted(ids)
    assert again.serialize_examples() == data
    assert again.count_examples() == recognizer.count_examples()
    for example_id in ids:
        original, copy = recognizer._examples[example_id], again._examples[example_id]
        assert original[0] == copy[0] and original[1].tobytes() == copy[1].tobytes()
    with pytest.raises(ValueError, match="already has examples with ids"):
        again.load_examples(data)
    again.collect_example("extra", x_train[9])
    assert again.load_examples(data, clear_existing=True) and "extra" not in again.count_examples()
    # A recognizer whose base takes another size resizes the loaded examples.
    smaller = TransferRecognizer(_tiny_base((14, 14, 1)), "small")
    smaller.load_examples(data)
    manifest, values = _parse(smaller.serialize_examples())
    assert {tuple(entry["shape"]) for entry in manifest} == {(14, 14, 1)}
    first = [entry["id"] for entry in manifest].index(ids[0])
    np.testing.assert_array_equal(
        values.reshape(-1, 14, 14, 1)[first], resize(x_train[:1], (14, 14))[0]
    )
    empty = TransferRecognizer(_tiny_base(), "empty")
    assert empty.load_examples(empty.serialize_examples()) == []


def _serialized(manifest, values=b""):
    text = json.dumps(manifest).encode()
    return struct.pack("<8sI", b"ELTREX01", len(text)) + text + values


ONE = np.ones(64, "<f4").tobytes()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"ELTREX", "truncated data: 6 bytes"),
        (b"ELTREX02" + b"\x00" * 4, "starts with b'ELTREX02', expected b'ELTREX01'"),
        (struct.pack("<8sI", b"ELTREX01", 50) + b"[]", "manifest claims 50 bytes, 2 follow"),
        (struct.pack("<8sI", b"ELTREX01", 2) + b"[{", "the manifest is corrupt"),
        (_serialized({"id": "a"}), "manifest must be a JSON list"),
        (
            _serialized([{"label": "a", "shape": [8, 8, 1]}], ONE),
            "manifest\\[0\\] needs a non-empty",
        ),
        (
            _serialized([{"id": "a", "label": "x", "shape": [8, 8, 1]}] * 2, ONE * 2),
            "the id 'a' appears twice",
        ),
        (
            _serialized([{"id": "a", "label": "_unknown_", "shape": [8, 8, 1]}], ONE),
            "manifest\\[0\\].label must be a non-empty string other than the reserved labels",
        ),
        (
            _serialized([{"id": "a", "label": 3, "shape": [8, 8, 1]}], ONE),
            "manifest\\[0\\].label must be a str",
        ),
        (
            _serialized([{"id": "a", "label": "x", "shape": [8, -8, 1]}], ONE),
            "shape must be a list of positive ints",
        ),
        (
            _serialized([{"id": "a", "label": "x", "shape": [8, 8, 1]}], ONE[:-4]),
            "truncated data: the manifest's 1 examples need 256 bytes of float32 data, 252 follow",
        ),
        (
            _serialized([{"id": "a", "label": "x", "shape": [8, 8, 1]}], ONE + b"\x00"),
            "trailing bytes",
        ),
        (_serialized([{"id": "a", "label": "x", "shape": [2**40, 2**40]}], ONE), "truncated data"),
        (
            _serialized(
                [{"id": "a", "label": "x", "shape": [8, 8, 1]}],
                np.full(64, np.nan, "<f4").tobytes(),
            ),
            "NaN or infinite",
        ),
    ],
)
def test_corrupt_example_data_raise_clear_errors_and_change_nothing(data, message):
    recognizer = TransferRecognizer(_tiny_base(), "corrupt")
    recognizer.collect_example("kept", np.ones((8, 8)))
    before = recognizer.serialize_examples()
    with pytest.raises(ExamplesFormatError, match=message):
        recognizer.load_examples(data, clear_existing=True)
    assert recognizer.serialize_examples() == before


def test_examples_the_base_cannot_take_are_refused_and_change_nothing():
    recognizer = TransferRecognizer(_tiny_base(), "rgba")
    recognizer.collect_example("kept", np.ones((8, 8)))
    before = recognizer.serialize_examples()
    rgba = _serialized([{"id": "a", "label": "x", "shape": [8, 8, 4]}], ONE * 4)
    with pytest.raises(ValueError, match="the serialized examples has 4 channels"):
        recognizer.load_examples(rgba, clear_existing=True)
    assert recognizer.serialize_examples() == before


# --------------------------------------------------------------------------- errors
def test_constructor_checks_its_arguments():
    base = _tiny_base()
    inputs = el.layers.Input((8, 8, 1))
    two_outputs = el.Model(inputs, [el.layers.Flatten()(inputs), el.layers.Flatten()(inputs)])
    any_size = el.layers.Input((None, None, 1))
    unsized = el.Model(any_size, el.layers.GlobalAveragePooling2D()(any_size))
    cases = [
        ({"base": np.ones(3)}, TypeError, "base to be an edgelearn Model"),
        ({"base": two_outputs}, ValueError, "one input and one output"),
        ({"base": unsized}, ValueError, "fixed input and output size"),
        ({"name": ""}, ValueError, "name must be a non-empty string"),
        ({"head_units": (0,)}, ValueError, "head_units must be a sequence of positive ints"),
        ({"head_units": "64"}, ValueError, "head_units must be a sequence of positive ints"),
        ({"head_units": 64}, ValueError, "head_units must be a sequence of positive ints"),
        ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\)"),
        ({"optimizer": "nope"}, ValueError, "Unknown optimizer 'nope'"),
        ({"optimizer": el.optimizers.Adam()}, TypeError, "optimizer must be an optimizer name"),
        ({"learning_rate": 0}, ValueError, "learning_rate must be a positive number"),
    ]
    for overrides, error, message in cases:
        arguments = {"base": base, "name": "r", **overrides}
        with pytest.raises(error, match=message):
            TransferRecognizer(**arguments)


def test_bad_examples_and_calls_raise_clear_errors():
    recognizer = TransferRecognizer(_tiny_base(), "errors")
    image = np.ones((8, 8, 1))
    with pytest.raises(RuntimeError, match="not trained yet"):
        recognizer.predict(image)
    with pytest.raises(ValueError, match="has no examples"):
        recognizer.train()
    for label in ("", "_unknown_", "_background_noise_"):
        with pytest.raises(ValueError, match="non-empty string other than the reserved labels"):
            recognizer.collect_example(label, image)
    with pytest.raises(TypeError, match="label must be a str, received int 3"):
        recognizer.collect_example(3, image)
    with pytest.raises(ValueError, match=r"x has 4 channels.*drop an alpha channel"):
        recognizer.collect_example("a", np.ones((2, 8, 8, 4)))
    with pytest.raises(ValueError, match=r"has 28 channels.*add a channel axis, x\[\.\.\., None\]"):
        recognizer.collect_example("a", np.ones((5, 28, 28)))  # a grayscale batch without its axis
    with pytest.raises(ValueError, match="one image .* or a batch"):
        recognizer.collect_example("a", np.ones((1, 1, 8, 8, 1)))
    with pytest.raises(ValueError, match="is empty"):
        recognizer.collect_example("a", np.ones((0, 8, 8, 1)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        recognizer.collect_example("a", np.full((8, 8, 1), np.inf))
    with pytest.raises(ValueError, match="numeric array"):
        recognizer.collect_example("a", [["x"]])
    recognizer.collect_example("cat", image)
    two_labels = r"^train needs examples of at least two labels; have: \['cat'\]$"
    with pytest.raises(ValueError, match=two_labels):
        recognizer.train()
    recognizer.collect_example("dog", np.zeros((3, 8, 8, 1)))
    with pytest.raises(ValueError, match="validation_split=0.5 needs at least 2 examples"):
        recognizer.train(validation_split=0.5)
    for arguments, message in [
        ({"validation_split": 1.0}, r"validation_split must be in \[0, 1\)"),
        ({"epochs": -1}, "epochs must be a non-negative integer"),
        ({"fine_tuning_epochs": 1.5}, "fine_tuning_epochs must be a non-negative integer"),
        (
            {"fine_tuning_epochs": 1, "fine_tuning_layers": 2},
            r"fine_tuning_layers must be an integer in \[1, 1\]",
        ),
        (
            {"fine_tuning_epochs": 1, "fine_tuning_learning_rate": -1.0},
            "fine_tuning_learning_rate must be",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            recognizer.train(**arguments)
    with pytest.raises(ValueError, match="no example with id 'nope'"):
        recognizer.remove_example("nope")
    with pytest.raises(ValueError, match=r"label 'bird'; the labels are \['cat', 'dog'\]"):
        recognizer.example_ids("bird")
    recognizer.train(epochs=1)
    with pytest.raises(ValueError, match=r"labels the recognizer was not trained on: \['bird'\]"):
        recognizer.evaluate(np.ones((1, 8, 8, 1)), ["bird"])
    with pytest.raises(ValueError, match="x has 2 images but y has 1 labels"):
        recognizer.evaluate(np.ones((2, 8, 8, 1)), ["cat"])
    with pytest.raises(FileNotFoundError, match="not a saved TransferRecognizer"):
        load_labels(".")
