"""Shared dataset plumbing: IDX parsing, verified cached downloads, source selection, errors.

Example:
    >>> import numpy as np
    >>> header = bytes([0, 0, 0x08, 1]) + (3).to_bytes(4, "big")
    >>> parse_idx(header + bytes([7, 8, 9]), "example").tolist()
    [7, 8, 9]
"""

from __future__ import annotations

import gzip
import http.client
import logging
import math
import os
import pathlib
import struct
import zlib

import numpy as np

from edgelearn.home import cache_dir
from edgelearn.utils.files import ChecksumError, download, sha256_file

logger = logging.getLogger("edgelearn.datasets")

# The folder Keras downloads its datasets from; the files there carry the hashes Keras checks.
BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# Seconds per blocking network operation: long enough for a slow link, short enough that an
# offline machine (where DNS usually fails at once anyway) falls back to a local copy quickly.
DOWNLOAD_TIMEOUT = 10.0
SOURCES = ("auto", "official", "local")

# What a failed download can raise: URLError and socket timeouts are OSErrors; a truncated
# body can surface as an HTTPException; a wrong body as ChecksumError.
DOWNLOAD_ERRORS = (OSError, http.client.HTTPException, ChecksumError)

_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DatasetUnavailableError(RuntimeError):
    """No source could provide a dataset; the message says how to make one available."""


def check_source(source: str, loader: str) -> None:
    """Raise a clear error unless ``source`` is one of :data:`SOURCES`."""
    if source not in SOURCES:
        raise ValueError(
            f"{loader} expects source to be one of {', '.join(map(repr, SOURCES))}, "
            f"received {source!r}"
        )


def resolve_cache_path(path: str | os.PathLike[str] | None, default: str) -> pathlib.Path:
    """Return where an official file (or folder) is cached.

    Like Keras, a relative ``path`` is taken relative to the datasets cache folder
    (``cache_dir("datasets")``) and an absolute one is used as given.
    """
    if path is None:
        return cache_dir("datasets") / default
    resolved = pathlib.Path(path).expanduser()
    return resolved if resolved.is_absolute() else cache_dir("datasets") / resolved


def cached_or_downloaded(url: str, sha256: str, dest: pathlib.Path) -> str:
    """Make sure ``dest`` holds the file at ``url`` with hash ``sha256``.

    Returns ``"cached"`` when ``dest`` already had the right hash and ``"downloaded"`` when it
    had to be fetched. Download failures propagate (see :data:`DOWNLOAD_ERRORS`).
    """
    if dest.is_file():
        actual = sha256_file(dest)
        if actual == sha256:
            return "cached"
        logger.warning(
            "cached file %s has SHA-256 %s, expected %s; downloading it again", dest, actual, sha256
        )
    download(url, sha256, dest, timeout=DOWNLOAD_TIMEOUT)
    return "downloaded"


def gunzip(data: bytes, source: str | os.PathLike[str]) -> bytes:
    """Decompress gzip ``data`` read from ``source``, with an error that names the file."""
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(
            f"{source} is not a valid gzip file (truncated or corrupt): {exc}"
        ) from exc


def parse_idx(data: bytes, source: str | os.PathLike[str]) -> np.ndarray:
    """Parse the bytes of an IDX file (the MNIST format) into a native-endian array.

    Checks the magic number (two zero bytes, a type code, the number of dimensions) and that
    the length matches the dimensions exactly; ``source`` names the file in errors.
    """
    if len(data) < 4:
        raise ValueError(
            f"{source} is not an IDX file: it has {len(data)} bytes, fewer than the 4-byte "
            "magic number"
        )
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise ValueError(
            f"{source} is not an IDX file: its magic number is 0x{data[:4].hex()}, expected "
            "0x0000 followed by a type code (08, 09, 0b, 0c, 0d or 0e) and a dimension count"
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{source} is truncated: its header declares {ndim} dimensions, which need "
            f"{header} header bytes, but the file has {len(data)} bytes"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(
            f"{source} is {problem}: dimensions {dims} of {dtype.name} need {expected} bytes, "
            f"the file has {len(data)}"
        )
    # Copy so the result is writable and native-endian, like an array loaded from .npz.
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip-compressed (detected from its content) or not.

    Example:
        >>> import gzip, pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte.gz"
        >>> _ = p.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2, 4, 2])))
        >>> read_idx(p).tolist()
        [4, 2]
    """
    data = pathlib.Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gunzip(data, path)
    return parse_idx(data, path)


def check_images_and_labels(
    x: np.ndarray, y: np.ndarray, source: str | os.PathLike[str], num_classes: int = 10
) -> None:
    """Check that ``x`` is ``(n, 28, 28)`` uint8 and ``y`` is ``(n,)`` uint8 in [0, num_classes)."""
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(
            f"{source}: expected uint8 images of shape (n, 28, 28), "
            f"found {x.dtype} of shape {x.shape}"
        )
    if y.dtype != np.uint8 or y.shape != (len(x),):
        raise ValueError(
            f"{source}: expected {len(x)} uint8 labels of shape ({len(x)},), "
            f"found {y.dtype} of shape {y.shape}"
        )
    if y.size and int(y.max()) >= num_classes:
        raise ValueError(
            f"{source}: expected labels in [0, {num_classes - 1}], found the label {int(y.max())}"
        )
