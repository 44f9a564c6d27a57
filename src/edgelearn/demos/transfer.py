"""Few-shot learning on real images: when does transfer learning pay off?

The seed article's idea: a base recognizer trained on many samples is reused, and a transfer
recognizer learns new labels from a handful of examples. This demo measures it on Fashion-MNIST
(the official files, offline from Debian's ``dataset-fashion-mnist``) with 1, 5, 10, 20 and 50
examples per class, always on the same held-out test images, for:

(a) the MobileNetV2 base (offline: the real MobileNetV2 that npm ``nsfwjs`` ships, see
    :mod:`edgelearn.applications.nsfwjs`; with network: ImageNet weights), images upsampled to
    the base's input and repeated to RGB, with a KNN classifier (k=3, cosine, as TF.js) and with
    a trained softmax head on its embeddings, for all 10 classes;
(b) a base recognizer that edgelearn trains itself on classes 0-5 (36,000 images), transferred
    to the unseen classes 6-9: the transfer recognizer forgets the old labels;
(c) blank training of the codelab CNN on the same few examples.

Example:
    >>> from edgelearn.demos import transfer
    >>> transfer.SHOTS
    (1, 5, 10, 20, 50)
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import edgelearn as el
from edgelearn.applications import images
from edgelearn.applications.mobilenet_v2 import MobileNetV2, preprocess_input
from edgelearn.datasets.fashion_mnist import CLASS_NAMES
from edgelearn.demos.mnist import codelab_cnn
from edgelearn.transfer import KNNClassifier, TransferRecognizer
from edgelearn.utils import tfjs_node

SHOTS = (1, 5, 10, 20, 50)
TEST_PER_CLASS = 50
OLD_CLASSES, NEW_CLASSES = tuple(range(6)), tuple(range(6, 10))
HEAD_EPOCHS = 100
BLANK_EPOCHS = 60
logger = logging.getLogger("edgelearn.demos")


def sample(
    y: np.ndarray, classes: Sequence[int], per_class: int, rng: np.random.Generator
) -> np.ndarray:
    """``per_class`` random indices of each class, class by class; the first n of each class form
    the n-shot sets, so the sets are nested and every method sees the same examples."""
    return np.stack([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in classes])


def shot_indices(pool: np.ndarray, shots: int) -> np.ndarray:
    return pool[:, :shots].ravel()


def knn_accuracy(
    train: np.ndarray, train_y: np.ndarray, test: np.ndarray, test_y: np.ndarray
) -> float:
    knn = KNNClassifier()
    for embedding, label in zip(train, train_y):
        knn.add_example(embedding, int(label))
    predicted = np.array([r["label"] for r in knn.predict_classes(test, k=3)])
    return float((predicted == test_y).mean())


def head_accuracy(
    train: np.ndarray,
    train_y: np.ndarray,
    test: np.ndarray,
    test_y: np.ndarray,
    classes: Sequence[int],
    seed: int,
) -> float:
    """A softmax layer trained on the embeddings (what TransferRecognizer trains first)."""
    el.random.set_random_seed(seed)
    labels = np.searchsorted(classes, train_y)
    head = el.Sequential(
        [el.layers.Input((train.shape[1],)), el.layers.Dense(len(classes), activation="softmax")]
    )
    head.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    head.fit(train, labels, epochs=HEAD_EPOCHS, batch_size=32, verbose=0)
    return float((np.asarray(classes)[head.predict(test).argmax(1)] == test_y).mean())


def blank_accuracy(
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    classes: Sequence[int],
    seed: int,
) -> float:
    """The codelab CNN trained from scratch on the few examples only."""
    el.random.set_random_seed(seed)
    model = el.Sequential(
        [*codelab_cnn().layers[:-1], el.layers.Dense(len(classes), activation="softmax")]
    )
    model.build((None, 28, 28, 1))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(
        _pixels(x),
        np.searchsorted(classes, y),
        epochs=BLANK_EPOCHS,
        batch_size=min(32, len(x)),
        verbose=0,
    )
    predicted = np.asarray(classes)[model.predict(_pixels(x_test)).argmax(1)]
    return float((predicted == y_test).mean())


def _pixels(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 255)[..., np.newaxis]


def mobilenet_embeddings(base: el.Model, x: np.ndarray, scaling: str) -> np.ndarray:
    """28x28 grey -> RGB at the base's input size -> ``preprocess_input`` -> embeddings."""
    size = base.input_shape[1]
    prepared = images.resize(images.to_rgb(x.astype(np.float32)), size)
    return base.predict(preprocess_input(prepared, weights=scaling), batch_size=64)


def own_base(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, epochs: int, seed: int
) -> tuple[el.Model, float]:
    """The codelab CNN trained on classes 0-5; returns its embedder (up to Flatten) and its test
    accuracy on those classes."""
    el.random.set_random_seed(seed)
    inputs = el.layers.Input((28, 28, 1))
    hidden = inputs
    for layer in codelab_cnn().layers[:-1]:
        hidden = layer(hidden)
    outputs = el.layers.Dense(len(OLD_CLASSES), activation="softmax")(hidden)
    model = el.Model(inputs, outputs, name="fashion_base_0_5")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(_pixels(x), y, epochs=epochs, batch_size=64, verbose=0)
    accuracy = model.evaluate(_pixels(x_test), y_test, verbose=0)[1]
    return el.Model(inputs, hidden, name="fashion_embedder"), float(accuracy)


def format_table(title: str, rows: dict[str, list[float]], shots: Sequence[int]) -> str:
    width = max(len(name) for name in rows) + 2
    lines = [title, "examples per class".ljust(width) + "".join(f"{n:>7}" for n in shots)]
    lines += [
        name.ljust(width) + "".join(f"{v:>7.2f}" for v in values) for name, values in rows.items()
    ]
    return "\n".join(lines)


def run(
    shots: Sequence[int] = SHOTS,
    size: int = 96,
    seed: int = 0,
    base_epochs: int = 3,
    base_samples: int | None = None,
    check_tfjs: bool = True,
    print_fn: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the three comparisons and print two tables; returns the measured accuracies.

    ``base_samples`` caps the images the own base trains on (default: all 36,000 of classes
    0-5), for quick runs.
    """
    start = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = el.datasets.fashion_mnist.load_data()
    rng = np.random.default_rng(seed)
    most = max(shots)
    all_classes = tuple(range(10))
    pool = sample(y_train, all_classes, most, rng)
    test = sample(y_test, all_classes, TEST_PER_CLASS, rng).ravel()
    results: dict[str, Any] = {"shots": list(shots)}

    # (a) MobileNetV2 features for all 10 classes.
    base = MobileNetV2(include_top=False, pooling="avg", input_shape=(size, size, 3))
    weights = base.pretrained_weights
    scalings = ["imagenet"] + (["nsfwjs"] if weights == "nsfwjs" else [])
    rows: dict[str, list[float]] = {}
    for scaling in scalings:
        scale_name = "[-1, 1]" if scaling == "imagenet" else "[0, 1]"
        train_embeddings = mobilenet_embeddings(base, x_train[pool.ravel()], scaling)
        test_embeddings = mobilenet_embeddings(base, x_test[test], scaling)
        by_class = train_embeddings.reshape(10, most, -1)
        knn, head = [], []
        for n in shots:
            chosen = by_class[:, :n].reshape(10 * n, -1)
            labels = y_train[shot_indices(pool, n)]
            knn.append(knn_accuracy(chosen, labels, test_embeddings, y_test[test]))
            head.append(
                head_accuracy(chosen, labels, test_embeddings, y_test[test], all_classes, seed)
            )
        rows[f"MobileNetV2 {size}px {scale_name} + KNN"] = knn
        rows[f"MobileNetV2 {size}px {scale_name} + head"] = head
    rows["blank codelab CNN"] = [
        blank_accuracy(
            x_train[shot_indices(pool, n)],
            y_train[shot_indices(pool, n)],
            x_test[test],
            y_test[test],
            all_classes,
            seed,
        )
        for n in shots
    ]
    results["mobilenet"] = {"weights": weights, "size": size, "rows": rows}
    print_fn(f"(a) all 10 classes, {len(test)} test images; MobileNetV2 weights: {weights}")
    print_fn(format_table("accuracy", rows, shots))

    # (b) a base trained on classes 0-5, transferred to the unseen classes 6-9.
    old = np.flatnonzero(np.isin(y_train, OLD_CLASSES))[:base_samples]
    old_test = np.isin(y_test, OLD_CLASSES)
    embedder, base_accuracy = own_base(
        x_train[old], y_train[old], x_test[old_test], y_test[old_test], base_epochs, seed
    )
    new_pool = sample(y_train, NEW_CLASSES, most, rng)
    new_test = sample(y_test, NEW_CLASSES, TEST_PER_CLASS, rng).ravel()
    new_rows: dict[str, list[float]] = {
        "own base + KNN": [],
        "own base + head": [],
        "blank codelab CNN": [],
    }
    train_embeddings = embedder.predict(_pixels(x_train[new_pool.ravel()])).reshape(
        len(NEW_CLASSES), most, -1
    )
    test_embeddings = embedder.predict(_pixels(x_test[new_test]))
    for n in shots:
        chosen = train_embeddings[:, :n].reshape(len(NEW_CLASSES) * n, -1)
        labels = y_train[shot_indices(new_pool, n)]
        new_rows["own base + KNN"].append(
            knn_accuracy(chosen, labels, test_embeddings, y_test[new_test])
        )
        new_rows["own base + head"].append(
            head_accuracy(chosen, labels, test_embeddings, y_test[new_test], NEW_CLASSES, seed)
        )
        new_rows["blank codelab CNN"].append(
            blank_accuracy(
                x_train[shot_indices(new_pool, n)],
                labels,
                x_test[new_test],
                y_test[new_test],
                NEW_CLASSES,
                seed,
            )
        )
    results["own_base"] = {"accuracy_on_0_5": base_accuracy, "rows": new_rows}
    print_fn(
        f"\n(b) base trained on classes 0-5 ({len(old):,} images, {base_accuracy:.1%} on "
        f"their test images), transferred to classes 6-9, {len(new_test)} test images"
    )
    print_fn(format_table("accuracy", new_rows, shots))

    # The transfer recognizer itself, saved for the browser: does TF.js predict the same?
    if check_tfjs:
        results["tfjs_max_abs_diff"] = _recognizer_in_tfjs(
            embedder,
            x_train[shot_indices(new_pool, 20)],
            y_train[shot_indices(new_pool, 20)],
            x_test[new_test],
            y_test[new_test],
            seed,
            print_fn,
        )
    print_fn(f"\n({time.perf_counter() - start:.0f} s)")
    return results


def _recognizer_in_tfjs(
    embedder: el.Model,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    print_fn: Callable[[str], None],
) -> float | None:
    el.random.set_random_seed(seed)
    recognizer = TransferRecognizer(embedder, "fashion_6_9")
    for label in NEW_CLASSES:
        recognizer.collect_example(CLASS_NAMES[label], _pixels(x[y == label]))
    recognizer.train(epochs=HEAD_EPOCHS, batch_size=32, verbose=0)
    evaluation = recognizer.evaluate(_pixels(x_test), [CLASS_NAMES[label] for label in y_test])
    print_fn(
        f"\nTransferRecognizer, 20 examples per class: {evaluation['accuracy']:.1%} on the "
        f"{len(y_test)} test images"
    )
    if not tfjs_node.available():
        print_fn("(TF.js check skipped: node_modules/@tensorflow/tfjs not found; run `npm ci`)")
        return None
    with tempfile.TemporaryDirectory() as folder:
        recognizer.save(folder + "/recognizer")
        queries = _pixels(x_test[:50])
        ours = recognizer.predict(queries)[1]
        theirs = tfjs_node.predict(folder + "/recognizer", queries)
    difference = float(np.abs(ours - theirs).max())
    print_fn(
        f"Saved with recognizer.save(dir) and loaded by tf.loadLayersModel in node: "
        f"max abs difference of the probabilities {difference:.1e} on 50 images"
    )
    return difference
