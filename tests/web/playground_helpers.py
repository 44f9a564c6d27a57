"""Helpers shared by the playground tests (imported by module name; fixtures are in conftest)."""

import json
import pathlib

import numpy as np

import edgelearn as el

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"


def tiny_model(seed=0, units=3):
    el.random.set_random_seed(seed)
    return el.Sequential([el.layers.Input((4,)), el.layers.Dense(units, activation="softmax")])


def tf_io_http_files(model, paths=("./model.weights.bin",)):
    """The multipart parts ``model.save(tf.io.http(url))`` sends (tfjs-core src/io/http.ts):
    a ``model.json`` part (filename model.json, application/json) holding modelTopology and a
    weightsManifest whose one group names ./model.weights.bin, and a ``model.weights.bin`` part
    (filename model.weights.bin, application/octet-stream) holding the weights in order."""
    content, data = el.io.tfjs.model_artifacts(model)
    content["weightsManifest"][0]["paths"] = list(paths)
    content["generatedBy"] = "TensorFlow.js tfjs-layers v4.22.0"
    return {
        "model.json": ("model.json", json.dumps(content).encode(), "application/json"),
        "model.weights.bin": ("model.weights.bin", data, "application/octet-stream"),
    }


def snapshot(folder):
    """Every file under ``folder`` with its bytes: to prove a failed request changed nothing."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(pathlib.Path(folder).rglob("*"))
        if p.is_file()
    }


def max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def open_page(page, live_server, path):
    page.goto(live_server.url + path)
    page.wait_for_selector("body[data-ready=true]")
    return page


def screenshot(page, name):
    """A full-page screenshot in test-artifacts/web/<name>.png (look at them after a run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
