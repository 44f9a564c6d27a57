"""The edgelearn command line: convert and info."""

import numpy as np

import edgelearn as el
from edgelearn import cli


def _saved_model(folder):
    el.random.set_random_seed(0)
    model = el.Sequential([el.layers.Input((4,)), el.layers.Dense(3, activation="softmax")])
    model.save(folder)
    return model


def test_info_prints_summary_size_and_shapes(tmp_path, capsys):
    _saved_model(tmp_path / "m")
    assert cli.main(["info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "Parameters: 15" in out and "Size on disk:" in out
    assert "Inputs: input_layer" in out and "(None, 4)" in out and "Outputs: dense" in out


def test_convert_quantizes_and_refuses_to_overwrite_without_flag(tmp_path, capsys):
    model = _saved_model(tmp_path / "m")
    assert (
        cli.main(["convert", str(tmp_path / "m"), str(tmp_path / "q"), "--quantize", "uint8"]) == 0
    )
    assert "uint8-quantized" in capsys.readouterr().out
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(
        el.load_model(tmp_path / "q").predict(x), model.predict(x), atol=0.02
    )
    assert cli.main(["convert", str(tmp_path / "m"), str(tmp_path / "q")]) == 1
    assert "use --overwrite" in capsys.readouterr().err
    assert cli.main(["convert", str(tmp_path / "m"), str(tmp_path / "q"), "--overwrite"]) == 0
    np.testing.assert_array_equal(el.load_model(tmp_path / "q").predict(x), model.predict(x))


def test_missing_model_is_a_clean_error(tmp_path, capsys):
    assert cli.main(["info", str(tmp_path / "nothing")]) == 1
    assert "No model at" in capsys.readouterr().err
