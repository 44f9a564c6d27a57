"""KNNClassifier: TF.js knn-classifier semantics, real digits, files.

The reference below is a literal port of ``@tensorflow-models/knn-classifier`` 1.2.x
(``src/index.ts``: addExample, clearClass, predictClass, calculateTopClass; ``src/util.ts``: topK)
onto a model of JavaScript objects, whose keys iterate as ECMAScript's OrdinaryOwnPropertyKeys
says: array indices in ascending order, then the other keys in insertion order. The classifier
must agree with it on every prediction, ties included.

Accuracy floor (real digits): a small CNN trained for 5 epochs on the digits 0-5 of the local
MNIST copy gives 32-dimensional embeddings; KNN (k=3) with 20 examples of each of the 10 digits
classifies the 3,000 test digits with accuracy 0.829 at these seeds (0.78-0.83 over five
seeds). The floor is 0.65, far above chance (0.10).
"""

import json
import struct

import numpy as np
import pytest

from edgelearn.transfer import KNNClassifier, KNNFormatError
from edgelearn.transfer import knn as knn_module

KNN_FLOOR = 0.65


# --------------------------------------------------------------------------- the TF.js reference
def _is_array_index(key):
    return key.isdigit() and key.isascii() and str(int(key)) == key and int(key) <= 2**32 - 2


class JSObject:
    """Keys of a JavaScript object, in for ... in order."""

    def __init__(self):
        self.values = {}  # Python dicts keep insertion order, as JS does for non-index keys

    def __contains__(self, key):
        return key in self.values

    def __getitem__(self, key):
        return self.values[key]

    def __setitem__(self, key, value):
        self.values[key] = value

    def __delitem__(self, key):
        del self.values[key]

    def ordered_keys(self):
        indices = sorted((k for k in self.values if _is_array_index(k)), key=int)
        return indices + [k for k in self.values if not _is_array_index(k)]


class ReferenceKNN:
    """knn-classifier 1.2.x, statement by statement."""

    def __init__(self):
        self.class_dataset_matrices = JSObject()
        self.class_example_count = JSObject()
        self.label_to_class_id = {}
        self.next_class_id = 0

    def add_example(self, example, label):
        label = str(label)
        if label not in self.label_to_class_id:
            self.label_to_class_id[label] = self.next_class_id
            self.next_class_id += 1
        flat = np.asarray(example, np.float32).ravel()
        normalized = flat / np.float32(np.sqrt(np.sum(flat.astype(np.float64) ** 2)))
        if label not in self.class_dataset_matrices:
            self.class_dataset_matrices[label] = [normalized]
            self.class_example_count[label] = 0
        else:
            self.class_dataset_matrices[label].append(normalized)
        self.class_example_count[label] += 1

    def clear_class(self, label):
        del self.class_dataset_matrices[str(label)]
        del self.class_example_count[str(label)]

    def predict_class(self, example, k):
        flat = np.asarray(example, np.float64).ravel()
        query = flat / np.sqrt(np.sum(flat**2))
        rows = [
            row
            for key in self.class_dataset_matrices.ordered_keys()
            for row in self.class_dataset_matrices[key]
        ]
        similarities = [float(np.dot(np.asarray(row, np.float64), query)) for row in rows]
        k_val = min(k, len(rows))
        # util.ts topK: a stable sort by descending value.
        order = sorted(range(len(similarities)), key=lambda i: -similarities[i])
        top_k = order[:k_val]
        class_offsets, offset = {}, 0
        for label in self.class_dataset_matrices.ordered_keys():
            offset += self.class_example_count[label]
            class_offsets[label] = offset
        votes = {label: 0 for label in self.class_dataset_matrices.ordered_keys()}
        for index in top_k:
            for label in self.class_dataset_matrices.ordered_keys():
                if index < class_offsets[label]:
                    votes[label] += 1
                    break
        top_confidence, top_label, confidences = 0, None, {}
        for label in self.class_dataset_matrices.ordered_keys():
            probability = votes[label] / k_val
            if probability > top_confidence:
                top_confidence, top_label = probability, label
            confidences[label] = probability
        return {
            "label": top_label,
            "class_index": self.label_to_class_id[top_label],
            "confidences": confidences,
        }


def _as_js(result):
    """A classifier result with its labels spelled as TF.js's object keys."""
    return {
        "label": str(result["label"]),
        "class_index": result["class_index"],
        "confidences": [(str(k), v) for k, v in result["confidences"].items()],
    }


def _reference_as_list(result):
    return {**result, "confidences": list(result["confidences"].items())}


def _grid_vectors(rng, n, dim=8):
    """Vectors with four entries of +-1: unit length is 0.5 per entry, so every similarity is an
    exact multiple of 0.25 in any summation order, and ties are everywhere."""
    vectors = np.zeros((n, dim), np.float32)
    for row in vectors:
        row[rng.choice(dim, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
    return vectors


def test_agrees_with_tfjs_reference_on_ties_everywhere():
    rng = np.random.default_rng(0)
    labels = ["b", "a", 10, "9", 3, -1, "x y", 0, "07", 2**32 - 2, 2**32 - 1]
    ours, reference = KNNClassifier(), ReferenceKNN()
    vectors = _grid_vectors(rng, 120)
    for i, vector in enumerate(vectors):
        label = labels[rng.integers(len(labels))]
        ours.add_example(vector, label)
        reference.add_example(vector, label)
        if i in (40, 80):  # a re-created class moves to the end of the string keys
            cleared = "b" if i == 40 else 3
            ours.clear_class(cleared)
            reference.clear_class(cleared)
    queries = _grid_vectors(rng, 60)
    for k in (1, 2, 3, 4, 7, 20, 118, 500):
        batch = ours.predict_classes(queries, k=k)
        for query, result in zip(queries, batch):
            expected = _reference_as_list(reference.predict_class(query, k))
            assert _as_js(result) == expected, f"k={k}"
            assert ours.predict_class(query, k=k) == result
    order = reference.class_dataset_matrices.ordered_keys()
    assert [str(label) for label in ours.class_example_count()] == order


def test_agrees_with_tfjs_reference_on_real_valued_embeddings():
    rng = np.random.default_rng(1)
    ours, reference = KNNClassifier(), ReferenceKNN()
    for vector in rng.standard_normal((200, 16)).astype(np.float32):
        label = int(rng.integers(5))
        ours.add_example(vector, label)
        reference.add_example(vector, label)
    queries = rng.standard_normal((100, 16)).astype(np.float32)
    matrix = ours._matrix()[1].astype(np.float64)
    checked = 0
    for k in (1, 3, 10):
        for query, result in zip(queries, ours.predict_classes(queries, k=k)):
            similarities = np.sort(matrix @ (query / np.linalg.norm(query)))[::-1]
            if similarities[k - 1] - similarities[k] < 1e-5:
                continue  # a near-tie: float32 and float64 rounding may order it differently
            assert _as_js(result) == _reference_as_list(reference.predict_class(query, k))
            checked += 1
    assert checked > 250


def test_k_above_the_number_of_examples_is_capped_like_tfjs():
    knn = KNNClassifier()
    knn.add_example(np.array([1.0, 0.0]), "a")
    knn.add_example(np.array([0.0, 1.0]), "b")
    result = knn.predict_class(np.array([1.0, 0.0]), k=5)
    # kVal = min(k, 2): both examples vote, each class gets 1/2, and the tie goes to "a".
    assert result == {"label": "a", "class_index": 0, "confidences": {"a": 0.5, "b": 0.5}}


def test_vote_ties_go_to_the_first_class_in_javascript_key_order():
    knn = KNNClassifier()
    knn.add_example(np.array([1.0, 0.0]), "b")
    knn.add_example(np.array([0.0, 1.0]), "a")
    query = np.array([1.0, 1.0])
    assert knn.predict_class(query, k=2)["label"] == "b"  # insertion order for string keys
    numeric = KNNClassifier()
    numeric.add_example(np.array([1.0, 0.0]), 10)
    numeric.add_example(np.array([0.0, 1.0]), "9")
    numeric.add_example(np.array([-1.0, 0.0]), "z")
    assert numeric.predict_class(query, k=2)["label"] == "9"  # array indices first, by value
    assert list(numeric.class_example_count()) == ["9", 10, "z"]


def test_similarity_ties_go_to_the_earlier_example():
    knn = KNNClassifier()
    knn.add_example(np.array([0.0, 2.0]), "b")
    knn.add_example(np.array([0.0, 3.0]), "a")  # the same direction: the same similarity
    assert knn.predict_class(np.array([0.0, 1.0]), k=1)["label"] == "b"
    knn.add_example(np.array([0.0, 5.0]), 4)  # an array index: its class comes first
    assert knn.predict_class(np.array([0.0, 1.0]), k=1)["label"] == 4


def test_class_indices_survive_clearing_and_recreated_classes_move_last():
    knn = KNNClassifier()
    for vector, label in [([1, 0], "a"), ([0, 1], "b"), ([1, 1], "c")]:
        knn.add_example(np.array(vector, np.float32), label)
    knn.clear_class("a")
    assert knn.num_classes == 2 and knn.class_example_count() == {"b": 1, "c": 1}
    knn.add_example(np.array([1.0, 0.0]), "a")
    assert list(knn.class_example_count()) == ["b", "c", "a"]
    result = knn.predict_class(np.array([1.0, 0.0]), k=1)
    assert (result["label"], result["class_index"]) == ("a", 0)
    knn.clear_all()
    assert knn.num_classes == 0 and knn.class_example_count() == {}
    knn.add_example(np.array([0.0, 1.0]), "d")
    assert knn.predict_class(np.array([0.0, 1.0]))["class_index"] == 3
    with pytest.raises(ValueError, match="previous examples have shape"):
        knn.add_example(np.zeros(3) + 1, "d")  # the example shape outlives clear_all, as in TF.js


def test_bad_arguments_say_what_was_expected():
    knn = KNNClassifier()
    with pytest.raises(ValueError, match="no examples"):
        knn.predict_class(np.ones(2))
    with pytest.raises(ValueError, match="zero or non-finite norm"):
        knn.add_example(np.zeros(5), 1)
    assert not hasattr(knn, "example_shape_"), "a refused example must not fix the shape"
    knn.add_example(np.array([1.0, 2.0]), 1)
    for k in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match=r"k must be a positive integer"):
            knn.predict_class(np.ones(2), k=k)
    with pytest.raises(ValueError, match=r"shape \(2,\); received an example of shape \(3,\)"):
        knn.predict_class(np.ones(3))
    with pytest.raises(ValueError, match=r"\(3,\), but the previous examples have shape \(2,\)"):
        knn.add_example(np.ones(3), 1)
    with pytest.raises(ValueError, match="zero or non-finite norm"):
        knn.add_example(np.zeros(2), 1)
    with pytest.raises(ValueError, match=r"x \(row 1\) has a zero or non-finite norm"):
        knn.predict_classes(np.array([[1.0, 0.0], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="would be one class in TF.js"):
        knn.add_example(np.ones(2), "1")
    for label, error in [(None, TypeError), (1.5, TypeError), (True, TypeError), ("", ValueError)]:
        with pytest.raises(error, match="label must be"):
            knn.add_example(np.ones(2), label)
    with pytest.raises(ValueError, match=r"label 'x'; the labels with examples are \[1\]"):
        knn.clear_class("x")
    with pytest.raises(ValueError, match="non-empty batch"):
        knn.predict_classes(np.ones(2))
    with pytest.raises(ValueError, match="numeric array"):
        knn.add_example(np.array(["a", "b"]), 2)


def test_batches_larger_than_one_product_are_split(monkeypatch):
    rng = np.random.default_rng(2)
    knn = KNNClassifier()
    for vector in rng.standard_normal((50, 4)):
        knn.add_example(vector, int(rng.integers(3)))
    queries = rng.standard_normal((40, 4))
    whole = knn.predict_classes(queries, k=5)
    monkeypatch.setattr(knn_module, "_MAX_PAIRS_PER_PRODUCT", 7 * 50)  # chunks of 7 queries
    assert knn.predict_classes(queries, k=5) == whole


# --------------------------------------------------------------------------- real digits


def _per_class(labels, count, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:count] for c in range(10)])


def test_knn_on_real_digit_embeddings_beats_the_floor(digits, base):
    x_train, y_train, x_test, y_test = digits
    chosen = _per_class(y_train, 20, seed=0)
    knn = KNNClassifier()
    for embedding, label in zip(base.predict(x_train[chosen]), y_train[chosen]):
        knn.add_example(embedding, int(label))
    results = knn.predict_classes(base.predict(x_test), k=3)
    accuracy = np.mean([r["label"] for r in results] == y_test)
    assert accuracy > KNN_FLOOR, f"KNN accuracy {accuracy:.3f} on 3,000 real test digits"
    assert knn.class_example_count() == {digit: 20 for digit in range(10)}


def test_a_base_embeds_images_the_same_way(digits, base):
    x_train, y_train, x_test, _ = digits
    chosen = _per_class(y_train, 5, seed=1)
    on_embeddings, on_images = KNNClassifier(), KNNClassifier(base=base)
    for image, label in zip(x_train[chosen], y_train[chosen]):
        # One image at a time on both sides: the same batch size gives the same float32 sums.
        on_embeddings.add_example(base.predict(image[None])[0], int(label))
        on_images.add_example(image, int(label))
    expected = on_embeddings.predict_classes(base.predict(x_test[:100]), k=3)
    assert on_images.predict_classes(x_test[:100], k=3) == expected
    single = on_images.predict_class(x_test[0, :, :, 0], k=3)  # (h, w): one grayscale image
    assert single == on_images.predict_classes(x_test[:1], k=3)[0]
    with pytest.raises(ValueError, match="must be one example"):
        on_images.add_example(x_test[:2], 1)
    with pytest.raises(ValueError, match="must be a batch"):
        on_images.predict_classes(x_test[0])
    with pytest.raises(ValueError, match="has 4 channels"):
        on_images.predict_class(np.ones((28, 28, 4)))


# --------------------------------------------------------------------------- files
def _filled(rng):
    knn = KNNClassifier()
    for vector in rng.standard_normal((30, 6)):
        knn.add_example(vector, ["cat", 7, "dog", "2"][int(rng.integers(4))])
    knn.add_example(rng.standard_normal(6), "gone")
    knn.clear_class("gone")
    return knn


def test_save_and_load_give_identical_predictions(tmp_path):
    rng = np.random.default_rng(3)
    knn = _filled(rng)
    path = tmp_path / "knn.bin"
    knn.save(path)
    loaded = KNNClassifier.load(path)
    queries = rng.standard_normal((50, 6))
    for k in (1, 3, 8):
        assert loaded.predict_classes(queries, k=k) == knn.predict_classes(queries, k=k)
    assert loaded.class_example_count() == knn.class_example_count()
    assert loaded.example_shape_ == (6,)
    assert np.array_equal(loaded._matrix()[1], knn._matrix()[1])
    loaded.add_example(rng.standard_normal(6), "gone")  # its class index was kept
    assert loaded.predict_class(loaded._matrix()[1][-1], k=1)["class_index"] == 4
    loaded.save(path)
    assert not list(tmp_path.glob(".*")), "the atomic write left a temporary file"
    empty = tmp_path / "empty.bin"
    KNNClassifier().save(empty)
    assert KNNClassifier.load(empty).num_classes == 0


def _file(header, data=b""):
    text = json.dumps(header).encode()
    return struct.pack("<8sI", b"ELKNNC01", len(text)) + text + data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"ELKNN", "truncated: 5 bytes"),
        (b"NOTKNN!!\x00\x00\x00\x00", "not a saved KNNClassifier"),
        (struct.pack("<8sI", b"ELKNNC01", 100) + b"{}", "JSON header claims 100 bytes, 2 follow"),
        (struct.pack("<8sI", b"ELKNNC01", 3) + b"{x}", "JSON header is corrupt"),
        (_file([]), "must be an object with a 'classes' list"),
        (_file({"example_shape": [2, 0], "classes": []}), "list of positive ints"),
        (
            _file(
                {"example_shape": [2], "classes": [{"label": "a", "class_index": 0, "count": 2}]},
                b"\x00" * 12,
            ),
            "truncated: 2 examples of shape \\(2,\\) need 16 bytes",
        ),
        (
            _file(
                {"example_shape": [1], "classes": [{"label": "a", "class_index": 0, "count": 1}]},
                b"\x00" * 8,
            ),
            "trailing bytes",
        ),
        (
            _file(
                {
                    "example_shape": [1],
                    "classes": [
                        {"label": "a", "class_index": 0, "count": 1},
                        {"label": "a", "class_index": 1, "count": 0},
                    ],
                },
                b"\x00" * 4,
            ),
            "label 'a' appears twice",
        ),
        (
            _file(
                {"example_shape": [1], "classes": [{"label": "a", "class_index": 5, "count": 0}]}
            ),
            "class indices must be 0",
        ),
        (
            _file(
                {"example_shape": [1], "classes": [{"label": None, "class_index": 0, "count": 0}]}
            ),
            "classes\\[0\\].label must be a str or an int",
        ),
        (
            _file(
                {"example_shape": [1], "classes": [{"label": "a", "class_index": 0, "count": -1}]}
            ),
            "classes\\[0\\].count must be a non-negative int",
        ),
        (
            _file(
                {"example_shape": [1], "classes": [{"label": "a", "class_index": 0, "count": 1}]},
                np.array([np.nan], "<f4").tobytes(),
            ),
            "NaN or infinite",
        ),
        (
            _file(
                {
                    "example_shape": [1],
                    "classes": [
                        {"label": "b", "class_index": 0, "count": 1},
                        {"label": 3, "class_index": 1, "count": 1},
                    ],
                },
                np.ones(2, "<f4").tobytes(),
            ),
            "not stored in vote order",
        ),
    ],
)
def test_corrupt_files_raise_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(KNNFormatError, match=message) as raised:
        KNNClassifier.load(path)
    assert str(path) in str(raised.value)
