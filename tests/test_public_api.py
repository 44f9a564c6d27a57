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
    blocked = ["PIL", "h5py", "onnx", "onnxruntime", "fastapi", "rich", "torch", "numba"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import numpy as np\n"
        "import edgelearn as el\n"
        "from edgelearn.engine import jit\n"
        "m = el.Sequential([el.layers.Input((4, 4, 2)), el.layers.DepthwiseConv2D(3),\n"
        "                   el.layers.ReLU(), el.layers.Flatten(), el.layers.Dense(1)])\n"
        "print(m.predict(np.ones((1, 4, 4, 2))).shape, jit.enabled())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    # The depthwise convolution ran on the NumPy path: numba is an optional extra.
    assert result.stdout.strip() == "(1, 1) False"


def test_import_leaves_what_a_prediction_does_not_need_until_first_use():
    code = (
        "import sys\n"
        "import edgelearn as el\n"
        "deferred = ['urllib.request', 'edgelearn.io.keras', 'edgelearn.io.onnx',\n"
        "            'edgelearn.datasets', 'edgelearn.applications', 'edgelearn.transfer']\n"
        "print(sorted(name for name in deferred if name in sys.modules))\n"
        "print(el.datasets.mnist.__name__, el.io.onnx.__name__, 'transfer' in dir(el))\n"
        "try:\n"
        "    el.no_such_module\n"
        "except AttributeError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "[]",
        "edgelearn.datasets.mnist edgelearn.io.onnx True",
        "module 'edgelearn' has no attribute 'no_such_module'",
    ]
