"""The names the issues promise users reach from `import edgelearn as el`."""

import subprocess
import sys

import edgelearn as el


def test_issue_api_names_are_reachable():
    assert callable(el.applications.MobileNetV2) and callable(el.applications.MobileNet)
    assert callable(el.applications.mobilenet_v2.preprocess_input)
    assert callable(el.transfer.KNNClassifier) and callable(el.transfer.TransferRecognizer)
    assert callable(el.load_model) and callable(el.Model) and callable(el.Sequential)


def test_core_import_needs_no_optional_package():
    blocked = ["PIL", "h5py", "onnx", "onnxruntime", "fastapi", "rich", "torch"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import edgelearn as el\n"
        "m = el.Sequential([el.layers.Input((2,)), el.layers.Dense(1)])\n"
        "print(m.predict([[1.0, 2.0]]).shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 1)"
