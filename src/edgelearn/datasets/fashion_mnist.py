"""Fashion-MNIST (Zalando's clothing images), loaded like ``keras.datasets.fashion_mnist``.

Sources, in the order ``source="auto"`` tries them:

1. ``official``: the four gzip IDX files Keras uses, taken from the cache when their SHA-256
   values match, otherwise downloaded from Keras's storage bucket and cached.
2. ``local``: the same official files as Debian's package ``dataset-fashion-mnist`` installs them
   in ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``).

Debian's build (strip-nondeterminism) rewrote each file's 10-byte gzip header: it dropped the
stored file name and set the modification time to the package's build date. The compressed
data is untouched, so putting the original header back gives the official bytes, and the local
files are checked against the official SHA-256 values that way.

Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker,
8 Bag, 9 Ankle boot (see :data:`CLASS_NAMES`).

Example:
    >>> (x_train, y_train), (x_test, y_test) = load_data()  # doctest: +SKIP
    >>> x_train.shape, x_test.shape  # doctest: +SKIP
    ((60000, 28, 28), (10000, 28, 28))
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import struct

import numpy as np

from edgelearn.datasets._common import (
    BASE_URL,
    DOWNLOAD_ERRORS,
    DatasetUnavailableError,
    cached_or_downloaded,
    check_images_and_labels,
    check_source,
    gunzip,
    logger,
    parse_idx,
    resolve_cache_path,
)
from edgelearn.home import home

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# SHA-256 of the official files, as keras/src/datasets/fashion_mnist.py (FILE_HASHES) lists them.
FILE_HASHES = {
    "train-labels-idx1-ubyte.gz": (
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
    ),
    "train-images-idx3-ubyte.gz": (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
    ),
}
FILES = tuple(FILE_HASHES)

# The gzip modification time (Unix seconds, 2017-08-31 UTC) in each official file's header,
# which Debian's copy lost. Found by rebuilding the header for each candidate time until the
# official SHA-256 matched; the stored name is the file name without ".gz".
_OFFICIAL_GZIP_MTIME = {
    "train-labels-idx1-ubyte.gz": 1504176606,
    "train-images-idx3-ubyte.gz": 1504176606,
    "t10k-labels-idx1-ubyte.gz": 1504176627,
    "t10k-images-idx3-ubyte.gz": 1504176627,
}
DEBIAN_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

# gzip header: magic 1f 8b, method 08 (deflate), then the flags byte; FNAME is flag bit 3.
_GZIP_PREFIX = b"\x1f\x8b\x08"
_FNAME = 0x08


def _how_to_get_it() -> str:
    return (
        f"Either allow network access to {BASE_URL} (files {', '.join(FILES)}; they are cached "
        f"under {home() / 'datasets' / 'fashion-mnist'} after the first download), or install "
        f"Debian's copy of the official files into {DEBIAN_DIR} with "
        "`apt-get install dataset-fashion-mnist`"
    )


def official_gzip_bytes(data: bytes, name: str) -> bytes:
    """Rebuild the official file ``name`` from Debian's copy by restoring its gzip header.

    Debian's copy has no stored file name (flags 0) and a build-time modification time; the
    official header stores the file name and the 2017 time. Anything else is returned as is.

    Example:
        >>> import hashlib
        >>> debian = DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz"
        >>> data = official_gzip_bytes(debian.read_bytes(), debian.name)  # doctest: +SKIP
        >>> hashlib.sha256(data).hexdigest() == FILE_HASHES[debian.name]  # doctest: +SKIP
        True
    """
    if name not in _OFFICIAL_GZIP_MTIME:
        raise ValueError(f"official_gzip_bytes expects one of {', '.join(FILES)}, got {name!r}")
    if len(data) < 10 or data[:3] != _GZIP_PREFIX or data[3] != 0:
        return data
    header = (
        _GZIP_PREFIX
        + bytes([_FNAME])
        + struct.pack("<I", _OFFICIAL_GZIP_MTIME[name])
        + data[8:10]  # extra flags and operating system, which Debian kept
        + name.removesuffix(".gz").encode("ascii")
        + b"\x00"
    )
    return header + data[10:]


def _read_local_file(path: pathlib.Path) -> bytes:
    """Read one Debian file and check that it is the official file with a rewritten header."""
    data = path.read_bytes()
    expected = FILE_HASHES[path.name]
    if hashlib.sha256(data).hexdigest() == expected:
        return data
    actual = hashlib.sha256(official_gzip_bytes(data, path.name)).hexdigest()
    if actual != expected:
        raise ValueError(
            f"{path} is not the official Fashion-MNIST file: with the official gzip header "
            f"restored its SHA-256 is {actual}, expected {expected}"
        )
    return data


def _parse(files: dict[str, bytes], origin: str | os.PathLike[str]) -> Split:
    def part(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        images_name = f"{prefix}-images-idx3-ubyte.gz"
        labels_name = f"{prefix}-labels-idx1-ubyte.gz"
        images_source = pathlib.Path(origin) / images_name
        labels_source = pathlib.Path(origin) / labels_name
        x = parse_idx(gunzip(files[images_name], images_source), images_source)
        y = parse_idx(gunzip(files[labels_name], labels_source), labels_source)
        check_images_and_labels(x, y, f"{images_source} and {labels_source}")
        return x, y

    return part("train"), part("t10k")


def load_data(path: str | os.PathLike[str] | None = None, source: str = "auto") -> Split:
    """Load Fashion-MNIST as ``((x_train, y_train), (x_test, y_test))``, like Keras.

    ``x`` arrays are uint8 of shape ``(n, 28, 28)`` (60,000 train, 10,000 test); ``y`` arrays
    are uint8 labels 0..9 of shape ``(n,)``, named in :data:`CLASS_NAMES`.

    Args:
        path: folder where the four official files are cached; relative paths are relative to
            ``cache_dir("datasets")`` (default ``cache_dir("datasets") / "fashion-mnist"``).
        source: ``"auto"`` (official, falling back to local), ``"official"`` or ``"local"``
            (Debian's copy in :data:`DEBIAN_DIR`).

    Raises:
        DatasetUnavailableError: no allowed source could provide the data; the message says why
            and how to get it.

    Example:
        >>> (x_train, y_train), _ = load_data(source="local")  # doctest: +SKIP
        >>> CLASS_NAMES[y_train[0]]  # doctest: +SKIP
        'Ankle boot'
    """
    check_source(source, "fashion_mnist.load_data")
    failures = []
    if source in ("auto", "official"):
        folder = resolve_cache_path(path, "fashion-mnist")
        try:
            hows = {
                name: cached_or_downloaded(BASE_URL + name, FILE_HASHES[name], folder / name)
                for name in FILES
            }
            data = _parse({name: (folder / name).read_bytes() for name in FILES}, folder)
            logger.info("Fashion-MNIST: official files in %s (%s)", folder, hows)
            return data
        except DOWNLOAD_ERRORS as exc:
            failures.append(f"the official files could not be downloaded from {BASE_URL}: {exc}")
        if source == "auto":
            logger.info("Fashion-MNIST: %s; trying Debian's copy in %s", failures[-1], DEBIAN_DIR)
    if source in ("auto", "local"):
        missing = [name for name in FILES if not (DEBIAN_DIR / name).is_file()]
        if missing:
            failures.append(f"no local copy: {DEBIAN_DIR} lacks {', '.join(missing)}")
        else:
            data = _parse({name: _read_local_file(DEBIAN_DIR / name) for name in FILES}, DEBIAN_DIR)
            logger.info("Fashion-MNIST: Debian's copy of the official files in %s", DEBIAN_DIR)
            return data
    raise DatasetUnavailableError(
        f"Fashion-MNIST is not available ({'; '.join(failures)}). {_how_to_get_it()}."
    )
