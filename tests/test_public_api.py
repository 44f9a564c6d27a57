"""The names the issues promise users reach from `import edgelearn as el`."""

import os
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
    # The depthwise convolution and ReLU ran on the NumPy path: numba is an optional extra.
    assert result.stdout.strip() == "(1, 1) False"


def _openblas_timeout_after(code: str, **env: str) -> str:
    """OPENBLAS_THREAD_TIMEOUT as the environment and as numpy's OpenBLAS see it after code."""
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    environment.update(env)
    code += (
        "\nimport os\nfrom edgelearn.engine import blas\n"
        "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'),"
        " [lib.openblas_thread_timeout() for lib in blas.openblas_libraries()])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True
    )
    return result.stdout.strip()


def test_importing_edgelearn_lets_idle_openblas_threads_sleep():
    assert _openblas_timeout_after("import edgelearn") == "4 [4]"
    # numpy first: OpenBLAS has read the default already, and is made to read it again.
    assert _openblas_timeout_after("import numpy\nimport edgelearn") == "4 [4]"
    # A value the user chose stays.
    assert _openblas_timeout_after("import edgelearn", OPENBLAS_THREAD_TIMEOUT="12") == "12 [12]"
    numpy_first = "import numpy\nimport edgelearn"
    assert _openblas_timeout_after(numpy_first, OPENBLAS_THREAD_TIMEOUT="12") == "12 [12]"
