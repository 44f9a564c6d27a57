"""Write the Keras files that tests/io/test_keras.py reads, with Keras 3 itself.

Each model is built and trained with edgelearn (so BatchNormalization's moving statistics are
far from their initial 0 and 1), rebuilt in Keras 3 from edgelearn's JSON config, given
edgelearn's weights layer by layer, and saved by Keras as a ``.keras`` archive and a legacy
``.h5`` file; Keras' predictions on fixed inputs go to ``keras_expected.npz``. (Weights-only
files need no fixture of their own: a ``.keras`` archive's ``model.weights.h5`` is what Keras 3's
``save_weights`` writes, and a Keras 2 weights-only file is a ``.h5`` file's ``model_weights``
group at the root.) Run it again only to change the
fixtures (it needs keras==3.15.1 and torch==2.13.0, which the default test environment lacks):

    KERAS_BACKEND=torch .venv/bin/python tests/io/make_keras_fixtures.py

Example (what the test then does):
    >>> import numpy as np, edgelearn as el  # doctest: +SKIP
    >>> expected = np.load("tests/io/data/keras_expected.npz", allow_pickle=False)  # doctest: +SKIP
    >>> model = el.load_model("tests/io/data/sequential.keras")  # doctest: +SKIP
    >>> bool(np.allclose(model.predict(expected["sequential_x"]), expected["sequential_y"],
    ...                  atol=1e-5))  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras reads it on its first import

import keras
import numpy as np
from keras.src.legacy.saving import saving_utils

import edgelearn as el

DATA = pathlib.Path(__file__).resolve().parent / "data"
SIZE_LIMIT = 200 * 1024  # keep the committed fixtures small


def sequential_model() -> el.Model:
    layers = el.layers
    return el.Sequential(
        [
            layers.Input((8, 8, 3)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.BatchNormalization(momentum=0.8),
            layers.SeparableConv2D(6, 3, padding="same", depth_multiplier=2, activation="relu"),
            layers.DepthwiseConv2D(3),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ],
        name="sequential_fixture",
    )


def functional_model() -> el.Model:
    """Two branches: a Conv2D shared by two calls summed by Add, and a DepthwiseConv2D; joined
    by Concatenate."""
    layers = el.layers
    inputs = layers.Input((8, 8, 2), name="image")
    x = layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    x = layers.BatchNormalization(momentum=0.8)(x)
    shared = layers.Conv2D(6, 1, name="shared_conv")
    first = shared(x)
    summed = layers.Add()([first, shared(first)])
    depthwise = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    joined = layers.Concatenate()([summed, depthwise])
    pooled = layers.GlobalAveragePooling2D()(layers.AveragePooling2D()(joined))
    outputs = layers.Dense(2, activation="softmax")(layers.Dropout(0.2)(pooled))
    return el.Model(inputs, outputs, name="functional_fixture")


def train(model: el.Model, rng: np.random.Generator) -> None:
    # Inputs far from zero mean and unit variance give the moving statistics something to learn.
    x = (3.0 + 2.0 * rng.standard_normal((64, *model.input_shape[1:]))).astype(np.float32)
    y = rng.integers(0, model.output_shape[-1], 64)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=5, verbose=0)


def to_keras(model: el.Model) -> keras.Model:
    """The same model in Keras 3, from edgelearn's JSON and weights. The JSON is Keras 2's, so
    it goes through the reader Keras 3 uses for Keras 2 ``.h5`` files."""
    class_name = "Sequential" if isinstance(model, el.Sequential) else "Functional"
    config = json.loads(json.dumps({"class_name": class_name, "config": model.get_config()}))
    twin = saving_utils.model_from_config(config)
    for layer in model.layers:
        if layer.weights:
            twin.get_layer(layer.name).set_weights(layer.get_weights())
    return twin


def main() -> None:
    el.random.set_random_seed(0)
    rng = np.random.default_rng(0)
    DATA.mkdir(exist_ok=True)
    expected: dict[str, np.ndarray] = {}
    for name, build in (("sequential", sequential_model), ("functional", functional_model)):
        model = build()
        train(model, rng)
        twin = to_keras(model)
        x = (3.0 + 2.0 * rng.standard_normal((5, *model.input_shape[1:]))).astype(np.float32)
        y = np.asarray(twin.predict(x, verbose=0))
        # The twin must compute what edgelearn computes, or the fixture would test nothing.
        assert np.abs(y - model.predict(x)).max() <= 1e-5, name
        expected[f"{name}_x"], expected[f"{name}_y"] = x, y
        twin.save(DATA / f"{name}.keras")
        twin.save(DATA / f"{name}.h5")
    expected["keras_version"] = np.array(keras.__version__)
    np.savez(DATA / "keras_expected.npz", **expected)
    written = [
        DATA / f"{name}{suffix}"
        for name in ("sequential", "functional")
        for suffix in (".keras", ".h5")
    ] + [DATA / "keras_expected.npz"]
    total = sum(path.stat().st_size for path in written)
    for path in written:
        print(f"{path.name:40s} {path.stat().st_size:8d} bytes")
    print(f"total {total} bytes")
    assert total < SIZE_LIMIT, f"fixtures take {total} bytes, more than {SIZE_LIMIT}"


if __name__ == "__main__":
    main()
