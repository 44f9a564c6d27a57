"""Data preparation helpers: class-balanced train/test split, one-hot labels, normalisation.

Example:
    >>> import numpy as np
    >>> x = np.arange(20, dtype="float32").reshape(10, 2)
    >>> y = np.array([0, 1] * 5)
    >>> x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.4, seed=0)
    >>> x_train.shape, x_test.shape, np.bincount(y_test).tolist()
    ((6, 2), (4, 2), [2, 2])
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = ["normalize", "to_categorical", "train_test_split"]


def _stratify_labels(y: np.ndarray) -> np.ndarray:
    """Return one label per sample: argmax of one-hot rows, else the labels themselves."""
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1)
    if y.ndim == 2:
        return y[:, 0]
    if y.ndim == 1:
        return y
    raise ValueError(
        "train_test_split expects y as labels of shape (n,) or one-hot of shape (n, k), "
        f"received shape {y.shape}"
    )


def _test_count(test_size: Any, n: int) -> int:
    """Turn ``test_size`` (a fraction or a count) into a number of test samples."""
    if isinstance(test_size, bool):
        raise TypeError(
            f"train_test_split expects test_size as float or int, received {test_size!r}"
        )
    if isinstance(test_size, numbers.Integral):
        if not 1 <= test_size <= n - 1:
            raise ValueError(
                f"train_test_split expects an int test_size in [1, {n - 1}] for {n} samples, "
                f"received {test_size}"
            )
        return int(test_size)
    if isinstance(test_size, numbers.Real):
        if not 0.0 < test_size < 1.0:
            raise ValueError(
                f"train_test_split expects a float test_size in (0, 1), received {test_size}"
            )
        count = round(float(test_size) * n)
        if not 1 <= count <= n - 1:
            raise ValueError(
                f"train_test_split with test_size={test_size} and {n} samples gives {count} test "
                "samples; both parts need at least one sample"
            )
        return count
    raise TypeError(f"train_test_split expects test_size as float or int, received {test_size!r}")


def _per_class_test_counts(counts: np.ndarray, n_test: int) -> np.ndarray:
    """Split ``n_test`` over classes in proportion to ``counts``, each in [1, count - 1].

    Largest-remainder rounding keeps the total at ``n_test`` unless the one-per-part floor or
    ceiling of some class makes that impossible, in which case the total is as close as it can be.
    """
    ideal = counts * (n_test / counts.sum())
    low, high = np.ones_like(counts), counts - 1
    taken = np.clip(np.floor(ideal).astype(np.int64), low, high)
    # Stable sorts make ties go to the lower class index, so the result is deterministic.
    while (missing := n_test - int(taken.sum())) != 0:
        shortfall = ideal - taken
        if missing > 0:
            room = np.flatnonzero(taken < high)
            if room.size == 0:
                break
            order = room[np.argsort(-shortfall[room], kind="stable")][:missing]
            taken[order] += 1
        else:
            room = np.flatnonzero(taken > low)
            if room.size == 0:
                break
            order = room[np.argsort(shortfall[room], kind="stable")][:-missing]
            taken[order] -= 1
    return taken


def train_test_split(
    x: ArrayLike,
    y: ArrayLike,
    test_size: float | int = 0.3,
    stratify: bool = True,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle and split ``x`` and ``y`` into ``(x_train, x_test, y_train, y_test)``.

    With ``stratify=True`` (the default) every class sends the same fraction of its samples to
    the test set, rounded per class so the total test count stays ``round(test_size * n)``
    where possible, and every class keeps at least one sample in each part.

    Args:
        x: samples, indexed along the first axis.
        y: integer (or any hashable) labels of shape ``(n,)``, or one-hot rows of shape
            ``(n, k)``, in which case the class of a row is its argmax.
        test_size: fraction of samples in the test set, a float in (0, 1), or the number of
            test samples, an int in [1, n - 1].
        stratify: balance the split per class; False shuffles all samples together.
        seed: seed for :func:`numpy.random.default_rng`; the same seed gives the same split.

    Returns:
        ``(x_train, x_test, y_train, y_test)``, the order scikit-learn uses, each shuffled.

    Example:
        >>> import numpy as np
        >>> y = np.repeat([0, 1, 2], [10, 20, 30])
        >>> x = np.arange(60)
        >>> _, x_test, _, y_test = train_test_split(x, y, test_size=0.3, seed=1)
        >>> len(x_test), np.bincount(y_test).tolist()
        (18, [3, 6, 9])
    """
    x_arr, y_arr = np.asarray(x), np.asarray(y)
    if x_arr.ndim == 0 or y_arr.ndim == 0:
        raise ValueError(
            "train_test_split expects x and y with a sample axis, received arrays of shape "
            f"{x_arr.shape} and {y_arr.shape}"
        )
    n = len(x_arr)
    if len(y_arr) != n:
        raise ValueError(
            "train_test_split expects x and y of the same length, "
            f"received len(x)={n}, len(y)={len(y_arr)}"
        )
    if n < 2:
        raise ValueError(f"train_test_split needs at least 2 samples, received {n}")
    n_test = _test_count(test_size, n)
    rng = np.random.default_rng(seed)

    if not stratify:
        order = rng.permutation(n)
        test_idx, train_idx = order[:n_test], order[n_test:]
    else:
        classes, inverse, counts = np.unique(
            _stratify_labels(y_arr), return_inverse=True, return_counts=True
        )
        if np.any(counts < 2):
            lonely = classes[counts < 2].tolist()
            raise ValueError(
                f"train_test_split cannot stratify: class {lonely[0]!r} has only 1 sample and "
                "every class needs at least 2 (one for each part); "
                f"classes with 1 sample: {lonely}. Pass stratify=False to split "
                "without class balance"
            )
        per_class = _per_class_test_counts(counts, n_test)
        test_parts, train_parts = [], []
        for label_index, take in enumerate(per_class):
            members = rng.permutation(np.flatnonzero(inverse == label_index))
            test_parts.append(members[:take])
            train_parts.append(members[take:])
        # Shuffle again so neither part comes out grouped by class.
        test_idx = rng.permutation(np.concatenate(test_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))

    return x_arr[train_idx], x_arr[test_idx], y_arr[train_idx], y_arr[test_idx]


def to_categorical(
    y: ArrayLike, num_classes: int | None = None, dtype: DTypeLike = "float32"
) -> np.ndarray:
    """Convert integer class labels to one-hot rows, like ``keras.utils.to_categorical``.

    A trailing axis of size 1 is dropped (labels of shape ``(n, 1)`` give ``(n, k)``), and
    ``num_classes`` defaults to ``max(y) + 1``.

    Example:
        >>> to_categorical([0, 2, 1], num_classes=3).tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    labels = np.asarray(y)
    if labels.dtype.kind not in "biuf":
        raise TypeError(f"to_categorical expects integer labels, received dtype {labels.dtype}")
    if labels.dtype.kind == "f":
        fractional = labels[labels != np.round(labels)]
        if fractional.size:
            raise ValueError(
                f"to_categorical expects integer labels, received the value {fractional[0]}"
            )
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1).astype(np.int64)
    if flat.size and flat.min() < 0:
        raise ValueError(
            f"to_categorical expects labels >= 0, received the label {int(flat.min())}"
        )
    if num_classes is None:
        if flat.size == 0:
            raise ValueError("to_categorical cannot infer num_classes from empty labels; pass it")
        num_classes = int(flat.max()) + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"to_categorical expects num_classes as an int, received {num_classes!r}")
    elif num_classes < 1:
        raise ValueError(f"to_categorical expects num_classes >= 1, received {num_classes}")
    elif flat.size and flat.max() >= num_classes:
        raise ValueError(
            f"to_categorical expects labels < num_classes={num_classes}, "
            f"received the label {int(flat.max())}"
        )
    one_hot = np.zeros((flat.size, int(num_classes)), dtype=dtype)
    one_hot[np.arange(flat.size), flat] = 1
    return one_hot.reshape(shape + (int(num_classes),))


def normalize(x: ArrayLike, axis: int = -1, order: float = 2) -> np.ndarray:
    """Scale ``x`` to unit ``order``-norm along ``axis``, like ``keras.utils.normalize``.

    Vectors whose norm is zero are left as zeros. Floating inputs keep their dtype; integer
    inputs give float64, as NumPy division does.

    Example:
        >>> normalize([[3.0, 4.0], [0.0, 0.0]]).tolist()
        [[0.6, 0.8], [0.0, 0.0]]
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"normalize expects a numeric array, received dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError("normalize expects an array with at least one axis, received a scalar")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"normalize expects axis as an int, received {axis!r}")
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(
            f"normalize expects axis in [{-arr.ndim}, {arr.ndim - 1}] for an array of shape "
            f"{arr.shape}, received {axis}"
        )
    if isinstance(order, bool) or not isinstance(order, numbers.Real) or not order > 0:
        raise ValueError(f"normalize expects order > 0 (2 for L2, 1 for L1), received {order!r}")
    norm = np.linalg.norm(arr, ord=order, axis=int(axis), keepdims=True)
    norm[norm == 0] = 1
    return arr / norm
