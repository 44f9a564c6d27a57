"""Tests for edgelearn.data: train_test_split, to_categorical, normalize."""

import numpy as np
import pytest

from edgelearn.data import normalize, to_categorical, train_test_split


def _labels(counts):
    return np.repeat(np.arange(len(counts)), counts)


# --- train_test_split ------------------------------------------------------------------------


@pytest.mark.parametrize(("test_size", "n_test"), [(0.3, 30), (0.25, 25), (25, 25), (0.9, 90)])
def test_split_sizes(test_size, n_test):
    x = np.arange(100).reshape(100, 1)
    y = _labels([50, 50])
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, seed=0)
    assert x_train.shape == (100 - n_test, 1) and x_test.shape == (n_test, 1)
    assert (len(y_train), len(y_test)) == (100 - n_test, n_test)


def test_split_is_a_partition_that_keeps_x_and_y_aligned():
    x = np.arange(60)
    y = x % 3
    x_train, x_test, y_train, y_test = train_test_split(x, y, seed=1)
    assert sorted(np.concatenate([x_train, x_test]).tolist()) == list(range(60))
    np.testing.assert_array_equal(y_train, x_train % 3)
    np.testing.assert_array_equal(y_test, x_test % 3)


@pytest.mark.parametrize(
    ("counts", "test_size"),
    [([50, 30, 20], 0.3), ([7, 11, 13], 0.3), ([3, 5, 8, 13, 21], 0.5), ([5, 5, 90], 0.2)],
)
def test_split_is_class_balanced(counts, test_size):
    y = _labels(counts)
    x = np.arange(len(y))
    _, _, y_train, y_test = train_test_split(x, y, test_size=test_size, seed=3)
    n_test = round(test_size * len(y))
    assert len(y_test) == n_test
    per_class = np.bincount(y_test, minlength=len(counts))
    ideal = np.array(counts) * n_test / len(y)
    # Per-class rounding: each class within one sample of its share, never emptying a part.
    assert np.all(np.abs(per_class - ideal) < 1)
    assert np.all(per_class >= 1)
    assert np.all(np.bincount(y_train, minlength=len(counts)) >= 1)


def test_split_keeps_small_classes_in_both_parts_and_the_total():
    # Classes 0 and 1 would get 0.2 test samples each; they get 1, and class 2 gives one up.
    y = _labels([2, 2, 96])
    _, _, y_train, y_test = train_test_split(np.arange(100), y, test_size=0.1, seed=0)
    assert np.bincount(y_test).tolist() == [1, 1, 8]
    assert np.bincount(y_train).tolist() == [1, 1, 88]


def test_split_keeps_every_class_in_both_parts_even_when_the_total_cannot_be_met():
    y = _labels([2, 2, 2])
    _, _, y_train, y_test = train_test_split(np.arange(6), y, test_size=1, seed=0)
    assert sorted(y_test.tolist()) == [0, 1, 2]
    assert sorted(y_train.tolist()) == [0, 1, 2]


def test_split_is_deterministic_by_seed_and_shuffled():
    x = np.arange(200)
    y = _labels([100, 100])
    first = train_test_split(x, y, seed=42)
    second = train_test_split(x, y, seed=42)
    other = train_test_split(x, y, seed=43)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other[1])
    # The test part is not grouped by class (nor sorted).
    assert np.any(np.diff(first[3]) < 0)


def test_split_one_hot_labels_stratifies_on_argmax_and_returns_rows():
    labels = _labels([40, 20])
    y = np.eye(2, dtype="float32")[labels]
    x = np.arange(60)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, seed=0)
    assert y_test.shape == (30, 2) and y_test.dtype == np.float32
    assert np.bincount(y_test.argmax(axis=1)).tolist() == [20, 10]
    np.testing.assert_array_equal(y_train.argmax(axis=1), labels[x_train])


def test_split_without_stratify():
    x = np.arange(10)
    y = np.array([0] * 9 + [1])  # class 1 has one sample: fine without stratification
    x_train, x_test, _, _ = train_test_split(x, y, test_size=0.3, stratify=False, seed=0)
    assert len(x_test) == 3 and len(x_train) == 7
    assert sorted(np.concatenate([x_train, x_test]).tolist()) == list(range(10))


def test_split_accepts_string_labels():
    y = np.array(["cat", "dog"] * 10)
    _, _, _, y_test = train_test_split(np.arange(20), y, test_size=0.5, seed=0)
    assert sorted(y_test.tolist()) == ["cat"] * 5 + ["dog"] * 5


def test_split_errors():
    x = np.arange(10)
    with pytest.raises(ValueError, match=r"same length, received len\(x\)=10, len\(y\)=9"):
        train_test_split(x, np.zeros(9))
    for bad in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="float test_size in \\(0, 1\\)"):
            train_test_split(x, x % 2, test_size=bad)
    for bad in (0, 10, -1):
        with pytest.raises(ValueError, match=r"int test_size in \[1, 9\]"):
            train_test_split(x, x % 2, test_size=bad)
    with pytest.raises(TypeError, match="test_size as float or int"):
        train_test_split(x, x % 2, test_size=True)
    with pytest.raises(TypeError, match="test_size as float or int"):
        train_test_split(x, x % 2, test_size="0.3")
    with pytest.raises(ValueError, match="class 7 has only 1 sample"):
        train_test_split(x, np.array([0] * 9 + [7]))
    with pytest.raises(ValueError, match=r"shape \(10, 2, 2\)"):
        train_test_split(x, np.zeros((10, 2, 2)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        train_test_split([1], [0])


# --- to_categorical ---------------------------------------------------------------------------


def test_to_categorical_matches_keras():
    out = to_categorical([0, 2, 1, 2])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]])
    assert to_categorical([1], num_classes=4).tolist() == [[0.0, 1.0, 0.0, 0.0]]
    assert to_categorical(np.array([[1], [0]])).shape == (2, 2)  # trailing axis of 1 dropped
    assert to_categorical(np.zeros((2, 3), dtype=int), num_classes=5).shape == (2, 3, 5)
    assert to_categorical([1, 0], dtype="int64").dtype == np.int64
    assert to_categorical(np.array([1.0, 0.0])).tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_to_categorical_errors():
    with pytest.raises(ValueError, match="labels >= 0, received the label -1"):
        to_categorical([0, -1, 2])
    with pytest.raises(ValueError, match="labels < num_classes=3, received the label 5"):
        to_categorical([0, 5], num_classes=3)
    with pytest.raises(ValueError, match="integer labels, received the value 1.5"):
        to_categorical([0.0, 1.5])
    with pytest.raises(ValueError, match="num_classes >= 1"):
        to_categorical([0], num_classes=0)
    with pytest.raises(ValueError, match="empty labels"):
        to_categorical([])
    with pytest.raises(TypeError, match="integer labels"):
        to_categorical(["a"])


# --- normalize --------------------------------------------------------------------------------


def test_normalize_l2_rows_and_zero_vectors():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]], dtype="float32")
    out = normalize(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(out[1], [0.0, 0.0])
    np.testing.assert_allclose(np.linalg.norm(out[[0, 2]], axis=1), 1.0, rtol=1e-6)


def test_normalize_axis_and_order():
    x = np.array([[1.0, 2.0], [3.0, 2.0]])
    np.testing.assert_allclose(normalize(x, axis=0, order=1), [[0.25, 0.5], [0.75, 0.5]])
    np.testing.assert_allclose(np.linalg.norm(normalize(x, axis=0), axis=0), 1.0)
    assert normalize(np.array([[3, 4]])).dtype == np.float64  # integers divide to float64


def test_normalize_errors():
    with pytest.raises(ValueError, match=r"axis in \[-2, 1\].*received 2"):
        normalize(np.ones((2, 2)), axis=2)
    with pytest.raises(ValueError, match="order > 0"):
        normalize(np.ones(3), order=0)
    with pytest.raises(ValueError, match="at least one axis"):
        normalize(3.0)
