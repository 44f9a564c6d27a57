"""Images for the pre-trained models: reading files, resizing, and batches of RGB images.

Arrays are NHWC with pixels in [0, 255]. :func:`resize` is NumPy only and computes exactly what
``tf.image.resize(images, size)`` (bilinear, half-pixel centres, no antialiasing) and TF.js's
``tf.image.resizeBilinear(images, size, false, true)`` compute. Reading files needs Pillow, an
optional dependency: ``pip install edgelearn[images]``.

Example:
    >>> import numpy as np
    >>> batch = prepare_images(np.zeros((2, 28, 28), np.uint8), 32)
    >>> batch.shape, batch.dtype
    ((2, 32, 32, 3), dtype('float32'))
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger("edgelearn.applications")

INSTALL_HINT = "pip install edgelearn[images] (or: pip install pillow)"
_COLOR_MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
# resize works through images in chunks of about this many float64 bytes per intermediate.
_CHUNK_BYTES = 64 * 1024 * 1024


def _pil_image() -> Any:
    """Pillow's Image module, imported on first use so the core needs NumPy only."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"Reading image files needs Pillow: {INSTALL_HINT}") from None
    return Image


def _check_size(function: str, size: Any) -> tuple[int, int]:
    """``size`` (an int or a (height, width) pair of positive ints) as a pair."""
    pair = (size, size) if isinstance(size, (int, np.integer)) else size
    if not (
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in pair
        )
    ):
        raise ValueError(
            f"{function} expects size as a positive int or a (height, width) pair of positive "
            f"ints. Received: size={size!r}"
        )
    return int(pair[0]), int(pair[1])


def load_img(
    path: str | os.PathLike[str],
    target_size: tuple[int, int] | None = None,
    color_mode: str = "rgb",
    interpolation: str = "bilinear",
) -> np.ndarray:
    """Read an image file as a float32 (height, width, channels) array with pixels in [0, 255].

    ``color_mode`` "rgb" (3 channels), "grayscale" (1) or "rgba" (4); ``target_size``
    (height, width) resizes with Pillow's ``interpolation`` ("nearest", "bilinear", "bicubic",
    "lanczos", "box" or "hamming"), like Keras' ``load_img``. Needs Pillow.

    Example:
        >>> import pathlib, tempfile
        >>> from PIL import Image
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "red.png"
        >>> Image.new("RGB", (4, 2), (255, 0, 0)).save(path)
        >>> image = load_img(path)
        >>> image.shape, image.dtype, image[0, 0].tolist()
        ((2, 4, 3), dtype('float32'), [255.0, 0.0, 0.0])
    """
    if color_mode not in _COLOR_MODES:
        raise ValueError(
            f"load_img expects color_mode 'rgb', 'grayscale' or 'rgba'. "
            f"Received: color_mode={color_mode!r}"
        )
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(
            f"load_img expects interpolation one of {', '.join(_INTERPOLATIONS)}. "
            f"Received: interpolation={interpolation!r}"
        )
    if target_size is not None:
        height, width = _check_size("load_img", target_size)
    image_module = _pil_image()
    with image_module.open(path) as image:
        image = image.convert(_COLOR_MODES[color_mode])
        if target_size is not None and image.size != (width, height):
            resample = getattr(image_module.Resampling, interpolation.upper())
            image = image.resize((width, height), resample)
        array = np.asarray(image, dtype=np.float32)
    return array[..., None] if array.ndim == 2 else array


def _axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (lower, upper) and the fraction between them for each output position,
    as TF.js's resizeBilinear with half-pixel centres computes them (in float64)."""
    source = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    lower = np.maximum(np.floor(source), 0)
    upper = np.minimum(np.ceil(source), in_size - 1)
    # Measured from the clamped lower index, as TF.js does: at the top and left edges the
    # fraction is negative, but there lower == upper and it has no effect.
    return lower.astype(np.intp), upper.astype(np.intp), source - lower


def resize(images: Any, size: int | tuple[int, int]) -> np.ndarray:
    """Resize NHWC images to ``size`` (an int for squares, or (height, width)) bilinearly.

    The result is ``tf.image.resize(images, size)``'s: output pixel ``i`` samples the input at
    ``(i + 0.5) * in / out - 0.5``, clamped to the image, without antialiasing (shrinking by
    more than 2x skips pixels, as in TensorFlow). Computed in float64, returned as float32.

    Example:
        >>> x = np.array([0.0, 10.0], np.float32).reshape(1, 1, 2, 1)
        >>> resize(x, (1, 4)).ravel()
        array([ 0. ,  2.5,  7.5, 10. ], dtype=float32)
    """
    array = np.asarray(images)
    if array.ndim != 4 or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise ValueError(
            "resize expects a 4-D array of real numbers (batch, height, width, channels). "
            f"Received: images with shape {array.shape} and dtype {array.dtype}"
        )
    out_height, out_width = _check_size("resize", size)
    n, height, width, channels = array.shape
    if 0 in (height, width):
        raise ValueError(
            f"resize expects images of at least 1x1 pixels. Received: images.shape={array.shape}"
        )
    rows_low, rows_high, row_frac = _axis_weights(height, out_height)
    cols_low, cols_high, col_frac = _axis_weights(width, out_width)
    row_frac = row_frac[None, :, None, None]
    col_frac = col_frac[None, None, :, None]
    per_image = out_height * max(width, out_width) * channels * 8
    step = max(1, _CHUNK_BYTES // max(per_image, 1))
    result = np.empty((n, out_height, out_width, channels), np.float32)
    for start in range(0, n, step):
        chunk = array[start : start + step].astype(np.float64)
        top_rows, bottom_rows = chunk[:, rows_low], chunk[:, rows_high]
        top_left, top_right = top_rows[:, :, cols_low], top_rows[:, :, cols_high]
        bottom_left, bottom_right = bottom_rows[:, :, cols_low], bottom_rows[:, :, cols_high]
        # TF.js's order of operations, so that float64 rounding matches it too.
        top = top_left + (top_right - top_left) * col_frac
        bottom = bottom_left + (bottom_right - bottom_left) * col_frac
        result[start : start + step] = top + (bottom - top) * row_frac
    return result


def to_rgb(images: Any) -> np.ndarray:
    """Grayscale batches, (N, H, W) or (N, H, W, 1), as (N, H, W, 3) by repeating the gray
    channel; RGB batches (N, H, W, 3) pass through. The dtype is kept.

    Example:
        >>> to_rgb(np.array([[[7]]], np.uint8)).tolist()
        [[[[7, 7, 7]]]]
    """
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise ValueError(
            "to_rgb expects grayscale images (N, H, W) or (N, H, W, 1), or RGB images "
            f"(N, H, W, 3). Received: images.shape={array.shape}"
        )
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def _is_path_list(images: Any) -> bool:
    return (
        isinstance(images, Sequence)
        and not isinstance(images, (str, bytes))
        and len(images) > 0
        and all(isinstance(item, (str, os.PathLike)) for item in images)
    )


def prepare_images(images: Any, size: int) -> np.ndarray:
    """A float32 batch (N, size, size, 3) with pixels in [0, 255], ready for preprocessing.

    ``images``: a uint8 or float array (N, H, W) or (N, H, W, 1) (grayscale, repeated to RGB)
    or (N, H, W, 3), pixels in [0, 255]; or a list of image file paths (read as RGB, needs
    Pillow). Images not already ``size`` x ``size`` are resized with :func:`resize`; files are
    read whole and resized the same way, so a file and its pixels give the same batch.

    Example:
        >>> batch = prepare_images(np.full((1, 8, 8, 3), 255, np.uint8), 4)
        >>> batch.shape, float(batch.max())
        ((1, 4, 4, 3), 255.0)
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(f"prepare_images expects size as a positive int. Received: size={size!r}")
    if _is_path_list(images):
        return np.concatenate([resize(load_img(path)[None], int(size)) for path in images])
    array = np.asarray(images)
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            "prepare_images expects uint8 or float pixels in [0, 255], or a list of image file "
            f"paths. Received: an array of dtype {array.dtype}"
        )
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (1, 3)):
        channels = array.shape[-1] if array.ndim == 4 else None
        hint = " (drop the alpha channel: images[..., :3])" if channels == 4 else ""
        raise ValueError(
            "prepare_images expects a batch of grayscale (N, H, W) or (N, H, W, 1), or RGB "
            f"(N, H, W, 3) images{hint}. Received: images.shape={array.shape}"
        )
    if np.issubdtype(array.dtype, np.floating) and array.size and 0 < float(array.max()) <= 1:
        # The likeliest mistake: images already scaled to [0, 1] would come out nearly black.
        logger.warning(
            "prepare_images: all pixels lie in [0, 1]; it expects [0, 255] "
            "(multiply by 255 if the images were scaled)"
        )
    rgb = to_rgb(array)
    if rgb.shape[1:3] == (size, size):
        return rgb.astype(np.float32)
    return resize(rgb, int(size))


__all__ = ["INSTALL_HINT", "load_img", "prepare_images", "resize", "to_rgb"]
