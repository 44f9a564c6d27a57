"""edgelearn demo transfer: the few-shot comparison on Fashion-MNIST."""

import pathlib

import pytest

from edgelearn.demos import transfer
from edgelearn.utils.files import find_node_package

pytestmark = [
    pytest.mark.skipif(
        not pathlib.Path("/usr/share/datasets/fashion-mnist").is_dir(),
        reason="Debian's dataset-fashion-mnist is not installed",
    ),
    pytest.mark.skipif(find_node_package("nsfwjs") is None, reason="run `npm ci` (nsfwjs)"),
]


def test_demo_runs_every_comparison_and_checks_tfjs(monkeypatch):
    # Small and quick: tiny MobileNetV2 input, two shot counts, one epoch of the own base.
    monkeypatch.setattr(transfer, "HEAD_EPOCHS", 20)
    monkeypatch.setattr(transfer, "BLANK_EPOCHS", 5)
    lines = []
    results = transfer.run(
        shots=(1, 3), size=32, base_epochs=1, base_samples=3000, print_fn=lines.append
    )
    text = "\n".join(lines)
    assert "MobileNetV2 32px [-1, 1] + KNN" in text and "own base + head" in text
    assert results["mobilenet"]["weights"] == "nsfwjs"
    for rows in (results["mobilenet"]["rows"], results["own_base"]["rows"]):
        for values in rows.values():
            assert len(values) == 2 and all(0 <= v <= 1 for v in values)
    assert results["own_base"]["accuracy_on_0_5"] > 0.5
    assert results["tfjs_max_abs_diff"] is None or results["tfjs_max_abs_diff"] <= 1e-5


@pytest.mark.slow
def test_mobilenet_rows_reproduce_the_calibration():
    """The issue's calibration (PyTorch and TF.js, one seed): nsfwjs MobileNetV2 at 96 px with
    preprocess_input, 20 examples per class, 500 test images: KNN 0.50, linear head 0.57; blank
    codelab CNN 0.71; own base on 0-5 -> 6-9: KNN 0.89, head 0.89, blank 0.92."""
    results = transfer.run(shots=(20,), size=96, check_tfjs=False, print_fn=lambda line: None)
    rows = results["mobilenet"]["rows"]
    assert rows["MobileNetV2 96px [-1, 1] + KNN"][0] == pytest.approx(0.50, abs=0.06)
    assert rows["MobileNetV2 96px [-1, 1] + head"][0] == pytest.approx(0.57, abs=0.06)
    assert rows["blank codelab CNN"][0] == pytest.approx(0.71, abs=0.06)
    own = results["own_base"]["rows"]
    assert own["own base + KNN"][0] == pytest.approx(0.89, abs=0.05)
    assert own["own base + head"][0] == pytest.approx(0.89, abs=0.05)
